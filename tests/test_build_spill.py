"""The temporary files that keep a build's ids, texts and eval items out of memory give back exactly what went in."""

from __future__ import annotations

import io
import json

import numpy as np

from malmungchi.prep.encode import Seq
from malmungchi.prep.render import Rendered
from malmungchi.prep.spill import Records, TextStore, TokenStore


def test_sequences_read_back_their_ids_and_masks():
    store = TokenStore()
    rng = np.random.default_rng(0)
    made = []
    for n in (5, 0, 3000, 1):
        ids = rng.integers(0, 150_000, n).astype(np.int32)
        mask = rng.integers(0, 2, n).astype(np.int8) if n % 2 else None
        made.append((Seq(f"s{n}", "d", ids, mask, None, store=store), ids, mask))
    for q, ids, mask in reversed(made):  # any order, many times
        assert q.n == len(ids) and q.ids.tolist() == ids.tolist()
        assert q.has_mask == (mask is not None)
        assert (q.mask is None) if mask is None else q.mask.tolist() == mask.tolist()
        assert q.last == (int(ids[-1]) if len(ids) else -1)


def test_spilled_text_reads_back_and_keeps_its_offsets():
    texts = TextStore()
    r = Rendered("a", "a", "s", None, "첫 문단.\n\n철수: 안녕 😀?\n", cuts=[7, 11], turns=[(7, 11, 16)])
    key = r.dedup_key()
    text = r.text
    r.spill(texts)
    assert r.text == "" and r.full_text() == text and r.dedup_key() == key
    assert list(r.cuts) == [7, 11] and list(r.turns) == [7, 11, 16]


def test_records_iterate_in_order_across_read_blocks_and_compare_as_lists():
    items = [{"id": f"d:t{i}", "prompt": "가나다" * (i % 700), "answer": f"답 {i}\n"} for i in range(6000)]
    rec = Records(items)  # about 6 MB: more than one 4 MB read block
    assert len(rec) == 6000
    assert list(rec) == items and rec == items and rec[5999] == items[5999]
    assert rec != items[:-1]
    out = io.BytesIO()
    rec.write_to(out)
    assert out.getvalue().decode("utf-8") == "".join(json.dumps(i, ensure_ascii=False, sort_keys=True) + "\n"
                                                     for i in items)
