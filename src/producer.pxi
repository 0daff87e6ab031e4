# The producer's hot path and the consumer's record decoding, included by _core.pyx.
#
# Producer.send() appends a record to a native record_builder (native/record_builder.h)
# held by the open ProducerBatch of its (topic, partition): no Python object is kept
# per record. Sealing, encoding and appending a batch happen in tidelog._producer
# (the "engine"), once per batch. Every step that changes which batch is open runs
# in C with the GIL held and no Python call in between, so it is atomic for Python
# threads; the GIL is what makes send() thread-safe at ~0.3 us per call.
#
# linger_ms=0 on an uncompressed topic takes the direct path instead: send() builds
# a one-record batch, encodes it and appends it to the native partition itself (no
# engine call unless the record has a delivery callback), and result() waits for
# its group-commit ticket in native code. That is the latency path.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libcpp.utility cimport pair
from libc.stdint cimport int32_t, uint16_t
from libc.string cimport memset
from cpython.memoryview cimport PyMemoryView_FromMemory

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clock_id, timespec* ts)
    int CLOCK_REALTIME

cdef extern from "murmur2.h" namespace "tidelog" nogil:
    int kafka_partition(const void* key, size_t length, int partitions)

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    int PyGC_Disable()
    int PyGC_Enable()

BATCH_OPEN = 0
BATCH_SEALED = 1
BATCH_APPENDED = 2
BATCH_DONE = 3
BATCH_FAILED = 4

cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef tuple _column_buffers(const CBinaryColumn& c):
    return ((<uintptr_t>c.validity().data(), c.validity().size()) if c.null_count() else None,
            (<uintptr_t>c.offsets().data(), c.offsets().size() * 4),
            (<uintptr_t>c.data().data(), c.data().size()),
            c.null_count())


@cython.final
cdef class ProducerBatch:
    """Records of one (topic, partition) gathered by a producer, in native column
    buffers. Sealed once, appended as one frame; its futures resolve together."""
    cdef unique_ptr[CRecordBuilder] builder
    cdef readonly str topic
    cdef readonly int partition
    cdef public int state
    cdef public int64_t base_offset
    cdef public object error
    cdef public object callbacks
    cdef public double deadline
    cdef public uint64_t ticket
    cdef public object engine
    # Direct-path batches (appended by send() itself) that no engine list tracks:
    # their futures settle them (see DeliveryFuture.result).
    cdef public bint untracked
    cdef NativeLog nlog

    def __cinit__(self, str topic, int partition, engine):
        self.builder.reset(new CRecordBuilder())
        self.topic = topic
        self.partition = partition
        self.state = 0
        self.base_offset = -1
        self.engine = engine

    @property
    def count(self):
        return self.builder.get().count()

    @property
    def nbytes(self):
        return self.builder.get().bytes()

    @property
    def min_timestamp(self):
        return self.builder.get().min_timestamp()

    @property
    def max_timestamp(self):
        return self.builder.get().max_timestamp()

    def reserve(self, size_t records, size_t nbytes):
        """Pre-sizes the columns (the engine passes the previous batch's size)."""
        self.builder.get().reserve(records, nbytes)

    def timestamp_at(self, Py_ssize_t i):
        return self.builder.get().timestamps()[i]

    def column_buffers(self):
        """(address, length) of every column buffer plus null counts, for
        pa.foreign_buffer(..., base=self): ts, key (validity, offsets, data, nulls),
        value (same), header list offsets, header names (offsets, data), header
        values (validity, offsets, data, nulls), header count."""
        cdef CRecordBuilder* b = self.builder.get()
        return (
            (<uintptr_t>b.timestamps().data(), b.timestamps().size() * 8),
            _column_buffers(b.keys()),
            _column_buffers(b.values()),
            (<uintptr_t>b.header_offsets().data(), b.header_offsets().size() * 4),
            _column_buffers(b.header_names()),
            _column_buffers(b.header_values()),
            b.header_names().count(),
        )

    def add_callback(self, Py_ssize_t index, callback):
        if self.callbacks is None:
            self.callbacks = []
        self.callbacks.append((index, callback))

    def __repr__(self):
        names = ("open", "sealed", "appended", "done", "failed")
        return f"<ProducerBatch {self.topic}[{self.partition}] {self.count} records {names[self.state]}>"


@cython.freelist(1024)
@cython.final
@cython.no_gc
cdef class DeliveryFuture:
    """The outcome of one send(): result(timeout) -> RecordMetadata."""
    cdef ProducerBatch batch
    cdef Py_ssize_t index
    # The direct path announced this record's wait to the group committer
    # (committer::announce); result() hands it over, or dealloc withdraws it.
    cdef bint announced

    def __dealloc__(self):
        if self.announced:
            self.batch.nlog.core.get().retract()

    cdef int _settle_untracked(self, bint block) except -1:
        """A direct-path batch waiting for durability: waits (if block) for its
        ticket in native code and marks it done."""
        cdef ProducerBatch b = self.batch
        cdef CLogCore* core = b.nlog.core.get()
        cdef uint64_t ticket = b.ticket
        cdef bint announced = self.announced
        if not block and not core.is_durable(ticket):
            return 0
        self.announced = False
        try:
            with nogil:
                core.wait_durable(ticket, announced, signal_raised, NULL)
        except KeyboardInterrupt:
            # The caller gave up waiting, not the append: the engine settles it.
            if b.state == BATCH_APPENDED:
                b.engine.track_direct(b)
            raise
        except BaseException as e:
            if b.state == BATCH_APPENDED:
                b.engine._finish([b], BATCH_FAILED, e)
            raise
        if b.state == BATCH_APPENDED:
            b.state = BATCH_DONE
        return 0

    def done(self):
        if self.batch.state == BATCH_APPENDED and self.batch.untracked:
            self._settle_untracked(False)
        return self.batch.state >= BATCH_DONE

    def result(self, timeout=None):
        """Blocks (GIL released) until the record is delivered under the producer's
        acks; returns RecordMetadata(topic, partition, offset, timestamp)."""
        cdef ProducerBatch b = self.batch
        if b.state == BATCH_APPENDED and b.untracked:
            self._settle_untracked(True)
        if b.state < BATCH_DONE:
            b.engine.wait_batch(b, timeout)
        if b.state == BATCH_FAILED:
            raise b.error
        return b.engine.metadata(b.topic, b.partition, b.base_offset + self.index,
                                 b.builder.get().timestamps()[self.index])

    def add_done_callback(self, fn):
        """Calls fn(future) once the record is delivered or failed: at once if it
        already is, else on the thread that completes it (keep fn short and
        thread-safe, e.g. loop.call_soon_threadsafe)."""
        if self.done():
            fn(self)
        else:
            if self.batch.untracked:
                self.batch.untracked = False  # the engine settles it from now on
                self.batch.engine.track_direct(self.batch)
            self.batch.engine.add_done_callback(self.batch, self, fn)

    def get(self, timeout=None):
        """kafka-python's name for ``result(timeout)``."""
        return self.result(timeout)

    def exception(self, timeout=None):
        try:
            self.result(timeout)
        except TimeoutError:
            raise
        except BaseException as e:
            return e
        return None

    def __repr__(self):
        return f"<DeliveryFuture {self.batch.topic}[{self.batch.partition}] #{self.index} {'done' if self.done() else 'pending'}>"


@cython.final
cdef class ProducerTopic:
    """Per-topic state of a producer: the open batch of each partition and the
    sticky partition for unkeyed records."""
    cdef readonly str name
    cdef readonly int partitions
    cdef public list batches
    cdef public int sticky
    cdef public object topic
    cdef public list natives      # NativePartition of each partition (direct path)
    cdef public bint plain        # uncompressed: the direct path can encode it
    cdef public bint ticketed     # durability "fsync"/"interval": appends return a ticket to wait for

    def __cinit__(self, str name, int partitions, topic):
        self.name = name
        self.partitions = partitions
        self.batches = [None] * partitions
        self.sticky = 0
        self.topic = topic
        self.natives = list(topic._partitions)
        self.plain = topic.config.compression == "none"
        self.ticketed = topic.config.durability != "none"


def install_batch(ProducerTopic st, int partition, ProducerBatch fresh):
    """Makes `fresh` the open batch of `partition` unless another thread already
    installed an open one; returns the open batch. Atomic under the GIL."""
    cdef object cur = st.batches[partition]
    if cur is not None and (<ProducerBatch>cur).state == BATCH_OPEN:
        return cur
    st.batches[partition] = fresh
    return fresh


def take_open_batch(ProducerTopic st, int partition, ProducerBatch batch, queue):
    """Seals `batch` if it is still the open batch of its partition and appends it
    to `queue` (a deque), so queue order is seal order; True if this call sealed
    it. Atomic under the GIL (deque.append runs no Python code)."""
    if batch.state != BATCH_OPEN or batch.builder.get().count() == 0:
        return False  # an empty batch stays open: a send() may be about to fill it
    batch.state = BATCH_SEALED
    queue.append(batch)
    if st.batches[partition] is batch:
        st.batches[partition] = None
    if st.sticky == partition:
        st.sticky = (partition + 1) % st.partitions
    return True


cdef int64_t PLAUSIBLE_MIN_NS = 315_532_800 * 1_000_000_000    # 1980-01-01
cdef int64_t PLAUSIBLE_MAX_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01


cdef class Producer:
    """A thread-safe record producer (see tidelog.Log.producer)."""
    cdef dict _topics
    cdef str _last_name
    cdef ProducerTopic _last_topic
    cdef readonly double linger_ms
    cdef readonly Py_ssize_t batch_bytes
    cdef readonly str acks
    cdef readonly Py_ssize_t max_record_bytes
    cdef bint _immediate
    cdef bint _durable_acks
    cdef public bint _closed
    cdef public object _engine
    cdef object __weakref__  # the log flushes and closes its producers at close and at exit

    def __init__(self, engine, double linger_ms, Py_ssize_t batch_bytes, str acks, Py_ssize_t max_record_bytes):
        self._topics = {}
        self._engine = engine
        self.linger_ms = linger_ms
        self.batch_bytes = batch_bytes
        self.acks = acks
        self.max_record_bytes = max_record_bytes
        self._immediate = linger_ms <= 0
        self._durable_acks = acks == "durable"
        self._closed = False

    cdef ProducerTopic _topic(self, str name):
        if name is self._last_name:
            return self._last_topic
        st = self._topics.get(name)
        if st is None:
            st = self._engine.topic_state(name)  # raises UnknownTopicError
            self._topics[name] = st
        self._last_name = name
        self._last_topic = <ProducerTopic>st
        return <ProducerTopic>st

    def send(self, str topic not None, value=None, key=None, headers=None, timestamp=None, partition=None,
             on_delivery=None, timestamp_ms=None):
        """Queues one record; returns a DeliveryFuture. Keyed records go to
        murmur2(key) % partitions (Kafka's default), unkeyed ones to the sticky
        partition; ``partition=`` overrides both. on_delivery(err, metadata) runs
        in poll()/flush() on the calling thread.

        ``timestamp``: int nanoseconds since the epoch, a datetime (naive = UTC),
        numpy.datetime64, pandas.Timestamp or ISO-8601 string; ``timestamp_ms``:
        int milliseconds, as Kafka's clients take it. Default: now. An int
        ``timestamp`` before 1980 or after 2200 warns (TimestampWarning): it is
        probably not nanoseconds. Keys, values and header values may be bytes
        (or any buffer) or str (sent as UTF-8)."""
        if self._closed:
            raise LogClosedError("the producer is closed")
        if timestamp_ms is not None:
            if timestamp is not None:
                raise ValueError("give timestamp (ns) or timestamp_ms, not both")
            if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
                raise TypeError(f"timestamp_ms must be an int (milliseconds), not {type(timestamp_ms).__name__}")
            timestamp = timestamp_ms * 1_000_000
        cdef ProducerTopic st = self._topic(topic)
        cdef Py_buffer kbuf, vbuf, hbuf
        cdef bint kheld = False, vheld = False
        cdef const unsigned char* kp = NULL
        cdef const unsigned char* vp = NULL
        cdef Py_ssize_t kl = -1, vl = -1, hl = 0, size, i, nh = 0
        cdef int p
        cdef int64_t ts
        cdef ProducerBatch batch
        cdef vector[pair[const unsigned char*, Py_ssize_t]] hnames
        cdef vector[pair[const unsigned char*, Py_ssize_t]] hvalues
        cdef list hitems = None
        cdef bint direct = False
        cdef vector[Py_buffer] hviews
        cdef Py_ssize_t nheld = 0
        try:
            if key is not None:
                if PyBytes_CheckExact(key):
                    kp = <const unsigned char*>PyBytes_AS_STRING(key)
                    kl = PyBytes_GET_SIZE(key)
                elif isinstance(key, str):
                    kp = <const unsigned char*>PyUnicode_AsUTF8AndSize(key, &kl)
                else:
                    PyObject_GetBuffer(key, &kbuf, PyBUF_SIMPLE)
                    kheld = True
                    kp = <const unsigned char*>kbuf.buf
                    kl = kbuf.len
            if value is not None:
                if PyBytes_CheckExact(value):
                    vp = <const unsigned char*>PyBytes_AS_STRING(value)
                    vl = PyBytes_GET_SIZE(value)
                elif isinstance(value, str):
                    vp = <const unsigned char*>PyUnicode_AsUTF8AndSize(value, &vl)
                else:
                    PyObject_GetBuffer(value, &vbuf, PyBUF_SIMPLE)
                    vheld = True
                    vp = <const unsigned char*>vbuf.buf
                    vl = vbuf.len
            size = (kl if kl > 0 else 0) + (vl if vl > 0 else 0)
            if headers is not None:
                # Validate every header before anything is added to the batch.
                hitems = list(headers.items()) if isinstance(headers, dict) else list(headers)
                nh = len(hitems)
                hnames.resize(nh)
                hvalues.resize(nh)
                hviews.resize(nh)
                for i in range(nh):
                    item = hitems[i]
                    if not isinstance(item, tuple) or len(item) != 2:
                        raise TypeError("headers must be a dict or a list of (str, bytes) pairs")
                    name, hv = item
                    if not isinstance(name, str):
                        raise TypeError(f"a header name must be str, not {type(name).__name__}")
                    hnames[i].first = <const unsigned char*>PyUnicode_AsUTF8AndSize(name, &hl)
                    hnames[i].second = hl
                    size += hl
                    if hv is None:
                        hvalues[i].first = NULL
                        hvalues[i].second = -1
                    elif PyBytes_CheckExact(hv):
                        hvalues[i].first = <const unsigned char*>PyBytes_AS_STRING(hv)
                        hvalues[i].second = PyBytes_GET_SIZE(hv)
                    elif isinstance(hv, str):
                        hvalues[i].first = <const unsigned char*>PyUnicode_AsUTF8AndSize(hv, &hl)
                        hvalues[i].second = hl
                    else:
                        PyObject_GetBuffer(hv, &hviews[nheld], PyBUF_SIMPLE)
                        hvalues[i].first = <const unsigned char*>hviews[nheld].buf
                        hvalues[i].second = hviews[nheld].len
                        nheld += 1
                    size += hvalues[i].second if hvalues[i].second > 0 else 0
            if size > self.max_record_bytes:
                raise RecordTooLargeError(f"record of {size} bytes is over max_record_bytes={self.max_record_bytes}")
            if partition is not None:
                p = partition
                if p < 0 or p >= st.partitions:
                    raise ValueError(f"topic {topic!r} has partitions 0..{st.partitions - 1}, not {partition}")
            elif kp != NULL:
                p = kafka_partition(kp, <size_t>kl, st.partitions)
            else:
                p = st.sticky
            if timestamp is None:
                ts = _now_ns()
            elif type(timestamp) is int:
                try:
                    ts = timestamp
                except OverflowError:
                    ts = self._engine.to_ns(timestamp)  # raises the ValueError that explains the range
                if ts < PLAUSIBLE_MIN_NS or ts >= PLAUSIBLE_MAX_NS:
                    self._engine.warn_timestamp(ts)
            else:
                ts = self._engine.to_ns(timestamp)
            direct = self._immediate and st.plain and (st.ticketed or not self._durable_acks)
            if direct:
                batch = ProducerBatch.__new__(ProducerBatch, topic, p, self._engine)
            else:
                while True:
                    # new_batch runs Python code (another thread may seal what it
                    # installed), so re-check: the add below must hit an open batch.
                    cur = <object>PyList_GET_ITEM(st.batches, p)
                    if cur is not None and (<ProducerBatch>cur).state == BATCH_OPEN:
                        break
                    self._engine.new_batch(st, p)
                batch = <ProducerBatch>cur
            # From here to the future: no Python calls, so no other thread runs in between.
            batch.builder.get().add(ts, kp, kl, vp, vl)
            for i in range(nh):
                batch.builder.get().add_header(hnames[i].first, <size_t>hnames[i].second, hvalues[i].first,
                                               hvalues[i].second)
        finally:
            if kheld:
                PyBuffer_Release(&kbuf)
            if vheld:
                PyBuffer_Release(&vbuf)
            for i in range(nheld):
                PyBuffer_Release(&hviews[i])
        cdef DeliveryFuture fut = DeliveryFuture.__new__(DeliveryFuture)
        fut.batch = batch
        fut.index = <Py_ssize_t>batch.builder.get().count() - 1
        if on_delivery is not None:
            batch.add_callback(fut.index, on_delivery)
        if direct:
            self._append_direct(st, p, batch, fut)
        elif <Py_ssize_t>batch.builder.get().bytes() >= self.batch_bytes:
            self._engine.seal(st, p, batch)
        elif self._immediate:
            self._engine.seal_soon(st, p, batch)
        return fut

    cdef int _append_direct(self, ProducerTopic st, int p, ProducerBatch batch, DeliveryFuture fut) except -1:
        """The direct path: encodes the one-record batch and appends it now."""
        cdef NativePartition np = <NativePartition>st.natives[p]
        cdef CPartition* part = np._get()
        cdef CLogCore* core = np.log.core.get()
        cdef const unsigned char* ptrs[RECORD_BUFFERS]
        cdef int64_t lens[RECORD_BUFFERS]
        cdef iovec iov[2 * RECORD_BUFFERS + 1]
        cdef CAppendRequest req
        cdef CAppendResult res
        cdef bytes head = _record_message_head(batch, ptrs, lens)
        cdef int pieces = _record_iov(head, ptrs, lens, iov)
        cdef bint announced = self._durable_acks and st.ticketed
        req.pieces = iov
        req.piece_count = pieces
        req.record_count = <uint32_t>batch.builder.get().count()
        req.min_timestamp = batch.builder.get().min_timestamp()
        req.max_timestamp = batch.builder.get().max_timestamp()
        req.codec = 0
        req.flags = 0
        req.schema_id = 0
        req.body_offset = PyBytes_GET_SIZE(head)
        batch.nlog = np.log
        if announced:
            core.announce()  # so a due group commit waits for this append
        try:
            if <Py_ssize_t>batch.builder.get().bytes() < SMALL_APPEND_BYTES:
                res = part.append(req)  # a few microseconds: cheaper than a GIL hand-off
            else:
                with nogil:
                    res = part.append(req)
        except BaseException as e:
            if announced:
                core.retract()
            err = e if isinstance(e, TidelogError) else DeliveryError(f"append to {st.name}[{p}] failed: {e}")
            if err is not e:
                err.__cause__ = e
            self._engine._finish([batch], BATCH_FAILED, err)
            return 0
        batch.base_offset = res.base_offset
        batch.ticket = res.ticket
        if not self._durable_acks:
            if batch.callbacks is None:
                batch.state = BATCH_DONE
            else:
                self._engine._finish([batch], BATCH_DONE)
            return 0
        batch.state = BATCH_APPENDED
        if batch.callbacks is None:
            batch.untracked = True
            fut.announced = announced
        else:
            if announced:
                core.retract()  # the engine's thread waits for it, not this record's caller
            self._engine.track_direct(batch)
        return 0

    def send_many(self, str topic not None, values, keys=None, headers=None, partition=None):
        """Appends many records at once (lists of bytes or Arrow binary arrays).
        Returns an AppendResult ({partition: (first, last)}) once delivered under acks."""
        if self._closed:
            raise LogClosedError("the producer is closed")
        return self._engine.send_many(self._topic(topic), values, keys, headers, partition)

    def flush(self, timeout=None):
        """Sends every queued record, waits for delivery, runs delivery callbacks."""
        return self._engine.flush(timeout)

    def poll(self, timeout=0):
        """Runs the delivery callbacks of records delivered so far; returns how many."""
        return self._engine.poll(timeout)

    def close(self, timeout=None):
        """Flushes (waiting up to ``timeout`` seconds; None: as long as it takes),
        then stops the producer's background thread. Records that could not be
        delivered fail their futures and callbacks with DeliveryError at once."""
        if not self._closed:
            try:
                self._engine.flush(timeout)
            finally:
                self._closed = True
                self._engine.abort(DeliveryError("the producer was closed before the record was delivered"))
                self._engine.close()
                self._engine.poll(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<tidelog.Producer acks={self.acks!r} linger_ms={self.linger_ms} batch_bytes={self.batch_bytes}>"


@cython.freelist(256)
@cython.final
@cython.no_gc
cdef class Record:
    """One record as consumed: topic, partition, offset, timestamp (int ns), key,
    value (bytes or None) and headers (a list of (str, bytes) pairs)."""
    cdef readonly str topic
    cdef readonly int partition
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key
    cdef readonly object value
    cdef readonly list headers

    def __init__(self, str topic, int partition, int64_t offset, int64_t timestamp, key, value, headers=None):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = [] if headers is None else list(headers)

    def __repr__(self):
        return (f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
                f"timestamp={self.timestamp}, key={self.key!r}, value={self.value!r}, headers={self.headers!r})")

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        o = <Record>other
        return (self.topic == o.topic and self.partition == o.partition and self.offset == o.offset
                and self.timestamp == o.timestamp and self.key == o.key and self.value == o.value
                and self.headers == o.headers)

    def __hash__(self):
        return hash((self.topic, self.partition, self.offset))

    def __reduce__(self):
        return (Record, (self.topic, self.partition, self.offset, self.timestamp, self.key, self.value, self.headers))


cdef inline object _binary_at(const unsigned char* validity, Py_ssize_t voff, const int* offsets,
                              const unsigned char* data, Py_ssize_t i):
    cdef Py_ssize_t j = voff + i
    if validity != NULL and not (validity[j >> 3] >> (j & 7)) & 1:
        return None
    return PyBytes_FromStringAndSize(<const char*>data + offsets[i], offsets[i + 1] - offsets[i])


cdef inline const unsigned char* _addr(buf):
    return <const unsigned char*><uintptr_t>buf.address if buf is not None else NULL


def decode_records(batch, str topic, int partition, int64_t first_offset, Py_ssize_t start, Py_ssize_t stop):
    """Records [start, stop) of a record-schema pa.RecordBatch whose row 0 has
    offset first_offset, as a list of Record, read straight from its buffers."""
    ts_arr, key_arr, value_arr, hdr_arr = batch.column(0), batch.column(1), batch.column(2), batch.column(3)
    if key_arr.type.id != value_arr.type.id or ts_arr.type.bit_width != 64:
        raise TypeError("not a tidelog record batch")
    tsb = ts_arr.buffers()
    kb = key_arr.buffers()
    vb = value_arr.buffers()
    hb = hdr_arr.buffers()
    cdef Py_ssize_t tsoff = ts_arr.offset, koff = key_arr.offset, voff = value_arr.offset, hoff = hdr_arr.offset
    cdef const int64_t* tsv = (<const int64_t*>_addr(tsb[1])) + tsoff
    cdef const unsigned char* kval = _addr(kb[0]) if key_arr.null_count else NULL
    cdef const int* koffs = (<const int*>_addr(kb[1])) + koff
    cdef const unsigned char* kdata = _addr(kb[2])
    cdef const unsigned char* vval = _addr(vb[0]) if value_arr.null_count else NULL
    cdef const int* voffs = (<const int*>_addr(vb[1])) + voff
    cdef const unsigned char* vdata = _addr(vb[2])
    cdef const int* hoffs = (<const int*>_addr(hb[1])) + hoff
    # The struct child of the headers list: names (string) and values (binary).
    hstruct = hdr_arr.values if hdr_arr.offset == 0 else hdr_arr.flatten()
    cdef Py_ssize_t hbase = 0 if hdr_arr.offset == 0 else hoffs[0]
    names = hstruct.field(0)
    hvalues = hstruct.field(1)
    nb = names.buffers()
    hvb = hvalues.buffers()
    cdef Py_ssize_t noff = names.offset, hvoff = hvalues.offset
    cdef const int* noffs = ((<const int*>_addr(nb[1])) + noff) if len(names) else NULL
    cdef const unsigned char* ndata = _addr(nb[2]) if len(names) else NULL
    cdef const unsigned char* hvval = _addr(hvb[0]) if hvalues.null_count else NULL
    cdef const int* hvoffs = ((<const int*>_addr(hvb[1])) + hvoff) if len(hvalues) else NULL
    cdef const unsigned char* hvdata = _addr(hvb[2]) if len(hvalues) else NULL
    cdef Py_ssize_t n = stop - start, i, h, row
    cdef list out = PyList_New(n)
    cdef Record r
    cdef list hl
    # Thousands of fresh objects that all survive would trigger a young-generation
    # collection every 700 allocations (2.5x the cost of decoding): pause the GC.
    cdef int gc_was_enabled = PyGC_Disable()
    try:
        _fill_records(out, n, start, topic, partition, first_offset, tsv, kval, koff, koffs, kdata, vval, voff,
                      voffs, vdata, hoffs, hbase, noffs, ndata, hvval, hvoff, hvoffs, hvdata)
    finally:
        if gc_was_enabled:
            PyGC_Enable()
    return out


cdef int _fill_records(list out, Py_ssize_t n, Py_ssize_t start, str topic, int partition, int64_t first_offset,
                       const int64_t* tsv, const unsigned char* kval, Py_ssize_t koff, const int* koffs,
                       const unsigned char* kdata, const unsigned char* vval, Py_ssize_t voff, const int* voffs,
                       const unsigned char* vdata, const int* hoffs, Py_ssize_t hbase, const int* noffs,
                       const unsigned char* ndata, const unsigned char* hvval, Py_ssize_t hvoff, const int* hvoffs,
                       const unsigned char* hvdata) except -1:
    cdef Py_ssize_t i, h, row
    cdef Record r
    cdef list hl
    for i in range(n):
        row = start + i
        r = Record.__new__(Record)
        r.topic = topic
        r.partition = partition
        r.offset = first_offset + row
        r.timestamp = tsv[row]
        r.key = _binary_at(kval, koff, koffs, kdata, row)
        r.value = _binary_at(vval, voff, voffs, vdata, row)
        hl = []
        for h in range(hoffs[row] - hbase, hoffs[row + 1] - hbase):
            hl.append((PyUnicode_DecodeUTF8(<const char*>ndata + noffs[h], noffs[h + 1] - noffs[h], NULL),
                       _binary_at(hvval, hvoff, hvoffs, hvdata, h)))
        r.headers = hl
        Py_INCREF(r)
        PyList_SET_ITEM(out, i, r)
    return 0


# ---------------------------------------------------------------------------
# Record batches <-> Arrow IPC messages, without pyarrow on the hot paths.
#
# The byte-record schema is fixed, so every record-batch message has the same
# flatbuffer shape: 7 field nodes and 17 buffers. Encoding patches a template
# message that pyarrow serialized once (lengths, null counts, buffer offsets);
# decoding reads the flatbuffer (Message -> RecordBatch -> nodes, buffers) with
# bounds checks. Both fall back to pyarrow for anything else (zstd frames,
# whole-stream frames).

cdef enum:
    RECORD_NODES = 7
    RECORD_BUFFERS = 17

cdef bytes _template = None        # the flatbuffer metadata of a 1-row record batch
cdef Py_ssize_t _tpl_body_length = -1, _tpl_length = -1, _tpl_nodes = -1, _tpl_buffers = -1


cdef inline uint32_t _u32(const unsigned char* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v

cdef inline int64_t _i64(const unsigned char* p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)
    return v


cdef Py_ssize_t _fb_field(const unsigned char* buf, Py_ssize_t size, Py_ssize_t table, int field) except -2:
    """Position of field `field` of the flatbuffer table at `table`, or -1 if absent."""
    cdef int32_t soff
    cdef Py_ssize_t vt, vt_size, off
    if table < 0 or table + 4 > size:
        raise CorruptionError("flatbuffer table out of bounds")
    memcpy(&soff, buf + table, 4)
    vt = table - soff
    if vt < 0 or vt + 4 > size:
        raise CorruptionError("flatbuffer vtable out of bounds")
    vt_size = (<const uint16_t*>(buf + vt))[0]
    if 4 + 2 * field + 2 > vt_size:
        return -1
    off = (<const uint16_t*>(buf + vt))[2 + field]
    if off == 0:
        return -1
    if table + off >= size:
        raise CorruptionError("flatbuffer field out of bounds")
    return table + off


cdef Py_ssize_t _fb_deref(const unsigned char* buf, Py_ssize_t size, Py_ssize_t at) except -2:
    if at < 0 or at + 4 > size:
        raise CorruptionError("flatbuffer offset out of bounds")
    cdef Py_ssize_t target = at + _u32(buf + at)
    if target >= size:
        raise CorruptionError("flatbuffer offset out of bounds")
    return target


cdef int _parse_record_message(const unsigned char* meta, Py_ssize_t size, Py_ssize_t* nodes, Py_ssize_t* buffers,
                               Py_ssize_t* length_at, Py_ssize_t* body_length_at) except -1:
    """Locates the parts of a record-batch Message flatbuffer; -1 with an error if
    it is not an uncompressed record batch of the byte-record shape."""
    cdef Py_ssize_t root = _fb_deref(meta, size, 0)
    cdef Py_ssize_t f_type = _fb_field(meta, size, root, 1)
    if f_type < 0 or meta[f_type] != 3:
        raise NotImplementedError("not a record batch message")
    body_length_at[0] = _fb_field(meta, size, root, 3)
    cdef Py_ssize_t rb = _fb_deref(meta, size, _fb_field(meta, size, root, 2))
    if _fb_field(meta, size, rb, 3) >= 0:
        raise NotImplementedError("compressed record batch")
    length_at[0] = _fb_field(meta, size, rb, 0)
    cdef Py_ssize_t nv = _fb_deref(meta, size, _fb_field(meta, size, rb, 1))
    cdef Py_ssize_t bv = _fb_deref(meta, size, _fb_field(meta, size, rb, 2))
    if _u32(meta + nv) != RECORD_NODES or _u32(meta + bv) != RECORD_BUFFERS:
        raise NotImplementedError("not the byte-record schema")
    if nv + 4 + 16 * RECORD_NODES > size or bv + 4 + 16 * RECORD_BUFFERS > size:
        raise CorruptionError("flatbuffer vector out of bounds")
    nodes[0] = nv + 4
    buffers[0] = bv + 4
    return 0


def set_record_template(message):
    """Registers pyarrow's serialization of a 1-row byte-record batch (all
    lengths non-zero) as the template for encode_record_batch."""
    global _template, _tpl_body_length, _tpl_length, _tpl_nodes, _tpl_buffers
    cdef bytes m = bytes(message)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(m)
    cdef Py_ssize_t meta_len = <Py_ssize_t>_u32(p + 4)
    meta = m[8:8 + meta_len]
    cdef const unsigned char* mp = <const unsigned char*>PyBytes_AS_STRING(meta)
    cdef Py_ssize_t nodes, buffers, length_at, body_at
    _parse_record_message(mp, meta_len, &nodes, &buffers, &length_at, &body_at)
    if length_at < 0 or body_at < 0:
        raise ValueError("template needs non-zero length and body length")
    _template = meta
    _tpl_nodes, _tpl_buffers, _tpl_length, _tpl_body_length = nodes, buffers, length_at, body_at


cdef unsigned char _zeros[8]


cdef bytes _record_message_head(ProducerBatch batch, const unsigned char** ptrs, int64_t* lens):
    """The IPC record-batch message for `batch` without its body: the
    continuation marker, length and flatbuffer metadata (the template, patched).
    Fills ptrs/lens with the body buffers, which follow it in order, each padded
    to 8 bytes (_record_iov)."""
    if _template is None:
        raise RuntimeError("record template not set")
    cdef CRecordBuilder* b = batch.builder.get()
    cdef int64_t n = b.count(), h = b.header_names().count()
    cdef int64_t node_len[RECORD_NODES]
    cdef int64_t node_nulls[RECORD_NODES]
    cdef const CBinaryColumn* cols[4]
    cols[0] = &b.keys()
    cols[1] = &b.values()
    cols[2] = &b.header_names()
    cols[3] = &b.header_values()
    cdef int i
    for i in range(RECORD_BUFFERS):
        ptrs[i] = NULL
        lens[i] = 0
    ptrs[1] = <const unsigned char*>b.timestamps().data(); lens[1] = n * 8
    # key: 2..4, value: 5..7, list: 8..9, struct: 10, names: 11..13, header values: 14..16
    cdef int base_index[4]
    base_index[0] = 2; base_index[1] = 5; base_index[2] = 11; base_index[3] = 14
    cdef int64_t rows
    for i in range(4):
        rows = n if i < 2 else h
        if cols[i].null_count():
            ptrs[base_index[i]] = cols[i].validity().data()
            lens[base_index[i]] = min(<int64_t>cols[i].validity().size(), (rows + 7) // 8)
        ptrs[base_index[i] + 1] = <const unsigned char*>cols[i].offsets().data()
        lens[base_index[i] + 1] = (rows + 1) * 4
        ptrs[base_index[i] + 2] = cols[i].data().data()
        lens[base_index[i] + 2] = cols[i].data().size()
    ptrs[9] = <const unsigned char*>b.header_offsets().data(); lens[9] = (n + 1) * 4
    node_len[0] = n; node_nulls[0] = 0
    node_len[1] = n; node_nulls[1] = cols[0].null_count()
    node_len[2] = n; node_nulls[2] = cols[1].null_count()
    node_len[3] = n; node_nulls[3] = 0
    node_len[4] = h; node_nulls[4] = 0
    node_len[5] = h; node_nulls[5] = 0
    node_len[6] = h; node_nulls[6] = cols[3].null_count()

    cdef Py_ssize_t meta_len = PyBytes_GET_SIZE(_template)
    cdef bytes head = PyBytes_FromStringAndSize(NULL, 8 + meta_len)
    cdef unsigned char* hp = <unsigned char*>PyBytes_AS_STRING(head)
    cdef uint32_t prefix[2]
    prefix[0] = 0xFFFFFFFF
    prefix[1] = <uint32_t>meta_len
    memcpy(hp, prefix, 8)
    memcpy(hp + 8, PyBytes_AS_STRING(_template), meta_len)
    cdef unsigned char* mp = hp + 8
    cdef int64_t offset = 0
    for i in range(RECORD_NODES):
        memcpy(mp + _tpl_nodes + 16 * i, &node_len[i], 8)
        memcpy(mp + _tpl_nodes + 16 * i + 8, &node_nulls[i], 8)
    for i in range(RECORD_BUFFERS):
        memcpy(mp + _tpl_buffers + 16 * i, &offset, 8)
        memcpy(mp + _tpl_buffers + 16 * i + 8, &lens[i], 8)
        offset += (lens[i] + 7) // 8 * 8
    memcpy(mp + _tpl_body_length, &offset, 8)
    memcpy(mp + _tpl_length, &n, 8)
    return head


cdef int _record_iov(bytes head, const unsigned char** ptrs, const int64_t* lens, iovec* iov) noexcept:
    """Head, then each non-empty body buffer and its zero padding; returns the count."""
    cdef int count = 1, i
    cdef int64_t pad
    iov[0].iov_base = <void*>PyBytes_AS_STRING(head)
    iov[0].iov_len = <size_t>PyBytes_GET_SIZE(head)
    for i in range(RECORD_BUFFERS):
        if not lens[i]:
            continue
        iov[count].iov_base = <void*>ptrs[i]
        iov[count].iov_len = <size_t>lens[i]
        count += 1
        pad = (lens[i] + 7) // 8 * 8 - lens[i]
        if pad:
            iov[count].iov_base = <void*>_zeros
            iov[count].iov_len = <size_t>pad
            count += 1
    return count


def encode_record_batch(ProducerBatch batch):
    """(pieces, body_offset) of the IPC record-batch message for `batch`: one
    small metadata buffer, then the builder's own column buffers (no copy) with
    zero padding between them."""
    cdef const unsigned char* ptrs[RECORD_BUFFERS]
    cdef int64_t lens[RECORD_BUFFERS]
    cdef iovec iov[2 * RECORD_BUFFERS + 1]
    cdef bytes head = _record_message_head(batch, ptrs, lens)
    cdef int count = _record_iov(head, ptrs, lens, iov), i
    pieces = [head]
    for i in range(1, count):
        pieces.append(PyMemoryView_FromMemory(<char*>iov[i].iov_base, <Py_ssize_t>iov[i].iov_len, PyBUF_READ))
    return pieces, PyBytes_GET_SIZE(head)


def decode_record_payload(Frame frame not None, str topic, int partition, Py_ssize_t start, Py_ssize_t stop):
    """Records [start, stop) (rows of the frame) of an uncompressed byte-record
    frame, straight from the mapping; NotImplementedError for other shapes."""
    cdef int64_t base_offset = frame.base_offset
    cdef Mapping m = frame.mapping
    cdef const unsigned char* region = m._get().data()
    cdef uint64_t region_len = m._get().length()
    cdef const unsigned char* p = <const unsigned char*>frame.address
    cdef Py_ssize_t plen = <Py_ssize_t>frame.length
    if p < region or <uint64_t>(p - region) + plen > region_len or plen < 8:
        raise CorruptionError("frame payload outside its mapping")
    if _u32(p) != 0xFFFFFFFF:
        raise NotImplementedError("legacy IPC framing")
    cdef Py_ssize_t meta_len = _u32(p + 4)
    if 8 + meta_len > plen:
        raise CorruptionError("IPC metadata longer than the frame")
    cdef const unsigned char* meta = p + 8
    cdef Py_ssize_t nodes, buffers, length_at, body_at
    _parse_record_message(meta, meta_len, &nodes, &buffers, &length_at, &body_at)
    cdef const unsigned char* body = p + 8 + meta_len
    cdef int64_t body_len = plen - 8 - meta_len
    cdef const unsigned char* bp[RECORD_BUFFERS]
    cdef int64_t bl[RECORD_BUFFERS]
    cdef int64_t boff
    cdef int i
    for i in range(RECORD_BUFFERS):
        boff = _i64(meta + buffers + 16 * i)
        bl[i] = _i64(meta + buffers + 16 * i + 8)
        if boff < 0 or bl[i] < 0 or boff + bl[i] > body_len:
            raise CorruptionError("IPC buffer outside the frame")
        bp[i] = body + boff if bl[i] else NULL
    cdef int64_t n = _i64(meta + nodes), h = _i64(meta + nodes + 16 * 4)
    cdef int64_t key_nulls = _i64(meta + nodes + 16 + 8), value_nulls = _i64(meta + nodes + 32 + 8)
    cdef int64_t hv_nulls = _i64(meta + nodes + 96 + 8)
    if start < 0 or stop > n or start > stop:
        raise ValueError("row range outside the frame")
    # Offsets must cover their rows and stay inside their data buffers.
    if bl[1] < n * 8 or bl[3] < (n + 1) * 4 or bl[6] < (n + 1) * 4 or bl[9] < (n + 1) * 4 or \
            (h and (bl[12] < (h + 1) * 4 or bl[15] < (h + 1) * 4)):
        raise CorruptionError("IPC buffers too short for their rows")
    if (key_nulls and bl[2] < (n + 7) // 8) or (value_nulls and bl[5] < (n + 7) // 8) or \
            (hv_nulls and bl[14] < (h + 7) // 8):
        raise CorruptionError("validity bitmap too short")
    _check_offsets(<const int*>bp[3], n, bl[4])
    _check_offsets(<const int*>bp[6], n, bl[7])
    _check_offsets(<const int*>bp[9], n, h)
    if h:
        _check_offsets(<const int*>bp[12], h, bl[13])
        _check_offsets(<const int*>bp[15], h, bl[16])
    cdef list out = PyList_New(stop - start)
    cdef int gc_was_enabled = PyGC_Disable()
    try:
        _fill_records(out, stop - start, start, topic, partition, base_offset, <const int64_t*>bp[1],
                      bp[2] if key_nulls else NULL, 0, <const int*>bp[3], bp[4],
                      bp[5] if value_nulls else NULL, 0, <const int*>bp[6], bp[7],
                      <const int*>bp[9], 0, <const int*>bp[12], bp[13],
                      bp[14] if hv_nulls else NULL, 0, <const int*>bp[15], bp[16])
    finally:
        if gc_was_enabled:
            PyGC_Enable()
    return out


cdef int _check_offsets(const int* offsets, int64_t rows, int64_t data_len) except -1:
    cdef int64_t i
    if offsets[0] < 0:
        raise CorruptionError("negative IPC offset")
    for i in range(rows):
        if offsets[i + 1] < offsets[i]:
            raise CorruptionError("IPC offsets go backwards")
    if offsets[rows] > data_len:
        raise CorruptionError("IPC offsets past their data")
    return 0


from pyarrow import allocate_buffer as _allocate

# Scratch buffers above this stay with their caller only for one call: a
# thread that once sent a huge list should not pin that much memory.
_SCRATCH_KEEP_BYTES = 64 << 20


cdef object _scratch_buffer(list scratch, int slot, Py_ssize_t size):
    """A resizable buffer of at least `size` bytes: scratch[slot] reused (grown
    as needed), or a fresh one without scratch. Reuse matters: copying into
    freshly mapped pages, and the kernel then copying out of them, cost about
    3x what the same copies cost in pages already in use (measured: 87 ms vs
    28 ms to write 50 MB into the page cache)."""
    buf = None if scratch is None else scratch[slot]
    if buf is None or buf.size < size:
        buf = _allocate(max(size, 64) + (size >> 2), resizable=True)
        if scratch is not None:
            scratch[slot] = buf
    return buf


cdef Py_ssize_t _item_size(object item) except -1:
    cdef Py_buffer view
    if item is None:
        return 0
    if PyBytes_CheckExact(item):
        return PyBytes_GET_SIZE(item)
    PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
    size = view.len
    PyBuffer_Release(&view)
    return size


def binary_buffers(list items, list scratch=None):
    """(validity or None, offsets, data, null_count) of an Arrow binary array
    holding `items` (bytes-like or None), built in one C pass over the items
    (a second one only when the data outgrows the buffer): about 3x faster
    than pa.array(items, pa.binary()) for many small values.

    `scratch` (a list of 3 slots, None at first) lends buffers that are kept
    for the next call: the returned buffers are then views of them, valid
    only until that next call with the same scratch."""
    cdef Py_ssize_t n = len(items), i, j, nulls = 0, size, capacity, rest
    cdef bint held
    cdef object item
    cdef Py_buffer view
    offsets = _scratch_buffer(scratch, 0, (n + 1) * 4)
    data = _scratch_buffer(scratch, 1, 0)
    validity = _scratch_buffer(scratch, 2, (n + 7) // 8)
    capacity = data.size
    cdef int* offs = <int*><uintptr_t>offsets.address
    cdef char* dst = <char*><uintptr_t>data.address
    cdef unsigned char* valid = <unsigned char*><uintptr_t>validity.address
    memset(valid, 0, (n + 7) // 8)
    cdef Py_ssize_t at = 0
    cdef const char* src
    offs[0] = 0
    for i in range(n):
        item = <object>PyList_GET_ITEM(items, i)
        if item is None:
            nulls += 1
            offs[i + 1] = <int>at
            continue
        held = False
        if PyBytes_CheckExact(item):
            size = PyBytes_GET_SIZE(item)
            src = PyBytes_AS_STRING(item)
        else:
            PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
            held = True
            size = view.len
            src = <const char*>view.buf
        try:
            if at + size > capacity:
                # Outgrown: size the rest exactly (one more pass), keep what is copied.
                rest = size
                for j in range(i + 1, n):
                    rest += _item_size(<object>PyList_GET_ITEM(items, j))
                if at + rest > 2147483647:
                    raise RecordTooLargeError("a binary column over 2 GiB: send it in parts")
                capacity = at + rest + ((at + rest) >> 3)
                data.resize(capacity)
                dst = <char*><uintptr_t>data.address
            memcpy(dst + at, src, size)
        finally:
            if held:
                PyBuffer_Release(&view)
        at += size
        valid[i >> 3] |= 1 << (i & 7)
        offs[i + 1] = <int>at
    if scratch is not None:
        for j in range(3):  # huge ones are not pinned for later calls; the views below keep them alive for now
            if scratch[j] is not None and scratch[j].size > _SCRATCH_KEEP_BYTES:
                scratch[j] = None
    # Exact lengths: the IPC encoder writes whole buffers.
    return (validity.slice(0, (n + 7) // 8) if nulls else None, offsets.slice(0, (n + 1) * 4),
            data.slice(0, at), nulls)
