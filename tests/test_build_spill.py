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


def test_row_groups_made_in_reused_arrays_write_the_same_parquet(tmp_path):
    """`_write_splits` makes each row group in the arrays of the one before (rows.Buffers), after it is written:
    the files are byte for byte those of fresh arrays, whatever the groups' sizes (a larger one after a smaller
    grows the arrays), with and without loss masks, spilled or in memory."""
    import pyarrow.parquet as pq

    from malmungchi.prep.rows import SCHEMA, Buffers, pack_rows, row_groups

    rng = np.random.default_rng(3)
    store = TokenStore()
    for masks in (False, True):
        seqs = []
        for k, n in enumerate(rng.integers(1, 300, 60)):
            ids = rng.integers(0, 150_000, n).astype(np.int32)
            mask = rng.integers(0, 2, n).astype(np.int8) if masks and k % 3 else None
            seqs.append(Seq(f"s{k}", f"d{k}", ids, mask, None, store=store if k % 2 else None))
        rows = pack_rows(seqs, 512, True)
        rows = rows[::-1]  # the fuller rows last: later groups need larger arrays
        files = []
        for buffers in (None, Buffers()):
            path = tmp_path / f"{masks}-{buffers is None}.parquet"
            with pq.ParquetWriter(path, SCHEMA, compression="zstd", use_dictionary=False,
                                  write_statistics=False) as writer:
                for size in (3, 1, 7):
                    for group in row_groups(seqs, rows, size, buffers):
                        writer.write_table(group, row_group_size=size)
            files.append(path.read_bytes())
        assert files[0] == files[1]
        got = pq.read_table(tmp_path / f"{masks}-False.parquet").to_pylist()
        assert got[0]["input_ids"] == [t for i in rows[0] for t in seqs[i].ids.tolist()]
        assert all(r["assistant_masks"] == [1] * len(r["input_ids"]) for r in got) != masks
