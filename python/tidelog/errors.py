"""The exception hierarchy: everything tidelog raises derives from TidelogError.

Classes also derive from the matching builtin (as pyarrow's do), so code that
catches ``OSError`` or ``ValueError`` keeps working.
"""
from __future__ import annotations

import re


class TidelogError(Exception):
    """Base class of every tidelog error."""


class LogLockedError(TidelogError, BlockingIOError):
    """Another writer holds the lock of this log folder: ``path`` names the
    folder, ``pid`` the holder (this process's own pid when the same process
    opened the log twice)."""

    def __init__(self, message: str, pid: int | None = None, path: str | None = None):
        super().__init__(message)
        self.pid = pid
        self.path = path


class NotALogFolderError(TidelogError, NotADirectoryError):
    """``tidelog.open`` was given a path that is a file, not a folder."""


class InvalidArgumentError(TidelogError, ValueError):
    """An argument tidelog rejected (the message says which and why)."""


class TopicExistsError(TidelogError, FileExistsError):
    """create_topic() with a name that is taken."""


class UnknownTopicError(TidelogError, KeyError):
    """A topic that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidTopicNameError(TidelogError, ValueError):
    """A topic name outside Kafka's rule: 1-249 of [A-Za-z0-9._-], not '.' or '..'."""


class SchemaMismatchError(TidelogError, TypeError):
    """Appended data does not match the topic's schema; nothing was written."""


class CorruptionError(TidelogError, OSError):
    """Bytes on disk failed validation (CRC, lengths, magic), or data that was
    written is gone.

    When a read meets damage, ``topic``, ``partition``, ``segment`` (the ``.log``
    file name), ``position`` (byte position of the damage in it) and
    ``start_offset``/``end_offset`` (the offsets it held, end exclusive) say
    where; they are None for damage found elsewhere (for example in a metadata
    file). Reads with ``on_corrupt="skip"`` step over such damage instead.
    """

    topic: str | None = None
    partition: int | None = None
    segment: str | None = None
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


class LogClosedError(TidelogError, ValueError):
    """Use of a log, topic or partition after close()."""


class RecordTooLargeError(TidelogError, ValueError):
    """A batch or record over a size limit."""


class LogNotFoundError(TidelogError, FileNotFoundError):
    """read_only=True on a folder that holds no log, or a file the log needs is missing."""


class TidelogIOError(TidelogError, OSError):
    """A system call failed (for example fdatasync); the message says which."""


class DeliveryError(TidelogError):
    """A record could not be appended; ``__cause__`` holds why."""


def _from_native(code: int, message: str) -> TidelogError:
    """Called by the native error bridge (src/error_bridge.h) for every native error."""
    if code == 5:
        pid = None
        text = message.strip()
        if text.isdigit():
            pid = int(text)
        return LogLockedError(
            f"the log is locked by another writer (pid {pid if pid is not None else 'unknown'})", pid
        )
    cls = {
        1: TidelogIOError,
        2: CorruptionError,
        3: LogNotFoundError,
        4: TopicExistsError,
        6: ReadOnlyError,
        7: ValueError,
        8: LogClosedError,
        9: RecordTooLargeError,
    }.get(code, TidelogError)
    if cls is ValueError:
        return InvalidArgumentError(message)
    err = cls(message)
    if cls is CorruptionError:
        where = _FRAME_PLACE.match(message)
        if where:
            err.topic, err.segment = where["topic"], where["segment"]
            err.partition, err.position = int(where["partition"]), int(where["position"])
            if where["first"] is not None:
                err.start_offset, err.end_offset = int(where["first"]), int(where["last"]) + 1
    return err


# native/partition.cpp: corrupt_frame() writes this prefix.
_FRAME_PLACE = re.compile(
    r"topic '(?P<topic>[^']*)' partition (?P<partition>\d+) segment (?P<segment>\S+) position (?P<position>\d+)"
    r"(?: \(offsets (?P<first>-?\d+)\.\.(?P<last>-?\d+)\))?"
)


_InvalidArgument = InvalidArgumentError  # the native core's errc::invalid_argument
