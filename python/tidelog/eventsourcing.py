"""A persistence module for the ``eventsourcing`` library (9.5), on tidelog event stores.

Select it with ``PERSISTENCE_MODULE=tidelog.eventsourcing`` and name the log folder with
``TIDELOG_PATH`` (or ``<APPLICATION NAME>_TIDELOG_PATH``, the library's per-application
override). The module defines one infrastructure factory, :class:`TidelogFactory`.

Mapping (one library stored event = one tidelog event-store event):

* **Stores.** Each application gets its own event store in the log, named after the
  application: its name as it is, characters outside ``[A-Za-z0-9._-]`` replaced by ``_``
  (then a short hash of the original name is added, so two names do not share a store),
  ``"events"`` when the application has no name. Snapshots go to ``<name>-snapshots``,
  a tracking-only recorder (a projection's view) to ``<name>-tracking``. One log folder
  thus serves a whole system of applications and projections.
* **Streams.** ``stream_id = str(originator_id)``; the event's ``type`` is the library's
  topic, ``data`` its ``state`` (bytes, as given), ``metadata`` 9 bytes: ``b"u"`` or
  ``b"s"`` (the originator id was a UUID or a str: a UUID comes back as a UUID) then the
  library's ``originator_version`` as a little-endian int64. The library's versions are
  not the store's stream versions (a snapshot store has versions 5, 10, ...), so the
  recorder checks them itself: per originator they must increase, and a batch whose
  versions are not above the last recorded one raises ``IntegrityError`` (whether or not
  that version exists) and writes nothing. The check is atomic with the write: the
  recorder reads each stream's last event, appends with that event's stream version as
  the expected version (``append_many``: one frame, all originators of the call or none),
  and on ``WrongExpectedVersionError`` (another writer got there first) checks again.
* **Notification ids** are the store's global positions + 1 (positions count from 0).
  An application recorder's store holds only events, so its ids are contiguous and one
  call's events get one contiguous block. ``select_notifications`` and ``subscribe`` read
  the store in position order (``read_all``, ``subscribe``); topics filter on the event
  type. ``select_events`` reads the originator's stream only (the store's per-stream index,
  never a scan of the log).
* **Tracking.** A tracking record ``Tracking(app, n)`` is a row in the system stream
  ``$tracking-<app>`` of the recorder's store (data: ``n`` in ASCII). A process recorder
  appends it in the same ``append_many`` call as its events, with the strictly-increasing
  check as the call's precondition (it runs under the store's lock): events and tracking
  are recorded together or not at all, which is what makes processing exactly-once.
  Tracking rows take positions, so a process recorder's notification ids have gaps.
* **Logs.** One tidelog :class:`~tidelog.Log` per folder per process is shared by every
  factory and recorder; it closes when the last factory using it closes (or is garbage).

Bad input (an originator id that is neither a UUID nor a non-empty str, a str id starting
with ``$``, a version that is not an int64, state that is not bytes) raises
:class:`InvalidStoredEventError` (both ``eventsourcing.persistence.DataError`` and
``tidelog.errors.InvalidArgumentError``); nothing is written.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    InfrastructureFactory,
    InfrastructureFactoryError,
    IntegrityError,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

import tidelog
from tidelog import ANY, NO_STREAM, WrongExpectedVersionError
from tidelog.errors import InvalidArgumentError
from tidelog.es import EventFilter, NewEvent

if TYPE_CHECKING:
    from tidelog.es import EventStore, RecordedEvent

__all__ = [
    "Factory",
    "InvalidStoredEventError",
    "TidelogAggregateRecorder",
    "TidelogApplicationRecorder",
    "TidelogFactory",
    "TidelogProcessRecorder",
    "TidelogSubscription",
    "TidelogTrackingRecorder",
]


class InvalidStoredEventError(DataError, InvalidArgumentError):
    """A stored event or tracking object the recorder cannot record (the message says
    which field and why); nothing of the call was written."""


# ----------------------------------------------------------------- event encoding

#: metadata of every recorded library event: id kind (b"u" UUID / b"s" str), version.
_META = struct.Struct("<cq")
_KIND_UUID = b"u"
_KIND_STR = b"s"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRACKING_PREFIX = "$tracking-"
_TRACKING_TYPE = "tracking"


def _stream_of(originator_id: object) -> tuple[str, bytes]:
    """The stream id and id kind of an originator id, or InvalidStoredEventError."""
    if isinstance(originator_id, UUID):
        return str(originator_id), _KIND_UUID
    if isinstance(originator_id, str):
        if not originator_id:
            raise InvalidStoredEventError("originator_id is an empty str")
        if originator_id.startswith("$"):
            raise InvalidStoredEventError(
                f"originator_id {originator_id!r} starts with '$', which tidelog keeps for system streams")
        return originator_id, _KIND_STR
    raise InvalidStoredEventError(
        f"originator_id must be a UUID or a str, not {type(originator_id).__name__}: {originator_id!r}")


def _check_version(version: object, what: str = "originator_version") -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidStoredEventError(f"{what} must be an int, not {type(version).__name__}: {version!r}")
    if not _INT64_MIN <= version <= _INT64_MAX:
        raise InvalidStoredEventError(f"{what} {version} is outside the int64 range")
    return version


def _version_of(event: RecordedEvent) -> int:
    """The library's originator_version of a recorded event."""
    return _META.unpack(event.metadata)[1]  # type: ignore[arg-type]


def _to_stored_event(event: RecordedEvent) -> StoredEvent:
    kind, version = _META.unpack(event.metadata)  # type: ignore[arg-type]
    oid: UUID | str = UUID(event.stream_id) if kind == _KIND_UUID else event.stream_id
    return StoredEvent(originator_id=oid, originator_version=version, topic=event.type, state=event.data)


def _to_notification(event: RecordedEvent) -> Notification:
    kind, version = _META.unpack(event.metadata)  # type: ignore[arg-type]
    oid: UUID | str = UUID(event.stream_id) if kind == _KIND_UUID else event.stream_id
    return Notification(id=event.position + 1, originator_id=oid, originator_version=version,
                        topic=event.type, state=event.data)


class _Group:
    """One originator's events of an insert call, sorted by version."""

    __slots__ = ("stream_id", "indexes", "versions", "new_events")

    def __init__(self, stream_id: str):
        self.stream_id = stream_id
        self.indexes: list[int] = []      # positions of the events in the caller's batch
        self.versions: list[int] = []
        self.new_events: list[NewEvent] = []


def _group_events(stored_events: Sequence[StoredEvent]) -> list[_Group]:
    """Validates a batch and groups it by originator (first-appearance order), each
    group sorted by version; a version twice in the batch raises IntegrityError."""
    groups: dict[str, _Group] = {}
    items: dict[str, list[tuple[int, int, StoredEvent, bytes]]] = {}
    for i, se in enumerate(stored_events):
        if not isinstance(se, StoredEvent):
            raise InvalidStoredEventError(f"expected StoredEvent objects, got {type(se).__name__}")
        stream_id, kind = _stream_of(se.originator_id)
        version = _check_version(se.originator_version)
        if not isinstance(se.topic, str) or not se.topic:
            raise InvalidStoredEventError(f"topic must be a non-empty str, not {se.topic!r}")
        if not isinstance(se.state, (bytes, bytearray, memoryview)):
            raise InvalidStoredEventError(f"state must be bytes, not {type(se.state).__name__}")
        if stream_id not in groups:
            groups[stream_id] = _Group(stream_id)
            items[stream_id] = []
        items[stream_id].append((version, i, se, kind))
    for stream_id, group in groups.items():
        rows = sorted(items[stream_id], key=lambda r: r[0])
        for (v1, _, _, _), (v2, _, _, _) in zip(rows, rows[1:]):
            if v1 == v2:
                raise IntegrityError(f"stored events are not unique: originator {stream_id} version {v1} twice")
        for version, i, se, kind in rows:
            group.indexes.append(i)
            group.versions.append(version)
            group.new_events.append(NewEvent(type=se.topic, data=bytes(se.state),
                                             metadata=_META.pack(kind, version)))
    return list(groups.values())


def _tracking_stream(tracking_or_name: Tracking | str) -> str:
    name = tracking_or_name.application_name if isinstance(tracking_or_name, Tracking) else tracking_or_name
    if not isinstance(name, str) or not name:
        raise InvalidStoredEventError(f"the tracking application name must be a non-empty str, not {name!r}")
    return _TRACKING_PREFIX + name


def _check_tracking(tracking: object) -> Tracking:
    if not isinstance(tracking, Tracking):
        raise InvalidStoredEventError(f"tracking must be a Tracking object, not {type(tracking).__name__}")
    _tracking_stream(tracking)
    _check_version(tracking.notification_id, "tracking notification_id")
    return tracking


def _tracking_id_of(event: RecordedEvent | None) -> int | None:
    return None if event is None else int(event.data)


# ------------------------------------------------------------------- shared logs

class _SharedLog:
    """One open log and its event stores, shared by the factories of this process.
    Thread-safe: ``refs`` changes under ``_LOGS_LOCK``, ``stores`` under ``lock``."""

    def __init__(self, path: str):
        self.log = tidelog.open(path)
        self.pid = os.getpid()
        self.refs = 0
        self.lock = threading.Lock()
        self.stores: dict[str, EventStore] = {}


#: realpath -> the shared log of that folder (this process's; a forked child opens its own).
_LOGS: dict[str, _SharedLog] = {}
_LOGS_LOCK = threading.Lock()


def _release(key: str, shared: _SharedLog) -> None:
    with _LOGS_LOCK:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if _LOGS.get(key) is shared:
            del _LOGS[key]
    if shared.pid == os.getpid():  # a fork's inherited copy belongs to the parent
        shared.log.close()


class _LogLease:
    """A factory's claim on the shared log of its folder: ``release()`` (or garbage
    collection of the lease) gives it back; the log closes with the last claim.
    Recorders keep their factory's lease alive, so a dropped factory does not close
    the log under recorders still in use. Thread-safe."""

    def __init__(self, path: str):
        key = os.path.realpath(os.path.abspath(path))
        with _LOGS_LOCK:
            shared = _LOGS.get(key)
            if shared is None or shared.pid != os.getpid():
                shared = _SharedLog(key)
                _LOGS[key] = shared
            shared.refs += 1
        self._shared = shared
        self._finalizer = weakref.finalize(self, _release, key, shared)

    @property
    def log(self) -> tidelog.Log:
        return self._shared.log

    def store(self, name: str) -> EventStore:
        with self._shared.lock:  # opening a store may create it: not under the global lock
            store = self._shared.stores.get(name)
            if store is None:
                store = self._shared.log.event_store(name)
                self._shared.stores[name] = store
            return store

    def release(self) -> None:
        self._finalizer()  # runs once


_NAME_OK = re.compile(r"[A-Za-z0-9._-]+")


def store_name(application_name: str, suffix: str = "") -> str:
    """The event store of an application (``""`` -> ``"events"``), with ``suffix``
    (``"-snapshots"``, ``"-tracking"``) appended."""
    base = application_name or "events"
    if not _NAME_OK.fullmatch(base) or len(base) > 160 or base in (".", ".."):
        digest = hashlib.sha1(application_name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        base = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:160] + "-" + digest
    return base + suffix


# --------------------------------------------------------------------- recorders

def _tracking_append(store: EventStore, tracking: Tracking) -> tuple[tuple[str, list[NewEvent], int],
                                                                    Callable[[], None]]:
    """The append_many item that records ``tracking`` (a row of its application's
    tracking stream) and the precondition that keeps tracking ids strictly
    increasing: it runs under the store's lock, so two writers cannot both record
    the same id. IntegrityError (nothing written) when the id is not above the
    last one recorded."""
    tstream = _tracking_stream(tracking)
    tid = tracking.notification_id

    def precondition() -> None:
        last = _tracking_id_of(store.last_event(tstream))
        if last is not None and last >= tid:
            raise IntegrityError(f"tracking notification id {tid} for {tracking.application_name!r} "
                                 f"is not above the recorded {last}")

    return (tstream, [NewEvent(type=_TRACKING_TYPE, data=b"%d" % tid)], ANY), precondition


class TidelogRecorder:
    """Base of the recorders: an event store of a shared log. Thread-safe (the store
    is; the recorder keeps no state of its own beyond the store)."""

    def __init__(self, store: EventStore, lease: _LogLease | None = None):
        self.store = store
        self._lease = lease  # keeps the log open while the recorder lives

    def _append(self, groups: list[_Group], tracking: Tracking | None) -> list[int]:
        """Appends the groups (and the tracking row) atomically; returns each event's
        position in the caller's batch order. IntegrityError when an originator version
        is not above its stream's last one, or the tracking id not above the last."""
        n = sum(len(g.indexes) for g in groups)
        precondition: Callable[[], None] | None = None
        tracking_op: tuple[str, list[NewEvent], int] | None = None
        if tracking is not None:
            tracking_op, precondition = _tracking_append(self.store, tracking)
        while True:
            ops: list[tuple[str, list[NewEvent], int]] = []
            for g in groups:
                # (a new originator - the common case of a save - costs an index lookup, no row read)
                last = None if self.store.stream_version(g.stream_id) < 0 else self.store.last_event(g.stream_id)
                expected: int
                if last is None:
                    expected = NO_STREAM
                else:
                    last_version = _version_of(last)
                    if g.versions[0] <= last_version:
                        raise IntegrityError(self._conflict_message(g, last_version))
                    expected = last.version
                ops.append((g.stream_id, g.new_events, expected))
            if tracking_op is not None:
                ops.append(tracking_op)
            if not ops:
                return []
            try:
                results = self.store.append_many(ops, precondition=precondition)
            except WrongExpectedVersionError:
                continue  # another writer appended to one of the streams: check again
            positions = [0] * n
            for g, res in zip(groups, results):
                for i, pos in zip(g.indexes, res.positions):
                    positions[i] = pos
            return positions

    def _conflict_message(self, group: _Group, last_version: int) -> str:
        for v in group.versions:
            if v > last_version:
                break
            if any(_version_of(e) == v for e in self._events_in(group.stream_id, v - 1, v)):
                return f"stored event already recorded: originator {group.stream_id} version {v}"
        return (f"originator {group.stream_id}: version {group.versions[0]} is not above the last "
                f"recorded version {last_version} (tidelog records each originator's versions in "
                f"increasing order)")

    # -- reading one originator's events
    def _events_in(self, stream_id: str, gt: int | None, lte: int | None,
                   desc: bool = False, limit: int | None = None) -> list[RecordedEvent]:
        """The stream's events with gt < originator_version <= lte, read through the
        per-stream index. Versions increase along the stream by at least one per event,
        so the stream-version range is bounded from the first and last events; when
        versions are contiguous (an events stream) the bounds are exact."""
        store = self.store
        if gt is None and lte is None:
            return store.read(stream_id, backwards=desc, limit=limit)
        last = store.last_event(stream_id)
        if last is None:
            return []
        firsts = store.read(stream_id, 0, 0)
        if not firsts:
            return []
        first_v, last_v, last_sv = _version_of(firsts[0]), _version_of(last), last.version
        lo, hi = 0, last_sv
        if gt is not None:
            lo = max(lo, gt - last_v + last_sv + 1)
        if lte is not None:
            hi = min(hi, lte - first_v)
        if lo > hi:
            return []
        exact = last_v - first_v == last_sv  # contiguous versions: stream version = v - first_v
        if desc:
            events = store.read(stream_id, hi, lo, backwards=True, limit=limit if exact else None)
        else:
            events = store.read(stream_id, lo, hi, limit=limit if exact else None)
        if not exact:
            events = [e for e in events
                      if (gt is None or _version_of(e) > gt) and (lte is None or _version_of(e) <= lte)]
            if limit is not None:
                events = events[:limit]
        return events


class TidelogAggregateRecorder(TidelogRecorder, AggregateRecorder):
    """Records and selects an application's stored events (or snapshots). Thread-safe;
    any number of processes may record into the same store."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        self._insert(stored_events, **kwargs)
        return None

    def _insert(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        return self._append(_group_events(stored_events), None)

    def select_events(self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None,
                      desc: bool = False, limit: int | None = None) -> Sequence[StoredEvent]:
        stream_id, _ = _stream_of(originator_id)
        if gt is not None:
            _check_version(gt, "gt")
        if lte is not None:
            _check_version(lte, "lte")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidStoredEventError(f"limit must be an int >= 0 or None, not {limit!r}")
        if limit == 0:
            return []
        return [_to_stored_event(e) for e in self._events_in(stream_id, gt, lte, desc, limit)]


class TidelogApplicationRecorder(TidelogAggregateRecorder, ApplicationRecorder):
    """An aggregate recorder whose events also form the application sequence:
    notification id = store position + 1. Thread-safe."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return [p + 1 for p in self._insert(stored_events, **kwargs)]

    def select_notifications(self, start: int | None, limit: int | None, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True,
                             ) -> Sequence[Notification]:
        if start is None:
            from_position = 0
        else:
            from_position = max(0, start - 1 if inclusive_of_start else start)
        if (limit is not None and limit <= 0) or (stop is not None and stop <= from_position):
            return []
        flt = EventFilter(event_types=tuple(topics)) if topics else None
        events = self.store.read_all(from_position, stop, filter=flt, limit=limit)
        return [_to_notification(e) for e in events]

    def max_notification_id(self) -> int | None:
        end = self.store.end_position
        window = 16
        while end > 0:
            # Tracking rows (system rows, skipped by read_all) may sit at the end.
            start = max(0, end - window)
            last = None
            for last in self.store.read_all(start, end):
                pass
            if last is not None:
                return last.position + 1
            end, window = start, window * 4
        return None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        return TidelogSubscription(self, gt=gt, topics=topics)


class TidelogSubscription(Subscription[TidelogApplicationRecorder]):
    """Notifications with ids above ``gt`` from a store subscription: the recorded ones,
    then new ones as they are recorded (blocking without CPU, from any process).
    Iterated by one thread; ``stop()`` may be called from any thread: it closes the
    store subscription, whose blocked poll then returns (within 0.2 s)."""

    #: The longest single wait for the next event before the stop flag is looked at
    #: again (a safety net: stop() wakes the wait anyway).
    POLL_INTERVAL_S = 1.0

    def __init__(self, recorder: TidelogApplicationRecorder, gt: int | None = None,
                 topics: Sequence[str] = ()):
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        flt = EventFilter(event_types=tuple(topics)) if topics else None
        self._sub = recorder.store.subscribe(gt or 0, filter=flt)  # id > gt <=> position >= gt
        self._closed = False
        self._lock = threading.Lock()  # held while polling or closing

    def __next__(self) -> Notification:
        with self._lock:
            while not self._has_been_stopped and not self._closed:
                event = self._sub.poll(timeout=self.POLL_INTERVAL_S)
                if event is not None and not self._has_been_stopped:
                    return _to_notification(event)
            self._close_locked()
        raise StopIteration

    def stop(self) -> None:
        super().stop()
        self._sub.close()  # a flag: wakes a poll blocked in another thread

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)  # stop()
        finally:
            with self._lock:  # waits for an iterating thread to leave its poll
                self._close_locked()

    def _close_locked(self) -> None:
        if not self._closed:
            self._closed = True
            self._sub.close()

    def __del__(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None and lock.acquire(blocking=False):
            try:
                self._close_locked()
            except Exception:  # noqa: BLE001, S110 - the log may be closed already
                pass
            finally:
                lock.release()


class TidelogTrackingRecorder(TidelogRecorder, TrackingRecorder):
    """Records tracking objects (rows of ``$tracking-<application>`` streams).
    Subclasses (materialised views) record their own state atomically with a tracking
    object through :meth:`record`. Thread-safe."""

    def insert_tracking(self, tracking: Tracking) -> None:
        self._append([], _check_tracking(tracking))

    def record(self, tracking: Tracking, streams: Sequence[tuple[str, Sequence[NewEvent]]] = ()) -> list[int]:
        """Appends ``streams`` ((stream_id, events) pairs, any expected version) and the
        tracking object atomically; IntegrityError (nothing written) when the tracking
        id is not above the last recorded for its application. Returns the events'
        positions."""
        tracking_op, precondition = _tracking_append(self.store, _check_tracking(tracking))
        ops = [(sid, list(evs), ANY) for sid, evs in streams]
        ops.append(tracking_op)
        results = self.store.append_many(ops, precondition=precondition)
        return [p for r in results[:-1] for p in r.positions]

    def max_tracking_id(self, application_name: str) -> int | None:
        return _tracking_id_of(self.store.last_event(_tracking_stream(application_name)))


class TidelogProcessRecorder(TidelogTrackingRecorder, TidelogApplicationRecorder, ProcessRecorder):
    """An application recorder that records a tracking object atomically with the
    events of the same call (both in the one store). Thread-safe."""

    def _insert(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        tracking = kwargs.get("tracking")
        if tracking is not None:
            tracking = _check_tracking(tracking)
        return self._append(_group_events(stored_events), tracking)


# ----------------------------------------------------------------------- factory

class TidelogFactory(InfrastructureFactory[TidelogTrackingRecorder]):
    """Recorders on event stores of the tidelog log in ``TIDELOG_PATH``. ``close()``
    gives back the factory's claim on the log (it closes with the last factory)."""

    TIDELOG_PATH = "TIDELOG_PATH"

    aggregate_recorder_class: type[TidelogAggregateRecorder] = TidelogAggregateRecorder
    application_recorder_class: type[TidelogApplicationRecorder] = TidelogApplicationRecorder
    tracking_recorder_class: type[TidelogTrackingRecorder] = TidelogTrackingRecorder
    process_recorder_class: type[TidelogProcessRecorder] = TidelogProcessRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        path = self.env.get(self.TIDELOG_PATH)
        if not path:
            raise InfrastructureFactoryError(
                "tidelog log folder not found in environment with keys: "
                f"{', '.join(self.env.create_keys(self.TIDELOG_PATH))}")
        self._lease = _LogLease(path)

    def _store(self, suffix: str = "") -> EventStore:
        return self._lease.store(store_name(self.env.name, suffix))

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        suffix = "" if purpose == "events" else "-" + store_name(purpose)
        return self.aggregate_recorder_class(self._store(suffix), self._lease)

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.application_recorder_class
        if not (isinstance(cls, type) and issubclass(cls, TidelogApplicationRecorder)):
            raise InfrastructureFactoryError(f"{topic!r} is not a TidelogApplicationRecorder subclass")
        return cls(self._store(), self._lease)

    def tracking_recorder(self, tracking_recorder_class: type[TidelogTrackingRecorder] | None = None,
                          ) -> TidelogTrackingRecorder:
        cls: Any = tracking_recorder_class
        if cls is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            cls = resolve_topic(topic) if topic else self.tracking_recorder_class
        if not (isinstance(cls, type) and issubclass(cls, TidelogTrackingRecorder)):
            raise InfrastructureFactoryError(f"{cls!r} is not a TidelogTrackingRecorder subclass")
        return cls(self._store("-tracking"), self._lease)

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.process_recorder_class
        if not (isinstance(cls, type) and issubclass(cls, TidelogProcessRecorder)):
            raise InfrastructureFactoryError(f"{topic!r} is not a TidelogProcessRecorder subclass")
        return cls(self._store(), self._lease)

    def close(self) -> None:
        self._lease.release()
        super().close()


Factory = TidelogFactory
