"""``KafkaConsumer``: the local consumer's API (assign, seek, seek_to_time,
poll, poll_batch, iteration, groups with commits and rebalance callbacks) on
librdkafka's consumer.

Positions are this object's own: the offset after the last record *returned*
(records librdkafka fetched ahead are not counted), and that is what
``commit()`` and auto-commit store, as the local group consumer does. So
librdkafka's own auto-commit and offset store are off."""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from .. import _arrow
from .._types import (OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, TopicPartition, commit_offsets,
                      partition_key, partition_keys)
from ..errors import CommitFailedError, InvalidArgumentError, InvalidGroupIdError, LogClosedError
from ._config import consumer_properties
from ._errors import from_kafka, kafka_error_name, raise_from_kafka, retrying
from ._fastpath import ReadPath, take_partition, usable
from ._records import records_batch

logger = logging.getLogger("tidelog")

NO_GROUP = "this consumer has no group: commits need one (log.consumer(topics, group=...))"
FETCH_MAX = 10_000   # messages one consume() call takes from librdkafka
_IGNORED = ("_PARTITION_EOF",)
#: This member's client left its group (no poll for max.poll.interval.ms): as a local member
#: evicted, it rejoins at this poll; commits of the partitions it had raise CommitFailedError.
_LEFT_GROUP = ("_MAX_POLL_EXCEEDED",)
#: A broker away for a while: librdkafka reconnects and goes on fetching by itself.
_TRANSIENT = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "NOT_LEADER_OR_FOLLOWER", "LEADER_NOT_AVAILABLE",
              "_RESOLVE", "NETWORK_EXCEPTION", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR")


class KafkaConsumer:
    """Reads assigned (or, with ``group=``, group-assigned) partitions. Not
    thread-safe: one thread per consumer."""

    def __init__(self, log, topics, config: dict | None, settings: dict):
        from confluent_kafka import Consumer

        props, opts = consumer_properties(config, settings)
        self._log = log
        self._registry = log.schemas
        self._start = opts.get("start", "earliest")
        self._group = opts.get("group")
        self._auto_commit = bool(opts.get("enable_auto_commit", True)) and self._group is not None
        self._auto_interval_s = opts.get("auto_commit_interval_ms", 5000) / 1000
        self._next_auto = time.monotonic() + self._auto_interval_s
        self._callbacks = _listener_calls(opts.get("listener"), opts.get("on_assign"), opts.get("on_revoke"),
                                          opts.get("on_lost"))
        conf = {**log.client_config,
                "group.id": self._group or f"tidelog-assign-{uuid.uuid4().hex}",
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": self._start,
                "fetch.queue.backoff.ms": 1, "fetch.wait.max.ms": 10,
                **props}
        self._cooperative = conf.get("partition.assignment.strategy") == "cooperative-sticky"
        with raise_from_kafka("a Kafka consumer", InvalidArgumentError):
            self._c = Consumer(conf)
        self._read = ReadPath(self, self._registry)  # (holds _positions and _buffer)
        #: The compiled poll (tidelog.kafka._fastpath), without a Python frame per record.
        self.poll = self._read.poll
        self._assignment: list[tuple[str, int]] = []
        self._subscription: list[str] = []
        self._closed = False
        self._sought: set[tuple[str, int]] = set()  # partitions moved since their last message arrived
        if topics is not None:
            self.subscribe([topics] if isinstance(topics, str) else list(topics))

    @property
    def _positions(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the offset after the last record returned."""
        return self._read.positions

    @_positions.setter
    def _positions(self, positions: dict[tuple[str, int], int]) -> None:
        self._read.positions = positions

    @property
    def _buffer(self) -> list:
        """confluent Messages fetched, not yet returned, newest first."""
        return self._read.buffer

    @_buffer.setter
    def _buffer(self, messages: list) -> None:
        self._read.buffer = messages

    # ------------------------------------------------------------ identity
    @property
    def log(self):
        return self._log

    @property
    def group_id(self) -> str | None:
        return self._group

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the consumer is closed")

    # ------------------------------------------------------------ assignment
    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        """With a group: joins it for ``topics`` (partitions come through
        rebalances, inside ``poll``). Without: assigns every partition of them."""
        self._check_open()
        topics = [topics] if isinstance(topics, str) else list(topics)
        for name in topics:
            self._log.partition_count(name)  # UnknownTopicError, as the local consumer
        if listener is not None:
            self._callbacks = _listener_calls(listener, None, None, None)
        if self._group is None:
            self.assign([(t, p) for t in topics for p in range(self._log.partition_count(t))])
            return
        self._subscription = topics
        self._log.schemas.refresh()
        with raise_from_kafka("subscribe"):
            self._c.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def unsubscribe(self) -> None:
        self._check_open()
        self._c.unsubscribe()
        self._subscription = []

    def subscription(self) -> list[str]:
        return list(self._subscription)

    def assign(self, partitions: Iterable) -> None:
        """Reads exactly these partitions (a group member's commits still go to its group),
        each from the group's committed offset, else ``start``."""
        self._check_open()
        pairs = partition_keys(partitions, "assign()")
        for t, p in pairs:
            n = self._log.partition_count(t)
            if not 0 <= p < n:
                raise InvalidArgumentError(f"{t}[{p}]: topic {t!r} has partitions 0..{n - 1}")
        self._positions = {key: self._positions[key] for key in pairs if key in self._positions}
        missing = [key for key in pairs if key not in self._positions]
        self._positions.update(self._initial_positions(missing))
        self._assignment = list(dict.fromkeys(pairs))
        self._log.schemas.refresh()
        self._reassign()

    def _initial_positions(self, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Where reading starts: the committed offset (a group's), else the start or the end."""
        from confluent_kafka import TopicPartition as KTP

        out: dict[tuple[str, int], int] = {}
        if not pairs:
            return out
        if self._group is not None:
            with raise_from_kafka("committed offsets"):
                for tp in self._c.committed([KTP(t, p) for t, p in pairs], timeout=30):
                    if tp.offset >= 0:
                        out[(tp.topic, tp.partition)] = tp.offset
        for key in pairs:
            if key not in out:
                lo, hi = self._watermarks(*key)
                out[key] = lo if self._start == "earliest" else hi
        return out

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from confluent_kafka import TopicPartition as KTP

        return retrying(lambda: self._c.get_watermark_offsets(KTP(topic, partition), timeout=30, cached=False),
                        f"offsets of {topic}[{partition}]")

    def _reassign(self) -> None:
        """Tells librdkafka the assignment with this object's positions (also how a seek lands)."""
        from confluent_kafka import TopicPartition as KTP

        self._buffer = []
        with raise_from_kafka("assign"):
            self._c.assign([KTP(t, p, self._positions[(t, p)]) for t, p in self._assignment])

    def assignment(self) -> list[tuple[str, int]]:
        return list(self._assignment)

    # ------------------------------------------------------------ rebalances
    def _assigned(self, consumer, partitions) -> None:
        from confluent_kafka import TopicPartition as KTP

        pairs = [(tp.topic, tp.partition) for tp in partitions]
        self._positions.update(self._initial_positions(pairs))
        self._assignment = list(dict.fromkeys(self._assignment + pairs)) if self._cooperative else pairs
        with_offsets = [KTP(t, p, self._positions[(t, p)]) for t, p in pairs]
        if self._cooperative:
            self._c.incremental_assign(with_offsets)
        else:
            self._buffer = []
            self._c.assign(with_offsets)
        if self._callbacks[0] is not None:
            self._callbacks[0](self, [TopicPartition(t, p) for t, p in pairs])

    def _revoked(self, consumer, partitions) -> None:
        pairs = [(tp.topic, tp.partition) for tp in partitions]
        if self._callbacks[1] is not None:
            self._callbacks[1](self, [TopicPartition(t, p) for t, p in pairs])
        if self._auto_commit:
            self._commit_positions([k for k in pairs if k in self._positions], quiet=True)
        self._drop(pairs)

    def _lost(self, consumer, partitions) -> None:
        pairs = [(tp.topic, tp.partition) for tp in partitions]
        callback = self._callbacks[2] or self._callbacks[1]
        if callback is not None:
            callback(self, [TopicPartition(t, p) for t, p in pairs])
        self._drop(pairs)

    def _drop(self, pairs: list[tuple[str, int]]) -> None:
        gone = set(pairs)
        self._assignment = [k for k in self._assignment if k not in gone]
        for key in gone:
            self._positions.pop(key, None)
        self._buffer = [m for m in self._buffer if (m.topic(), m.partition()) not in gone]
        if self._cooperative:
            from confluent_kafka import TopicPartition as KTP

            self._c.incremental_unassign([KTP(t, p) for t, p in pairs])
        else:
            self._c.unassign()

    # ------------------------------------------------------------ seeking
    def _key(self, topic: str, partition: int) -> tuple[str, int]:
        key = (topic, int(partition))
        if key not in self._positions:
            raise ValueError(f"{topic}[{partition}] is not assigned to this consumer")
        return key

    def seek(self, topic, partition: int | None = None, offset: int | None = None) -> None:
        """As the local consumer's: ``seek("orders", 0, 42)``,
        ``seek(TopicPartition("orders", 0, 42))``, ``seek(TopicPartition("orders", 0), 42)``;
        an offset outside the partition's [start, end] moves to the start or
        the end as ``start`` says, with a warning on the ``tidelog`` logger."""
        if isinstance(topic, str):
            if partition is None or offset is None:
                raise TypeError("seek() takes (topic, partition, offset) or a TopicPartition with an offset")
            self._seek({self._key(topic, partition): offset})
            return
        key = partition_key(topic, "seek()")
        given = partition if partition is not None else offset
        if given is not None:
            self._seek({self._key(*key): given})
        elif isinstance(topic, TopicPartition):
            if topic.offset in (OFFSET_INVALID, OFFSET_STORED):
                raise InvalidArgumentError(f"seek({topic!r}): the TopicPartition has no offset to seek to")
            self._seek({self._key(*key): topic.offset}, logical=True)
        else:
            raise TypeError(f"seek({topic!r}) needs an offset: seek(topic, partition, offset)")

    def _seek(self, targets: dict[tuple[str, int], int], logical: bool = False) -> None:
        self._check_open()
        for key, offset in targets.items():
            lo, hi = self._watermarks(*key)
            if logical and offset in (OFFSET_BEGINNING, OFFSET_END):
                offset = lo if offset == OFFSET_BEGINNING else hi
            offset = _arrow.as_offset(offset)
            if not lo <= offset <= hi:
                reset = lo if self._start == "earliest" else hi
                logger.warning("tidelog consumer: seek(%r, %d, %d) is outside the partition's offsets [%d, %d]: "
                               "moved to %d (start=%r, as Kafka's auto.offset.reset)", key[0], key[1], offset, lo,
                               hi, reset, self._start)
                offset = reset
            self._positions[key] = offset
        self._seek_client(targets)

    def _seek_client(self, keys: Iterable[tuple[str, int]]) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as KTP

        keys = set(keys)
        self._buffer = [m for m in self._buffer if (m.topic(), m.partition()) not in keys]
        self._sought |= keys
        if self._group is None or not self._subscription:
            self._reassign()
            return
        for t, p in keys:
            tp = KTP(t, p, self._positions[(t, p)])
            try:
                self._c.seek(tp)
            except KafkaException:  # not fetching yet ("erroneous state"): the position goes in with the assignment
                if self._cooperative:
                    self._c.incremental_assign([tp])
                else:
                    self._reassign()

    def seek_to_time(self, topic: str, partition: int | None, timestamp: Any) -> None:
        """Moves to the first offset whose timestamp is >= ``timestamp``, for
        one partition or (None) every assigned partition of the topic."""
        ts = _arrow.to_ns(timestamp)
        parts = [partition] if partition is not None else [p for t, p in self._assignment if t == topic]
        for p in parts:
            self._key(topic, p)
        found = self._log.offsets_for_time(topic, parts, ts)
        for p, offset in found.items():
            self._positions[(topic, p)] = offset
        self._seek_client((topic, p) for p in parts)

    def seek_to_beginning(self) -> None:
        for key in self._assignment:
            self._positions[key] = self._watermarks(*key)[0]
        self._seek_client(self._assignment)

    def seek_to_end(self) -> None:
        for key in self._assignment:
            self._positions[key] = self._watermarks(*key)[1]
        self._seek_client(self._assignment)

    def position(self, topic, partition: int | None = None):
        if isinstance(topic, str):
            if partition is None:
                raise TypeError("position() takes (topic, partition), a TopicPartition, or a list of them")
            return self._positions[self._key(topic, partition)]
        if isinstance(topic, TopicPartition) or (isinstance(topic, tuple) and topic and isinstance(topic[0], str)):
            return self._positions[self._key(*partition_key(topic, "position()"))]
        return [TopicPartition(t, p, self._positions[self._key(t, p)]) for t, p in partition_keys(topic, "position()")]

    def end_offsets(self, partitions=None) -> dict[tuple[str, int], int]:
        pairs = self._assignment if partitions is None else partition_keys(partitions, "end_offsets()")
        return {key: self._watermarks(*key)[1] for key in pairs}

    def lag(self) -> dict[tuple[str, int], int]:
        return {key: max(0, self._watermarks(*key)[1] - self._positions[key]) for key in self._assignment}

    # ------------------------------------------------------------ commits
    def commit(self, message=None, offsets=None, asynchronous: bool = False) -> None:
        """Commits this consumer's positions (or ``offsets``, or
        ``message.offset + 1``) for its group; InvalidGroupIdError without one,
        CommitFailedError when the group moved a partition away."""
        if offsets is None and isinstance(message, (Mapping, list, tuple)):
            message, offsets = None, message
        if message is not None and offsets is not None:
            raise TypeError("commit() takes a message or offsets, not both")
        if offsets is not None:
            target = {k: om.offset for k, om in commit_offsets(offsets).items()}
        elif message is not None:
            if not all(hasattr(message, a) for a in ("topic", "partition", "offset")):
                raise TypeError(f"commit(message=...) takes a Record, not {type(message).__name__}")
            target = {(message.topic, message.partition): message.offset + 1}
        else:
            target = None
        if self._group is None:
            raise InvalidGroupIdError(NO_GROUP)
        self._check_open()
        if target is None:
            self._commit_positions(self._assignment, asynchronous=asynchronous)
        else:
            self._commit(target, asynchronous)

    def _commit_positions(self, keys, asynchronous: bool = False, quiet: bool = False) -> None:
        target = {k: self._positions[k] for k in keys if k in self._positions}
        if not target:
            return
        try:
            self._commit(target, asynchronous)
        except CommitFailedError:
            if not quiet:
                raise

    def _commit(self, target: dict[tuple[str, int], int], asynchronous: bool) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as KTP

        try:
            result = self._c.commit(offsets=[KTP(t, p, o) for (t, p), o in target.items()],
                                    asynchronous=asynchronous)
        except KafkaException as e:
            if kafka_error_name(e) == "_NO_OFFSET":
                return
            raise from_kafka(e, "commit", CommitFailedError) from None
        for tp in result or ():
            if tp.error is not None:
                raise from_kafka(tp.error, f"commit of {tp.topic}[{tp.partition}]", CommitFailedError)

    def committed(self, partitions, timeout: float | None = None) -> list[TopicPartition]:
        from confluent_kafka import TopicPartition as KTP

        pairs = partition_keys(partitions, "committed()")
        if self._group is None:
            raise InvalidGroupIdError(NO_GROUP)
        with raise_from_kafka("committed offsets"):
            got = self._c.committed([KTP(t, p) for t, p in pairs], timeout=30 if timeout is None else timeout)
        return [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_INVALID)
                for tp in got]

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() >= self._next_auto:
            self._next_auto = time.monotonic() + self._auto_interval_s
            self._commit_positions(self._assignment, asynchronous=True, quiet=True)

    # ------------------------------------------------------------ reading
    def _fetch(self, deadline: float | None) -> bool:
        """Fills the buffer (in reverse: records are popped from its end);
        False when the deadline passed with nothing."""
        while True:
            self._check_open()
            self._maybe_auto_commit()
            left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            msgs = self._c.consume(FETCH_MAX, left)
            if msgs:
                good, failed = usable(msgs)  # (newest first)
                if failed:
                    self._errors(msgs)
                if self._sought:
                    good = self._after_seek(good)
                if good:
                    self._buffer = good
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _errors(self, msgs: list) -> None:
        for m in msgs:
            err = m.error()
            if err is None:
                continue
            if err.name() in _TRANSIENT or err.retriable():
                logger.debug("tidelog consumer: %s (librdkafka retries)", err)
            elif err.name() in _LEFT_GROUP:
                logger.warning("tidelog consumer: %s: it left group %r and joins again", err.str(), self._group)
            elif err.name() not in _IGNORED:
                raise from_kafka(err, f"reading {m.topic()}[{m.partition()}]")

    def _after_seek(self, msgs: list) -> list:
        """Drops messages fetched before a seek (from before the new position) of the partitions sought;
        ``msgs`` and the list returned are newest first."""
        sought, positions = self._sought, self._positions
        out = []
        for m in reversed(msgs):  # (oldest first: a partition is done with at its first message past the seek)
            key = (m.topic(), m.partition())
            if key in sought:
                if positions.get(key, 1 << 63) > m.offset():
                    continue
                sought.discard(key)
            out.append(m)
        out.reverse()
        return out

    def poll(self, timeout: float | None = None):
        """One record (``tidelog.Record``, timestamp in ns), or None after
        ``timeout`` seconds. (An instance's ``poll`` is the compiled
        ``ReadPath.poll``.)"""
        return self._read.poll(timeout)

    def __iter__(self) -> Iterator:
        """Every record as it comes (``tidelog.Record``), waiting for more at the end."""
        return self._read.records()

    def poll_batch(self, max_records: int = 100_000, timeout: float | None = None) -> pa.RecordBatch | None:
        """Records of one partition as a ``pa.RecordBatch`` with ``topic``,
        ``partition`` and ``offset`` columns first, or None after ``timeout``.
        A columnar topic's batches are decoded and concatenated (its rows
        share their Kafka record's offset)."""
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        if not self._buffer:
            if not self._fetch(None if timeout is None else time.monotonic() + timeout):
                return None
        topic, partition, taken = take_partition(self._buffer, max_records)
        self._positions[(topic, partition)] = taken[-1].offset() + 1
        return records_batch(self._registry, topic, partition, taken)

    # ------------------------------------------------------------ closing
    def close(self, autocommit: bool = True) -> None:
        if self._closed:
            return
        if autocommit and self._auto_commit:
            try:
                self._commit_positions(self._assignment, quiet=True)
            except Exception:  # noqa: BLE001 - closing matters more than a last commit
                logger.warning("tidelog consumer: the commit at close failed", exc_info=True)
        self._closed = True
        self._buffer = []
        self._c.close()
        self._c = None
        self._log._forget(self)

    def __enter__(self) -> "KafkaConsumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tidelog.KafkaConsumer group={self._group!r} assignment={self._assignment}>"


def _listener_calls(listener: Any, on_assign, on_revoke, on_lost) -> tuple:
    """(on_assign, on_revoke, on_lost) as ``fn(consumer, partitions)`` from
    confluent-style callbacks or a kafka-python style listener object."""
    if listener is not None:
        def call(name):
            method = getattr(listener, name, None)
            return None if method is None else (lambda consumer, parts: method(parts))

        return call("on_partitions_assigned"), call("on_partitions_revoked"), call("on_partitions_lost")
    return on_assign, on_revoke, on_lost
