"""EventStore: event streams with optimistic concurrency on one tidelog topic.

How it stands on the core (docs/ARCHITECTURE.md, "The event store"):

- Events are rows of the topic ``__es.<name>`` (one partition, so a row's
  offset is its global position, and one append's rows are one frame: all or
  none visible after any crash).
- The version check and the write run under the store lock: this object's
  mutex (threads) and an exclusive OFD lock on ``<log>/stores/<name>/lock``
  (processes; the kernel releases it when its holder dies). The lock is held
  for the check and the write only; the wait for durability happens outside
  it, so appends of many threads share fsyncs (group commit).
- The per-stream index (native ``StreamIndex``) is this process's; under the
  lock it first takes in every row any handle wrote (the partition's written
  end): rows written by this process are indexed as they are written, rows of
  others once they are visible (the lock holder waits for that, without the
  lock). A snapshot of it (``stream-index``) spares an open the replay of the
  log up to the snapshot.
"""
from __future__ import annotations

import os
import re
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa

from .. import _core
from .._arrow import one_row
from ..errors import (InvalidArgumentError, LogClosedError, ReadOnlyError, SchemaMismatchError, StreamDeletedError,
                      TopicExistsError, UnknownTopicError, WrongExpectedVersionError)
from ._events import (ALL_EVENTS, ANY, EVENT_SCHEMA, NO_STREAM, SOFT_DELETE_TYPE, STREAM_EXISTS, TOMBSTONE_TYPE,
                      EventFilter, NewEvent, RecordedEvent, WriteResult, check_expected_version)
from ._serializer import JsonSerializer

_STORE_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
IDENTITY_KEY = b"tidelog.es.identity"
TOPIC_PREFIX = "__es."
#: An open that replays more than this many rows saves a fresh index snapshot.
SNAPSHOT_AFTER_ROWS = 100_000
_FRAMES_PER_READ = 256


def _register_event_template() -> None:
    types = [f.type for f in EVENT_SCHEMA]
    values = [b"s", 1, b"t", b"0123456789abcdef", 1, b"d", b"m"]
    one = pa.record_batch([one_row(t, v) for t, v in zip(types, values)], schema=EVENT_SCHEMA)
    _core.set_event_template(one.serialize())


_register_event_template()


def validate_store_name(name: Any) -> str:
    if not isinstance(name, str) or not _STORE_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidArgumentError(f"invalid event store name {name!r}: use 1-200 characters of [A-Za-z0-9._-]")
    return name


def store_topic_name(name: str) -> str:
    return TOPIC_PREFIX + name


class EventStore:
    """Event streams kept on a log: ``append`` with expected versions,
    ``read`` a stream through its index, ``read_all`` / ``subscribe`` in
    global order, ``scan`` as Arrow.

    Thread-safe: one object serves every thread of a process; any number of
    processes may open the same store (``log.event_store(name)``)."""

    def __init__(self, log: Any, name: str, serializer: Any = None):
        self.name = validate_store_name(name)
        self._log = log
        self.serializer = serializer if serializer is not None else JsonSerializer()
        self.topic = self._open_topic(log, store_topic_name(name))
        metadata = self.topic.schema.metadata or {}
        try:
            self._identity = int(metadata[IDENTITY_KEY])
        except (KeyError, ValueError):
            raise SchemaMismatchError(f"topic {self.topic.name!r} is not an event store's (no store identity)") from None
        self._partition = self.topic.partition(0)
        self._native = self._partition.native
        self._read_only = bool(log.read_only)
        self._dir = os.path.join(log.path, "stores", name)
        self._snapshot_path = os.path.join(self._dir, "stream-index")
        self._lock_file = None
        if not self._read_only:
            os.makedirs(self._dir, exist_ok=True)
            self._lock_file = _core.OfdLock(os.path.join(self._dir, "lock"))
        self._mutex = threading.RLock()
        self._index = _core.StreamIndex()
        self._reader = _core.PartitionReader(self._native, 0)
        self._schema = self.topic.schema
        self._closed = False
        with self._mutex:
            self._snapshot_through = self._load_index()

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _open_topic(log: Any, topic_name: str):
        try:
            topic = log.topic(topic_name)
        except UnknownTopicError:
            if log.read_only:
                raise
            schema = EVENT_SCHEMA.with_metadata({IDENTITY_KEY: str(uuid.uuid4().int >> 64).encode()})
            try:
                topic = log.create_topic(topic_name, schema=schema, partitions=1, key="stream_id",
                                         timestamp="timestamp", durability="fsync")
            except TopicExistsError:  # another handle created it first
                topic = log.topic(topic_name)
        if topic.partitions != 1 or not topic.schema.equals(EVENT_SCHEMA, check_metadata=False):
            raise SchemaMismatchError(f"topic {topic_name!r} exists but is not an event store's "
                                      f"(one partition of the event schema)")
        if topic.config.compression != "none" or topic.config.cleanup_policy != "delete" or \
                topic.config.retention_ms is not None or topic.config.retention_bytes is not None:
            raise SchemaMismatchError(f"topic {topic_name!r}: an event store's topic keeps every event, uncompressed "
                                      f"(its retention, compaction or compression was changed)")
        return topic

    def _load_index(self) -> int:
        """The snapshot if it is this store's and consistent with the log, then
        the log's rows after it. Returns the snapshot's position (0: none)."""
        index = self._index
        visible = self._native.end_offset
        if index.load(self._snapshot_path, self._identity) and (index.through > visible
                                                                or not self._snapshot_tail_agrees()):
            index.clear()
        loaded = index.through
        self._catch_up(visible)
        if not self._read_only and index.through - loaded > SNAPSHOT_AFTER_ROWS:
            self._save_snapshot()
            return index.through
        return loaded

    def _snapshot_tail_agrees(self) -> bool:
        """The log's row at the snapshot's last position is the one the snapshot
        indexed there (a cheap check that the log is the one it was made of)."""
        last = self._index.through - 1
        if last < 0:
            return True
        rows = self._rows_at([last])
        if not rows:
            return True  # a marker row or damage: nothing to compare
        ev = rows[0]
        if ev.type in (SOFT_DELETE_TYPE, TOMBSTONE_TYPE):
            return True
        return self._index.positions(ev.stream_id, ev.version, ev.version) == [last]

    def _save_snapshot(self) -> None:
        """Saves the index when everything it holds is durable (visible)."""
        if self._read_only or self._index.through != self._native.end_offset:
            return
        try:
            self._index.save(self._snapshot_path, self._identity)
            self._snapshot_through = self._index.through
        except OSError:
            pass  # a snapshot is an optimisation: the next open replays more

    # ------------------------------------------------------------- the index
    def _catch_up(self, target: int) -> None:
        """Indexes every row below ``target`` (visible rows only). Under the mutex."""
        index = self._index
        while index.through < target:
            skipped: list = []
            frames = self._reader.read(index.through, _FRAMES_PER_READ, skipped)
            for frame in frames:  # (frames past a damaged range have positions past it: add() takes them)
                if frame.next_offset <= index.through:
                    continue
                try:
                    index.index_frame(frame)
                except NotImplementedError:
                    self._index_decoded(frame)
            if skipped:  # damaged bytes: their rows are lost to the index too (warned, counted in log.stats())
                self._partition._note_skipped(self.topic.name, 0, skipped)
                for gap in skipped:
                    index.advance(gap["end_offset"])
            if not frames and not skipped:
                break

    def _index_decoded(self, frame) -> None:
        """Indexes a frame the native reader does not take (pyarrow decodes it)."""
        batches = self.topic.partition(0).decode(frame)
        row = 0
        for batch in batches:
            cols = batch.to_pydict()
            for i in range(batch.num_rows):
                position = frame.offset_at(row)
                stream, kind = cols["stream_id"][i], cols["type"][i]
                if kind == SOFT_DELETE_TYPE:
                    self._index.soft_delete(stream, cols["version"][i], position)
                elif kind == TOMBSTONE_TYPE:
                    self._index.tombstone(stream, position)
                else:
                    self._index.add(stream, position, _core.event_id_hash(cols["event_id"][i]), cols["version"][i])
                row += 1
        self._index.advance(frame.next_offset)

    def _refresh(self) -> None:
        """Takes in what other handles appended since (visible rows). Under the mutex."""
        visible = self._native.end_offset
        if self._index.through < visible:
            self._catch_up(visible)

    # ------------------------------------------------------------------ writing
    def append(self, stream_id: str, events: Iterable[Any], expected_version: int = ANY, *,
               durable: bool | None = None) -> WriteResult:
        """Appends ``events`` (NewEvent or domain objects, serialized by the
        store's serializer) to the stream, if it is at ``expected_version``
        (an int, ANY, NO_STREAM or STREAM_EXISTS); returns the WriteResult.
        All of them or none, consecutive in the stream. A conflict raises
        WrongExpectedVersionError and writes nothing; the same event ids
        appended again at the same expected version return the first result."""
        return self.append_many([(stream_id, events, expected_version)], durable=durable)[0]

    def append_many(self, appends: Iterable[tuple[str, Iterable[Any], int]], *,
                    precondition: Callable[[], None] | None = None, durable: bool | None = None) -> list[WriteResult]:
        """Appends to several streams at once, atomically: every check passes
        and every event is written (one frame), or nothing is. ``appends`` are
        (stream_id, events, expected_version); a stream at most once.
        ``precondition`` runs under the store lock after the checks (it may read
        the store); raising aborts the append."""
        self._check_writable()
        prepared = self._prepare(appends)
        wait = self.topic.config.durability != "none" if durable is None else bool(durable)
        native_log = self._log._native
        # A precondition reads the store, which shows visible rows only: this
        # process's rows in flight are let through first, so it sees what the
        # version checks see.
        results, ticket = self._under_store_lock(
            lambda written: self._append_locked(prepared, precondition, written),
            announce=wait, own_rows_visible=precondition is not None)
        if wait:
            if ticket:
                native_log.wait_durable(ticket, True)
            else:
                native_log.retract()  # an idempotent retry wrote nothing ...
                # ... but the first append may still be on its way to the disk (a thread of
                # this process in its durability wait): acknowledge the retry once it is there.
                last = max(p for r in results for p in r.positions)
                if last >= self._native.end_offset:
                    self._native.wait_for_data(last, None)
        return results

    def _under_store_lock(self, write: Callable[[int], Any], *, announce: bool, own_rows_visible: bool) -> Any:
        """``write(written_end)`` under the store's mutex and file lock, once every
        row below the partition's written end is in the index: rows of other
        handles not yet visible are waited for without the lock, then it tries
        again. ``own_rows_visible``: this process's rows in flight are waited for
        too. ``announce``: the group committer is told of a durable append on its
        way (it holds its next fsync for it, so the appends of many threads share
        one); the caller waits with ``wait_durable(ticket, True)``."""
        native_log = self._log._native
        while True:
            if announce:
                native_log.announce()
            try:
                with self._mutex:
                    self._check_open()
                    if not self._lock_file.lock(0, True, False):  # uncontended: no GIL round trip
                        self._lock_file.lock(0, True, True)
                    try:
                        written = self._native.written_end()
                        visible = self._native.end_offset
                        if self._index.through < written and visible < written:
                            pending = written  # another handle's rows, not yet visible
                        elif own_rows_visible and self._index.through > visible:
                            pending = self._index.through
                        else:
                            return write(written)
                    finally:
                        self._lock_file.unlock(0)
            except BaseException:
                if announce:
                    native_log.retract()
                raise
            if announce:
                native_log.retract()
            self._native.wait_for_data(pending - 1, 1.0)

    def _prepare(self, appends: Iterable[tuple[str, Iterable[Any], int]]) -> list[tuple[str, list[NewEvent], int]]:
        """Checks and serializes everything before the lock: bad input writes nothing."""
        prepared = []
        seen = set()
        for item in appends:
            try:
                stream_id, events, expected = item
            except (TypeError, ValueError):
                raise InvalidArgumentError("append_many takes (stream_id, events, expected_version) tuples") from None
            _check_stream_id(stream_id)
            if stream_id in seen:
                raise InvalidArgumentError(f"stream {stream_id!r} appears twice in one append_many call")
            seen.add(stream_id)
            expected = check_expected_version(expected)
            if isinstance(events, (NewEvent, bytes, str)) or not hasattr(events, "__iter__"):
                raise InvalidArgumentError("events must be a list (or other iterable) of events")
            new = [self._to_new_event(e) for e in events]
            if not new:
                raise InvalidArgumentError(f"append to stream {stream_id!r} with no events")
            if len({e.event_id for e in new}) != len(new):
                raise InvalidArgumentError(f"append to stream {stream_id!r}: an event id appears twice")
            prepared.append((stream_id, new, expected))
        if not prepared:
            raise InvalidArgumentError("append_many with nothing to append")
        return prepared

    def _to_new_event(self, event: Any) -> NewEvent:
        if isinstance(event, NewEvent):
            return event
        type_name, data = self.serializer.serialize(event)
        return NewEvent(type_name, data)

    def _append_locked(self, prepared, precondition, written: int) -> tuple[list[WriteResult], int]:
        """Under the mutex and the file lock, with every row below ``written`` visible."""
        self._catch_up(written)
        index = self._index
        if index.through != written:
            raise InvalidArgumentError(f"event store {self.name!r}: its topic holds rows the store did not write "
                                       f"(position {index.through}, written end {written}); append through the "
                                       f"store only")
        plan = []  # (stream, events, first_version) of the streams to write
        results: list[WriteResult | None] = []
        repeated = 0
        for stream_id, events, expected in prepared:
            original = self._check_version(stream_id, events, expected)
            if original is not None:
                repeated += 1
                results.append(original)
                continue
            first = index.last_version(stream_id) + 1
            plan.append((stream_id, events, first))
            results.append(None)
        if repeated and plan:  # one atomic append was written before or it was not: a partial match is a conflict
            stream_id, events, first = plan[0]
            raise WrongExpectedVersionError(stream_id, dict((s, e) for s, _, e in prepared)[stream_id], first - 1)
        if not plan:
            return [r for r in results if r is not None], 0
        if precondition is not None:
            precondition()
        now_ns = time.time_ns()
        base, ticket = self._write_rows([(stream_id, first + i, e.type, e.event_id.bytes, e.data, e.metadata)
                                         for stream_id, events, first in plan for i, e in enumerate(events)], now_ns)
        position = base
        planned = iter(plan)
        out = []
        for r in results:
            if r is not None:
                out.append(r)
                continue
            stream_id, events, first = next(planned)
            positions = list(range(position, position + len(events)))
            for k, (p, e) in enumerate(zip(positions, events)):
                index.add(stream_id, p, _core.event_id_hash(e.event_id.bytes), first + k)
            position += len(events)
            out.append(WriteResult(first + len(events) - 1, positions))
        return out, ticket

    def _check_version(self, stream_id: str, events: list[NewEvent], expected: int) -> WriteResult | None:
        """None when the append may go ahead; the earlier result when these
        events are already there (an idempotent retry); else raises."""
        last, truncate_before, tombstoned = self._index.state(stream_id)
        if tombstoned:
            raise StreamDeletedError(stream_id)
        live = last >= truncate_before  # the stream holds events not deleted
        actual = last if live else NO_STREAM
        if expected == ANY:
            ok = True
            retry_from = self._index.find_event(stream_id, _core.event_id_hash(events[0].event_id.bytes), 0)
        elif expected == NO_STREAM:
            ok = not live
            retry_from = truncate_before if live else -1
        elif expected == STREAM_EXISTS:
            ok = live
            retry_from = self._index.find_event(stream_id, _core.event_id_hash(events[0].event_id.bytes), 0) \
                if live else -1
        else:
            ok = expected == last
            retry_from = expected + 1 if expected < last else -1
        if retry_from >= 0:
            hashes = [_core.event_id_hash(e.event_id.bytes) for e in events]
            if self._index.id_hashes(stream_id, retry_from, len(events)) == hashes:
                positions = self._index.positions(stream_id, retry_from, retry_from + len(events) - 1)
                return WriteResult(retry_from + len(events) - 1, positions)
        if not ok:
            raise WrongExpectedVersionError(stream_id, expected, actual)
        return None

    def _write_rows(self, rows: list[tuple], now_ns: int) -> tuple[int, int]:
        """One frame of rows (stream_id, version, type, event_id, data, metadata),
        encoded natively (no pyarrow on the append path): (base position, ticket)."""
        message, body_offset = _core.encode_event_rows(rows, now_ns)
        request = ([message], len(rows), now_ns, now_ns, 0, 0, 0, body_offset)
        [(base, ticket)] = self._partition.append_frames([request])
        return base, ticket

    def delete_stream(self, stream_id: str, expected_version: int = ANY, *, hard: bool = False,
                      durable: bool | None = None) -> int:
        """Deletes a stream; returns the marker's position. Soft (default): its
        events are hidden from ``read`` and ``streams``, and the stream may be
        written again (with NO_STREAM or ANY), its versions going on. Hard
        (``hard=True``, a tombstone): reads and appends raise
        StreamDeletedError from then on. Either way the events stay in the log
        (``read_all``, ``scan`` still see them)."""
        self._check_writable()
        _check_stream_id(stream_id)
        expected = check_expected_version(expected_version)
        wait = self.topic.config.durability != "none" if durable is None else bool(durable)
        base, ticket = self._under_store_lock(lambda written: self._delete_locked(stream_id, expected, hard, written),
                                              announce=False, own_rows_visible=False)
        if wait:
            self._log.wait_durable(ticket)
        return base

    def _delete_locked(self, stream_id: str, expected: int, hard: bool, written: int) -> tuple[int, int]:
        """delete_stream under the store lock: (marker position, ticket)."""
        self._catch_up(written)
        last, truncate_before, tombstoned = self._index.state(stream_id)
        if tombstoned:
            raise StreamDeletedError(stream_id)
        live = last >= truncate_before
        if expected == NO_STREAM or (expected == STREAM_EXISTS and not live) or (expected >= 0 and expected != last):
            raise WrongExpectedVersionError(stream_id, expected, last if live else NO_STREAM)
        kind = TOMBSTONE_TYPE if hard else SOFT_DELETE_TYPE
        version = last if hard else last + 1
        base, ticket = self._write_rows([(stream_id, version, kind, uuid.uuid4().bytes, b"", None)], time.time_ns())
        if hard:
            self._index.tombstone(stream_id, base)
        else:
            self._index.soft_delete(stream_id, version, base)
        return base, ticket

    # ------------------------------------------------------------------ reading
    def read(self, stream_id: str, from_version: int | None = None, to_version: int | None = None, *,
             backwards: bool = False, limit: int | None = None) -> list[RecordedEvent]:
        """The stream's events in version order (``backwards``: newest first),
        ``from_version`` to ``to_version`` inclusive (forwards: default 0 and
        the end; backwards: default the end and 0), at most ``limit``. Reads
        only the stream's own rows (the index), however large the store. An
        unknown or soft-deleted stream gives []; a tombstoned one raises
        StreamDeletedError."""
        _check_stream_id(stream_id)
        for name, v in (("from_version", from_version), ("to_version", to_version), ("limit", limit)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InvalidArgumentError(f"{name} must be an int >= 0 or None, not {v!r}")
        with self._mutex:
            self._check_open()
            self._refresh()
            last, truncate_before, tombstoned = self._index.state(stream_id)
            if tombstoned:
                raise StreamDeletedError(stream_id)
            if backwards:
                hi = last if from_version is None else min(from_version, last)
                lo = max(truncate_before, 0 if to_version is None else to_version)
                if limit is not None:
                    lo = max(lo, hi - limit + 1)
            else:
                lo = max(truncate_before, 0 if from_version is None else from_version)
                hi = last if to_version is None else min(to_version, last)
                if limit is not None:
                    hi = min(hi, lo + limit - 1)
            if hi < lo or (limit == 0):
                return []
            visible = self._native.end_offset
            positions = self._index.positions(stream_id, lo, hi)
            if positions and (positions[-1] >= visible or -1 in positions):
                # appends of this process not yet durable; versions lost to damaged bytes (-1)
                positions = [p for p in positions if 0 <= p < visible]
            events = self._rows_at(positions)
        if backwards:
            events.reverse()
        return events

    def last_event(self, stream_id: str) -> RecordedEvent | None:
        """The stream's newest event (None if it has none)."""
        got = self.read(stream_id, backwards=True, limit=1)
        return got[0] if got else None

    def stream_version(self, stream_id: str) -> int:
        """The stream's last version, appends in flight included; NO_STREAM (-1)
        when it has no events or was soft-deleted. StreamDeletedError when tombstoned."""
        _check_stream_id(stream_id)
        with self._mutex:
            self._check_open()
            self._refresh()
            last, truncate_before, tombstoned = self._index.state(stream_id)
        if tombstoned:
            raise StreamDeletedError(stream_id)
        return last if last >= truncate_before else NO_STREAM

    def streams(self, prefix: str = "") -> list[str]:
        """Ids of the streams that hold events (not deleted), sorted; system
        streams ('$...') excluded."""
        if not isinstance(prefix, str):
            raise InvalidArgumentError("prefix is a str")
        with self._mutex:
            self._check_open()
            self._refresh()
            return self._index.live_streams(prefix, False)

    @property
    def log(self) -> Any:
        """The log the store is kept on."""
        return self._log

    @property
    def end_position(self) -> int:
        """One past the last visible position: where the next event will land
        (when no append is in flight)."""
        self._check_open()
        return self._native.end_offset

    @property
    def event_count(self) -> int:
        """Events in the index (every stream's, deleted ones too; markers not)."""
        with self._mutex:
            self._refresh()
            return self._index.event_count

    def _rows_at(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at these (visible, ascending) positions. Under the mutex."""
        try:
            return _core.read_event_rows(self._reader, positions, self._make_event)
        except NotImplementedError:  # a frame only pyarrow reads: the slow loop
            pass
        out: list[RecordedEvent] = []
        make = self._make_event
        i = 0
        n = len(positions)
        reader = self._reader
        while i < n:
            frames = reader.read(positions[i], 1)
            if not frames:
                break
            frame = frames[0]
            rows = []
            while i < n and frame.base_offset <= positions[i] < frame.next_offset:
                rows.append(frame.row_index(positions[i]))
                i += 1
            if not rows:  # the position is gone (damage): skip it
                i += 1
                continue
            out.extend(self._decode_rows(frame, rows, make))
        return out

    def _decode_rows(self, frame, rows: list[int], make) -> list[RecordedEvent]:
        try:
            return _core.decode_event_rows(frame, rows, make)
        except NotImplementedError:
            table = pa.Table.from_batches(self.topic.partition(0).decode(frame), self._schema)
            cols = table.to_pydict()
            out = []
            for r in rows:
                ts = cols["timestamp"][r]
                out.append(make(frame.offset_at(r), cols["stream_id"][r], cols["version"][r], cols["type"][r],
                                cols["event_id"][r], table.column("timestamp")[r].value if ts is not None else 0,
                                cols["data"][r], cols["metadata"][r]))
            return out

    def _make_event(self, position, stream_id, version, type, event_id, timestamp, data, metadata):
        return RecordedEvent(stream_id, version, position, type, event_id, timestamp, data, metadata,
                             self.serializer)

    def read_all(self, from_position: int = 0, to_position: int | None = None, *,
                 filter: EventFilter | None = None, limit: int | None = None) -> Iterator[RecordedEvent]:
        """Events in global order from ``from_position`` to ``to_position``
        (exclusive; default: the end as of the call), those ``filter`` passes
        (system rows skipped by default), at most ``limit``. Lazy: it reads
        frame by frame, in bounded memory."""
        for name, v in (("from_position", from_position), ("to_position", to_position), ("limit", limit)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InvalidArgumentError(f"{name} must be an int >= 0, not {v!r}")
        flt = ALL_EVENTS if filter is None else filter
        if not isinstance(flt, EventFilter):
            raise InvalidArgumentError("filter must be a tidelog.es.EventFilter")
        self._check_open()
        end = self._native.end_offset if to_position is None else to_position
        return self._iter_all(from_position, end, flt, limit)

    def _iter_all(self, position: int, end: int, flt: EventFilter, limit: int | None) -> Iterator[RecordedEvent]:
        reader = _core.PartitionReader(self._native, position)
        left = -1 if limit is None else limit
        while position < end and left != 0:
            self._check_open()
            frames = reader.read(position, 64)
            if not frames:
                break
            for frame in frames:
                rows = [r for r in range(frame.record_count) if position <= frame.offset_at(r) < end]
                for ev in self._decode_rows(frame, rows, self._make_event):
                    if flt.matches(ev.stream_id, ev.type) and ev.type not in (SOFT_DELETE_TYPE, TOMBSTONE_TYPE):
                        yield ev
                        left -= 1
                        if left == 0:
                            return
                position = frame.next_offset

    def subscribe(self, from_position: int = 0, *, filter: EventFilter | None = None, group: str | None = None,
                  start: str = "earliest"):
        """A Subscription: the events from ``from_position`` on in global order
        (those ``filter`` passes), then new ones as they are appended by any
        process - iteration blocks without CPU. ``group=name`` makes it a
        competing (persistent) subscription: one member of the consumer group
        at a time receives the events, from the group's committed position
        (``start`` when it has none), failing over when a member dies."""
        from ._subscription import GroupSubscription, Subscription

        flt = ALL_EVENTS if filter is None else filter
        if not isinstance(flt, EventFilter):
            raise InvalidArgumentError("filter must be a tidelog.es.EventFilter")
        self._check_open()
        if group is not None:
            return GroupSubscription(self, group, flt, start)
        if isinstance(from_position, bool) or not isinstance(from_position, int) or from_position < 0:
            raise InvalidArgumentError(f"from_position must be an int >= 0, not {from_position!r}")
        return Subscription(self, from_position, flt)

    def scan(self, start_position: int | None = None, end_position: int | None = None, *,
             columns: Sequence[str] | None = None):
        """The store's rows as Arrow (a streaming ``Scan``: DuckDB, Polars and
        pyarrow read it), columns stream_id, version, type, event_id,
        timestamp, data, metadata. Deletion markers are rows too (type
        '$deleted' / '$tombstone')."""
        return self.topic.scan(start_position, end_position, columns=columns)

    # ---------------------------------------------------------------- lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"event store {self.name!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnlyError(f"event store {self.name!r}: its log is open read-only")

    def close(self) -> None:
        """Saves the index snapshot (when everything indexed is durable) and
        releases the store. Idempotent; the log closes its stores too."""
        with self._mutex:
            if self._closed:
                return
            try:
                if not self._log._closed and self._index.through > self._snapshot_through:
                    self._refresh()
                    self._save_snapshot()
            finally:
                self._closed = True
                if self._lock_file is not None:
                    self._lock_file.close()
                self._log._forget_store(self)

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tidelog.es.EventStore {self.name!r} on {self._log.path!r}>"


def _check_stream_id(stream_id: Any) -> None:
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidArgumentError(f"a stream id is a non-empty str, not {stream_id!r}")
