"""tidelog: an embedded, durable, Arrow-native event-streaming log."""
from .errors import (
    CorruptionError,
    CorruptionWarning,
    IntegrityError,
    InvalidArgumentError,
    InvalidTopicNameError,
    LogClosedError,
    LogLockedError,
    LogNotFoundError,
    NotALogFolderError,
    ReadOnlyError,
    RecordTooLargeError,
    SchemaMismatchError,
    TidelogError,
    TidelogIOError,
    TimestampWarning,
    TopicExistsError,
    UnknownTopicError,
)
from ._log import Log, open
from ._core import DeliveryFuture, Producer, Record
from ._aio import AsyncConsumer, AsyncProducer
from ._consumer import Consumer
from ._producer import DeliveryError, RecordMetadata
from ._topic import RECORD_SCHEMA, AppendResult, Scan, Topic, TopicConfig

__version__ = "0.1.0"

__all__ = [
    "AsyncConsumer", "AsyncProducer", "Consumer", "DeliveryError", "DeliveryFuture", "Producer", "Record", "RecordMetadata",
    "AppendResult", "CorruptionError", "CorruptionWarning", "IntegrityError", "InvalidArgumentError", "InvalidTopicNameError", "Log", "LogClosedError", "LogLockedError", "LogNotFoundError", "NotALogFolderError",
    "RECORD_SCHEMA", "ReadOnlyError", "RecordTooLargeError", "Scan", "SchemaMismatchError", "TidelogError",
    "TidelogIOError", "TimestampWarning", "Topic", "TopicConfig", "TopicExistsError", "UnknownTopicError", "open",
]
