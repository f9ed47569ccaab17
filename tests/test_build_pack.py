"""Packing with literal integers: best fit decreasing, position_ids restarting at boundaries, masks that never
cross a boundary; and long documents cut only at segment boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from malmungchi.prep.encode import Encoded, Seq, _chunk
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
    assert check_rows(rows_table(seqs, rows), stop_id=2, capacity=6) == []
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
    problems = check_rows(rows_table(seqs, [[0, 1]]), stop_id=2, capacity=8)
    assert problems == ["sequence a does not end with the stop token (id 2)"]


def test_chunking_cuts_only_at_segment_boundaries_and_counts_losses():
    # tokens 0..9 belong to segments starting at chars 0, 10, 20, 30 (one char per token, offsets = index * 2)
    r = Rendered("doc", "doc", "s", None, "x" * 40, cuts=[8, 14, 30])
    ids = np.arange(100, 120, dtype=np.int32)  # 20 tokens, token i starts at char 2i
    starts = np.arange(0, 40, 2)
    out = Encoded()
    _chunk(r, np.append(ids, 2), starts, out, max_length=6, stop_id=2)
    # segments in tokens: [0,4) [4,7) [7,15) [15,20); room 5 per chunk (+ stop)
    assert [(q.tok_start, q.tok_end) for q in out.seqs] == [(0, 4), (4, 7), (15, 20)]
    assert [q.ids.tolist() for q in out.seqs] == [[100, 101, 102, 103, 2], [104, 105, 106, 2],
                                                   [115, 116, 117, 118, 119, 2]]
    assert [(x.tokens, x.doc_id) for x in out.lost] == [(8, "doc")]  # the 8-token segment cannot be cut inside
    assert "longer than max_length" in out.lost[0].reason
