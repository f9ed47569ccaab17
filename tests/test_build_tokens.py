"""Special tokens, round trips, stop tokens and chat-mode loss masks with the real Qwen3 tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from build_helpers import BOOK, book, make_plan, write
from malmungchi.prep.build import plan
from malmungchi.prep.tokenizer import load_tokenizer, round_trip_problems
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry


@pytest.fixture(scope="module")
def text_plan(tmp_path_factory, qwen3_tokenizer_dir):
    d = tmp_path_factory.mktemp("corpus")
    write(d, "a.txt", BOOK + book(1) + book(2))
    return make_plan([d], qwen3_tokenizer_dir, max_length=64, speakers="token")


def test_markers_are_single_ids_and_round_trip(text_plan):
    tok = text_plan.tokenizer
    added = text_plan.registration.added
    for name in ("<|start_of_dialogue|>", "<|end_of_dialogue|>", "<|sound|>", "<|start_of_title|>",
                 "<|end_of_book|>", "<|speaker_1|>", "<|speaker_2|>"):
        ids = tok.encode(name, add_special_tokens=False)
        assert ids == [added[name]], name
        assert added[name] >= text_plan.registration.vocab_before
    # glued to Hangul and spaces on both sides: still one id each and an exact round trip
    text = "가<|sound|>나 <|sound|> 다\n<|speaker_1|>라  <|end_of_book|>"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids.count(added["<|sound|>"]) == 2
    assert tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text
    assert round_trip_problems(tok, [r.text for r in text_plan.rendered]) == []
    assert text_plan.registration.collisions == []


def test_every_sequence_ends_with_the_stop_token(text_plan):
    stop = text_plan.stop[1]
    assert text_plan.stop[0] == text_plan.tokenizer.eos_token
    seqs = [q for qs in text_plan.splits.values() for q in qs]
    assert len(seqs) > 3  # max_length 64 forced chunking
    for q in seqs:
        assert q.ids[-1] == stop and len(q.ids) <= 64
        assert (q.ids[:-1] != stop).all()
    for t in text_plan.tables.values():
        ids = t.column("input_ids").combine_chunks()
        lens = t.column("seq_lengths").combine_chunks().values.to_numpy()
        flat = ids.values.to_numpy()
        assert (flat[np.cumsum(lens) - 1] == stop).all()


def test_collision_with_existing_vocab_is_reported(qwen3_tokenizer_dir, tmp_path):
    write(tmp_path, "a.txt", BOOK)
    # `<|im_end|>` already exists in Qwen3: a replace policy that *names* it must be reported, not re-added
    from malmungchi.prep.tokenizer import register_tokens

    tok = load_tokenizer(str(qwen3_tokenizer_dir))
    reg = register_tokens(tok, ["<|im_end|>", "hello", "<|sound|>"])
    assert reg.reused["<|im_end|>"] == tok.convert_tokens_to_ids("<|im_end|>")
    assert any("hello" in c for c in reg.collisions)  # an ordinary vocab entry made special
    assert "<|sound|>" in reg.added and reg.vocab_after == reg.vocab_before + 1


CHAT = """|START_OF_TITLE|>대화|END_OF_TITLE|>

저녁 무렵 두 사람이 만났다.

|START_OF_DIALOGUE|>
철수: 안녕, 오랜만이야.
영희: 응, 정말 반가워! |SOUND|>(웃음)
철수: 요즘 뭐 해?
철수: 나는 바빴어.
영희: 책 읽고 지내.
철수: 그렇구나.
|END_OF_DIALOGUE|>
|END_OF_BOOK|>
"""


def test_chat_mask_covers_exactly_the_assistant_turns(qwen3_tokenizer_dir, tmp_path):
    write(tmp_path, "c.txt", CHAT)
    p = make_plan([tmp_path], qwen3_tokenizer_dir, mode="chat", system_prompt="너는 영희다.",
                  splits={"train": 1, "validation": 0, "test": 0})
    tok = p.tokenizer
    (q,) = p.splits["train"]
    msgs = q.src.messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[0]["content"].startswith("너는 영희다.") and "저녁 무렵" in msgs[0]["content"]
    assert msgs[3]["content"] == "철수: 요즘 뭐 해?\n철수: 나는 바빴어."  # consecutive turns merged
    # the trailing user turn (철수: 그렇구나.) has no reply: it is not trained on
    eot = "<|im_end|>"
    masked = tok.decode(q.ids[q.mask == 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    expected = "".join(m["content"] + eot for m in msgs if m["role"] == "assistant")
    assert masked == expected
    assert q.ids[-1] == tok.convert_tokens_to_ids(eot) == p.stop[1] and q.mask[-1] == 1
    # nothing of the user turns or headers carries loss
    unmasked = tok.decode(q.ids[q.mask == 0], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert "요즘 뭐 해" in unmasked and "<|im_start|>assistant" in unmasked and "반가워" not in unmasked


def test_chat_assistant_speaker_option_and_eval_items(qwen3_tokenizer_dir, tmp_path):
    write(tmp_path, "c.txt", CHAT)
    p = make_plan([tmp_path], qwen3_tokenizer_dir, mode="chat", assistant_speakers=["철수"],
                  splits={"train": 0, "validation": 0, "test": 1}, speakers="drop")
    (q,) = p.splits["test"]
    roles = [m["role"] for m in q.src.messages]
    assert roles[:3] == ["system", "assistant", "user"] and roles[-1] == "assistant"
    assert q.src.messages[1]["content"] == "안녕, 오랜만이야."
    items = p.eval_items
    assert items and all(i["prompt"].endswith("<|im_start|>assistant\n") for i in items)
    last = items[-1]
    assert last["answer"] == "그렇구나."
    # messages: the conversation up to the answered turn, which the model must produce itself
    assert last["messages"][-1]["role"] != "assistant" and all(m["content"] != "그렇구나." for m in last["messages"])


def test_text_mode_eval_items_keep_bounded_context(qwen3_tokenizer_dir, tmp_path):
    write(tmp_path, "a.txt", BOOK)
    p = make_plan([tmp_path], qwen3_tokenizer_dir, eval_context=12, splits={"train": 0, "validation": 0, "test": 1})
    by_answer = {i["answer"]: i for i in p.eval_items}
    item = by_answer["그럼요."]
    assert item["prompt"].endswith("할아버지: ")
    tok = p.tokenizer
    # the whole preceding turn fits in 12 tokens? then it is kept, cut at a turn start
    assert item["prompt"] in ("할아버지: ", "민지: 안녕하세요. <|sound|>(웃음) 우산 하나 살 수 있을까요?\n할아버지: ")
    assert len(tok.encode(item["prompt"], add_special_tokens=False)) <= 12 or item["prompt"] == "할아버지: "
    big = make_plan([tmp_path], p.tokenizer_source, eval_context=4096,
                    splits={"train": 0, "validation": 0, "test": 1}).eval_items
    assert {i["answer"]: i for i in big}["그럼요."]["prompt"].startswith("<|start_of_title|>비 오는 날")


@pytest.mark.parametrize("bos", [False, True], ids=["qwen3", "with-bos"])
def test_eval_items_from_the_built_ids_match_encoding_again(qwen3_tokenizer_dir, tmp_path, bos):
    # text mode with a byte-level tokenizer: the test documents' token positions come from the ids the build
    # already holds (whole documents, and chunks that follow one another; a BOS before the text, Llama 3 style, is
    # left out); a document whose ids do not cover its text (NFD: the normalizer changed it) is encoded again.
    # Either way, the same items as the offsets give.
    import unicodedata

    from tokenizers import processors

    from malmungchi.prep import evalset
    from malmungchi.prep.positions import token_byte_lengths

    turns = "\n".join(f"{'철수' if i % 2 else '영희'}: {i}번째 말입니다. 오늘은 비가 온다." for i in range(30))
    long_dialogue = (f"|START_OF_TITLE|>긴 대화|END_OF_TITLE|>\n\n첫 문단.\n\n|START_OF_DIALOGUE|>\n{turns}\n"
                     "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n")
    nfd = unicodedata.normalize("NFD", BOOK.replace("비 오는 날", "풀어 쓴 날"))
    write(tmp_path, "a.txt", BOOK + "\n" + long_dialogue + "\n" + nfd)
    tok = load_tokenizer(str(qwen3_tokenizer_dir))
    if bos:
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", tok.convert_tokens_to_ids("<|endoftext|>"))])
    p = plan([str(tmp_path)], BuildConfig(max_length=64, eval_context=40,
                                          splits={"train": 0, "validation": 0, "test": 1}),
             default_registry(), tokenizer=tok)
    test = p.splits["test"]
    assert (test[0].ids[0] == 151643) == bos
    sizes = token_byte_lengths(p.tokenizer.backend_tokenizer)
    assert sizes is not None
    by_doc = {}
    for q in test:
        by_doc.setdefault(q.src.id, []).append(q)
    known = {d: evalset.known_starts(qs[0].src.full_text(), qs, sizes, int(bos)) is not None
             for d, qs in by_doc.items()}
    decomposed = {d for d, qs in by_doc.items() if not unicodedata.is_normalized("NFC", qs[0].src.full_text())}
    assert len(by_doc) == 3 and len(decomposed) == 1 and all(len(qs) > 1 for qs in by_doc.values())  # chunked
    assert known == {d: d not in decomposed for d in by_doc}  # only the NFD book is encoded again
    fast = list(evalset.text_items(test, p.tokenizer, 40, sizes=sizes))
    assert fast == list(evalset.text_items(test, p.tokenizer, 40)) == list(p.eval_items)
    assert len(fast) > 30 and {"그럼요.", "29번째 말입니다. 오늘은 비가 온다."} <= {i["answer"] for i in fast}


def test_eval_answers_come_from_test_chunks_when_the_tokenizer_adds_a_bos(qwen3_tokenizer_dir, tmp_path):
    """With a BOS before every text (Llama 3 style), the chunks' token positions count it and the eval items'
    positions (the text encoded again, without special tokens) do not: a turn that starts a chunk must still be
    taken from the split its own chunk is in, never from the chunk before (that would put training text in eval)."""
    from tokenizers import processors

    turns = "\n".join(f"{'철수' if i % 2 else '영희'}: {i}번째 대답은 고유한 문장 {i * 7919}입니다." for i in range(300))
    write(tmp_path / "c", "a.txt", f"|START_OF_TITLE|>대화|END_OF_TITLE|>\n\n|START_OF_DIALOGUE|>\n{turns}\n"
                                   "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n")
    tok = load_tokenizer(str(qwen3_tokenizer_dir))
    bos = tok.convert_tokens_to_ids("<|endoftext|>")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos)])
    cfg = BuildConfig(max_length=64, speakers="drop", split_unit="chunk", eval_context=32,
                      splits={"train": 0.5, "validation": 0.0, "test": 0.5})
    p = plan([str(tmp_path / "c")], cfg, default_registry(), tokenizer=tok)
    assert any(q.ids[0] == bos for qs in p.splits.values() for q in qs)  # the first chunk starts with it
    test_texts = [tok.decode(q.ids) for q in p.splits["test"]]
    items = list(p.eval_items)
    assert len(items) > 50
    assert [it["answer"] for it in items if not any(it["answer"] in t for t in test_texts)] == []


def test_a_tokenizer_that_changes_the_text_is_named_in_the_warnings(tmp_path, kogpt2_tokenizer_dir, monkeypatch):
    # KoGPT2 turns "\n\n" into "  " on the way back. With more documents than the sample, the check runs while
    # the files are still being read (as soon as its sample is encoded), and says what a check at the end says.
    from malmungchi.prep import build, stream

    monkeypatch.setattr(stream, "PARALLEL_BYTES", 0)  # readers that encode, file by file
    monkeypatch.setattr(stream, "fork_is_safe", lambda: True)  # (even after another test used polars: no table here)
    read, checked_after = [], []

    def check(*args, **kwargs):
        checked_after.append(len(read))
        return round_trip_problems(*args, **kwargs)

    monkeypatch.setattr(build, "round_trip_problems", check)
    folder = tmp_path / "c"
    for k in range(5):
        write(folder, f"f{k}.txt", "".join(book(100 * k + n) for n in range(60)))
    p = plan([str(folder)], BuildConfig(tokenizer=str(kogpt2_tokenizer_dir)), default_registry(),
             progress=lambda stage, n, total: read.append(n) if stage == "reading" else None)
    assert checked_after == [4]  # once, after the fourth of five files
    expected = round_trip_problems(p.tokenizer, [r.full_text() for r in p.rendered[:200]])  # (markers registered)
    assert expected and p.registration.whitespace == expected
    assert [w for w in p.warnings if "round trip" in w] == [f"tokenizer {x}" for x in expected]
