"""``Repository``: loads and saves aggregates of one class through an event store.

- ``get(id, version=None)``: the newest usable snapshot (see ``_snapshots``),
  then the events after it (``store.read(stream_id, from_version=...)``),
  upcast and decoded by the serializer, applied in order.
- ``save(aggregate)``: appends the pending events with ``expected_version`` =
  the version the aggregate was loaded (or last saved) at, so a concurrent
  writer makes it fail with ``WrongExpectedVersionError`` and nothing is
  written; then, when the save crossed a multiple of ``snapshot_every``
  events, writes a snapshot (best effort: a failure is a ``SnapshotWarning``).
- Event metadata written by ``save`` is a JSON object: the caller's
  ``metadata=`` keys, plus ``"schema_version"`` for events whose class sets
  ``__schema_version__`` > 1 (see ``_upcasting``).

Concurrency: a Repository is thread-safe (it keeps no per-aggregate state;
the snapshot map has its own lock). Any number of processes may use
repositories over the same store: the store's version check makes exactly one
writer win per expected version.
"""
from __future__ import annotations

import json
import uuid
import warnings
from typing import Any, Generic, Iterable, Mapping, TypeVar

from ._aggregate import NO_STREAM, Aggregate
from ._domain_errors import AggregateNotFoundError, SnapshotWarning, UpcastError
from ._handlers import register_classes
from ._snapshots import Snapshot, SnapshotStore
from ._upcasting import SCHEMA_VERSION_KEY, Upcasters, current_schema_version

A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    """Loads and saves ``aggregate_class`` aggregates in ``store``.

    ``snapshot_every``: take a snapshot each time an aggregate's event count
    crosses a multiple of it (None: no snapshots are written or read).
    ``upcasters``: an ``Upcasters`` (or a mapping (type, from_version) -> function).
    ``serializer``: decodes and encodes events and snapshot state (default:
    the store's). The event classes the aggregate has ``@applies`` handlers
    for are registered with it, so stored events decode to them.
    """

    def __init__(self, store: Any, aggregate_class: type[A], *, snapshot_every: int | None = None,
                 upcasters: "Upcasters | Mapping[tuple[str, int], Any] | None" = None,
                 serializer: Any = None) -> None:
        if not (isinstance(aggregate_class, type) and issubclass(aggregate_class, Aggregate)):
            raise TypeError(f"aggregate_class must be an Aggregate subclass, not {aggregate_class!r}")
        if snapshot_every is not None and (not isinstance(snapshot_every, int) or isinstance(snapshot_every, bool)
                                           or snapshot_every < 1):
            raise ValueError(f"snapshot_every is an int >= 1 or None, not {snapshot_every!r}")
        self.store = store
        self.aggregate_class = aggregate_class
        self.snapshot_every = snapshot_every
        self.upcasters = upcasters if isinstance(upcasters, Upcasters) else Upcasters(upcasters)
        self.serializer = serializer if serializer is not None else store.serializer
        register_classes(self.serializer, aggregate_class._handlers.classes())
        self._snapshots = SnapshotStore(store) if snapshot_every is not None else None

    def stream_id(self, id: str) -> str:
        """The stream that holds aggregate ``id``."""
        return self.aggregate_class.stream_prefix + id

    # ------------------------------------------------------------ reading
    def get(self, id: str, version: int | None = None) -> A:
        """The aggregate ``id`` with its events up to ``version`` (inclusive;
        default: all). ``AggregateNotFoundError`` when the stream has none."""
        if not isinstance(id, str) or not id:
            raise TypeError(f"an aggregate id is a non-empty str, not {id!r}")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
            raise ValueError(f"version is an int >= 0 or None, not {version!r}")
        stream_id = self.stream_id(id)
        aggregate: Aggregate | None
        aggregate, records = self._from_snapshot(id, stream_id, version)
        if aggregate is None:
            records = self.store.read(stream_id, 0, version)
            if not records:
                raise AggregateNotFoundError(
                    f"no aggregate {id!r} ({self.aggregate_class.__name__}, stream {stream_id!r})"
                    + (f" at version {version}" if version is not None else ""), id, stream_id)
            aggregate = self.aggregate_class._blank(id)
        aggregate._replay(self._decoded(records))
        return aggregate  # type: ignore[return-value]

    def exists(self, id: str) -> bool:
        """Whether aggregate ``id`` has a (not deleted) stream."""
        return self.store.stream_version(self.stream_id(id)) != NO_STREAM

    def _decoded(self, records: Iterable[Any]) -> Iterable[tuple[Any, str | None, int, uuid.UUID]]:
        for record in records:
            yield (*self.decode(record), record.version, record.event_id)

    def decode(self, record: Any) -> tuple[Any, str]:
        """A stored event as (domain object, type name after upcasting)."""
        type_name, data, schema_version = self.upcasters.upcast_stored(record.type, record.data, record.metadata)
        event = self.serializer.deserialize(type_name, data)
        known = getattr(type(event), "__schema_version__", None)
        if isinstance(known, int) and schema_version > known:
            err = UpcastError(f"event {record.stream_id!r}@{record.version} of type {type_name!r} has schema version "
                              f"{schema_version}, newer than {type(event).__name__}'s {known}")
            err.stream_id, err.version, err.type = record.stream_id, record.version, type_name
            raise err
        return event, type_name

    def _from_snapshot(self, id: str, stream_id: str, version: int | None) -> tuple[Any, list[Any]]:
        """(the aggregate from its latest usable snapshot, the stored events
        after it up to ``version``), or (None, []) when there is none."""
        if self._snapshots is None:
            return None, []
        snap = self._snapshots.latest(stream_id)
        cls = self.aggregate_class
        if (snap is None or snap.type != cls.__qualname__ or snap.class_version != cls.snapshot_version
                or (version is not None and snap.version > version)):
            return None, []
        # One read from the snapshot's own version: the stream must still hold
        # the event the snapshot ends with (same id), and the rest follows it.
        records = self.store.read(stream_id, snap.version, version)
        if not records or records[0].version != snap.version or records[0].event_id != snap.event_id:
            return None, []
        try:
            state = _decode_state(self.serializer, snap.state_type, snap.state)
            aggregate = cls.from_snapshot(id, snap.version, state)
            aggregate._last_event_id = snap.event_id
            return aggregate, records[1:]
        except Exception as e:
            warnings.warn(f"snapshot of {stream_id!r} at version {snap.version} not used: {e!r}", SnapshotWarning,
                          stacklevel=3)
            return None, []

    # ------------------------------------------------------------ writing
    def save(self, aggregate: A, *, metadata: Mapping[str, Any] | None = None) -> Any:
        """Appends ``aggregate``'s pending events (one atomic append). Returns
        the store's ``WriteResult``, or None when nothing was pending.
        ``WrongExpectedVersionError`` when the stream moved since the aggregate
        was loaded; ``SerializationError`` when an event does not serialize
        (nothing written either way; the aggregate keeps its pending events)."""
        results = self.save_all([aggregate], metadata=metadata)
        return results[0]

    def save_all(self, aggregates: Iterable[A], *, metadata: Mapping[str, Any] | None = None) -> list[Any]:
        """Saves several aggregates in one atomic append across their streams
        (``store.append_many``): all or none. Returns a WriteResult (or None)
        per aggregate."""
        aggregates = list(aggregates)
        for agg in aggregates:
            if not isinstance(agg, self.aggregate_class):
                raise TypeError(f"this repository saves {self.aggregate_class.__name__}, not {type(agg).__name__}")
        if len({id(a) for a in aggregates}) != len(aggregates) or \
                len({a.stream_id for a in aggregates}) != len(aggregates):
            raise ValueError("save_all takes each aggregate (and stream) once")
        batch = [(agg, self._new_events(agg, metadata)) for agg in aggregates if agg._pending]
        results: dict[int, Any] = {}
        if len(batch) == 1:
            agg, events = batch[0]
            results[id(agg)] = self.store.append(agg.stream_id, events, expected_version=agg._saved_version)
        elif batch:
            written = self.store.append_many(
                [(agg.stream_id, events, agg._saved_version) for agg, events in batch])
            results.update({id(agg): res for (agg, _), res in zip(batch, written)})
        for agg, events in batch:
            before = agg._saved_version
            agg._pending = []
            agg.version = agg._saved_version = results[id(agg)].version
            agg._last_event_id = uuid.UUID(str(events[-1].event_id))
            self._maybe_snapshot(agg, before)
        return [results.get(id(agg)) for agg in aggregates]

    def _new_events(self, aggregate: A, metadata: Mapping[str, Any] | None) -> list[Any]:
        """The pending events as NewEvents, with ids chosen here (the snapshot
        of the saved aggregate names the last one without reading it back)."""
        from . import NewEvent  # the store's type (imported late: tidelog.es imports this module)

        out = []
        for event in aggregate._pending:
            type_name, data = self.serializer.serialize(event)
            meta = dict(metadata) if metadata else {}
            schema_version = current_schema_version(type(event))
            if schema_version > 1:
                meta[SCHEMA_VERSION_KEY] = schema_version
            meta_bytes = json.dumps(meta, separators=(",", ":")).encode() if meta else None
            out.append(NewEvent(type_name, data, meta_bytes, uuid.uuid4()))
        return out

    # ------------------------------------------------------------ snapshots
    def _maybe_snapshot(self, aggregate: A, before: int) -> None:
        every = self.snapshot_every
        if every is None or (aggregate.version + 1) // every <= (before + 1) // every:
            return
        self.take_snapshot(aggregate)

    def take_snapshot(self, aggregate: A) -> bool:
        """Stores a snapshot of a saved aggregate now (whatever
        ``snapshot_every``). False, with a ``SnapshotWarning``, when it could
        not (pending events, state that does not serialize, a write error)."""
        if aggregate._pending or aggregate.version < 0:
            warnings.warn(f"{aggregate!r}: only a saved aggregate with events is snapshotted", SnapshotWarning,
                          stacklevel=2)
            return False
        try:
            if self._snapshots is None:
                self._snapshots = SnapshotStore(self.store)
            event_id = aggregate._last_event_id
            if event_id is None:  # after collect_events(): read it back
                head = self.store.read(aggregate.stream_id, aggregate.version, aggregate.version)
                if not head:
                    raise LookupError(f"the stream has no event at version {aggregate.version}")
                event_id = head[0].event_id
            state_type, state = _encode_state(self.serializer, type(aggregate), aggregate.snapshot())
            cls = type(aggregate)
            self._snapshots.put(aggregate.stream_id, aggregate.version, event_id, cls.__qualname__,
                                cls.snapshot_version, state_type, state)
            return True
        except Exception as e:
            warnings.warn(f"no snapshot of {aggregate!r}: {e!r}", SnapshotWarning, stacklevel=2)
            return False

    def latest_snapshot(self, id: str) -> Snapshot | None:
        """The stored snapshot row of aggregate ``id`` (for inspection), or None."""
        return None if self._snapshots is None else self._snapshots.latest(self.stream_id(id))


def _encode_state(serializer: Any, cls: type, state: Any) -> tuple[str, bytes]:
    """A snapshot's state through the serializer. A dict (the default
    ``snapshot()``) goes in an envelope ``{"state": ...}`` typed
    ``$snapshot:<class>`` (a name no event class has), since a serializer
    takes dicts as events with a ``type`` entry; any other object is
    serialized as it is."""
    if isinstance(state, dict):
        return serializer.serialize({"type": f"$snapshot:{cls.__qualname__}", "state": state})
    return serializer.serialize(state)


def _decode_state(serializer: Any, state_type: str, data: bytes) -> Any:
    decoded = serializer.deserialize(state_type, data)
    if state_type.startswith("$snapshot:") and isinstance(decoded, dict) and set(decoded) == {"state"}:
        return decoded["state"]
    return decoded
