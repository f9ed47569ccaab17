"""Arrow arrays straight from numpy buffers and offsets.

`pa.array(...)` on anything (a numpy array, a list of strings) makes pyarrow import pandas the first time, to ask
whether the object is a pandas one: 0.2-0.35 s, paid by every build process when it writes its first table
(nothing else in a build imports pandas). These build the same arrays from buffers, without that question and
without a copy of the numeric data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MAX_LIST_VALUES = 2**31 - 1  # values in one list array, bytes in one string array: Arrow's offsets are int32
_TYPES = {np.dtype(np.int8): pa.int8(), np.dtype(np.int16): pa.int16(), np.dtype(np.int32): pa.int32(),
          np.dtype(np.int64): pa.int64()}


def numeric(values: np.ndarray) -> pa.Array:
    """A contiguous 1-d integer numpy array as an Arrow array (no nulls), sharing its memory."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def offsets(lengths) -> np.ndarray:
    """The int32 offsets of rows of these lengths (0, then the running sums): every list and string array here is
    made with them. OverflowError past MAX_LIST_VALUES, where int32 offsets would wrap round into a corrupt
    array."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    if out[-1] > MAX_LIST_VALUES:
        raise OverflowError(f"{int(out[-1])} values in one Arrow array: at most {MAX_LIST_VALUES} (int32 offsets); "
                            "cut it into smaller tables")
    return out.astype(np.int32)


def strings(values: list[str]) -> pa.Array:
    """A list of str as an Arrow string array (no nulls)."""
    encoded = [v.encode("utf-8") for v in values]
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets([len(b) for b in encoded])),
                                                              pa.py_buffer(b"".join(encoded))])


def lists(row_offsets: np.ndarray, values: pa.Array) -> pa.Array:
    """A list array: row i holds values[row_offsets[i]:row_offsets[i + 1]] (int32 offsets, from `offsets`)."""
    if row_offsets.dtype != np.int32:
        raise TypeError(f"list offsets are int32 (`arrays.offsets`), not {row_offsets.dtype}")
    return pa.ListArray.from_arrays(numeric(row_offsets), values)


def list_of_arrays(parts: list[np.ndarray], dtype) -> pa.Array:
    """A list array with one row per numpy array of `parts`, as `dtype`."""
    flat = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
    return lists(offsets([len(p) for p in parts]), numeric(flat))
