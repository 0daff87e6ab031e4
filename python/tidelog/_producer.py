"""The producer's engine: sealing, encoding and appending batches, linger
deadlines, acks, delivery callbacks. The per-record hot path is in Cython
(src/producer.pxi, ``tidelog._core.Producer.send``)."""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from . import _arrow, _core
from ._topic import RECORD_SCHEMA, AppendResult
from .errors import DeliveryError, TidelogError

OPEN, SEALED, APPENDED, DONE, FAILED = (
    _core.BATCH_OPEN, _core.BATCH_SEALED, _core.BATCH_APPENDED, _core.BATCH_DONE, _core.BATCH_FAILED)

_HEADER_STRUCT = RECORD_SCHEMA.field("headers").type.value_type
_HEADER_LIST = RECORD_SCHEMA.field("headers").type
_EMPTY = pa.py_buffer(b"")


def _register_record_template() -> None:
    """Gives the native encoder pyarrow's serialization of a 1-row record batch,
    the template whose lengths and offsets it patches for every batch."""
    one_row = _arrow.one_row
    header = one_row(_HEADER_STRUCT, [one_row(pa.string(), b"h"), one_row(pa.binary(), b"x")])
    one = pa.RecordBatch.from_arrays(
        [one_row(RECORD_SCHEMA.field("timestamp").type, 1), one_row(pa.binary(), b"k"),
         one_row(pa.binary(), b"v"), one_row(_HEADER_LIST, header)], schema=RECORD_SCHEMA)
    _core.set_record_template(one.serialize())


_register_record_template()


class RecordMetadata(NamedTuple):
    """Where a record landed: its topic, partition, offset and timestamp (ns)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


def _foreign(desc, owner):
    if desc is None:
        return None
    address, length = desc
    return pa.foreign_buffer(address, length, base=owner) if length else _EMPTY


def _binary(col, n: int, owner, type_: pa.DataType) -> pa.Array:
    validity, offsets, data, nulls = col
    return pa.Array.from_buffers(
        type_, n, [_foreign(validity, owner), _foreign(offsets, owner), _foreign(data, owner)], null_count=nulls)


def batch_to_arrow(batch, schema: pa.Schema = RECORD_SCHEMA) -> pa.RecordBatch:
    """A sealed ProducerBatch as a pa.RecordBatch of the topic's record schema
    (either version: the timestamp buffer is int64 ns in both) over its native
    buffers (no copy; the arrays keep the batch alive)."""
    ts, keys, values, header_offsets, names, header_values, nheaders = batch.column_buffers()
    n = batch.count
    names_arr = _binary(names, nheaders, batch, pa.string())
    values_arr = _binary(header_values, nheaders, batch, pa.binary())
    struct = pa.StructArray.from_arrays([names_arr, values_arr], fields=list(_HEADER_STRUCT))
    headers = pa.Array.from_buffers(_HEADER_LIST, n, [None, _foreign(header_offsets, batch)], children=[struct])
    return pa.RecordBatch.from_arrays(
        [pa.Array.from_buffers(schema.field(0).type, n, [None, _foreign(ts, batch)]),
         _binary(keys, n, batch, pa.binary()), _binary(values, n, batch, pa.binary()), headers],
        schema=schema)


class ProducerEngine(_core.ProducerEngineBase):
    """Everything of a producer but the per-record path: it implements the
    interface the Cython producer calls (src/producer_engine.pxi), taking the
    batches the producer sealed, appending them and settling their futures.
    Thread-safe.

    Delivery callbacks run on the thread that calls ``poll()`` or ``flush()``
    (as in confluent-kafka), never on the background thread.
    """

    def __init__(self, log, native_log, linger_ms: float, batch_bytes: int, acks: str):
        self._log = log
        # The Log hands its native handle down (as to its topics): records still
        # pending when the Log closes are made durable through it then.
        self._native_log = native_log
        self._linger_s = linger_ms / 1000.0
        self.batch_records = max(1, batch_bytes // 128)  # a guess, refined by each sealed batch
        self._acks = acks
        self._cond = threading.Condition()
        self._states: dict[str, Any] = {}
        self._queues: dict[tuple[str, int], collections.deque] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._open: list = []                 # batches waiting for their linger deadline
        self._durable_wait: list = []         # appended, for the background thread to make durable
        self._appended: set = set()           # every batch appended and not yet durable
        self._in_flight: dict = {}            # (topic, partition) -> batches appended, not yet durable
        self._deliveries: collections.deque = collections.deque()
        self._done_callbacks: dict[int, list] = {}  # id(batch) -> [(future, fn)]
        self._waiters = 0  # threads in wait_batch or poll(timeout), under _cond
        self._finish_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # send_many's list -> Arrow buffers, reused per thread (see _core.binary_buffers).
        self._scratch = threading.local()
        self.to_ns = _arrow.to_ns
        self.metadata = RecordMetadata

    def warn_timestamp(self, ts: int) -> None:
        _arrow.warn_if_implausible(ts, ts, "timestamp", stacklevel=3)

    # ----------------------------------------------------------- called by send
    def topic_state(self, name: str):
        topic = self._log.topic(name)
        if not topic.config.records:
            raise TypeError(f"topic {name!r} has a columnar schema; producers send to byte-record topics "
                            f"(create_topic without schema) - use topic.append() for columnar data")
        st = self._states.get(name)
        if st is None or st.topic is not topic:  # (a topic deleted and created again is a new Topic)
            st = self._states[name] = _core.ProducerTopic(name, topic.partitions, topic)
            for p in range(topic.partitions):
                self._queues.setdefault((name, p), collections.deque())
                self._locks.setdefault((name, p), threading.Lock())
        return st

    def lingering(self, batch) -> None:
        """The producer opened ``batch`` (linger_ms > 0, its deadline set): the
        background thread seals it when the deadline passes."""
        with self._cond:
            wake = not self._open  # otherwise the thread already sleeps towards an earlier deadline
            self._open.append(batch)
            self._ensure_thread()
            if wake:
                self._cond.notify_all()

    def seal_soon(self, st, partition: int, batch) -> None:
        """linger_ms=0: append at once, unless (acks="durable") a batch of this
        partition is still waiting for its group commit: then records gather in
        the open batch, sealed when that one is durable (Kafka's in-flight
        batching). A lone sender never waits for anything but its own fdatasync;
        concurrent senders share a frame, an append and an fdatasync."""
        if self._acks == "durable" and self._in_flight.get((st.name, partition)):
            return
        self.seal(st, partition, batch)

    def seal(self, st, partition: int, batch) -> None:
        key = (st.name, partition)
        if _core.take_open_batch(st, partition, batch, self._queues[key]):
            self.batch_records = batch.count
            self._drain(st, key)

    # ---------------------------------------------------------------- appending
    def _drain(self, st, key) -> None:
        """Appends every sealed batch of one partition, in seal order, as frames
        with consecutive offsets."""
        with self._locks[key]:
            queue = self._queues[key]
            batches = []
            while queue:
                batches.append(queue.popleft())
            if not batches:
                return
            topic = st.topic
            try:
                part = topic.partition(key[1])
                if topic.config.compression == "none":
                    frames = []
                    for b in batches:
                        pieces, body_offset = _core.encode_record_batch(b)
                        frames.append((pieces, b.count, b.min_timestamp, b.max_timestamp, 0, 0, 0, body_offset))
                else:
                    now = time.time_ns()
                    frames = [part.encode(batch_to_arrow(b, topic.schema), now, (b.min_timestamp, b.max_timestamp))
                              for b in batches]
                results = part.append_frames(frames)
            except BaseException as e:  # the futures carry the failure
                err = _core.topic_deleted_error(st, e) or (
                    e if isinstance(e, TidelogError) else DeliveryError(f"append to {key[0]}[{key[1]}] failed: {e}"))
                if err is not e and err.__cause__ is None:
                    err.__cause__ = e
                self.finish(batches, FAILED, err)
                return
            for b, (base, ticket) in zip(batches, results):
                b.base_offset = base
                b.ticket = ticket
            if self._acks == "written":
                self.finish(batches, DONE)
            else:
                # State, the appended set and the in-flight count change together
                # (under _finish_lock), or a waiter settling a batch in between
                # would leave the partition counted in flight forever.
                with self._finish_lock:
                    for b in batches:
                        b.state = APPENDED
                    self._appended.update(batches)
                    self._in_flight[key] = self._in_flight.get(key, 0) + len(batches)
                with self._cond:
                    self._durable_wait.extend(batches)
                    self._ensure_thread()
                    self._cond.notify_all()

    def _make_durable(self, batches) -> None:
        """Waits (GIL released) until the group commit covers every batch."""
        native_log = self._native_log
        pending = [b for b in batches if b.state == APPENDED]
        if not pending:
            return
        try:
            if any(b.engine is self and self._states[b.topic].topic.config.durability == "none" for b in pending):
                native_log.flush()  # "none" topics are only synced on request
            else:
                native_log.wait_durable(max(b.ticket for b in pending))
        except BaseException as e:
            self.finish(pending, FAILED, e)
            return
        self.finish(pending, DONE)

    def track_direct(self, batch) -> None:
        """A batch send() appended itself (linger_ms=0) that now needs this engine:
        its durable wait runs on the background thread and it counts for flush()."""
        with self._finish_lock:
            if batch.state != APPENDED:
                return
            self._appended.add(batch)
            key = (batch.topic, batch.partition)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        with self._cond:
            self._durable_wait.append(batch)
            self._ensure_thread()
            self._cond.notify_all()

    def add_done_callback(self, batch, future, fn) -> None:
        with self._cond:
            if batch.state < DONE:
                self._done_callbacks.setdefault(id(batch), []).append((future, fn))
                return
        fn(future)

    def finish(self, batches, state: int, error=None) -> None:
        """Settles batches that nobody settled yet: queues their delivery
        callbacks, then publishes the final state (whoever sees DONE, such as
        flush(), finds the callbacks already queued), then wakes waiters."""
        with self._finish_lock:
            mine = [b for b in batches if b.state < DONE]
            for b in mine:
                if b.callbacks:
                    for index, callback in b.callbacks:
                        order = (b.topic, b.partition, b.base_offset + index)
                        if state == DONE:
                            meta = RecordMetadata(b.topic, b.partition, b.base_offset + index, b.timestamp_at(index))
                            self._deliveries.append((order, callback, None, meta))
                        else:
                            self._deliveries.append((order, callback, error, None))
                    b.callbacks = None
                if error is not None:
                    b.error = error
                b.state = state
            follow_up = []
            for b in mine:
                if b in self._appended:
                    self._appended.discard(b)
                    key = (b.topic, b.partition)
                    left = self._in_flight.get(key, 1) - 1
                    self._in_flight[key] = left
                    if left <= 0:
                        follow_up.append(key)
        for b in mine:
            if self._done_callbacks:
                with self._cond:
                    waiting = self._done_callbacks.pop(id(b), ())
                for future, fn in waiting:
                    fn(future)
        # States were set before this read: a waiter that registers later sees them.
        if self._waiters:
            with self._cond:
                self._cond.notify_all()
        # Records that gathered behind a durable batch (see seal_soon) go now.
        for name, partition in follow_up:
            st = self._states[name]
            b = st.batches[partition]
            if b is not None and b.state == OPEN:
                self.seal(st, partition, b)

    # ------------------------------------------------------------ waiting
    def wait_batch(self, batch, timeout) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while batch.state < DONE:
            if batch.state == APPENDED:
                self._make_durable([batch])
                continue
            with self._cond:
                self._waiters += 1
                try:
                    if batch.state in (OPEN, SEALED):
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise TimeoutError("the record was not delivered in time")
                        self._ensure_thread()
                        self._cond.wait(left if left is not None else 0.1)
                finally:
                    self._waiters -= 1

    # ------------------------------------------------------- background thread
    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="tidelog-producer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping and not self._durable_wait:
                    return
                now = time.monotonic()
                due = [b for b in self._open if b.deadline <= now or b.state != OPEN]
                if due:
                    self._open = [b for b in self._open if b.deadline > now and b.state == OPEN]
                durable, self._durable_wait = self._durable_wait, []
                if not due and not durable:
                    wait = min((b.deadline for b in self._open), default=now + 1.0) - now
                    self._cond.wait(max(wait, 0.0005))
                    continue
            for b in due:
                if b.state == OPEN:
                    self.seal(self._states[b.topic], b.partition, b)
                if b.state == OPEN:
                    # Still empty (its send() has not added the record yet): an
                    # empty batch is never sealed, so give it another linger.
                    with self._cond:
                        b.deadline = time.monotonic() + self._linger_s
                        self._open.append(b)
            if durable:
                self._make_durable(durable)

    # ---------------------------------------------------------------- public
    def send_many(self, st, values, keys, headers, partition) -> AppendResult:
        topic = st.topic
        # The scratch buffers are free again once _append returns: the frame is
        # written by then (nothing keeps a reference to the batch).
        scratch = getattr(self._scratch, "slots", None)
        if scratch is None:
            scratch = self._scratch.slots = ([None] * 3, [None] * 3)
        values = _binary_column(values, "values", scratch[0])
        n = len(values)
        keys = pa.nulls(n, pa.binary()) if keys is None else _binary_column(keys, "keys", scratch[1])
        if len(keys) != n:
            raise ValueError(f"{len(keys)} keys for {n} values")
        if headers is None:
            hdrs = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                            pa.array([], type=_HEADER_STRUCT))
        else:
            if len(headers) != n:
                raise ValueError(f"{len(headers)} header lists for {n} values")
            hdrs = pa.array([list(h.items()) if isinstance(h, dict) else list(h or ()) for h in headers],
                            type=_HEADER_LIST)
        ts = pa.array(np.full(n, time.time_ns(), dtype=np.int64)).view(topic.schema.field(0).type)
        batch = pa.RecordBatch.from_arrays([ts, keys, values, hdrs], schema=topic.schema)
        # Records already queued for these partitions go first.
        for p in range(st.partitions):
            b = st.batches[p]
            if b is not None:
                self.seal(st, p, b)
        if partition is None and keys.null_count == n:
            partition = st.sticky  # unkeyed: the whole batch to one partition, as Kafka's sticky partitioner
            st.sticky = (st.sticky + 1) % st.partitions
        return topic.append(batch, partition=partition, durable=self._acks == "durable")

    def flush(self, timeout=None) -> int:
        """Seals and appends every open batch, waits for acks, runs callbacks."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for st in list(self._states.values()):
            for p in range(st.partitions):
                b = st.batches[p]
                if b is not None and b.state == OPEN:
                    self.seal(st, p, b)
        # Batches another thread sealed but has not appended yet: append them here
        # (its own drain then finds the queue empty), or wait for its drain to end.
        for name, partition in list(self._queues):
            self._drain(self._states[name], (name, partition))
        if self._acks == "durable":
            # Everything appended so far, whoever is waiting for it: one full flush
            # makes it durable, then every such batch is resolved here.
            self._native_log.flush()
            with self._cond:
                appended = sorted(self._appended, key=lambda b: (b.topic, b.partition, b.base_offset))
            self._make_durable(appended)
            with self._cond:
                self._waiters += 1
                try:
                    while any(b.state == APPENDED for b in appended):
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise TimeoutError("flush did not finish in time")
                        self._cond.wait(0.05 if left is None else min(left, 0.05))
                finally:
                    self._waiters -= 1
        return self.poll(0)

    def poll(self, timeout=0) -> int:
        if not self._deliveries and timeout:
            with self._cond:
                self._waiters += 1
                try:
                    self._cond.wait_for(lambda: bool(self._deliveries), timeout)
                finally:
                    self._waiters -= 1
        # Batches complete on several threads; callbacks run in send order per
        # partition (offset order), as Kafka's do.
        ready = []
        while self._deliveries:
            ready.append(self._deliveries.popleft())
        ready.sort(key=lambda d: d[0])
        for _order, callback, err, meta in ready:
            callback(err, meta)
        return len(ready)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def abort(self, error: BaseException) -> int:
        """Fails every record not yet delivered with ``error``, at once (its
        futures raise it, its callbacks get it); returns how many batches."""
        batches = []
        for st in list(self._states.values()):
            for p in range(st.partitions):
                b = st.batches[p]
                if b is not None:
                    batches.append(b)
        for queue in list(self._queues.values()):
            batches.extend(queue)
        with self._cond:
            batches.extend(self._open)
            batches.extend(self._appended)
        pending = [b for b in {id(b): b for b in batches}.values() if b.state < DONE]
        if pending:
            self.finish(pending, FAILED, error)
        return len(pending)


def _binary_column(data, what: str, scratch: list | None = None) -> pa.Array:
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    if isinstance(data, pa.Array):
        if pa.types.is_binary(data.type):
            return data
        if pa.types.is_large_binary(data.type) or pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
            return data.cast(pa.binary())
        raise TypeError(f"{what} must be binary, not {data.type}")
    if isinstance(data, list):
        try:
            validity, offsets, values, nulls = _core.binary_buffers(data, scratch)
        except (TypeError, BufferError) as e:
            raise TypeError(f"{what} must be a list of bytes (or None) or an Arrow binary array: {e}") from e
        return pa.Array.from_buffers(pa.binary(), len(data), [validity, offsets, values], null_count=nulls)
    try:
        return pa.array(data, type=pa.binary())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise TypeError(f"{what} must be a list of bytes (or None) or an Arrow binary array: {e}") from e
