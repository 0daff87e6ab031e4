"""tidelog: an embedded, durable, Arrow-native event-streaming log."""
from .errors import (
    CommitFailedError,
    CorruptionError,
    CorruptionWarning,
    FencedInstanceIdError,
    GroupNotEmptyError,
    InconsistentGroupProtocolError,
    IntegrityError,
    InvalidArgumentError,
    InvalidGroupIdError,
    InvalidRecordError,
    InvalidTopicNameError,
    LogClosedError,
    LogLockedError,
    LogNotFoundError,
    NotALogFolderError,
    ReadOnlyError,
    RecordTooLargeError,
    SchemaMismatchError,
    SerializationError,
    StreamDeletedError,
    TidelogError,
    TidelogIOError,
    TimestampWarning,
    TopicExistsError,
    UnknownGroupError,
    UnknownTopicError,
    WrongExpectedVersionError,
)
from ._log import Log, open
from . import connect  # callable: tidelog.connect("kafka://host:9092") (the package is callable)
from ._core import DeliveryFuture, Producer, Record
from ._aio import AsyncConsumer, AsyncProducer
from ._consumer import Consumer
from ._partition import Partition
from ._producer import DeliveryError, RecordMetadata
from ._topic import RECORD_SCHEMA, AppendResult, Scan, Topic, TopicConfig
from .es._events import ANY, NO_STREAM, STREAM_EXISTS
from ._types import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, OffsetAndMetadata, TopicPartition

__all__ = [
    "AsyncConsumer", "AsyncProducer", "Consumer", "DeliveryError", "DeliveryFuture", "Producer", "Record", "RecordMetadata",
    "AppendResult", "CorruptionError", "CorruptionWarning", "IntegrityError", "InvalidArgumentError", "InvalidTopicNameError", "Log", "LogClosedError", "LogLockedError", "LogNotFoundError", "NotALogFolderError",
    "RECORD_SCHEMA", "ReadOnlyError", "RecordTooLargeError", "Scan", "SchemaMismatchError", "TidelogError",
    "TidelogIOError", "TimestampWarning", "Topic", "TopicConfig", "TopicExistsError", "UnknownTopicError", "open",
    "OFFSET_BEGINNING", "OFFSET_END", "OFFSET_INVALID", "OFFSET_STORED", "OffsetAndMetadata", "Partition",
    "TopicPartition", "connect", "CommitFailedError", "FencedInstanceIdError", "GroupNotEmptyError",
    "InconsistentGroupProtocolError", "InvalidGroupIdError", "UnknownGroupError", "InvalidRecordError",
    "ANY", "NO_STREAM", "STREAM_EXISTS", "WrongExpectedVersionError", "StreamDeletedError", "SerializationError",
    "Aggregate", "Repository", "Projection",
]

#: Domain helpers of tidelog.es, importable from the top level too (loaded on first use).
_ES_NAMES = ("Aggregate", "Repository", "Projection")
#: Modules reachable as attributes without their own import (``tidelog.duckdb.register(...)``),
#: loaded on first use: each imports its library, which ``import tidelog`` should not pay for.
_LAZY_MODULES = ("duckdb", "polars")


def __getattr__(name: str):
    if name == "__version__":
        # The version lives in pyproject.toml only; the installed distribution's
        # metadata carries it. Looked up on first use: importlib.metadata costs
        # ~15 ms that `import tidelog` should not pay.
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("tidelog")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            return "0+unknown"
    if name in _ES_NAMES:
        from . import es

        return getattr(es, name)
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tidelog' has no attribute {name!r}")
