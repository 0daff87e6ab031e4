"""The snapshot cache of aggregates: one compacted topic per event store.

Topic ``<store topic>.snapshots`` (``__es.bank.snapshots`` for store "bank"):
one partition, ``cleanup_policy="compact"``, key ``id`` = the aggregate's
stream id, so compaction keeps the latest snapshot of every aggregate and the
topic stays about as large as the number of snapshotted aggregates.

A snapshot is only a cache. A reader uses one only when it is of the expected
aggregate class and ``snapshot_version``, decodes, and names the event id of
the stream's event at its version (so a snapshot of a stream that was deleted
and written again, or of another store's stream, is never used). Anything
else - no topic, damage, a decode error - means "no snapshot" and the caller
replays the events. Snapshots are written with ``durability="interval"``: a
crash can lose the newest ones, which only costs a longer replay.

Finding the latest snapshot of an id: each ``SnapshotStore`` keeps an
in-memory map id -> offset of that id's newest row, built by one scan of the
``id`` column (cheap: the topic is compacted) and extended by scanning only the
rows appended since, before every lookup, so snapshots written by other
processes are seen. Offsets survive compaction (it keeps each key's latest row
at its offset), so a mapped offset stays readable. Cost per lookup: one
end-offset check, a scan of the ids written since the previous lookup, and a
read of the one frame holding the row.

Concurrency: thread-safe (one lock around the map); any number of processes
may write and read the same topic (the last written snapshot of an id wins,
and every snapshot that verifies is correct, so writers need no coordination).
"""
from __future__ import annotations

import dataclasses
import threading
import time
import uuid
import warnings
from typing import Any

import pyarrow as pa

from ..errors import TopicExistsError
from ._domain_errors import SnapshotWarning

SNAPSHOT_SCHEMA = pa.schema([
    # Every column but the key and the timestamp is nullable so that
    # topic.tombstone() can delete an id's snapshots.
    pa.field("id", pa.string(), nullable=False),       # the aggregate's stream id (the key)
    pa.field("version", pa.int64()),                   # stream version of the last event in the state
    pa.field("event_id", pa.binary(16)),               # that event's id: verifies the snapshot
    pa.field("type", pa.string()),                     # the aggregate class (its __qualname__)
    pa.field("class_version", pa.int32()),             # the class's snapshot_version when taken
    pa.field("state_type", pa.string()),               # the serializer's type name of the state
    pa.field("state", pa.binary()),                    # the serialized state
    pa.field("timestamp", pa.timestamp("ns", tz="UTC"), nullable=False),
])

SEGMENT_BYTES = 16 << 20  # small segments: only sealed ones are compacted


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One stored snapshot row."""

    id: str
    version: int
    event_id: uuid.UUID
    type: str
    class_version: int
    state_type: str
    state: bytes
    timestamp_ns: int


def snapshot_topic_name(store: Any) -> str:
    return f"{store.topic.name}.snapshots"


def _log_of(store: Any) -> Any:
    return store.log


class SnapshotStore:
    """Reads and writes the snapshots of one event store (see the module docstring)."""

    def __init__(self, store: Any) -> None:
        self._log = _log_of(store)
        self._name = snapshot_topic_name(store)
        self._lock = threading.Lock()
        self._topic: Any = None
        self._offsets: dict[str, int] = {}
        self._scanned_end = 0

    # ------------------------------------------------------------ topic
    def _open(self, create: bool) -> Any:
        if self._topic is not None:
            return self._topic
        if self._name in self._log.topics():
            self._topic = self._log.topic(self._name)
        elif create:
            try:
                self._topic = self._log.create_topic(
                    self._name, schema=SNAPSHOT_SCHEMA, partitions=1, key="id", timestamp="timestamp",
                    cleanup_policy="compact", durability="interval", segment_bytes=SEGMENT_BYTES)
            except TopicExistsError:  # another process created it meanwhile
                self._topic = self._log.topic(self._name)
        return self._topic

    def _catch_up(self, topic: Any) -> None:
        """Extends the id -> offset map with the rows written since the last call."""
        end = topic.end_offsets()[0]
        if end <= self._scanned_end:
            return
        start = max(self._scanned_end, topic.start_offsets()[0])
        table = topic.read(start, end, columns=["id"], with_offsets=True)
        offsets = self._offsets
        for key, offset in zip(table.column("id").to_pylist(), table.column("_offset").to_pylist()):
            offsets[key] = offset  # rows come in offset order: the last one wins
        self._scanned_end = end

    # ------------------------------------------------------------ API
    def latest(self, stream_id: str) -> Snapshot | None:
        """The newest snapshot of ``stream_id``, or None (no topic, none stored,
        or unreadable: a warning says why)."""
        try:
            with self._lock:
                topic = self._open(create=False)
                if topic is None:
                    return None
                self._catch_up(topic)
                offset = self._offsets.get(stream_id)
            if offset is None:
                return None
            rows = topic.read(offset, offset + 1).to_pylist()
            if not rows or rows[0]["id"] != stream_id or rows[0]["state"] is None:
                return None  # a tombstone, or a row the map no longer matches
            row = rows[0]
            ts = row["timestamp"]
            return Snapshot(row["id"], int(row["version"]), uuid.UUID(bytes=row["event_id"]), row["type"],
                            int(row["class_version"]), row["state_type"], row["state"],
                            int(ts.timestamp() * 1_000_000_000) if ts is not None else 0)
        except Exception as e:  # a cache: any failure reads as a miss
            warnings.warn(f"snapshot of {stream_id!r} in topic {self._name!r} not used: {e!r}", SnapshotWarning,
                          stacklevel=3)
            return None

    def put(self, stream_id: str, version: int, event_id: uuid.UUID, type_name: str, class_version: int,
            state_type: str, state: bytes) -> None:
        """Stores a snapshot (not waiting for durability; a lost one is replayed)."""
        with self._lock:
            topic = self._open(create=True)
        batch = pa.record_batch([
            pa.array([stream_id], pa.string()), pa.array([version], pa.int64()),
            pa.array([event_id.bytes], pa.binary(16)), pa.array([type_name], pa.string()),
            pa.array([class_version], pa.int32()), pa.array([state_type], pa.string()),
            pa.array([state], pa.binary()), pa.array([time.time_ns()], pa.timestamp("ns", tz="UTC")),
        ], schema=SNAPSHOT_SCHEMA)
        result = topic.append(batch, durable=False)
        first, _last = result.offsets[0]
        with self._lock:
            # Only when the map is contiguous up to here, or a catch-up would skip rows.
            if first == self._scanned_end:
                self._offsets[stream_id] = first
                self._scanned_end = first + 1

    def delete(self, stream_id: str) -> None:
        """Writes a tombstone for ``stream_id`` (its snapshots go at the next compaction)."""
        with self._lock:
            topic = self._open(create=False)
        if topic is not None:
            topic.tombstone([stream_id])
