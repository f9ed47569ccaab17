"""Packed rows as Arrow tables in the build directory's column layout (see docs/DESIGN.md)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from malmungchi.prep.encode import Seq
from malmungchi.prep.pack import best_fit_decreasing

SCHEMA = pa.schema([
    ("input_ids", pa.list_(pa.int32())),
    ("assistant_masks", pa.list_(pa.int8())),
    ("position_ids", pa.list_(pa.int32())),
    ("seq_lengths", pa.list_(pa.int32())),
    ("doc_ids", pa.list_(pa.string())),
])


def pack_rows(seqs: list[Seq], capacity: int, pack: bool) -> list[list[int]]:
    """Rows as lists of indices into `seqs`; with pack=False one sequence per row (in input order)."""
    if not pack:
        return [[i] for i in range(len(seqs))]
    return best_fit_decreasing([len(q.ids) for q in seqs], capacity)


def rows_table(seqs: list[Seq], rows: list[list[int]]) -> pa.Table:
    """Build the columns from flat arrays and offsets: no per-token Python work."""
    order = [i for row in rows for i in row]
    lengths = np.fromiter((len(seqs[i].ids) for i in order), dtype=np.int64, count=len(order))
    total = int(lengths.sum())
    ids = np.concatenate([seqs[i].ids for i in order]).astype(np.int32, copy=False) if order \
        else np.zeros(0, np.int32)
    if all(seqs[i].mask is None for i in order):
        masks = np.ones(total, np.int8)  # text mode: every token carries the loss
    else:
        masks = np.concatenate([seqs[i].mask if seqs[i].mask is not None else np.ones(len(seqs[i].ids), np.int8)
                                for i in order]).astype(np.int8, copy=False)
    # positions restart at 0 at every sequence start (partial sums are positions, so int32 is exact)
    pos = np.ones(total, dtype=np.int32)
    if total:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos[0] = 0
        pos[starts[1:]] = -(lengths[:-1] - 1)
        pos = np.cumsum(pos, dtype=np.int32)
    row_tokens = np.array([sum(len(seqs[i].ids) for i in row) for row in rows], dtype=np.int64)
    tok_offsets = np.concatenate([[0], np.cumsum(row_tokens)]).astype(np.int32)
    seq_offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
    return pa.Table.from_arrays([
        pa.ListArray.from_arrays(tok_offsets, pa.array(ids)),
        pa.ListArray.from_arrays(tok_offsets, pa.array(masks)),
        pa.ListArray.from_arrays(tok_offsets, pa.array(pos)),
        pa.ListArray.from_arrays(seq_offsets, pa.array(lengths.astype(np.int32))),
        pa.ListArray.from_arrays(seq_offsets, pa.array([seqs[i].id for i in order], pa.string())),
    ], schema=SCHEMA)


def check_rows(table: pa.Table, stop_id: int, capacity: int) -> list[str]:
    """Every sequence in every row must end with the stop token, and no row may exceed its capacity."""
    problems = []
    ids = table.column("input_ids").combine_chunks()
    lens = table.column("seq_lengths").combine_chunks()
    names = table.column("doc_ids").combine_chunks()
    flat = ids.values.to_numpy()
    seq_len = lens.values.to_numpy().astype(np.int64)
    ends = np.cumsum(seq_len) - 1
    bad = np.nonzero(flat[ends] != stop_id)[0] if len(ends) else []
    all_names = names.values.to_pylist() if len(bad) else []
    for i in bad[:20]:
        problems.append(f"sequence {all_names[i]} does not end with the stop token (id {stop_id})")
    row_len = np.diff(ids.offsets.to_numpy())
    if len(row_len) and row_len.max() > capacity:
        problems.append(f"a row holds {int(row_len.max())} tokens, more than max_length {capacity}")
    return problems
