"""Chat mode encodes with tiktoken too (`--encoder tiktoken`, and `auto` from 2 MB of input on): its ids come
without the tokens a tokenizer puts before a text (the chat template writes its own), and each loss mask is found
from the tokens' byte lengths instead of the tokenizer's offsets. The files written are byte for byte those of the
tokenizer's own encode with offsets, for Qwen3 and for Llama 3 (whose tokenizer adds a BOS), in one process and
with the reader and template processes; with long conversations cut into pieces, a text that is not NFC (the
offsets path) and characters the BPE splits into several tokens at the edges of assistant turns (a token that
starts inside a character counts as starting at it, as the offsets have it)."""

from __future__ import annotations

import unicodedata

import pytest

from build_helpers import book, write

RARE = "𠀀"  # four bytes, more than one token in both vocabularies


def _corpus(root) -> None:
    long_dialogue = "|START_OF_DIALOGUE|>\n" + "".join(
        f"{'철수' if i % 2 else '영희'}: {RARE if i % 3 else ''}{i}번째 말입니다. 오늘은 비가 오고 바람이 분다"
        f"{'👍🏽' if i % 4 else '.'}\n" for i in range(40)) + "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
    for k in range(4):
        write(root, f"part{k}.txt", "\n".join(book(10 * k + i, paragraphs=2) for i in range(4)))
    write(root, "long.txt", "|START_OF_TITLE|>긴 대화|END_OF_TITLE|>\n\n" + long_dialogue)
    edges = ("|START_OF_TITLE|>가장자리|END_OF_TITLE|>\n\n|START_OF_DIALOGUE|>\n"
             f"영희: {RARE}안녕{RARE}\n철수: {RARE}반가워 ꥠꥡ뷁\n영희: 👍🏽\n철수: 끝{RARE}\n"
             "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n")
    write(root, "edges.txt", edges)
    write(root, "nfd.txt", unicodedata.normalize("NFD", book(99).replace("책 99", "풀어 쓴 책")))


def _files(out) -> dict[str, bytes]:
    return {f.relative_to(out).as_posix(): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}


def _cfg():
    from malmungchi.schemas.config import BuildConfig

    return BuildConfig(mode="chat", max_length=192, eval_context=64, allow_errors=True,
                       splits={"train": 0.5, "validation": 0.25, "test": 0.25})


def _build(root, tok, name: str, **kw):
    """The chat build of `root/c` with tokenizer `tok`, written to `root/name`: (its files, its plan)."""
    from malmungchi.prep.build import plan
    from malmungchi.prep.write import write_build
    from malmungchi.schemas.registry import default_registry

    p = plan([str(root / "c")], _cfg(), default_registry(), tokenizer_source=str(tok), **kw)
    write_build(p, root / name)
    return _files(root / name), p


@pytest.mark.parametrize("which,slack", [("qwen3", None), ("llama3", None), ("qwen3", -40)])
def test_chat_builds_are_the_same_with_tiktoken_byte_lengths_and_offsets(which, slack, tmp_path, monkeypatch,
                                                                          request):
    """(slack -40: pieces of long conversations estimated to fit by far too much, so that many are still too long
    once rendered and are cut again, in further rounds)"""
    import malmungchi.prep.chatcut as chatcut
    import malmungchi.prep.chatpool as chatpool
    import malmungchi.prep.encode as encode
    import malmungchi.prep.stream as stream

    tok_dir = request.getfixturevalue(f"{which}_tokenizer_dir")
    if slack is not None:
        monkeypatch.setattr(chatcut, "SLACK", slack)
    _corpus(tmp_path / "c")
    by_bytes, _ = _build(tmp_path, tok_dir, "bytes", encoder="tokenizers")
    fast, p = _build(tmp_path, tok_dir, "fast", encoder="tiktoken")
    with monkeypatch.context() as m:
        m.setattr(stream, "PARALLEL_BYTES", 0)
        m.setattr(chatpool, "PARALLEL_BYTES", 0)
        pooled, _ = _build(tmp_path, tok_dir, "pooled", encoder="tiktoken", jobs=2)
    monkeypatch.setattr(encode, "token_byte_lengths", lambda backend, vocab=None: None)  # offsets everywhere
    want, p_want = _build(tmp_path, tok_dir, "want", encoder="tokenizers")

    assert p.encoded_with == "tiktoken" and p_want.encoded_with == "tokenizers"
    seqs = [q for qs in p.splits.values() for q in qs]
    assert any("/c" in q.id for q in seqs)  # a long conversation was cut
    assert any(q.id.count("/c") > 1 for q in seqs) == (slack is not None)  # and its pieces cut again
    if which == "llama3":  # the template writes the BOS; the tokenizer's own is not put before it again
        assert all(q.ids[0] == p.tokenizer.bos_token_id != q.ids[1] for q in seqs)
    masked = [q for q in seqs if q.mask is not None and q.mask.any()]
    assert len(masked) == len(seqs)  # every sequence carries some loss
    assert by_bytes == want
    assert fast == want
    assert pooled == want


def test_a_tokenizer_that_trims_its_offsets_keeps_its_offsets_for_loss_masks(tmp_path, qwen3_tokenizer_dir,
                                                                              monkeypatch):
    """GPT-2 style `trim_offsets`: a reply's first token ` 반` starts after its space by the offsets, at the space
    by its bytes; with a template that puts a space before each reply the masks would differ, so chat mode keeps
    the offsets for such a tokenizer (and says why tiktoken cannot be used)."""
    import json
    import shutil

    import malmungchi.prep.encode as encode
    from malmungchi.prep.build import BuildError, plan
    from malmungchi.schemas.registry import default_registry

    tok = tmp_path / "tok"
    shutil.copytree(qwen3_tokenizer_dir, tok)
    spec = json.loads((tok / "tokenizer.json").read_text(encoding="utf-8"))
    spec["post_processor"]["trim_offsets"] = True
    (tok / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    conf = json.loads((tok / "tokenizer_config.json").read_text(encoding="utf-8"))
    conf["chat_template"] = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n"
                             "{% endfor %}")
    (tok / "tokenizer_config.json").write_text(json.dumps(conf, ensure_ascii=False), encoding="utf-8")
    _corpus(tmp_path / "c")
    with pytest.raises(BuildError, match="trims"):
        plan([str(tmp_path / "c")], _cfg(), default_registry(), tokenizer_source=str(tok), encoder="tiktoken")
    got, _ = _build(tmp_path, tok, "got", encoder="tokenizers")
    monkeypatch.setattr(encode, "token_byte_lengths", lambda backend, vocab=None: None)  # offsets everywhere
    assert got == _build(tmp_path, tok, "want", encoder="tokenizers")[0]
