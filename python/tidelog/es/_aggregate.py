"""``Aggregate``: a consistency boundary whose state is the fold of its events.

How an aggregate works (the ``eventsourcing`` library's model, with one explicit
mechanism for handlers):

- Methods decorated with ``@applies(EventClass)`` change the state. They take
  the event (and nothing else) and must not fail for an event that was once
  accepted: they run again on every load.
- Command methods check the rules, then call ``self.trigger(event)``, which
  applies the event at once (``version`` goes up by one) and keeps it as
  pending until a ``Repository`` saves it.
- ``collect_events()`` returns the pending events and forgets them (for code that
  appends them itself); ``Repository.save`` uses them without this.

``version`` is the stream version of the last applied event: -1 (``NO_STREAM``)
for a new aggregate, 0 after its first event. A ``Repository`` builds loaded
instances without calling ``__init__`` (as ``pickle`` does): set the state in
the handler of the creation event, not in ``__init__``.

Concurrency: an Aggregate is a plain object, not thread-safe; load one per
unit of work (optimistic concurrency at ``save`` catches concurrent writers).
"""
from __future__ import annotations

import uuid
from typing import Any, ClassVar, Iterable

from ._domain_errors import UnknownEventError
from ._handlers import HandlerTable

NO_STREAM = -1  # tidelog.NO_STREAM: a stream that does not exist yet


class Aggregate:
    """Base class of event-sourced aggregates (see the module docstring).

    Class attributes a subclass may set:

    - ``stream_prefix`` (default ``""``): the stream of aggregate ``id`` is
      ``stream_prefix + id`` (KurrentDB's category convention: ``"account-"``).
    - ``snapshot_version`` (default 1): bump it when the shape of the state
      changes; snapshots taken under another value are ignored (events are
      replayed instead).
    """

    stream_prefix: ClassVar[str] = ""
    snapshot_version: ClassVar[int] = 1
    _handlers: ClassVar[HandlerTable]

    # Attributes kept out of snapshot(): the bookkeeping of this class.
    _BOOKKEEPING: ClassVar[frozenset[str]] = frozenset(
        {"id", "version", "_pending", "_saved_version", "_last_event_id"})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = HandlerTable(cls)

    def __init__(self, id: str | None = None) -> None:
        if id is None:
            id = str(uuid.uuid4())
        if not isinstance(id, str) or not id:
            raise TypeError(f"an aggregate id is a non-empty str, not {id!r}")
        self.id: str = id
        self.version: int = NO_STREAM
        self._pending: list[Any] = []
        self._saved_version: int = NO_STREAM  # the stream version the pending events follow
        self._last_event_id: uuid.UUID | None = None  # the stored id of the event at _saved_version

    # ------------------------------------------------------------- events
    def trigger(self, event: Any) -> None:
        """Applies ``event`` now and keeps it as pending (to be saved)."""
        self._apply(event, None)
        self._pending.append(event)

    def _apply(self, event: Any, type_name: str | None) -> None:
        hit = type(self)._handlers.lookup(event, type_name)
        if hit is None:
            raise UnknownEventError(
                f"{type(self).__name__} has no @applies handler for "
                f"{type_name or type(event).__name__!r} (aggregate {self.id!r})")
        getattr(self, hit[0])(event)
        self.version += 1

    def collect_events(self) -> list[Any]:
        """Returns the pending events and forgets them: the caller now owns
        their appending (``version`` stays; the aggregate counts them as saved)."""
        events, self._pending = self._pending, []
        self._saved_version = self.version
        self._last_event_id = None  # unknown until read back
        return events

    @property
    def pending_events(self) -> tuple[Any, ...]:
        """The events triggered since the last save (read-only view)."""
        return tuple(self._pending)

    @property
    def stream_id(self) -> str:
        return type(self).stream_prefix + self.id

    # ---------------------------------------------------------- snapshots
    def snapshot(self) -> dict[str, Any]:
        """The state to store in a snapshot: by default the instance's
        ``__dict__`` without the bookkeeping (id, version, pending events),
        encoded by the repository's serializer. Override it, with
        ``from_snapshot``, for state the serializer cannot encode."""
        return {k: v for k, v in vars(self).items() if k not in self._BOOKKEEPING}

    @classmethod
    def from_snapshot(cls, id: str, version: int, state: dict[str, Any]) -> "Aggregate":
        """An instance at ``version`` with ``state`` (what ``snapshot()`` returned,
        decoded). The default sets the attributes; ``__init__`` is not called."""
        self = cls._blank(id)
        self.__dict__.update(state)
        self.version = self._saved_version = version
        return self

    @classmethod
    def _blank(cls, id: str) -> "Aggregate":
        """An instance with no events applied, built without the subclass's
        ``__init__`` (which may take command arguments)."""
        self = cls.__new__(cls)
        Aggregate.__init__(self, id)
        return self

    def _replay(self, events: Iterable[tuple[Any, str | None, int, uuid.UUID]]) -> None:
        """Applies stored events: (decoded event, stored type, its version, its event id)."""
        for event, type_name, version, event_id in events:
            self._apply(event, type_name)
            # The stored version, not a count: a stream written again after a
            # soft delete continues its versions past the hidden events.
            self.version = version
            self._last_event_id = event_id
        self._saved_version = self.version

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, version={self.version})"


Aggregate._handlers = HandlerTable(Aggregate)
