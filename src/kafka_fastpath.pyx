# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
"""The Kafka backend's per-record paths, compiled (tidelog.kafka._fastpath).

What runs once per record between tidelog's API and confluent-kafka: a send's
future and its delivery report, a consumed message turned into a
``tidelog.Record``, and a batch of messages turned into Arrow columns. It calls
confluent-kafka's Python objects (librdkafka is not linked here) and builds
Arrow arrays through pyarrow's Python API over buffers filled in C. Everything
else of the backend is Python (python/tidelog/kafka/).
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t, INT32_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from tidelog._core cimport Record

import time

import numpy as np
import pyarrow as pa

from tidelog._producer import RecordMetadata
from tidelog.errors import DeliveryError
from tidelog.kafka._errors import from_kafka

cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        void* ml_meth
        int ml_flags
    ctypedef struct PyMethodDescrObject:
        PyMethodDef* d_method
    enum:
        METH_NOARGS
    void PyObject_GC_Track(void* op)
    void PyObject_GC_UnTrack(void* op)
    int PyObject_GC_IsTracked(object op)


# ---------------------------------------------------------------- a message's fields
#
# A confluent Message's getters (topic(), offset(), value(), ...) are C
# functions of the METH_NOARGS kind. Called the ordinary way, each call looks
# the method up and goes through the call protocol: several times the work of
# the getter itself, seven times per record. Here each getter's C function is
# taken once from its method descriptor (CPython's own PyMethodDef, what the
# ordinary call ends up in) and called directly on a Message: the same
# function, the same result. Anything else (another class of message, a
# getter that is not METH_NOARGS in some confluent-kafka version) takes the
# ordinary call.

ctypedef object (*getter_fn)(object, PyObject*)

cdef PyTypeObject* message_type = NULL
cdef getter_fn get_topic = NULL, get_partition = NULL, get_offset = NULL, get_timestamp = NULL
cdef getter_fn get_key = NULL, get_value = NULL, get_headers = NULL, get_error = NULL


cdef getter_fn getter_of(cls, str name):
    """The C function behind ``cls.name()``, or NULL when it is not a METH_NOARGS method."""
    import types
    descr = cls.__dict__.get(name)
    if type(descr) is not types.MethodDescriptorType:
        return NULL
    cdef PyMethodDef* method = (<PyMethodDescrObject*><PyObject*>descr).d_method
    if method.ml_flags != METH_NOARGS:
        return NULL
    return <getter_fn>method.ml_meth


cdef void _bind_message_getters() except *:
    global message_type, get_topic, get_partition, get_offset, get_timestamp, get_key, get_value, get_headers
    global get_error
    from confluent_kafka import Message
    get_topic, get_partition, get_offset = getter_of(Message, "topic"), getter_of(Message, "partition"), \
        getter_of(Message, "offset")
    get_timestamp, get_key, get_value = getter_of(Message, "timestamp"), getter_of(Message, "key"), \
        getter_of(Message, "value")
    get_headers, get_error = getter_of(Message, "headers"), getter_of(Message, "error")
    message_type = <PyTypeObject*>Message  # (confluent_kafka's module keeps the class alive)


def direct_getters() -> int:
    """How many of a Message's eight getters this module calls directly (tests check: eight)."""
    bind_getters()
    cdef getter_fn[8] fns = [get_topic, get_partition, get_offset, get_timestamp, get_key, get_value, get_headers,
                             get_error]
    cdef int i, n = 0
    for i in range(8):
        n += fns[i] != NULL
    return n


cdef inline object field(getter_fn fn, m, str name):
    if fn != NULL and Py_TYPE(m) == message_type:
        return fn(m, NULL)
    return getattr(m, name)()


cdef bint getters_bound = False


cdef inline void bind_getters() except *:
    """Binds the getters on first use (importing this module does not import confluent-kafka)."""
    global getters_bound
    if getters_bound:
        return
    getters_bound = True
    try:
        _bind_message_getters()
    except ImportError:  # (no confluent-kafka: the Kafka backend is not usable anyway)
        pass


cdef enum:
    PENDING = 0
    DONE = 1
    FAILED = 2

_monotonic = time.monotonic


# ---------------------------------------------------------------- producing

@cython.freelist(64)
cdef class KafkaDeliveryFuture:
    """The outcome of one ``send()``: ``result(timeout)`` -> ``RecordMetadata``
    (timestamp in ns), ``get`` (kafka-python's name), ``done``,
    ``exception``, ``add_done_callback``. Resolved once the broker
    acknowledged the record as ``acks`` asks.

    The future is itself the delivery callback librdkafka is given (calling
    it with ``(err, msg)`` is librdkafka's delivery report): no bound method
    is made per record."""

    cdef int _state
    cdef object _value          # the confluent Message until RecordMetadata is asked for; the error once failed
    cdef list _callbacks
    cdef object _on_delivery
    cdef object _client         # the librdkafka producer: a waiting result() serves its delivery reports

    def __call__(self, err, msg):
        if err is None:
            self._value = msg  # (RecordMetadata made when asked for: most futures are never looked at)
            self._state = DONE
            if self._on_delivery is None and self._callbacks is None:
                return
        else:
            track(self)  # (the error, once raised, holds a traceback: frames that may hold this future)
            self._value = from_kafka(err, f"delivery to {msg.topic()!r}", DeliveryError)
            self._state = FAILED
        if self._on_delivery is not None:
            if self._state == DONE:
                self._on_delivery(None, self._metadata())
            else:
                self._on_delivery(self._value, None)
        for fn in self._callbacks or ():
            fn(self)

    cdef object _metadata(self):
        value = self._value
        if type(value) is RecordMetadata:
            return value
        msg = value
        self._value = value = RecordMetadata(msg.topic(), msg.partition(), msg.offset(),
                                             msg.timestamp()[1] * 1_000_000)
        return value

    def done(self) -> bool:
        return self._state != PENDING

    cdef _wait(self, timeout):
        if self._state != PENDING:
            return
        deadline = None if timeout is None else _monotonic() + timeout
        client = self._client
        while self._state == PENDING:
            left = 0.1 if deadline is None else min(0.1, deadline - _monotonic())
            if left <= 0:
                raise TimeoutError(f"no acknowledgement within {timeout} s")
            try:
                client.poll(left)  # (runs this record's delivery report, in this thread, as soon as it comes)
            except RuntimeError:  # the producer was closed and destroyed: its reports were served then
                break

    def result(self, timeout=None):
        self._wait(timeout)
        if self._state == FAILED:
            raise self._value
        return self._metadata()

    def get(self, timeout=None):
        """``result`` under kafka-python's name."""
        return self.result(timeout)

    def exception(self, timeout=None):
        self._wait(timeout)
        return self._value if self._state == FAILED else None

    def add_done_callback(self, fn) -> None:
        if self._state != PENDING:
            fn(self)
            return
        track(self)  # (fn may hold this future: a cycle the collector must see)
        if self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def __repr__(self):
        state = ("pending", "done", "failed")[self._state]
        return f"<tidelog.KafkaDeliveryFuture {state}>"


cdef inline KafkaDeliveryFuture new_future(on_delivery, client):
    cdef KafkaDeliveryFuture fut = KafkaDeliveryFuture.__new__(KafkaDeliveryFuture)
    fut._on_delivery = on_delivery
    fut._client = client
    if on_delivery is None:
        # Nothing it holds can lead back to it (the producer, then the delivered Message or its
        # RecordMetadata): out of the cyclic collector's sight. A million futures in flight
        # otherwise make every collection walk them all, which cost more than the rest of send.
        PyObject_GC_UnTrack(<void*>fut)
    return fut


cdef inline void track(KafkaDeliveryFuture fut):
    """Back in the collector's sight, once the future may hold something that holds it."""
    if not PyObject_GC_IsTracked(fut):
        PyObject_GC_Track(<void*>fut)


@cython.final
cdef class SendPath:
    """``KafkaProducer.send`` as compiled code: the common call (bytes or
    None value and key, a topic already checked, no headers, partition or
    timestamp) goes straight to librdkafka's produce with a new future as
    its callback; any other call, or a produce that raises (a full queue, a
    refusal), goes to ``general`` (the producer's Python path, which waits
    or maps the error). Every ``serve_every`` records it serves delivery
    reports (librdkafka runs callbacks only inside poll)."""

    cdef object _client
    cdef object _produce
    cdef set _known
    cdef object _general
    cdef int _serve_every
    cdef int _until_serve
    cdef public double served_at

    def __init__(self, client, set known, general, int serve_every):
        self._client = client
        self._produce = client.produce
        self._known = known
        self._general = general
        self._serve_every = self._until_serve = serve_every
        self.served_at = _monotonic()

    def send(self, topic, value=None, key=None, headers=None, timestamp=None, partition=None, on_delivery=None,
             timestamp_ms=None):
        cdef KafkaDeliveryFuture fut
        if (headers is None and partition is None and timestamp is None and timestamp_ms is None
                and (value is None or PyBytes_CheckExact(value)) and (key is None or PyBytes_CheckExact(key))
                and topic in self._known):
            fut = new_future(on_delivery, self._client)
            try:
                self._produce(topic, value, key, on_delivery=fut)
            except Exception:  # a full queue or a refusal: the general path waits or maps the error
                return self._general(topic, value, key, headers, timestamp, partition, on_delivery, timestamp_ms)
            self.sent()
            return fut
        return self._general(topic, value, key, headers, timestamp, partition, on_delivery, timestamp_ms)

    def future(self, on_delivery):
        """A new future for a record the general path sends."""
        return new_future(on_delivery, self._client)

    cpdef sent(self):
        """Counts one queued record; serves delivery reports every ``serve_every``."""
        self._until_serve -= 1
        if self._until_serve <= 0:
            self.serve()

    cpdef serve(self):
        self._until_serve = self._serve_every
        self._client.poll(0)
        self.served_at = _monotonic()

    def detach(self) -> None:
        """Drops the librdkafka producer (closed: it is destroyed, not kept alive by this path)."""
        self._client = self._produce = None
        self._known = set()


# ---------------------------------------------------------------- consuming

@cython.final
cdef class ReadPath:
    """``KafkaConsumer.poll`` and its iteration as compiled code, and the
    consumer's reading state: ``buffer`` (confluent Messages fetched, not yet
    returned, newest first) and ``positions`` ((topic, partition) -> the
    offset after the last record returned), which the consumer's Python side
    reaches as ``_buffer`` and ``_positions``. That side fetches (``_fetch``
    fills the buffer), seeks and commits; this pops messages off the buffer.

    The position a record moves is kept in C (``_key``, ``_next``) and
    written into the dict when another partition's record comes or when the
    dict is asked for: every reader of positions goes through ``positions``."""

    cdef object _consumer
    cdef object _registry
    cdef public list buffer
    cdef dict _positions
    cdef tuple _key        # the last record's (topic, partition) ...
    cdef int64_t _next     # ... and the offset after it,
    cdef bint _unwritten   # not in _positions yet

    def __init__(self, consumer, registry):
        bind_getters()
        self._consumer = consumer
        self._registry = registry  # (its ``columnar`` dict is replaced on refresh: read at each record)
        self.buffer = []
        self._positions = {}
        self._key = ("", -1)
        self._unwritten = False

    @property
    def positions(self) -> dict:
        if self._unwritten:
            self._positions[self._key] = self._next
            self._unwritten = False
        return self._positions

    @positions.setter
    def positions(self, dict positions):
        self._unwritten = False  # (what it held belonged to the dict replaced)
        self._positions = positions

    cdef Record record(self, m, columnar):
        """One confluent Message as a tidelog.Record; the consumer's position moves past it."""
        cdef Record r
        topic = field(get_topic, m, "topic")
        partition = field(get_partition, m, "partition")
        cdef int64_t offset = field(get_offset, m, "offset")
        if columnar and topic in columnar:
            raise TypeError(f"topic {topic!r} is columnar: read it with poll_batch() or topic.scan()")
        key = self._key
        if key[1] != partition or key[0] != topic:
            if self._unwritten:
                self._positions[key] = self._next
            self._key = (topic, partition)
        self._next = offset + 1
        self._unwritten = True
        r = Record.__new__(Record)
        r.topic = topic
        r.partition = partition
        r.offset = offset
        r.timestamp = <int64_t>field(get_timestamp, m, "timestamp")[1] * 1_000_000
        r.key = field(get_key, m, "key")
        r.value = field(get_value, m, "value")
        headers = field(get_headers, m, "headers")
        r.headers = [] if headers is None else list(headers)
        return r

    def poll(self, timeout=None):
        if not self.buffer:
            if not self._consumer._fetch(None if timeout is None else _monotonic() + timeout):
                return None
        return self.record(self.buffer.pop(), self._registry.columnar)

    def records(self):
        """An iterator over every record as it comes (``for rec in consumer``)."""
        return Records(self)


@cython.final
cdef class Records:
    """``for rec in consumer``: each step pops the consumer's buffer as it is
    then (a seek in the loop's body replaces it), fetching when it is empty."""

    cdef ReadPath _read

    def __init__(self, ReadPath read):
        self._read = read

    def __iter__(self):
        return self

    def __next__(self):
        cdef ReadPath read = self._read
        while not read.buffer:
            read._consumer._fetch(None)
        return read.record(read.buffer.pop(), read._registry.columnar)


def usable(list msgs):
    """(the messages without an error, newest first; whether any had one)."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(msgs)
    cdef list good = []
    bind_getters()
    for i in range(n - 1, -1, -1):
        m = <object>PyList_GET_ITEM(msgs, i)
        if field(get_error, m, "error") is None:
            good.append(m)
    return good, len(good) != n


def take_partition(list buf, Py_ssize_t max_records):
    """Takes from the end of ``buf`` (newest first) up to ``max_records``
    messages of the last one's partition, oldest first."""
    cdef Py_ssize_t n = PyList_GET_SIZE(buf)
    cdef Py_ssize_t lo = max(0, n - max_records)
    cdef Py_ssize_t j = n - 1
    bind_getters()
    last = buf[n - 1]
    topic, partition = field(get_topic, last, "topic"), field(get_partition, last, "partition")
    while j > lo:
        m = <object>PyList_GET_ITEM(buf, j - 1)
        if field(get_partition, m, "partition") != partition or field(get_topic, m, "topic") != topic:
            break
        j -= 1
    taken = buf[j:]
    del buf[j:]
    taken.reverse()
    return topic, partition, taken


cdef object binary_array(PyObject** items, Py_ssize_t n, Py_ssize_t nulls, Py_ssize_t size):
    """A pa.binary() array of ``n`` bytes objects (NULL = None) holding ``size`` bytes together."""
    cdef Py_ssize_t i, at = 0
    cdef int32_t* offsets
    cdef uint8_t* data
    cdef uint8_t* bits
    if nulls == n:
        return pa.nulls(n, pa.binary())
    if size > INT32_MAX:  # (more than one binary array holds: pyarrow's own chunking, as ever)
        return pa.array([None if items[i] == NULL else <object>items[i] for i in range(n)], pa.binary())
    offsets_buf = pa.allocate_buffer((n + 1) * sizeof(int32_t))
    data_buf = pa.allocate_buffer(size)
    offsets = <int32_t*><uintptr_t>offsets_buf.address
    data = <uint8_t*><uintptr_t>data_buf.address
    validity_buf = None
    if nulls:
        validity_buf = pa.allocate_buffer((n + 7) // 8)
        bits = <uint8_t*><uintptr_t>validity_buf.address
        memset(bits, 0, (n + 7) // 8)
    for i in range(n):
        offsets[i] = <int32_t>at
        if items[i] == NULL:
            continue
        if nulls:
            bits[i >> 3] |= <uint8_t>(1 << (i & 7))
        memcpy(data + at, PyBytes_AS_STRING(<object>items[i]), PyBytes_GET_SIZE(<object>items[i]))
        at += PyBytes_GET_SIZE(<object>items[i])
    offsets[n] = <int32_t>at
    return pa.Array.from_buffers(pa.binary(), n, [validity_buf, offsets_buf, data_buf], null_count=nulls)


def byte_columns(list msgs):
    """The record columns of messages of a byte topic (oldest first):
    (Kafka offsets as int64 ndarray, timestamps in ns as int64 ndarray, keys
    and values as pa.binary() arrays, every message's headers, or None when
    none has any)."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(msgs)
    cdef Py_ssize_t key_nulls = 0, value_nulls = 0, key_size = 0, value_size = 0
    cdef int64_t[::1] offsets = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] stamps = np.empty(n, dtype=np.int64)
    # Borrowed: each message holds its key and value as long as ``msgs`` lives.
    cdef PyObject** keys = <PyObject**>malloc(n * sizeof(PyObject*) + 1)
    cdef PyObject** values = <PyObject**>malloc(n * sizeof(PyObject*) + 1)
    cdef list headers = None
    bind_getters()
    if keys == NULL or values == NULL:
        free(keys)
        free(values)
        raise MemoryError()
    try:
        for i in range(n):
            m = <object>PyList_GET_ITEM(msgs, i)
            offsets[i] = field(get_offset, m, "offset")
            stamps[i] = <int64_t>field(get_timestamp, m, "timestamp")[1] * 1_000_000
            k = field(get_key, m, "key")
            v = field(get_value, m, "value")
            if not (k is None or PyBytes_CheckExact(k)) or not (v is None or PyBytes_CheckExact(v)):
                raise TypeError(f"a Kafka message's key and value are bytes or None, not {type(k).__name__} "
                                f"and {type(v).__name__}")
            if k is None:
                keys[i] = NULL
                key_nulls += 1
            else:
                keys[i] = <PyObject*>k
                key_size += PyBytes_GET_SIZE(k)
            if v is None:
                values[i] = NULL
                value_nulls += 1
            else:
                values[i] = <PyObject*>v
                value_size += PyBytes_GET_SIZE(v)
            h = field(get_headers, m, "headers")
            if h and headers is None:  # (an empty list is no headers, as None)
                headers = [msg.headers() for msg in msgs[:i]]
            if headers is not None:
                headers.append(h)
        return (offsets.base, stamps.base, binary_array(keys, n, key_nulls, key_size),
                binary_array(values, n, value_nulls, value_size), headers)
    finally:
        free(keys)
        free(values)
