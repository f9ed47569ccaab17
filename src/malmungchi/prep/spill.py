"""Token ids and rendered texts kept in anonymous temporary files instead of memory, so a build's memory does
not grow with the corpus: what stays in memory per sequence is a few integers.

Files come from `tempfile.TemporaryFile` (in `TMPDIR`), are deleted by the OS when closed or when the process
dies, and are read back with `os.pread` into fresh arrays (not memory maps, whose touched pages would count in
the process's resident memory).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator

import numpy as np

BUFFER = 1 << 20  # bytes buffered before a temporary file is written to


class _File:
    """An append-only temporary file: `put` returns the byte offset of what it wrote."""

    def __init__(self) -> None:
        # a large buffer: a build puts tens of thousands of a few kilobytes each, which would be as many writes
        self.fh = tempfile.TemporaryFile(prefix="malmungchi-", buffering=BUFFER)
        self.size = 0
        self.dirty = False
        self._flushing = threading.Lock()  # the writer reads from two threads

    def put(self, data: bytes | np.ndarray) -> int:
        at = self.size
        view = memoryview(data).cast("B")
        self.fh.write(view)
        self.size += len(view)
        self.dirty = True
        return at

    def get(self, at: int, n: int) -> bytes:
        data = os.pread(self._readable(), n, at)
        self._check(len(data), n)
        return data

    def get_into(self, at: int, out: memoryview) -> None:
        """Read `len(out)` bytes at `at` straight into `out` (no bytes object in between)."""
        self._check(os.preadv(self._readable(), [out], at), len(out))

    def _readable(self) -> int:
        """The file descriptor, with everything put so far flushed to it."""
        if self.dirty:
            with self._flushing:
                if self.dirty:
                    self.fh.flush()
                    self.dirty = False
        return self.fh.fileno()

    def _check(self, read: int, n: int) -> None:
        if read != n:
            raise OSError(f"temporary file {self.fh.name}: read {read} of {n} bytes (was it deleted?)")

    def close(self) -> None:
        self.fh.close()


class TokenStore:
    """Sequences' token ids (int32) and loss masks (int8), appended once and read back by position."""

    def __init__(self) -> None:
        self._ids = _File()
        self._masks: _File | None = None

    def put(self, ids: np.ndarray, mask: np.ndarray | None) -> tuple[int, int]:
        """Store one sequence; returns (ids offset, mask offset or -1 for "all ones")."""
        at = self._ids.put(np.ascontiguousarray(ids, dtype=np.int32))
        if mask is None:
            return at, -1
        if self._masks is None:
            self._masks = _File()
        return at, self._masks.put(np.ascontiguousarray(mask, dtype=np.int8))

    def ids(self, at: int, n: int) -> np.ndarray:
        return np.frombuffer(self._ids.get(at, 4 * n), dtype=np.int32)

    def ids_into(self, at: int, out: np.ndarray) -> None:
        """The `len(out)` ids at `at`, read into `out` (int32)."""
        self._ids.get_into(at, memoryview(out).cast("B"))

    def mask(self, at: int, n: int) -> np.ndarray:
        assert self._masks is not None
        return np.frombuffer(self._masks.get(at, n), dtype=np.int8)

    def close(self) -> None:
        self._ids.close()
        if self._masks is not None:
            self._masks.close()


class TextStore:
    """Rendered texts (UTF-8), appended once and read back whole."""

    def __init__(self) -> None:
        self._file = _File()

    def put(self, text: str) -> tuple[int, int]:
        data = text.encode("utf-8", "surrogatepass")
        return self._file.put(data), len(data)

    def get(self, at: int, n: int) -> str:
        return self._file.get(at, n).decode("utf-8", "surrogatepass")

    def close(self) -> None:
        self._file.close()


class Records:
    """A list of JSON records (eval items) kept in a temporary file as JSON lines: append, extend, len, iterate
    in order; equal to any sequence with the same records."""

    def __init__(self, items: Iterable[dict] = ()) -> None:
        self._file = _File()
        self._n = 0
        self.extend(items)

    def append(self, item: dict) -> None:
        self._file.put((json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
        self._n += 1

    def extend(self, items: Iterable[dict]) -> None:
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[dict]:
        rest = b""
        for block in self._blocks():
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from (json.loads(line) for line in lines)

    def write_to(self, fh) -> None:
        """Copy the records as they are stored (one JSON object per line, keys sorted) to the binary file `fh`."""
        for block in self._blocks():
            fh.write(block)

    def _blocks(self, size: int = 1 << 22) -> Iterator[bytes]:
        at = 0
        while at < self._file.size:
            block = self._file.get(at, min(size, self._file.size - at))
            at += len(block)
            yield block

    def __getitem__(self, i: int) -> dict:
        return list(self)[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (Records, list, tuple)) and len(self) == len(other) and list(self) == list(other)
