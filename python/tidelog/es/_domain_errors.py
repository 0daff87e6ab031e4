"""Errors of the event-sourcing domain helpers. All derive from
``tidelog.TidelogError`` (and the matching builtin, as tidelog's others do)."""
from __future__ import annotations

from ..errors import TidelogError


class AggregateNotFoundError(TidelogError, KeyError):
    """``Repository.get`` of an aggregate whose stream has no events (absent,
    deleted, or no event up to the requested version). ``aggregate_id`` and
    ``stream_id`` say which."""

    def __init__(self, message: str, aggregate_id: str | None = None, stream_id: str | None = None):
        super().__init__(message)
        self.aggregate_id = aggregate_id
        self.stream_id = stream_id

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownEventError(TidelogError, TypeError):
    """An aggregate was given an event it has no ``@applies`` handler for."""


class UpcastError(TidelogError, ValueError):
    """An upcaster failed or returned something that is not a dict, or a stored
    event's schema version is newer than its class knows. ``stream_id``,
    ``version`` and ``type`` name the event when known."""

    stream_id: str | None = None
    version: int | None = None
    type: str | None = None


class SnapshotWarning(UserWarning):
    """A snapshot could not be taken or used (the state did not serialize, or a
    stored one did not decode): the repository went on without it, which is
    always correct (a snapshot is only a cache), just slower."""


class ProjectionError(TidelogError, RuntimeError):
    """A projection runner was misused: a handler committed or rolled back the
    runner's transaction, the runner was started twice, or its thread stopped
    on an error (``__cause__`` is that error)."""
