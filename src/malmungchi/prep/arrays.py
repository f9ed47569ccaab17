"""Arrow arrays straight from numpy buffers and offsets.

`pa.array(...)` on anything (a numpy array, a list of strings) makes pyarrow import pandas the first time, to ask
whether the object is a pandas one: 0.2-0.35 s, paid by every build process when it writes its first table
(nothing else in a build imports pandas). These build the same arrays from buffers, without that question and
without a copy of the numeric data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_TYPES = {np.dtype(np.int8): pa.int8(), np.dtype(np.int16): pa.int16(), np.dtype(np.int32): pa.int32(),
          np.dtype(np.int64): pa.int64()}


def numeric(values: np.ndarray) -> pa.Array:
    """A contiguous 1-d integer numpy array as an Arrow array (no nulls), sharing its memory."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def strings(values: list[str]) -> pa.Array:
    """A list of str as an Arrow string array (no nulls)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets),
                                                              pa.py_buffer(b"".join(encoded))])


def lists(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    """A list array: row i holds values[offsets[i]:offsets[i + 1]]."""
    return pa.ListArray.from_arrays(numeric(offsets.astype(np.int32, copy=False)), values)


def list_of_arrays(parts: list[np.ndarray], dtype) -> pa.Array:
    """A list array with one row per numpy array of `parts`, as `dtype`."""
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    flat = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
    return lists(offsets, numeric(flat))
