"""tidelog.es: event sourcing and CQRS on a tidelog log.

Contract
--------
- ``log.event_store(name)`` opens (creating when missing) an event store kept
  on the log: the topic ``__es.<name>`` (one partition, the columnar event
  schema ``EVENT_SCHEMA``) and the folder ``<log>/stores/<name>/`` (the store
  lock and the stream-index snapshot).
- ``append(stream_id, events, expected_version)``: the events of one call are
  one frame - all or none visible after any crash - and consecutive in their
  stream. The version check is atomic with the write across threads and
  processes. A conflict raises ``WrongExpectedVersionError`` (with the actual
  version) and writes nothing; the same event ids at the same expected
  version return the first result (idempotent retries). ``append_many`` does
  the same for several streams at once.
- Versions count from 0 in each stream; positions are global (the topic's
  offsets) and never reused; they have gaps only where deletion markers sit.
- Reading one stream reads only its rows: a native per-stream index, derived
  from the log (rebuilt from it when its snapshot is missing, stale or bad).
- ``read_all`` and ``subscribe`` give events in global order; a subscription
  catches up, then follows appends from any process, blocking without CPU;
  ``subscribe(group=...)`` is a competing subscription through a consumer group.
- Visibility follows the topic's durability: on the default "fsync" store an
  event is readable once durable, and ``append`` returns once it is.
- Domain helpers (aggregates, repositories, projections) sit on this API only.
"""
from ._domain import *  # noqa: F401,F403
from ._domain import __all__ as _domain_all
from ._events import (ANY, EVENT_SCHEMA, NO_STREAM, STREAM_EXISTS, EventFilter, ExpectedVersion, NewEvent,
                      RecordedEvent, WriteResult)
from ._serializer import JsonSerializer
from ._store import EventStore
from ._subscription import GroupSubscription, Subscription
from ..errors import SerializationError, StreamDeletedError, WrongExpectedVersionError

__all__ = [
    "ANY", "EVENT_SCHEMA", "NO_STREAM", "STREAM_EXISTS", "EventFilter", "EventStore", "ExpectedVersion",
    "GroupSubscription", "JsonSerializer", "NewEvent", "RecordedEvent", "SerializationError", "StreamDeletedError",
    "Subscription", "WrongExpectedVersionError", "WriteResult", *_domain_all,
]
