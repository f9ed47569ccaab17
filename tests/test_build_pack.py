"""Packing with literal integers: best fit decreasing, position_ids restarting at boundaries, masks that never
cross a boundary; and long documents cut only at segment boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from malmungchi.prep.encode import Encoded, Seq, _chunk
from malmungchi.prep.positions import token_index
from malmungchi.prep.pack import best_fit_decreasing
from malmungchi.prep.render import Rendered
from malmungchi.prep.rows import check_rows, pack_rows, rows_table


def test_bfd_literal():
    assert best_fit_decreasing([4, 2, 3, 1], 4) == [[0], [2, 3], [1]]
    assert best_fit_decreasing([3, 3, 2, 2, 1, 1], 5) == [[0, 2], [1, 3], [4, 5]]
    with pytest.raises(ValueError):
        best_fit_decreasing([6], 5)


def test_bfd_is_valid_and_tight_on_random_lengths():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 512, 5000)
    bins = best_fit_decreasing(lengths, 512)
    assert sorted(i for b in bins for i in b) == list(range(5000))
    assert all(lengths[b].sum() <= 512 for b in bins)
    assert lengths.sum() / (len(bins) * 512) > 0.97  # BFD packs random lengths almost perfectly


def seq(name, ids, mask=None):
    r = Rendered(name, name, "s", None, "")
    return Seq(name, name, np.array(ids, np.int32), None if mask is None else np.array(mask, np.int8), r)


def test_rows_position_ids_and_masks_with_literal_integers():
    seqs = [seq("a", [11, 12, 13, 2]), seq("b", [21, 2], [0, 1]), seq("c", [31, 32, 2], [1, 0, 1]),
            seq("d", [41, 2])]
    rows = pack_rows(seqs, 6, True)
    t = rows_table(seqs, rows).to_pylist()
    assert t == [
        {"input_ids": [11, 12, 13, 2, 21, 2], "assistant_masks": [1, 1, 1, 1, 0, 1],
         "position_ids": [0, 1, 2, 3, 0, 1], "seq_lengths": [4, 2], "doc_ids": ["a", "b"]},
        {"input_ids": [31, 32, 2, 41, 2], "assistant_masks": [1, 0, 1, 1, 1],
         "position_ids": [0, 1, 2, 0, 1], "seq_lengths": [3, 2], "doc_ids": ["c", "d"]},
    ]
    assert check_rows(seqs, rows, stop_id=2, capacity=6) == []
    unpacked = rows_table(seqs, pack_rows(seqs, 6, False)).to_pylist()
    assert [r["seq_lengths"] for r in unpacked] == [[4], [2], [3], [2]]
    assert [r["position_ids"] for r in unpacked][2] == [0, 1, 2]


def test_trl_collator_reads_our_rows_without_crossing_boundaries():
    """trl's padding-free collator rebuilds position_ids from seq_lengths and masks the first label of every
    packed sequence: no label predicts across a boundary."""
    torch = pytest.importorskip("torch")
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    seqs = [seq("a", [11, 12, 13, 2]), seq("b", [21, 2])]
    row = rows_table(seqs, [[0, 1]]).to_pylist()[0]
    coll = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    out = coll([{"input_ids": row["input_ids"], "seq_lengths": row["seq_lengths"]}])
    assert out["position_ids"].tolist() == [row["position_ids"]]
    assert out["labels"].tolist() == [[-100, 12, 13, 2, -100, 2]]
    assert torch.equal(out["input_ids"], torch.tensor([row["input_ids"]]))


def test_check_rows_reports_a_cut_stop_token():
    seqs = [seq("a", [11, 12, 13]), seq("b", [21, 2])]
    problems = check_rows(seqs, [[0, 1]], stop_id=2, capacity=8)
    assert problems == ["sequence a does not end with the stop token (id 2)"]
    assert check_rows(seqs, [[0, 1]], stop_id=2, capacity=4) == [
        "sequence a does not end with the stop token (id 2)", "a row holds 5 tokens, more than max_length 4"]


def test_chunking_cuts_only_at_segment_boundaries_and_counts_losses():
    # tokens 0..9 belong to segments starting at chars 0, 10, 20, 30 (one char per token, offsets = index * 2)
    r = Rendered("doc", "doc", "s", None, "x" * 40, cuts=[8, 14, 30])
    ids = np.arange(100, 120, dtype=np.int32)  # 20 tokens, token i starts at char 2i
    out = Encoded()
    enc = _two_char_tokens().encode(r.text)
    _chunk(r, np.append(ids, 2), token_index(enc, r.cuts, len(ids)), out, max_length=6, stop_id=2)
    # segments in tokens: [0,4) [4,7) [7,15) [15,20); room 5 per chunk (+ stop)
    assert [(q.tok_start, q.tok_end) for q in out.seqs] == [(0, 4), (4, 7), (15, 20)]
    assert [q.ids.tolist() for q in out.seqs] == [[100, 101, 102, 103, 2], [104, 105, 106, 2],
                                                   [115, 116, 117, 118, 119, 2]]
    assert [(x.tokens, x.doc_id) for x in out.lost] == [(8, "doc")]  # the 8-token segment cannot be cut inside
    assert "longer than max_length" in out.lost[0].reason


def _two_char_tokens():
    """A real Rust tokenizer whose every token is two characters: token i covers characters 2i and 2i + 1."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"xx": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(".."), behavior="isolated")
    return tok


def test_token_index_agrees_with_bisecting_all_offsets(qwen3_tokenizer_dir):
    """Few positions are looked up in Rust, many by bisecting every offset: both give the first token starting at
    or after each position, also for positions inside a token, at the end, or inside a multi-token syllable."""
    from bisect import bisect_left

    from malmungchi.prep.positions import FEW_POSITIONS, token_index
    from malmungchi.prep.tokenizer import load_tokenizer

    backend = load_tokenizer(str(qwen3_tokenizer_dir)).backend_tokenizer
    text = "|START|>첫 문단입니다.\n\n둘째 문단: 똠방각하 뷁!\n\n   셋째\n\n" * 4
    enc = backend.encode(text, add_special_tokens=False)
    offsets = enc.offsets
    for hi in (len(enc), len(enc) - 3):
        want = [bisect_left(offsets, (c,), 0, hi) for c in range(len(text) + 1)]
        assert len(want) > FEW_POSITIONS  # the offsets path
        assert token_index(enc, list(range(len(text) + 1)), hi) == want
        for c in range(len(text) + 1):  # one at a time: the Rust path, or its fallback
            assert token_index(enc, [c], hi) == [want[c]], c
        paragraph_starts = [i + 2 for i in range(len(text)) if text.startswith("\n\n", i)]
        assert token_index(enc, paragraph_starts, hi) == [want[c] for c in paragraph_starts]


def test_byte_lengths_find_the_same_tokens_as_offsets(qwen3_tokenizer_dir):
    """Long texts are encoded without offsets and cut by the tokens' byte lengths: at every character position
    (inside a token, inside a multi-token syllable, after an emoji, at a registered marker) the answer is the one
    bisecting the offsets gives; text a normalizer would change falls back to the offsets (None)."""
    import unicodedata
    from bisect import bisect_left

    from malmungchi.prep.positions import byte_index, token_byte_lengths
    from malmungchi.prep.tokenizer import load_tokenizer, register_tokens

    tok = load_tokenizer(str(qwen3_tokenizer_dir))
    register_tokens(tok, ["<|start_of_dialogue|>", "<|sound|>"])
    backend = tok.backend_tokenizer
    sizes = token_byte_lengths(backend)
    assert sizes is not None  # Qwen3: byte-level BPE, NFC normalizer, nothing added around the text
    text = "<|sound|>(울음)\n\n첫 문단입니다 🙂.\n\n<|start_of_dialogue|>\n철수: 똠방각하 뷁!\n\n   셋째 ｆｕｌｌ\n\n" * 3
    fast = backend.encode_batch_fast([text])[0]
    enc = backend.encode(text)
    assert fast.ids == enc.ids
    ids = np.asarray(fast.ids, dtype=np.int32)
    offsets = enc.offsets
    for hi in (len(ids), len(ids) - 3):
        want = [bisect_left(offsets, (c,), 0, hi) for c in range(len(text) + 1)]
        assert byte_index(text, ids, sizes, list(range(len(text) + 1)), hi) == want
        mixed = [len(text), 0, 7, 7, 3, len(text) // 2]  # any order, repeats: each position answered as asked
        assert byte_index(text, ids, sizes, mixed, hi) == [want[c] for c in mixed]
    decomposed = unicodedata.normalize("NFD", text)  # NFC normalisation changes its length: not exact
    nfd_ids = np.asarray(backend.encode_batch_fast([decomposed])[0].ids, dtype=np.int32)
    assert byte_index(decomposed, nfd_ids, sizes, [0, 5], len(nfd_ids)) is None


def test_encoding_nfc_text_without_the_normalizer_gives_the_same_ids(qwen3_tokenizer_dir):
    """Texts already in NFC skip Qwen3's NFC normalizer (same ids, less work), with the tokenizer or with tiktoken;
    an NFD text in the same batch still goes through the normalizer, results come back in input order, and the
    tokenizer keeps its normalizer."""
    import unicodedata

    from malmungchi.prep.encode import encode_fast
    from malmungchi.prep.fastbpe import FastBPE
    from malmungchi.prep.tokenizer import load_tokenizer, register_tokens

    tok = load_tokenizer(str(qwen3_tokenizer_dir))
    register_tokens(tok, ["<|sound|>"])
    backend = tok.backend_tokenizer
    nfc = "<|sound|>(울음) 첫 문단입니다 🙂. 철수: 똠방각하 뷁! ｆｕｌｌ Ａ\u00e9"
    texts = [nfc, unicodedata.normalize("NFD", nfc), "한글 " * 50, "", "e\u0301 café"]
    want = [e.ids for e in backend.encode_batch_fast(texts)]
    assert want[0] == want[1]  # the normalizer composes the NFD text: skipping it there would change its ids
    for fast in (None, FastBPE.of(tok)):
        assert [a.tolist() for a in encode_fast(backend, texts, add_special_tokens=True, fast=fast)] == want
        assert [a.tolist() for a in encode_fast(backend, texts[:1], add_special_tokens=True, fast=fast)] == want[:1]
        assert [a.tolist() for a in encode_fast(backend, texts[1:2], add_special_tokens=True, fast=fast)] == \
            want[1:2]
        assert backend.normalizer is not None and backend.encode(texts[1]).ids == want[1]  # still normalizes


def test_tokenizers_without_exact_byte_lengths_keep_the_offsets(tmp_path):
    """A Metaspace (SentencePiece-style) tokenizer has no exact byte lengths: the build uses offsets."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from malmungchi.prep.positions import token_byte_lengths

    tok = Tokenizer(models.BPE({"▁": 0, "a": 1, "[UNK]": 2}, [], unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    assert token_byte_lengths(tok) is None
    assert token_byte_lengths(_two_char_tokens()) is None  # WordLevel
