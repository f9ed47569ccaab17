"""Best-fit-decreasing packing of whole sequences into rows of `capacity` tokens, padding-free.

Sequences are placed longest first into the open row with the least room that still fits them. The open rows
are indexed by remaining room in a max segment tree over room sizes 1..capacity, so finding the best fit is
O(log capacity) and the whole pack O(n log n) (sorting) — a million sequences pack in seconds.
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np


class _RoomTree:
    """Max segment tree over room sizes: `smallest_at_least(n)` is the tightest room that can take n tokens."""

    def __init__(self, capacity: int):
        self.size = 1 << max(0, (capacity - 1).bit_length())
        self.tree = [0] * (2 * self.size)

    def set(self, room: int, present: bool) -> None:
        i = self.size + room - 1
        self.tree[i] = room if present else 0
        i >>= 1
        tree = self.tree
        while i:
            a, b = tree[2 * i], tree[2 * i + 1]
            tree[i] = a if a >= b else b
            i >>= 1

    def smallest_at_least(self, n: int) -> int:
        """The smallest room ≥ n (0 if none): leftmost leaf whose value ≥ n, since leaf k holds room k+1."""
        tree = self.tree
        if tree[1] < n:
            return 0
        i = 1
        while i < self.size:
            i = 2 * i if tree[2 * i] >= n else 2 * i + 1
        return tree[i]


def best_fit_decreasing(lengths: list[int] | np.ndarray, capacity: int) -> list[list[int]]:
    """Bins (lists of indices into `lengths`) of total length ≤ capacity; deterministic (ties by index)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and int(lengths.max()) > capacity:
        raise ValueError(f"a sequence of {int(lengths.max())} tokens does not fit rows of {capacity}")
    order = np.lexsort((np.arange(len(lengths)), -lengths))  # longest first, then input order
    tree = _RoomTree(capacity)
    rooms: dict[int, deque] = defaultdict(deque)  # room → open bins with exactly that room (oldest first)
    bins: list[list[int]] = []
    for idx in order.tolist():
        n = int(lengths[idx])
        if n <= 0:
            continue
        room = tree.smallest_at_least(n)
        if room:
            b = rooms[room].popleft()
            if not rooms[room]:
                tree.set(room, False)
        else:
            b, room = len(bins), capacity
            bins.append([])
        bins[b].append(idx)
        left = room - n
        if left > 0:
            if not rooms[left]:
                tree.set(left, True)
            rooms[left].append(b)
    return bins
