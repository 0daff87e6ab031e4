# The producer's per-record hot path (Producer), included by _core.pyx.
#
# Producer.send() appends a record to a native record_builder (native/record_builder.h)
# held by the open ProducerBatch of its (topic, partition): no Python object is kept
# per record. Sealing, encoding and appending a batch happen in the engine
# (producer_engine.pxi declares what send() may call; tidelog._producer
# implements it), once per batch. Every step that changes which batch is open runs
# in C with the GIL held and no Python call in between, so it is atomic for Python
# threads; the GIL is what makes send() thread-safe at ~0.3 us per call.
#
# linger_ms=0 on an uncompressed topic takes the direct path instead: send() builds
# a one-record batch, encodes it and appends it to the native partition itself (no
# engine call unless the record has a delivery callback), and result() waits for
# its group-commit ticket in native code. That is the latency path: a consumer its
# append wakes gets the GIL and the CPU before send() returns.

cdef extern from "murmur2.h" namespace "tidelog" nogil:
    int kafka_partition(const void* key, size_t length, int partitions)

cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


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
    cdef public ProducerEngineBase _engine
    cdef object __weakref__  # the log flushes and closes its producers at close and at exit

    def __init__(self, ProducerEngineBase engine not None, double linger_ms, Py_ssize_t batch_bytes, str acks, Py_ssize_t max_record_bytes):
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
        if name is self._last_name and not self._last_topic.stale:
            return self._last_topic
        st = self._topics.get(name)
        if st is None or (<ProducerTopic>st).stale:
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
        if key is None and st.topic.config.compacted:
            raise InvalidRecordError(f"topic {topic!r} is compacted (cleanup_policy={st.topic.config.cleanup_policy!r}): "
                                     "every record needs a key (a record with a null value deletes its key)")
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
                batch.recyclable = True
            else:
                while True:
                    # _open_batch runs Python code (another thread may seal what it
                    # installed), so re-check: the add below must hit an open batch.
                    cur = <object>PyList_GET_ITEM(st.batches, p)
                    if cur is not None and (<ProducerBatch>cur).state == C_BATCH_OPEN:
                        break
                    self._open_batch(st, p)
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

    cdef int _open_batch(self, ProducerTopic st, int p) except -1:
        """Installs a fresh open batch for partition ``p`` unless one is open (the
        accumulator's side of the flow); with linger_ms > 0 it hands the batch to
        the engine, whose timer seals it at its deadline."""
        cdef object cur = <object>PyList_GET_ITEM(st.batches, p)
        if cur is not None and (<ProducerBatch>cur).state == C_BATCH_OPEN:
            return 0
        cdef ProducerBatch fresh = ProducerBatch.__new__(ProducerBatch, st.name, p, self._engine)
        if not self._immediate:
            fresh.builder.get().reserve(<size_t>self._engine.batch_records, <size_t>self.batch_bytes)
            fresh.deadline = _monotonic() + self.linger_ms / 1000.0
        st.batches[p] = fresh  # nothing ran Python code since the check above
        if not self._immediate:
            self._engine.lingering(fresh)
        return 0

    cdef int _append_direct(self, ProducerTopic st, int p, ProducerBatch batch, DeliveryFuture fut) except -1:
        """The direct path: encodes the one-record batch and appends it now."""
        cdef NativePartition np = <NativePartition>st.natives[p]
        cdef CPartition* part = np.p.get()
        cdef CLogCore* core = np.log.core.get()
        if part == NULL:  # released: its topic was deleted through this handle (or the log closed)
            closed = LogClosedError("the partition is closed (its topic was deleted or its log closed)")
            raise topic_deleted_error(st, closed) or closed  # at send, as Kafka's UNKNOWN_TOPIC_OR_PARTITION
        cdef const unsigned char* ptrs[RECORD_BUFFERS]
        cdef int64_t lens[RECORD_BUFFERS]
        cdef iovec iov[2 * RECORD_BUFFERS + 1]
        cdef CAppendRequest req
        cdef CAppendResult res
        cdef bytes head = _record_message_head(batch.builder.get(), ptrs, lens)
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
        # The publish's wake-ups wait until the GIL is released, and then the
        # CPU goes to whoever they woke (see native/wake_deferral.h).
        defer_wakes()
        try:
            try:
                if <Py_ssize_t>batch.builder.get().bytes() < SMALL_APPEND_BYTES:
                    res = part.append(req)  # a few microseconds: cheaper than a GIL hand-off
                else:
                    with nogil:
                        res = part.append(req)
            finally:
                if wakes_pending():
                    with nogil:
                        wake_deferred(True)
                else:
                    wake_deferred(False)  # stops deferring
        except BaseException as e:
            if announced:
                core.retract()
            err = topic_deleted_error(st, e) or (
                e if isinstance(e, TidelogError) else DeliveryError(f"append to {st.name}[{p}] failed: {e}"))
            if err is not e and err.__cause__ is None:
                err.__cause__ = e
            self._engine.finish([batch], C_BATCH_FAILED, err)
            return 0
        batch.base_offset = res.base_offset
        batch.ticket = res.ticket
        if not self._durable_acks:
            if batch.callbacks is None:
                batch.state = C_BATCH_DONE
            else:
                self._engine.finish([batch], C_BATCH_DONE)
            return 0
        batch.state = C_BATCH_APPENDED
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
