"""Packed rows as Arrow tables in the build directory's column layout (see docs/DESIGN.md)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from malmungchi.prep import arrays
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
    return best_fit_decreasing([q.n for q in seqs], capacity)


def rows_table(seqs: list[Seq], rows: list[list[int]]) -> pa.Table:
    """Build the columns from flat arrays and offsets: no per-token Python work."""
    order = [i for row in rows for i in row]
    lengths = np.fromiter((seqs[i].n for i in order), dtype=np.int64, count=len(order))
    total = int(lengths.sum())
    ids = np.concatenate([seqs[i].ids for i in order]).astype(np.int32, copy=False) if order \
        else np.zeros(0, np.int32)
    if not any(seqs[i].has_mask for i in order):
        masks = np.ones(total, np.int8)  # text mode: every token carries the loss
    else:
        masks = np.concatenate([seqs[i].mask if seqs[i].has_mask else np.ones(seqs[i].n, np.int8)
                                for i in order]).astype(np.int8, copy=False)
    # positions restart at 0 at every sequence start (partial sums are positions, so int32 is exact)
    pos = np.ones(total, dtype=np.int32)
    if total:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos[0] = 0
        pos[starts[1:]] = -(lengths[:-1] - 1)
        pos = np.cumsum(pos, dtype=np.int32)
    tok_offsets = arrays.offsets([sum(seqs[i].n for i in row) for row in rows])
    seq_offsets = arrays.offsets([len(r) for r in rows])
    return pa.Table.from_arrays([  # from buffers (`prep.arrays`: no pandas import, no copy)
        arrays.lists(tok_offsets, arrays.numeric(ids)),
        arrays.lists(tok_offsets, arrays.numeric(masks)),
        arrays.lists(tok_offsets, arrays.numeric(pos)),
        arrays.lists(seq_offsets, arrays.numeric(lengths.astype(np.int32))),
        arrays.lists(seq_offsets, arrays.strings([seqs[i].id for i in order])),
    ], schema=SCHEMA)


def row_groups(seqs: list[Seq], rows: list[list[int]], size: int):
    """The rows as Arrow tables of at most `size` rows each (one table for no rows), so that only one row group
    of ids is in memory at a time."""
    for start in range(0, max(1, len(rows)), size):
        yield rows_table(seqs, rows[start:start + size])


def check_rows(seqs: list[Seq], rows: list[list[int]], stop_id: int, capacity: int) -> list[str]:
    """Every sequence in every row must end with the stop token, and no row may exceed its capacity."""
    problems = []
    for i in (i for row in rows for i in row):
        if seqs[i].last != stop_id:
            problems.append(f"sequence {seqs[i].id} does not end with the stop token (id {stop_id})")
            if len(problems) == 20:
                break
    longest = max((sum(seqs[i].n for i in row) for row in rows), default=0)
    if longest > capacity:
        problems.append(f"a row holds {longest} tokens, more than max_length {capacity}")
    return problems
