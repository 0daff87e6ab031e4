"""The event store's values: expected versions, new and recorded events, write
results, filters, and the Arrow schema events are stored in."""
from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from ..errors import InvalidArgumentError


class ExpectedVersion(enum.IntEnum):
    """KurrentDB's special expected versions (an int >= 0 names an exact version)."""

    #: No check: append whatever the stream's state (not to a tombstoned stream).
    ANY = -2
    #: The stream must not exist (or must have been soft-deleted).
    NO_STREAM = -1
    #: The stream must exist and hold events.
    STREAM_EXISTS = -4


ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM
STREAM_EXISTS = ExpectedVersion.STREAM_EXISTS


def check_expected_version(value: Any) -> int:
    """An int >= 0 or one of the ExpectedVersion values; anything else is a typed error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(
            f"expected_version must be an int >= 0, tidelog.ANY, tidelog.NO_STREAM or tidelog.STREAM_EXISTS, "
            f"not {value!r}")
    if value >= 0 or value in (-1, -2, -4):
        return int(value)
    raise InvalidArgumentError(
        f"expected_version {value} is not a version: use an int >= 0, tidelog.ANY (-2), tidelog.NO_STREAM (-1) "
        f"or tidelog.STREAM_EXISTS (-4)")


#: The store topic's schema: one row per event (and per deletion marker).
EVENT_SCHEMA = pa.schema([
    pa.field("stream_id", pa.string(), nullable=False),
    pa.field("version", pa.int64(), nullable=False),
    pa.field("type", pa.string(), nullable=False),
    pa.field("event_id", pa.binary(16), nullable=False),
    pa.field("timestamp", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("data", pa.binary(), nullable=False),
    pa.field("metadata", pa.binary()),
])

#: Marker rows: their stream_id names the stream deleted; their version column
#: holds the first version that stays visible (soft) or the last version (hard).
SOFT_DELETE_TYPE = "$deleted"
TOMBSTONE_TYPE = "$tombstone"
MARKER_TYPES = frozenset((SOFT_DELETE_TYPE, TOMBSTONE_TYPE))


def as_event_id(value: Any) -> uuid.UUID:
    if value is None:
        return uuid.uuid4()
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise InvalidArgumentError(f"event_id {value!r} is not a UUID") from None
    if isinstance(value, (bytes, bytearray)) and len(value) == 16:
        return uuid.UUID(bytes=bytes(value))
    raise InvalidArgumentError(f"event_id must be a uuid.UUID or its string, not {type(value).__name__}")


class NewEvent:
    """An event to append: ``type`` (a name), ``data`` (bytes), ``metadata``
    (bytes or None) and ``event_id`` (a UUID; generated when None - pass your
    own to make retries idempotent)."""

    __slots__ = ("type", "data", "metadata", "event_id")

    def __init__(self, type: str, data: bytes | bytearray | memoryview = b"", metadata: bytes | None = None,
                 event_id: uuid.UUID | str | None = None):
        if not isinstance(type, str) or not type:
            raise InvalidArgumentError(f"an event type is a non-empty str, not {type!r}")
        if type in MARKER_TYPES:
            raise InvalidArgumentError(f"event type {type!r} is reserved for the store's deletion markers "
                                       f"(use delete_stream)")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(f"event data is bytes, not {data.__class__.__name__} (append domain objects "
                                       f"directly to have the store's serializer encode them)")
        if metadata is not None and not isinstance(metadata, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(f"event metadata is bytes or None, not {metadata.__class__.__name__}")
        self.type = type
        self.data = bytes(data)
        self.metadata = None if metadata is None else bytes(metadata)
        self.event_id = as_event_id(event_id)

    def __repr__(self) -> str:
        return f"NewEvent(type={self.type!r}, data={self.data!r}, metadata={self.metadata!r}, event_id={self.event_id!s})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NewEvent):
            return NotImplemented
        return (self.type, self.data, self.metadata, self.event_id) == (other.type, other.data, other.metadata,
                                                                        other.event_id)

    __hash__ = None  # type: ignore[assignment]


class RecordedEvent:
    """An event as stored: ``stream_id``, ``version`` (in its stream, from 0),
    ``position`` (in the store, global order), ``type``, ``event_id`` (UUID),
    ``timestamp`` (int ns since the epoch), ``data`` (bytes), ``metadata``
    (bytes or None). ``decode()`` gives the domain object."""

    __slots__ = ("stream_id", "version", "position", "type", "_event_id", "timestamp", "data", "metadata",
                 "_serializer")

    def __init__(self, stream_id: str, version: int, position: int, type: str, event_id: uuid.UUID | bytes,
                 timestamp: int, data: bytes, metadata: bytes | None, serializer: Any = None):
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.type = type
        self._event_id = event_id
        self.timestamp = timestamp
        self.data = data
        self.metadata = metadata
        self._serializer = serializer

    @property
    def event_id(self) -> uuid.UUID:
        eid = self._event_id
        if not isinstance(eid, uuid.UUID):
            eid = self._event_id = uuid.UUID(bytes=eid)
        return eid

    def decode(self) -> Any:
        """The event's domain object, by the store's serializer (a dict when its
        type is not registered there)."""
        if self._serializer is None:
            raise InvalidArgumentError("this event was not read from a store: it has no serializer")
        return self._serializer.deserialize(self.type, self.data)

    def __repr__(self) -> str:
        return (f"RecordedEvent(stream_id={self.stream_id!r}, version={self.version}, position={self.position}, "
                f"type={self.type!r}, event_id={self.event_id!s}, timestamp={self.timestamp}, data={self.data!r}, "
                f"metadata={self.metadata!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return (self.stream_id, self.version, self.position, self.type, self.event_id, self.timestamp, self.data,
                self.metadata) == (other.stream_id, other.version, other.position, other.type, other.event_id,
                                   other.timestamp, other.data, other.metadata)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self):
        return (RecordedEvent, (self.stream_id, self.version, self.position, self.type, self.event_id,
                                self.timestamp, self.data, self.metadata))


@dataclass(frozen=True)
class WriteResult:
    """What an append did: the stream's ``version`` after it (its last event's)
    and the events' global ``positions``."""

    version: int
    positions: list[int]

    @property
    def position(self) -> int:
        """The last event's position (KurrentDB's log position)."""
        return self.positions[-1]


@dataclass(frozen=True)
class EventFilter:
    """Which events ``read_all`` and ``subscribe`` pass: streams whose id
    starts with one of ``stream_prefixes`` (none: every stream) and whose type
    is one of ``event_types`` (none: every type). System rows (stream ids
    starting with '$') only with ``include_system``."""

    stream_prefixes: Sequence[str] = ()
    event_types: Sequence[str] = ()
    include_system: bool = False

    def __post_init__(self) -> None:
        for name in ("stream_prefixes", "event_types"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            if not all(isinstance(v, str) for v in value):
                raise InvalidArgumentError(f"EventFilter.{name} holds strings")
            object.__setattr__(self, name, tuple(value))

    def matches(self, stream_id: str, type: str) -> bool:
        if not self.include_system and stream_id.startswith("$"):
            return False
        if self.stream_prefixes and not stream_id.startswith(tuple(self.stream_prefixes)):
            return False
        return not self.event_types or type in self.event_types


ALL_EVENTS = EventFilter()
