"""Matching messages of different streams by header stamp: one rule for every node and the exporter.

A message matches a stamp when it is the nearest one within a tolerance (0 for an
exact match); ties go to the earlier stamp. `nearest_index` is the rule on a
sorted list of stamps; `StampBuffer` keeps the last few messages of one stream
for the nodes that pair streams live.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


def nearest_index(sorted_stamps: Sequence[int], stamp: int, tolerance_ns: int) -> int | None:
    """Index of the stamp nearest `stamp` within `tolerance_ns` in an ascending list, else None."""
    i = bisect.bisect_left(sorted_stamps, stamp)
    best, best_d = None, tolerance_ns + 1
    for j in (i - 1, i):
        if 0 <= j < len(sorted_stamps):
            d = abs(sorted_stamps[j] - stamp)
            if d < best_d:
                best, best_d = j, d
    return best


class StampBuffer(Generic[T]):
    """The newest `capacity` items of one stream by stamp, oldest evicted first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a StampBuffer holds at least one item")
        self.capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()

    def put(self, stamp_ns: int, item: T) -> None:
        self._items[stamp_ns] = item
        if len(self._items) > 1 and stamp_ns < next(reversed(self._items)):
            self._items = OrderedDict(sorted(self._items.items()))  # out of order: keep it sorted
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def nearest(self, stamp_ns: int, tolerance_ns: int = 0) -> tuple[int, T] | None:
        """(stamp, item) nearest `stamp_ns` within the tolerance, or None."""
        stamps = list(self._items)
        j = nearest_index(stamps, stamp_ns, tolerance_ns)
        return None if j is None else (stamps[j], self._items[stamps[j]])

    def pop(self, stamp_ns: int) -> T:
        return self._items.pop(stamp_ns)

    def newest_stamp(self) -> int | None:
        return next(reversed(self._items), None)

    def clear(self) -> None:
        self._items.clear()

    def items(self) -> Iterator[tuple[int, T]]:
        return iter(list(self._items.items()))

    def __contains__(self, stamp_ns: object) -> bool:
        return stamp_ns in self._items

    def __len__(self) -> int:
        return len(self._items)
