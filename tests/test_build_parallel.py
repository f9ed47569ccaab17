"""Reader processes that parse, render and encode give the same build as doing it all in one process, and the
byte-length shortcut for cut positions gives the same sequences as the tokenizer's offsets."""

from __future__ import annotations

import unicodedata

from build_helpers import BOOK, book, make_plan, write


def _corpus(root):
    long_book = "|START_OF_TITLE|>긴 책|END_OF_TITLE|>\n\n" + "\n\n".join(
        f"{i}번째 문단. 바람이 불고 비가 왔다. 아이들은 집으로 달려갔다." for i in range(60)) + "\n|END_OF_BOOK|>\n"
    nfd = unicodedata.normalize("NFD", long_book.replace("긴 책", "풀어 쓴 책"))  # offsets path (not NFC)
    files = [write(root, f"part{k}.txt", "\n".join(book(10 * k + i, paragraphs=4) for i in range(5)))
             for k in range(4)]
    files.append(write(root, "long.txt", long_book + "\n" + BOOK))
    files.append(write(root, "nfd.txt", nfd))
    files.append(write(root, "again.txt", BOOK))  # a duplicate, found across files
    return files


def _summary(p):
    return {
        "splits": {name: [(q.id, q.tok_start, q.tok_end, q.ids.tolist()) for q in qs] for name, qs in p.splits.items()},
        "rows": p.rows,
        "eval": list(p.eval_items),
        "documents": p.documents,
        "lost": [(x.id, x.tokens, x.reason) for x in p.lost],
        "duplicates": p.duplicates,
        "added": p.registration.added,
    }


def test_reader_processes_give_the_same_build(tmp_path, qwen3_tokenizer_dir, monkeypatch):
    import malmungchi.prep.build as build
    import malmungchi.prep.stream as stream
    import malmungchi.prep.encode as encode

    _corpus(tmp_path / "c")
    cfg = dict(max_length=48, eval_context=32, allow_errors=True)
    serial = make_plan([tmp_path / "c"], qwen3_tokenizer_dir, **cfg)
    monkeypatch.setattr(stream, "PARALLEL_BYTES", 0)  # a pool even for a small corpus
    pooled = build.plan([str(tmp_path / "c")], serial.cfg, build_registry(), tokenizer_source=str(qwen3_tokenizer_dir),
                        jobs=2)
    monkeypatch.setattr(encode, "token_byte_lengths", lambda backend, vocab=None: None)  # offsets everywhere
    offsets = build.plan([str(tmp_path / "c")], serial.cfg, build_registry(),
                         tokenizer_source=str(qwen3_tokenizer_dir), jobs=2)
    want = _summary(serial)
    assert len(want["splits"]["train"]) > 10 and any("@" in q[0] for q in want["splits"]["train"])  # chunked
    assert want["duplicates"] == 1 and want["eval"]
    assert _summary(pooled) == want
    assert _summary(offsets) == want


def build_registry():
    from malmungchi.schemas.registry import default_registry

    return default_registry()


def test_tiktoken_gives_the_same_build_in_readers_and_in_one_process(tmp_path, qwen3_tokenizer_dir, monkeypatch):
    """The readers inherit tiktoken's encoder from the main process; the main process encodes with it too (the
    NFD book is left to the tokenizer); every sequence, row and eval item is the same as with the tokenizer."""
    import malmungchi.prep.build as build
    import malmungchi.prep.stream as stream

    _corpus(tmp_path / "c")
    cfg = dict(max_length=48, eval_context=32, allow_errors=True)
    want = _summary(make_plan([tmp_path / "c"], qwen3_tokenizer_dir, **cfg))
    serial = build.plan([str(tmp_path / "c")], build.BuildConfig(**cfg), build_registry(),
                        tokenizer_source=str(qwen3_tokenizer_dir), encoder="tiktoken")
    monkeypatch.setattr(stream, "PARALLEL_BYTES", 0)
    pooled = build.plan([str(tmp_path / "c")], build.BuildConfig(**cfg), build_registry(),
                        tokenizer_source=str(qwen3_tokenizer_dir), encoder="tiktoken", jobs=2)
    assert _summary(serial) == want
    assert _summary(pooled) == want


def test_a_tokenizer_that_adds_a_bos_gives_the_same_build_every_way(tmp_path, qwen3_tokenizer_dir, monkeypatch):
    """Llama 3 style (a BOS before every text): cut positions and eval items from token byte lengths with the BOS
    counted as no bytes, and ids from tiktoken with the BOS put first, give the build the tokenizer's offsets
    give."""
    import malmungchi.prep.build as build
    import malmungchi.prep.stream as stream
    import malmungchi.prep.encode as encode
    from malmungchi.prep.tokenizer import load_tokenizer
    from tokenizers import processors

    def bos_tokenizer():
        tok = load_tokenizer(str(qwen3_tokenizer_dir))
        bos = tok.convert_tokens_to_ids("<|endoftext|>")
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos)])
        return tok

    _corpus(tmp_path / "c")
    cfg = build.BuildConfig(max_length=48, eval_context=32, allow_errors=True)

    def run(**kw):
        return _summary(build.plan([str(tmp_path / "c")], cfg, build_registry(), tokenizer=bos_tokenizer(), **kw))

    by_bytes = run(encoder="tokenizers")
    fast = run(encoder="tiktoken")
    monkeypatch.setattr(stream, "PARALLEL_BYTES", 0)
    fast_pooled = run(encoder="tiktoken", jobs=2)
    monkeypatch.setattr(encode, "token_byte_lengths", lambda backend, vocab=None: None)  # offsets everywhere
    want = run(encoder="tokenizers")
    assert want["splits"]["train"][0][3][0] == 151643 and want["eval"]  # the BOS starts the first chunk
    assert by_bytes == want
    assert fast == want
    assert fast_pooled == want


def test_the_tokenizer_loads_with_a_short_switch_interval_and_the_callers_comes_back(tmp_path, qwen3_tokenizer_dir,
                                                                                    monkeypatch):
    """While the readers run and this process loads the tokenizer, the GIL changes hands every 0.5 ms (so the
    pool's thread takes the readers' results and they do not wait); the caller's interval is back afterwards, also
    when loading fails."""
    import sys

    import pytest

    import malmungchi.prep.build as build
    import malmungchi.prep.stream as stream
    from malmungchi.prep.tokenizer import TokenizerError

    _corpus(tmp_path / "c")
    monkeypatch.setattr(stream, "PARALLEL_BYTES", 0)
    seen = []
    real = build.load_tokenizer

    def load(source):
        seen.append(sys.getswitchinterval())
        return real(source)

    monkeypatch.setattr(build, "load_tokenizer", load)
    cfg = build.BuildConfig(max_length=48, eval_context=32, allow_errors=True)
    before = sys.getswitchinterval()
    build.plan([str(tmp_path / "c")], cfg, build_registry(), tokenizer_source=str(qwen3_tokenizer_dir),
               encoder="tiktoken", jobs=2)
    assert seen == [stream.SWITCH_INTERVAL] and sys.getswitchinterval() == before
    with pytest.raises(TokenizerError, match="no such directory"):
        build.plan([str(tmp_path / "c")], cfg, build_registry(), tokenizer_source=str(tmp_path / "no-such-tokenizer"),
                   encoder="tiktoken", jobs=2)
    assert len(seen) == 2 and sys.getswitchinterval() == before


def test_chat_templates_rendered_in_forked_workers_give_the_same_build(tmp_path, qwen3_tokenizer_dir, monkeypatch):
    """Chat mode renders the conversations' chat template in forked processes for a large input
    (`prep.chatpool`): the files written are byte for byte those of rendering them in this process, also where
    long conversations are cut afterwards and speakers are numbered tokens."""
    import malmungchi.prep.chatpool as chatpool
    from malmungchi.prep.write import write_build

    root = tmp_path / "c"
    long_dialogue = "|START_OF_DIALOGUE|>\n" + "".join(
        f"{'철수' if i % 2 else '영희'}: {i}번째 말입니다. 오늘은 비가 오고 바람이 분다.\n" for i in range(40)) + \
        "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
    for k in range(5):
        write(root, f"part{k}.txt", "\n".join(book(10 * k + i, paragraphs=2) for i in range(4)))
    write(root, "long.txt", "|START_OF_TITLE|>긴 대화|END_OF_TITLE|>\n\n" + long_dialogue)
    write(root, "narration.txt", "|START_OF_TITLE|>대화 없는 책|END_OF_TITLE|>\n\n문단뿐이다.\n|END_OF_BOOK|>\n")
    builds = []
    for jobs, threshold in ((1, chatpool.PARALLEL_BYTES), (2, 0)):
        monkeypatch.setattr(chatpool, "PARALLEL_BYTES", threshold)  # 0: the workers even for a small corpus
        for speakers in ("name", "token"):
            p = build_plan(root, qwen3_tokenizer_dir, jobs, mode="chat", max_length=96, speakers=speakers,
                           splits={"train": 0.6, "validation": 0.2, "test": 0.2})
            out = tmp_path / f"out-{jobs}-{speakers}"
            write_build(p, out)
            builds.append({f.relative_to(out).as_posix(): f.read_bytes() for f in sorted(out.rglob("*"))
                           if f.is_file()})
    assert any("/c" in q.id for q in p.splits["train"] + p.splits["test"] + p.splits["validation"])  # cut
    assert builds[0] == builds[2] and builds[1] == builds[3]


def build_plan(root, tok_dir, jobs, **cfg):
    from malmungchi.prep.build import plan
    from malmungchi.schemas.config import BuildConfig

    return plan([str(root)], BuildConfig(**cfg), build_registry(), tokenizer_source=str(tok_dir), jobs=jobs)
