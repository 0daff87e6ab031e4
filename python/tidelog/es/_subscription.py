"""Subscriptions to an event store: catch-up then live, from any process.

Subscription: a cursor of its own over the store's partition; it blocks on
the partition's wake-up (a futex on the shared state, bumped by every publish
in any process), so waiting costs no CPU. GroupSubscription: a member of a
consumer group on the store's topic (tidelog's groups), so that one member at
a time gets the events and a successor resumes from the group's committed
position. Neither object is thread-safe: one per thread."""
from __future__ import annotations

import collections
import time
from typing import Any, Iterator

from .. import _core
from ..errors import LogClosedError
from ._events import SOFT_DELETE_TYPE, TOMBSTONE_TYPE, EventFilter, RecordedEvent

#: A blocked poll looks at close() this often.
_WAIT_SLICE_S = 0.2


class _Events:
    """Iteration and the context manager, over ``poll()`` and ``close()``."""

    def poll(self, timeout: float | None = None) -> RecordedEvent | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[RecordedEvent]:
        return self

    def __next__(self) -> RecordedEvent:
        ev = self.poll()
        if ev is None:
            raise StopIteration
        return ev

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Subscription(_Events):
    """Events from a position on, in global order: the stored ones, then each
    new one as it is appended. Iterate it (blocks), or ``poll(timeout)``.
    ``position`` is where it goes on from: save it to resume later."""

    def __init__(self, store: Any, from_position: int, flt: EventFilter):
        self._store = store
        self._filter = flt
        #: The position the next event read will be at or after.
        self.position = from_position
        self._reader = _core.PartitionReader(store._native, from_position)
        self._read_to = from_position  # where the next read starts
        self._buffer: collections.deque[RecordedEvent] = collections.deque()
        self._closed = False

    def _fill(self) -> bool:
        """Reads what is visible from _read_to on; True if anything was read."""
        frames = self._reader.read(self._read_to, 64)
        if not frames:
            return False
        store, flt = self._store, self._filter
        for frame in frames:
            rows = [r for r in range(frame.record_count) if frame.offset_at(r) >= self._read_to]
            for ev in store._decode_rows(frame, rows, store._make_event):
                if ev.type not in (SOFT_DELETE_TYPE, TOMBSTONE_TYPE) and flt.matches(ev.stream_id, ev.type):
                    self._buffer.append(ev)
            self._read_to = frame.next_offset
        return True

    def poll(self, timeout: float | None = None) -> RecordedEvent | None:
        """The next event; None if none came within ``timeout`` seconds (None:
        wait as long as it takes) or the subscription was closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            if self._closed:
                return None
            self._store._check_open()
            if self._fill():
                self.position = self._buffer[0].position if self._buffer else self._read_to
                continue
            left = _WAIT_SLICE_S if deadline is None else min(deadline - time.monotonic(), _WAIT_SLICE_S)
            if left <= 0:
                return None
            self._store._native.wait_for_data(self._read_to, left)
        ev = self._buffer.popleft()
        self.position = self._buffer[0].position if self._buffer else self._read_to
        return ev

    def close(self) -> None:
        """Ends the subscription: a blocked poll returns None (within 0.2 s)."""
        self._closed = True


class GroupSubscription(_Events):
    """A competing (persistent) subscription: a member of consumer group
    ``group`` on the store's topic. One member at a time receives the events
    (the store's topic has one partition, which keeps the global order); the
    others wait as hot standbys and take over within milliseconds when it
    dies or leaves, from the group's committed position. The position after
    the last event returned is committed (durably) by ``commit()``, at
    ``close()``, and - with ``auto_commit`` - at a poll once
    ``auto_commit_interval_ms`` passed since the last commit: a successor
    re-receives at most what was returned after the last commit
    (at-least-once, as Kafka's auto-commit)."""

    def __init__(self, store: Any, group: str, flt: EventFilter, start: str = "earliest", *,
                 auto_commit: bool = True, auto_commit_interval_ms: int = 5000, **settings: Any):
        self._store = store
        self._filter = flt
        # The consumer's own auto-commit would commit what was fetched, not what was returned.
        self._consumer = store._log.consumer([store.topic.name], group=group, start=start,
                                             enable_auto_commit=False, **settings)
        self._auto_commit_s = auto_commit_interval_ms / 1000 if auto_commit else None
        self._last_commit = time.monotonic()
        self._committed = -1
        self._buffer: collections.deque[RecordedEvent] = collections.deque()
        self._delivered = -1
        self._closed = False

    @property
    def consumer(self):
        """The group consumer underneath (assignment, lag, committed)."""
        return self._consumer

    def poll(self, timeout: float | None = None) -> RecordedEvent | None:
        """The next event; None after ``timeout`` seconds or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._auto_commit_s is not None and time.monotonic() - self._last_commit >= self._auto_commit_s:
            self.commit()
        while not self._buffer:
            if self._closed:
                return None
            left = _WAIT_SLICE_S if deadline is None else min(deadline - time.monotonic(), _WAIT_SLICE_S)
            if left <= 0:
                return None
            batch = self._consumer.poll_batch(500, timeout=left)
            if batch is None:
                continue
            cols = batch.to_pydict()
            ts = batch.column("timestamp").cast("int64").to_pylist()
            make = self._store._make_event
            for i in range(batch.num_rows):
                stream_id, kind = cols["stream_id"][i], cols["type"][i]
                if kind in (SOFT_DELETE_TYPE, TOMBSTONE_TYPE) or not self._filter.matches(stream_id, kind):
                    self._delivered = cols["offset"][i]
                    continue
                self._buffer.append(make(cols["offset"][i], stream_id, cols["version"][i], kind, cols["event_id"][i],
                                         ts[i], cols["data"][i], cols["metadata"][i]))
        ev = self._buffer.popleft()
        self._delivered = ev.position
        return ev

    def commit(self) -> None:
        """Commits the position after the last event returned (durably)."""
        self._last_commit = time.monotonic()
        if self._delivered > self._committed:
            self._consumer.commit(offsets={(self._store.topic.name, 0): self._delivered + 1})
            self._committed = self._delivered

    def close(self) -> None:
        """Leaves the group (its partition moves to another member at once)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._auto_commit_s is not None:
                self.commit()
            self._consumer.close()
        except LogClosedError:
            pass

