"""Consumers: read records (or Arrow batches) from assigned partitions, in
offset order per partition, blocking without CPU while caught up.

Waiting uses the log-wide notifier (a futex word in ``<log>/notify``, bumped by
every publish): a consumer reads the sequence, checks its partitions, and if
none has data sleeps in FUTEX_WAIT with the GIL released. It works the same in
a read-only process (see docs/ARCHITECTURE.md, "Cross-process wake-ups").
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from . import _arrow, _core
from ._topic import check_on_corrupt
from ._types import (LOGICAL_OFFSETS, OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, TopicPartition,
                     commit_offsets, partition_key, partition_keys)
from .errors import InvalidArgumentError, InvalidGroupIdError, LogClosedError

logger = logging.getLogger("tidelog")

WAIT_STRATEGIES = ("block", "spin", "spin-then-block")
DEFAULT_SPIN_US = 50.0      # "spin-then-block": about 5x the cross-process wake-up it saves
MAX_SPIN_US = 1_000_000.0
SPIN_SLICE_S = 0.05         # "spin": how long one native spin runs before the poll loop looks again
NO_GROUP = "this consumer has no group: commits need one (log.consumer(topics, group=...))"


class Consumer:
    """Reads the partitions it is assigned. Not thread-safe: one thread per consumer.

    Partitions are named by ``(topic, partition)`` pairs or Kafka's
    ``TopicPartition``; offsets to commit by ints or ``OffsetAndMetadata``.
    """

    def __init__(self, log, topics: Iterable[str] | str | None = None, start: str = "earliest",
                 on_corrupt: str = "raise", notifier=None, wait: str = "block", spin_us: float | None = None):
        """``notifier``: what the consumer waits on, with ``notify_sequence()``,
        ``wait_notify(sequence, timeout)`` and ``spin_notify(sequence, seconds)``:
        the log (default), or the log's native core, which ``Log.consumer()``
        hands down so that a poll saves a call. ``wait``/``spin_us``: the wait
        strategy (see ``Log.consumer``)."""
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        if wait not in WAIT_STRATEGIES:
            raise InvalidArgumentError(f"wait must be one of {', '.join(map(repr, WAIT_STRATEGIES))}, not {wait!r}")
        if spin_us is None:
            spin_us = DEFAULT_SPIN_US
        if isinstance(spin_us, bool) or not isinstance(spin_us, (int, float)) or not 0 <= spin_us <= MAX_SPIN_US:
            raise InvalidArgumentError(f"spin_us must be a number of microseconds in [0, {MAX_SPIN_US}], not {spin_us!r}")
        self._wait_strategy = wait
        self._spin_s = spin_us / 1e6
        self._log = log
        self._skip_damage = check_on_corrupt(on_corrupt)
        notifier = log if notifier is None else notifier
        self._notify_sequence = notifier.notify_sequence
        self._wait_notify = notifier.wait_notify
        self._spin_notify = notifier.spin_notify
        self._start = start
        self._positions: dict[tuple[str, int], int] = {}
        self._assignment: list[tuple[str, int]] = []
        # Per assigned partition: [key, name, partition, topic, native partition],
        # so that the wake-up path does no lookups (refreshed if the topic closes).
        self._targets: list[list] = []
        self._readers: dict = {}  # (topic, partition) -> _core.PartitionReader: the fetch cursor
        self._buffer: list = []
        self._buffer_at = 0
        self._buffer_next = -1  # the position _fill set past the buffer (a sparse frame's next offset is not last + 1)
        self._next = 0  # round-robin start among partitions
        self._closed = False
        if topics is not None:
            self.subscribe([topics] if isinstance(topics, str) else list(topics))

    @property
    def log(self):
        """The ``Log`` this consumer reads."""
        return self._log

    # ------------------------------------------------------------- assignment
    def _topic(self, name: str):
        return self._log.topic(name)

    def _partition(self, name: str, p: int):
        return self._log.topic(name).partition(p)

    def subscribe(self, topics: list[str]) -> None:
        """Assigns every partition of the topics (no group: this consumer reads them all)."""
        pairs = []
        for name in topics:
            pairs.extend((name, p) for p in range(self._topic(name).partitions))
        self.assign(pairs)

    def assign(self, partitions: Iterable[tuple[str, int] | TopicPartition]) -> None:
        """Reads exactly these partitions: ``(topic, partition)`` pairs or
        ``TopicPartition`` objects. Partitions kept from the previous
        assignment keep their position, new ones start at ``start``; a
        TopicPartition with an offset (or ``OFFSET_BEGINNING``/``OFFSET_END``)
        starts there, as ``seek`` would."""
        self._check_open()
        if isinstance(partitions, Iterable) and not isinstance(partitions, (str, bytes, TopicPartition)):
            partitions = list(partitions)  # read twice below
        pairs = partition_keys(partitions, "assign()")
        for name, p in pairs:
            self._partition(name, p)  # the topic and the partition exist
        for tp in partitions:
            if isinstance(tp, TopicPartition) and tp.offset < 0 and tp.offset not in LOGICAL_OFFSETS:
                raise InvalidArgumentError(f"assign(): {tp!r} has a negative offset that is none of OFFSET_*")
        positions = {}
        for key in pairs:
            if key in self._positions:
                positions[key] = self._positions[key]
            else:
                part = self._partition(*key)
                positions[key] = part.start_offset if self._start == "earliest" else part.end_offset
        self._assignment = pairs
        self._positions = positions
        self._targets = [self._target(name, p) for name, p in pairs]
        self._readers = {}  # (topic, partition) -> _core.PartitionReader: the fetch cursor
        self._drop_buffer()
        for tp in partitions:
            if isinstance(tp, TopicPartition) and tp.offset not in (OFFSET_INVALID, OFFSET_STORED):
                self._seek((tp.topic, tp.partition), tp.offset, logical=True)

    def _target(self, name: str, p: int) -> list:
        topic = self._topic(name)
        return [(name, p), name, p, topic, topic.partition(p).native]

    def _live(self, target: list) -> list:
        """The target, looked up again if its topic object was closed (the log
        closed: raises; the topic deleted and created again: the new one)."""
        if target[3].closed:
            target[:] = self._target(target[1], target[2])
        return target

    def assignment(self) -> list[tuple[str, int]]:
        """The assigned partitions as ``(topic, partition)`` pairs (equal to
        ``TopicPartition`` objects of the same partitions)."""
        return list(self._assignment)

    def _key(self, topic: str, partition: int) -> tuple[str, int]:
        key = (topic, int(partition))
        if key not in self._positions:
            raise ValueError(f"{topic}[{partition}] is not assigned to this consumer")
        return key

    def seek(self, topic: str | TopicPartition, partition: int | None = None, offset: int | None = None) -> None:
        """The next record read from that partition is ``offset``.

        Forms: ``seek("orders", 0, 42)``; ``seek(TopicPartition("orders", 0,
        42))`` (confluent-kafka; the offset may also be ``OFFSET_BEGINNING``
        or ``OFFSET_END``); ``seek(TopicPartition("orders", 0), 42)``
        (kafka-python). An offset whose record compaction removed is valid:
        the next record read is the first one after it. An offset outside the
        partition's [start, end] is reset as Kafka's auto.offset.reset says
        (this consumer's ``start``: "earliest" or "latest"), with a warning on
        the ``tidelog`` logger."""
        if isinstance(topic, str):
            if partition is None or offset is None:
                raise TypeError("seek() takes (topic, partition, offset) or a TopicPartition with an offset")
            self._seek(self._key(topic, partition), offset, logical=False)
            return
        key = partition_key(topic, "seek()")
        if partition is not None and offset is not None:
            raise TypeError("seek(TopicPartition, offset) takes one offset, not a partition and an offset")
        given = partition if partition is not None else offset
        if given is not None:
            self._seek(self._key(*key), given, logical=False)
        elif isinstance(topic, TopicPartition):
            if topic.offset in (OFFSET_INVALID, OFFSET_STORED):
                raise InvalidArgumentError(f"seek({topic!r}): the TopicPartition has no offset to seek to")
            self._seek(self._key(*key), topic.offset, logical=True)
        else:
            raise TypeError(f"seek({topic!r}) needs an offset: seek(topic, partition, offset)")

    def _seek(self, key: tuple[str, int], offset: int, logical: bool) -> None:
        """Moves ``key``'s position; ``logical``: OFFSET_BEGINNING/OFFSET_END allowed."""
        part = self._partition(*key)
        if logical and offset in (OFFSET_BEGINNING, OFFSET_END):
            offset = part.start_offset if offset == OFFSET_BEGINNING else part.end_offset
        offset = _arrow.as_offset(offset)
        topic = key[0]
        first, end = part.start_offset, part.end_offset
        if not first <= offset <= end:
            reset = first if self._start == "earliest" else end
            logger.warning("tidelog consumer: seek(%r, %d, %d) is outside the partition's offsets [%d, %d]: "
                           "moved to %d (start=%r, as Kafka's auto.offset.reset)", topic, key[1], offset, first, end,
                           reset, self._start)
            offset = reset
        self._positions[key] = offset
        self._drop_buffer()

    def seek_to_time(self, topic: str, partition: int | None, timestamp: Any) -> None:
        """Moves to the first offset whose timestamp is >= ``timestamp`` (through the
        time index, as Kafka's offsetsForTimes), for one partition or (None) all
        assigned partitions of the topic."""
        ts = _arrow.to_ns(timestamp)
        parts = [partition] if partition is not None else [p for t, p in self._assignment if t == topic]
        for p in parts:
            key = self._key(topic, p)
            self._positions[key] = self._topic(topic).offset_for_time(p, ts)
        self._drop_buffer()

    def seek_to_beginning(self) -> None:
        for name, p in self._assignment:
            self._positions[(name, p)] = self._partition(name, p).start_offset
        self._drop_buffer()

    def seek_to_end(self) -> None:
        for name, p in self._assignment:
            self._positions[(name, p)] = self._partition(name, p).end_offset
        self._drop_buffer()

    def position(self, topic, partition: int | None = None):
        """The offset of the next record this consumer will return from a partition.

        ``position("orders", 0)`` and ``position(TopicPartition("orders", 0))``
        (kafka-python) return an int; ``position([TopicPartition(...), ...])``
        (confluent-kafka) returns a list of TopicPartitions with offsets."""
        if isinstance(topic, str):
            if partition is None:
                raise TypeError("position() takes (topic, partition), a TopicPartition, or a list of them")
            return self._position(self._key(topic, partition))
        if partition is not None:
            raise TypeError("position(TopicPartition) takes no partition argument")
        if isinstance(topic, TopicPartition) or (isinstance(topic, tuple) and topic and isinstance(topic[0], str)):
            return self._position(self._key(*partition_key(topic, "position()")))
        return [TopicPartition(t, p, self._position(self._key(t, p))) for t, p in partition_keys(topic, "position()")]

    def _position(self, key: tuple[str, int]) -> int:
        if self._buffer_at < len(self._buffer):
            r = self._buffer[self._buffer_at]
            if (r.topic, r.partition) == key:
                return r.offset
        return self._positions[key]

    def end_offsets(self, partitions: Iterable[tuple[str, int] | TopicPartition] | None = None
                    ) -> dict[tuple[str, int], int]:
        """The visible end (next offset to be written) of each partition (all
        assigned ones by default), keyed by ``(topic, partition)``; a
        ``TopicPartition`` looks its entry up too."""
        pairs = self._assignment if partitions is None else partition_keys(partitions, "end_offsets()")
        return {(t, p): self._partition(t, p).end_offset for t, p in pairs}

    def commit(self, message=None, offsets=None, asynchronous: bool = False) -> None:
        """Commits offsets for this consumer's group: a consumer without a group
        raises InvalidGroupIdError after checking the arguments (see
        ``tidelog.groups.GroupConsumer.commit``).

        Forms: ``commit()``; ``commit(offsets={("orders", 0): 43})`` (values
        may be ``OffsetAndMetadata``; keys ``TopicPartition``, as
        kafka-python's ``commit({tp: OffsetAndMetadata(43)})``);
        ``commit(offsets=[TopicPartition("orders", 0, 43)])`` (confluent-kafka);
        ``commit(message=record)`` (commits ``record.offset + 1``)."""
        if offsets is None and isinstance(message, (Mapping, list, tuple)):
            message, offsets = None, message  # kafka-python: commit(offsets) positionally
        if message is not None and offsets is not None:
            raise TypeError("commit() takes a message or offsets, not both")
        if offsets is not None:
            commit_offsets(offsets)
        elif message is not None:
            if not all(hasattr(message, a) for a in ("topic", "partition", "offset")):
                raise TypeError(f"commit(message=...) takes a Record, not {type(message).__name__}")
        raise InvalidGroupIdError(NO_GROUP)

    def committed(self, partitions, timeout: float | None = None) -> list[TopicPartition]:
        """The group's committed offsets of ``partitions`` (TopicPartitions or
        pairs) as TopicPartitions: a consumer without a group raises
        InvalidGroupIdError after checking the arguments."""
        partition_keys(partitions, "committed()")
        raise InvalidGroupIdError(NO_GROUP)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records between this consumer's position and the end, per assigned partition."""
        # In offsets, as Kafka's (end offset - position): in a compacted partition
        # it also counts offsets whose records the cleaner removed.
        return {key: max(0, self._partition(*key).end_offset - self._position(key)) for key in self._assignment}

    def _idle(self, waiting: bool) -> None:
        """The asyncio consumer waits outside poll(): a group member marks it (not evicted meanwhile)."""

    # ---------------------------------------------------------------- reading
    def _drop_buffer(self) -> None:
        # Positions already point past buffered records: rewind them.
        if self._buffer_at < len(self._buffer):
            r = self._buffer[self._buffer_at]
            key = (r.topic, r.partition)
            if key in self._positions and self._positions[key] == self._buffer_next:
                self._positions[key] = r.offset
        self._buffer = []
        self._buffer_at = 0

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the consumer is closed")

    def _next_frame(self, max_records: int):
        """The next frame from the positions on, round-robin over partitions:
        (topic_name, partition, frame, topic, start_row, stop_row) or None. The
        rows may be none (an empty frame of a compacted segment, or a position
        past a sparse frame's last record): the position still moves past them.
        Compiled (src/consumer_fetch.pxi): it is most of a record's cost."""
        return _core.consumer_next_frame(self, max_records)

    def _frames(self, native, name: str, p: int, pos: int, topic) -> list:
        """The next frame from ``pos`` (one or none), through the partition's
        cursor (which goes on from where its last frame ended instead of seeking
        from the index). Skipping damage, the position moves past what was
        skipped, which is counted and warned about as ``Partition.frames`` does."""
        return _core.consumer_frames(self, native, name, p, pos, topic)

    def _wait(self, deadline: float | None) -> bool:
        """Sleeps until something is published or the deadline passes; False on timeout."""
        seq = self._notify_sequence()
        if self.has_data():
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        strategy = self._wait_strategy
        if strategy == "block":
            self._wait_notify(seq, left)
        elif strategy == "spin":
            # In slices: the caller checks its state (and its deadline) between them.
            self._spin_notify(seq, SPIN_SLICE_S if left is None else min(left, SPIN_SLICE_S))
        else:
            spin = self._spin_s if left is None else min(left, self._spin_s)
            if not self._spin_notify(seq, spin):
                self._wait_notify(seq, None if left is None else max(left - spin, 0.0))
        return True

    def has_data(self) -> bool:
        """Whether an assigned partition has records past this consumer's
        position now (a ``poll`` would not wait). No I/O: for event loops that
        wait on ``log.notify_sequence()``/``log.wait_notify()`` themselves."""
        positions = self._positions
        for target in self._targets:
            if positions[target[0]] < self._live(target)[4].end_offset:
                return True
        return False

    # _fill(deadline) -> bool: buffers the records of the next frame that has
    # any, waiting while none has; False once ``deadline`` passes. The compiled
    # function is the method (src/consumer_fetch.pxi): no Python frame a fetch.
    _fill = _core.consumer_fill

    def poll(self, timeout: float | None = None):
        """One record, or None after ``timeout`` seconds (None: wait forever)."""
        if self._buffer_at >= len(self._buffer):
            deadline = None if timeout is None else time.monotonic() + timeout
            if not self._fill(deadline):
                return None
        r = self._buffer[self._buffer_at]
        self._buffer_at += 1
        return r

    def __iter__(self) -> Iterator:
        return _core.ConsumerIterator(self)  # compiled (src/consumer_fetch.pxi)

    def poll_batch(self, max_records: int = 100_000, timeout: float | None = None) -> pa.RecordBatch | None:
        """Up to ``max_records`` records of one partition as a ``pa.RecordBatch``
        with ``topic`` (dictionary), ``partition`` and ``offset`` columns added.
        The payload columns are zero-copy when one frame suffices; records from
        several frames are concatenated (copied). None after ``timeout``."""
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        self._drop_buffer()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check_open()
            got = self._next_frame(max_records)
            if got is not None:
                if got[4] < got[5]:
                    break
                continue  # no records there (compaction removed them): the position moved on
            if not self._wait(deadline) and not self.has_data():
                return None
        name, p, frame, topic, lo, hi = got
        part = topic.partition(p)
        (batch,) = part.decode(frame)
        parts = [batch.slice(lo, hi - lo)]
        # The rows' offsets: contiguous from frame.base_offset + lo while every frame is dense.
        first = frame.base_offset + lo
        offset_parts = [frame.offsets().slice(lo, hi - lo)] if frame.sparse else None
        total = hi - lo
        native = part.native
        # Fill up from the same partition's next frames while they fit.
        while total < max_records and self._positions[(name, p)] < native.end_offset:
            pos = self._positions[(name, p)]
            frames = self._frames(native, name, p, pos, topic)
            if not frames or frames[0].base_offset > pos:
                break  # damage was skipped: the batch's offsets stay contiguous, the next poll goes on
            f = frames[0]
            f_lo = f.row_index(pos)
            take = min(f.record_count - f_lo, max_records - total)
            self._positions[(name, p)] = f.next_offset if f_lo + take == f.record_count else f.offset_at(f_lo + take)
            if not take:
                continue  # an empty frame, or the rest of a sparse one removed
            (b,) = part.decode(f)
            parts.append(b.slice(f_lo, take))
            if offset_parts is None and (f.sparse or f.base_offset + f_lo != first + total):  # past a gap
                offset_parts = [pa.array(np.arange(first, first + total, dtype=np.int64))]
            if offset_parts is not None:
                offset_parts.append(f.offsets().slice(f_lo, take))
            total += take
        data = parts[0] if len(parts) == 1 else pa.concat_batches(parts)
        topic_col = pa.DictionaryArray.from_arrays(pa.array(np.zeros(total, dtype=np.int32)), pa.array([name]))
        part_col = pa.array(np.full(total, p, dtype=np.int32))
        if offset_parts is None:
            offset_col = pa.array(np.arange(first, first + total, dtype=np.int64))
        else:
            offset_col = offset_parts[0] if len(offset_parts) == 1 else pa.concat_arrays(offset_parts)
        return pa.RecordBatch.from_arrays(
            [topic_col, part_col, offset_col, *data.columns],
            names=["topic", "partition", "offset", *data.schema.names])

    def close(self) -> None:
        self._closed = True
        self._buffer = []

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tidelog.Consumer assignment={self._assignment}>"
