"""The ids of recently appended messages, for dropping the ones a broker sends again.

The record is the topic itself: at start the bridge reads the id column of
the last ``capacity`` rows of every partition (what a crash may have left
appended but unacknowledged is at the tail), and remembers the ids it
appends from then on, the oldest forgotten first once ``capacity`` are
held. No state file: what is durable in the topic is exactly what was
appended, so the record can never claim an id the topic lacks.
"""
from __future__ import annotations

import collections
from typing import Any, Hashable


class RecentIds:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("the dedupe window must hold at least one id")
        self.capacity = capacity
        self._ids: set = set()
        self._order: collections.deque = collections.deque()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, ident: Hashable) -> bool:
        return ident in self._ids

    def keep(self, ident: Any) -> bool:
        """True (and remembers ``ident``) when it was not seen; False for a
        duplicate. A null id is never a duplicate."""
        if ident is None:
            return True
        ids = self._ids
        if ident in ids:
            return False
        ids.add(ident)
        order = self._order
        order.append(ident)
        if len(order) > self.capacity:
            ids.discard(order.popleft())
        return True

    def load_tail(self, topic, column: str) -> int:
        """Remembers the ``column`` values of the last ``capacity / partitions``
        rows of each partition of ``topic``; returns how many were read."""
        ends = topic.end_offsets()
        starts = topic.start_offsets()
        per_partition = max(1, self.capacity // max(len(ends), 1))
        read = 0
        for p, end in sorted(ends.items()):
            start = max(starts.get(p, 0), end - per_partition)
            if end <= start:
                continue
            values = topic.read(start_offset={p: start}, end_offset={p: end}, partitions=[p],
                                columns=[column], on_corrupt="skip").column(0).to_pylist()
            for v in values:
                self.keep(v)
            read += len(values)
        return read
