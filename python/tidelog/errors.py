"""The exception hierarchy: everything tidelog raises derives from TidelogError.

Classes also derive from the matching builtin (as pyarrow's do), so code that
catches ``OSError`` or ``ValueError`` keeps working.

Each class names the Kafka error code it corresponds to in ``kafka_error``
(Kafka's ``Errors`` enum names, such as ``"CORRUPT_MESSAGE"``), for code that
speaks Kafka's error vocabulary; ``"UNKNOWN_SERVER_ERROR"`` where Kafka has no
closer one.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar


class TidelogError(Exception):
    """Base class of every tidelog error."""

    #: The Kafka error code name (``org.apache.kafka.common.protocol.Errors``)
    #: this error corresponds to.
    kafka_error: ClassVar[str] = "UNKNOWN_SERVER_ERROR"


class LogLockedError(TidelogError, BlockingIOError):
    """The log folder is open in a mode that excludes this open: an exclusive
    handle has it, or (opening with ``exclusive=True``) other read-write
    handles have it. Also raised by an export whose output folder another
    export run is writing (``tidelog.export``). ``path`` names the folder,
    ``pids`` the holders' processes (``pid`` the first; this process's own pid
    when it holds the log itself), empty when the system does not tell."""

    def __init__(self, message: str, pid: int | None = None, path: str | None = None,
                 pids: list[int] | None = None):
        super().__init__(message)
        self.pid = pid
        self.path = path
        self.pids = pids if pids is not None else ([pid] if pid is not None else [])


class NotALogFolderError(TidelogError, NotADirectoryError):
    """``tidelog.open`` was given a path that is a file, not a folder."""


class InvalidArgumentError(TidelogError, ValueError):
    """An argument or setting tidelog rejected (the message says which and why)."""

    kafka_error = "INVALID_CONFIG"


class TopicExistsError(TidelogError, FileExistsError):
    """create_topic() with a name that is taken."""

    kafka_error = "TOPIC_ALREADY_EXISTS"


class UnknownTopicError(TidelogError, KeyError):
    """A topic that does not exist."""

    kafka_error = "UNKNOWN_TOPIC_OR_PARTITION"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidTopicNameError(TidelogError, ValueError):
    """A topic name outside Kafka's rule: 1-249 of [A-Za-z0-9._-], not '.' or '..'."""

    kafka_error = "INVALID_TOPIC_EXCEPTION"


class SchemaMismatchError(TidelogError, TypeError):
    """Appended data does not match the topic's schema; nothing was written."""

    kafka_error = "INVALID_RECORD"


class InvalidRecordError(TidelogError, ValueError):
    """A record the topic cannot take, such as one without a key in a
    compacted topic (Kafka: "Compacted topic cannot accept message without
    key"); nothing of the append was written."""

    kafka_error = "INVALID_RECORD"


class CorruptionError(TidelogError, OSError):
    """Bytes on disk failed validation (CRC, lengths, magic), or data that was
    written is gone.

    When a read meets damage, ``topic``, ``partition``, ``segment`` (the ``.log``
    file name), ``path`` (the segment file's path), ``position`` (byte position
    of the damage in it) and ``start_offset``/``end_offset`` (the offsets it
    held, end exclusive) say where; they are None for damage found elsewhere
    (for example in a metadata file). Reads with ``on_corrupt="skip"`` step
    over such damage instead.
    """

    kafka_error = "CORRUPT_MESSAGE"
    topic: str | None = None
    partition: int | None = None
    segment: str | None = None
    path: str | None = None
    position: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None


class TimestampWarning(UserWarning):
    """A timestamp written as int nanoseconds lies before 1980 or after 2200: it
    is probably in another unit (``int(time.time() * 1000)`` is milliseconds).
    Pass ``timestamp_ms=`` to ``send()``, a ``datetime``, or a timestamp-typed
    column; silence it with ``warnings.filterwarnings`` if the times are meant."""


class CorruptionWarning(UserWarning):
    """A read with ``on_corrupt="skip"`` stepped over damaged data (counted in
    ``log.stats()["corrupt_ranges_skipped"]`` and ``["corrupt_offsets_skipped"]``)."""


class ReadOnlyError(TidelogError, PermissionError):
    """A write through a log opened with read_only=True."""

    kafka_error = "TOPIC_AUTHORIZATION_FAILED"


class LogClosedError(TidelogError, ValueError):
    """Use of a log, topic or partition after close()."""


class RecordTooLargeError(TidelogError, ValueError):
    """A batch or record over a size limit."""

    kafka_error = "MESSAGE_TOO_LARGE"


class LogNotFoundError(TidelogError, FileNotFoundError):
    """read_only=True on a folder that holds no log, or a file the log needs is missing."""

    kafka_error = "KAFKA_STORAGE_ERROR"


class TidelogIOError(TidelogError, OSError):
    """A system call failed (for example fdatasync); the message says which."""

    kafka_error = "KAFKA_STORAGE_ERROR"


class DeliveryError(TidelogError):
    """A record could not be appended; ``__cause__`` holds why."""


class IntegrityError(TidelogError):
    """An optimistic-concurrency check failed: a write expected a version
    (of an event stream, a tracking position) that another writer already took;
    nothing was written. The name is the one the ``eventsourcing`` library
    uses for the same failure (``eventsourcing.persistence.IntegrityError``)."""


class WrongExpectedVersionError(IntegrityError):
    """An event-store append expected a stream version the stream is not at
    (KurrentDB's WrongExpectedVersion); nothing was written. ``stream_id``,
    ``expected_version`` and ``actual_version`` (-1: the stream does not exist
    or was soft-deleted) say which."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int, message: str | None = None):
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(message or (f"stream {stream_id!r}: expected version {_version_text(expected_version)}, "
                                     f"actual version {_version_text(actual_version)}; nothing was written"))

    def __reduce__(self):
        return (type(self), (self.stream_id, self.expected_version, self.actual_version, str(self)))


def _version_text(version: int) -> str:
    return {-1: "NO_STREAM", -2: "ANY", -4: "STREAM_EXISTS"}.get(version, str(version))


class StreamDeletedError(TidelogError):
    """The event stream was hard-deleted (tombstoned): it can be neither read
    nor written again (KurrentDB's StreamDeleted). ``stream_id`` says which."""

    def __init__(self, stream_id: str):
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} was deleted for good (tombstoned)")

    def __reduce__(self):
        return (type(self), (self.stream_id,))


class SerializationError(InvalidArgumentError):
    """An event (or snapshot) could not be serialized or deserialized; on a
    write nothing was written."""


class InvalidGroupIdError(TidelogError, ValueError):
    """A consumer group name outside the topic-name rule (1-249 of
    [A-Za-z0-9._-], not '.' or '..'), or a group call on a consumer that has
    no group."""

    kafka_error = "INVALID_GROUP_ID"


class UnknownGroupError(TidelogError, KeyError):
    """An admin call named a consumer group that does not exist."""

    kafka_error = "GROUP_ID_NOT_FOUND"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class GroupNotEmptyError(TidelogError):
    """An admin call that needs a group without live members (delete, reset
    offsets) found members; ``members`` lists their member ids."""

    kafka_error = "NON_EMPTY_GROUP"

    def __init__(self, message: str, members: list[str] | None = None):
        super().__init__(message)
        self.members = list(members or [])


class CommitFailedError(TidelogError):
    """A commit was refused because this member no longer owns a partition it
    named (its generation is stale: the group moved the partition, or evicted
    the member after ``max_poll_interval_ms`` without a poll), or never owned
    it. Nothing of the commit was stored. Kafka's ``CommitFailedException``."""

    kafka_error = "ILLEGAL_GENERATION"


class FencedInstanceIdError(TidelogError):
    """Another consumer joined with this consumer's ``group_instance_id``: the
    newer one holds the static membership and this one is out of the group
    (Kafka's ``FencedInstanceIdException``; fatal for this consumer)."""

    kafka_error = "FENCED_INSTANCE_ID"


class InconsistentGroupProtocolError(TidelogError, ValueError):
    """A member asked for a ``partition_assignment_strategy`` that the group's
    live members do not use."""

    kafka_error = "INCONSISTENT_GROUP_PROTOCOL"


#: Native error code name (tidelog._core.ErrorCode) -> the class raised for it.
#: tests/test_errors.py checks that every native code has an entry.
_NATIVE_ERRORS: dict[str, type[TidelogError]] = {
    "io_error": TidelogIOError,
    "corrupt": CorruptionError,
    "not_found": LogNotFoundError,
    "already_exists": TopicExistsError,
    "locked": LogLockedError,
    "read_only": ReadOnlyError,
    "invalid_argument": InvalidArgumentError,
    "closed": LogClosedError,
    "too_large": RecordTooLargeError,
    # A wait its caller interrupted normally raises what the signal handler
    # raised; this is only reached if that exception got lost.
    "interrupted": TidelogError,
    "conflict": IntegrityError,
    "topic_deleted": UnknownTopicError,
}


def _from_native(name: str, message: str, place: dict[str, Any] | None = None) -> TidelogError:
    """The exception for a native error, by its code's name (called through
    src/error_bridge.h for every native error); ``place`` (corruption a read
    met) holds topic, partition, segment (path), position, start_offset and
    end_offset."""
    cls = _NATIVE_ERRORS.get(name, TidelogError)
    if cls is LogLockedError:
        # "pids=<holders, comma-separated>\n<what for people>" (native/log_session.cpp)
        first, _, text = message.partition("\n")
        pids = [int(p) for p in first.removeprefix("pids=").split(",") if p.strip().isdigit()]
        err = LogLockedError(text or message, pids[0] if pids else None)
        err.pids = pids
        return err
    err = cls(message)
    if place is not None and isinstance(err, CorruptionError):
        err.topic = place["topic"]
        err.partition = place["partition"] if place["partition"] >= 0 else None
        err.path = place["segment"]
        err.segment = os.path.basename(place["segment"])
        err.position = place["position"]
        err.start_offset, err.end_offset = place["start_offset"], place["end_offset"]
    return err


class MappingError(InvalidArgumentError):
    """A bridge's mapping (``tidelog.connect``) is unusable: a mapping file
    that is not valid TOML, names an unknown setting, column or source, or
    does not fit the topic's schema. Nothing was read or written."""


class MessageMappingError(InvalidRecordError):
    """A message a bridge received does not fit the topic (not JSON, a value
    of the wrong type, a required field missing, an MQTT topic outside the
    mapping's pattern), raised when the bridge was told to stop at such
    messages (``on_error="stop"``). The message was not acknowledged, so the
    broker delivers it again. ``source`` names where it came from (the MQTT
    topic), ``reason`` says what did not fit."""

    def __init__(self, message: str, source: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.source = source
        self.reason = reason


class BrokerError(TidelogError, ConnectionError):
    """A message broker could not be reached, refused the connection or the
    subscription, or broke the protocol (``tidelog.connect``)."""

    kafka_error = "NETWORK_EXCEPTION"
