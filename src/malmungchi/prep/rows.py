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


class Buffers:
    """The token columns' arrays, kept from one row group to the next (`row_groups`): a fresh array of tens of
    megabytes costs the kernel a zeroed page wherever it is first written, which was most of the time it took to
    make a build's row groups. Only for tables that are written before the next one is made."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._ones = np.ones(0, np.int8)

    def take(self, name: str, n: int, dtype) -> np.ndarray:
        """An array of `n` elements (its content is what it held last)."""
        arr = self._arrays.get(name)
        if arr is None or len(arr) < n:
            arr = self._arrays[name] = np.empty(n, dtype=dtype)
        return arr[:n]

    def ones(self, n: int) -> np.ndarray:
        """`n` ones (int8), never written over."""
        if len(self._ones) < n:
            self._ones = np.ones(n, np.int8)
        return self._ones[:n]


def rows_table(seqs: list[Seq], rows: list[list[int]], buffers: Buffers | None = None) -> pa.Table:
    """Build the columns from flat arrays and offsets: no per-token Python work. With `buffers` the token columns
    are made in its arrays, which the next table made with them overwrites (without, in fresh ones)."""
    buffers = buffers or Buffers()
    order = [i for row in rows for i in row]
    lengths = np.fromiter((seqs[i].n for i in order), dtype=np.int64, count=len(order))
    total = int(lengths.sum())
    ids = buffers.take("ids", total, np.int32)
    at = 0
    for i in order:
        n = seqs[i].n
        seqs[i].ids_into(ids[at:at + n])
        at += n
    if not any(seqs[i].has_mask for i in order):
        masks = buffers.ones(total)  # text mode: every token carries the loss
    else:
        masks = np.concatenate([seqs[i].mask if seqs[i].has_mask else np.ones(seqs[i].n, np.int8) for i in order],
                               out=buffers.take("masks", total, np.int8))
    # positions restart at 0 at every sequence start (partial sums are positions, so int32 is exact)
    pos = buffers.take("pos", total, np.int32)
    pos.fill(1)
    if total:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos[0] = 0
        pos[starts[1:]] = -(lengths[:-1] - 1)
        np.cumsum(pos, dtype=np.int32, out=pos)
    tok_offsets = arrays.offsets([sum(seqs[i].n for i in row) for row in rows])
    seq_offsets = arrays.offsets([len(r) for r in rows])
    return pa.Table.from_arrays([  # from buffers (`prep.arrays`: no pandas import, no copy)
        arrays.lists(tok_offsets, arrays.numeric(ids)),
        arrays.lists(tok_offsets, arrays.numeric(masks)),
        arrays.lists(tok_offsets, arrays.numeric(pos)),
        arrays.lists(seq_offsets, arrays.numeric(lengths.astype(np.int32))),
        arrays.lists(seq_offsets, arrays.strings([seqs[i].id for i in order])),
    ], schema=SCHEMA)


def row_groups(seqs: list[Seq], rows: list[list[int]], size: int, buffers: Buffers | None = None):
    """The rows as Arrow tables of at most `size` rows each (one table for no rows), so that only one row group
    of ids is in memory at a time. With `buffers`, each table's token columns live in its arrays: write a table
    before asking for the next."""
    for start in range(0, max(1, len(rows)), size):
        yield rows_table(seqs, rows[start:start + size], buffers)


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
