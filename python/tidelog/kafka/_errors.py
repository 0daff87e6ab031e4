"""librdkafka's error codes mapped onto tidelog's error types."""
from __future__ import annotations

from typing import Any

from .. import errors

#: KafkaError code name -> the tidelog error raised for it.
_BY_NAME: dict[str, type[errors.TidelogError]] = {
    "UNKNOWN_TOPIC_OR_PART": errors.UnknownTopicError,
    "_UNKNOWN_TOPIC": errors.UnknownTopicError,
    "_UNKNOWN_PARTITION": errors.UnknownTopicError,
    "TOPIC_ALREADY_EXISTS": errors.TopicExistsError,
    "INVALID_TOPIC_EXCEPTION": errors.InvalidTopicNameError,
    "MSG_SIZE_TOO_LARGE": errors.RecordTooLargeError,
    "_MSG_SIZE_TOO_LARGE": errors.RecordTooLargeError,
    "RECORD_LIST_TOO_LARGE": errors.RecordTooLargeError,
    "INVALID_RECORD": errors.InvalidRecordError,
    "ILLEGAL_GENERATION": errors.CommitFailedError,
    "UNKNOWN_MEMBER_ID": errors.CommitFailedError,
    "REBALANCE_IN_PROGRESS": errors.CommitFailedError,
    "_ASSIGNMENT_LOST": errors.CommitFailedError,
    "STALE_MEMBER_EPOCH": errors.CommitFailedError,
    "FENCED_INSTANCE_ID": errors.FencedInstanceIdError,
    "_FENCED": errors.FencedInstanceIdError,
    "GROUP_ID_NOT_FOUND": errors.UnknownGroupError,
    "NON_EMPTY_GROUP": errors.GroupNotEmptyError,
    "INVALID_GROUP_ID": errors.InvalidGroupIdError,
    "INCONSISTENT_GROUP_PROTOCOL": errors.InconsistentGroupProtocolError,
    "INVALID_CONFIG": errors.InvalidArgumentError,
    "INVALID_PARTITIONS": errors.InvalidArgumentError,
    "INVALID_REPLICATION_FACTOR": errors.InvalidArgumentError,
    "INVALID_REQUEST": errors.InvalidArgumentError,
    "_INVALID_ARG": errors.InvalidArgumentError,
    "POLICY_VIOLATION": errors.InvalidArgumentError,
    "CORRUPT_MESSAGE": errors.CorruptionError,
    "_BAD_MSG": errors.CorruptionError,
    "_TRANSPORT": errors.TidelogIOError,
    "_ALL_BROKERS_DOWN": errors.TidelogIOError,
    "_TIMED_OUT": errors.TidelogIOError,
    "_MSG_TIMED_OUT": errors.TidelogIOError,
    "REQUEST_TIMED_OUT": errors.TidelogIOError,
    "NETWORK_EXCEPTION": errors.TidelogIOError,
    "_RESOLVE": errors.TidelogIOError,
    "NOT_ENOUGH_REPLICAS": errors.TidelogIOError,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND": errors.TidelogIOError,
    "_DESTROY": errors.LogClosedError,
}


def kafka_error_name(err: Any) -> str:
    """The code name of a KafkaError (or a KafkaException wrapping one)."""
    kerr = err.args[0] if isinstance(err, Exception) and err.args and hasattr(err.args[0], "name") else err
    try:
        return kerr.name()
    except Exception:  # noqa: BLE001 - not a KafkaError
        return "UNKNOWN"


def from_kafka(err: Any, what: str = "", default: type[errors.TidelogError] = errors.TidelogError
               ) -> errors.TidelogError:
    """The tidelog error for a KafkaError or KafkaException, its message led by
    ``what``; ``kafka_code`` holds Kafka's code name."""
    name = kafka_error_name(err)
    kerr = err.args[0] if isinstance(err, Exception) and err.args else err
    text = kerr.str() if hasattr(kerr, "str") else str(kerr)
    cls = _BY_NAME.get(name, default)
    exc = cls(f"{what}: {text} (Kafka {name})" if what else f"{text} (Kafka {name})")
    exc.kafka_code = name  # type: ignore[attr-defined]
    return exc


def raise_from_kafka(what: str, default: type[errors.TidelogError] = errors.TidelogError):
    """A context manager turning KafkaException into the mapped tidelog error."""
    return _Mapper(what, default)


class _Mapper:
    __slots__ = ("what", "default")

    def __init__(self, what: str, default: type[errors.TidelogError]):
        self.what = what
        self.default = default

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            return False
        from confluent_kafka import KafkaException

        if isinstance(exc, KafkaException):
            raise from_kafka(exc, self.what, self.default) from None
        return False


def timed_out():
    """A KafkaError for a wait of tidelog's own that ran out."""
    from confluent_kafka import KafkaError

    return KafkaError(KafkaError._TIMED_OUT)


#: Answers that pass by themselves: a leader being elected after a create or a restart, a broker away.
PASSING = {"NOT_LEADER_FOR_PARTITION", "NOT_LEADER_OR_FOLLOWER", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART",
           "_TRANSPORT", "REQUEST_TIMED_OUT", "_TIMED_OUT", "_ALL_BROKERS_DOWN", "COORDINATOR_LOAD_IN_PROGRESS",
           "NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE"}


def retrying(call, what: str, timeout_s: float = 30):
    """``call()``, tried again every 0.1 s while Kafka's answer is a passing
    state, for up to ``timeout_s``; then the mapped tidelog error."""
    import time

    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as e:
            err = e.args[0] if e.args else None
            passing = kafka_error_name(e) in PASSING or (hasattr(err, "retriable") and err.retriable())
            if not passing or time.monotonic() >= deadline:
                raise from_kafka(e, what) from None
            time.sleep(0.1)
