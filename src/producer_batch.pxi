# The state a producer shares with its engine, included by _core.pyx:
# ProducerBatch (the records of one open or in-flight batch, in a native
# record_builder), DeliveryFuture (one send()'s outcome) and ProducerTopic (the
# open batch per partition). Concurrency: no locks of their own. Which batch
# is open, and sealing it, change in C with the GIL held and no Python call in
# between, so atomically for Python threads; after sealing, the engine moves a
# batch's state on under its own locks.

cdef class ProducerEngineBase  # producer_engine.pxi: what these call their engine through

cdef enum:  # a batch's states, in order (C constants: send() compares one per record)
    C_BATCH_OPEN = 0
    C_BATCH_SEALED = 1
    C_BATCH_APPENDED = 2
    C_BATCH_DONE = 3
    C_BATCH_FAILED = 4
BATCH_OPEN = C_BATCH_OPEN
BATCH_SEALED = C_BATCH_SEALED
BATCH_APPENDED = C_BATCH_APPENDED
BATCH_DONE = C_BATCH_DONE
BATCH_FAILED = C_BATCH_FAILED


cdef tuple _column_buffers(const CBinaryColumn& c):
    return ((<uintptr_t>c.validity().data(), c.validity().size()) if c.null_count() else None,
            (<uintptr_t>c.offsets().data(), c.offsets().size() * 4),
            (<uintptr_t>c.data().data(), c.data().size()),
            c.null_count())


# Builders of dead direct-path batches, cleared, for the next direct send: a new
# builder costs about ten allocations (its vectors start empty and grow one by
# one), a fifth of the instructions of a one-record send. Only one-record builders
# of small records come back (a lingering batch reserves megabytes), at most
# POOLED_BUILDERS of them. The GIL guards the pool: batches are made and freed
# with it held.
cdef vector[CRecordBuilder*] _builder_pool
cdef size_t POOLED_BUILDERS = 64
cdef size_t POOLED_BUILDER_BYTES = 16 * 1024
_builder_pool.reserve(POOLED_BUILDERS)  # so returning a builder never allocates (in __dealloc__)


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
    cdef public ProducerEngineBase engine
    # Direct-path batches (appended by send() itself) that no engine list tracks:
    # their futures settle them (see DeliveryFuture.result).
    cdef public bint untracked
    cdef NativeLog nlog
    # A direct-path batch (one record, never reserved): its builder goes back to
    # the pool when the batch dies.
    cdef bint recyclable

    def __cinit__(self, str topic, int partition, ProducerEngineBase engine not None):
        if _builder_pool.empty():
            self.builder.reset(new CRecordBuilder())
        else:
            self.builder.reset(_builder_pool.back())
            _builder_pool.pop_back()
        self.topic = topic
        self.partition = partition
        self.state = 0
        self.base_offset = -1
        self.engine = engine

    def __dealloc__(self):
        cdef CRecordBuilder* b = self.builder.get()
        if (self.recyclable and b != NULL and b.bytes() <= POOLED_BUILDER_BYTES
                and _builder_pool.size() < POOLED_BUILDERS):
            b.clear()
            _builder_pool.push_back(self.builder.release())

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


cdef object _plain_metadata_type = None  # the last factory found to be a plain NamedTuple


cdef bint _is_plain_namedtuple(object cls, Py_ssize_t n) except -1:
    """Whether calling ``cls`` with n fields does just what tuple.__new__ does: a
    collections.namedtuple / typing.NamedTuple class of n fields with no
    constructor or metaclass of its own."""
    if not PyType_Check(cls) or not PyType_IsSubtype(<type>cls, tuple):
        return False
    fields = getattr(cls, "_fields", None)
    if type(fields) is not tuple or len(fields) != n:
        return False
    base = next((k for k in (<type>cls).__mro__ if "_fields" in k.__dict__), None)
    return (base is not None and cls.__new__ is base.__new__ and cls.__init__ is tuple.__init__
            and type(cls).__call__ is type.__call__)


cdef inline object _new_metadata(object factory, tuple fields):
    """factory(*fields). The engine's factory is RecordMetadata, a NamedTuple:
    tuple.__new__ builds one without running its Python-level __new__ (a frame:
    about half the cost of the object, 155 -> 68 ns)."""
    global _plain_metadata_type
    if factory is not _plain_metadata_type:
        if not _is_plain_namedtuple(factory, len(fields)):
            return factory(*fields)
        _plain_metadata_type = factory
    return tuple.__new__(<type>factory, fields)


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
            if b.state == C_BATCH_APPENDED:
                b.engine.track_direct(b)
            raise
        except BaseException as e:
            if b.state == C_BATCH_APPENDED:
                b.engine.finish([b], C_BATCH_FAILED, e)
            raise
        if b.state == C_BATCH_APPENDED:
            b.state = C_BATCH_DONE
        return 0

    def done(self):
        if self.batch.state == C_BATCH_APPENDED and self.batch.untracked:
            self._settle_untracked(False)
        return self.batch.state >= C_BATCH_DONE

    def result(self, timeout=None):
        """Blocks (GIL released) until the record is delivered under the producer's
        acks; returns RecordMetadata(topic, partition, offset, timestamp)."""
        cdef ProducerBatch b = self.batch
        if b.state == C_BATCH_APPENDED and b.untracked:
            self._settle_untracked(True)
        if b.state < C_BATCH_DONE:
            b.engine.wait_batch(b, timeout)
        if b.state == C_BATCH_FAILED:
            raise b.error
        return _new_metadata(b.engine.metadata, (b.topic, b.partition, b.base_offset + self.index,
                                                 b.builder.get().timestamps()[self.index]))

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
    cdef public bint stale        # its topic was deleted (by any handle): the next send looks the name up again

    def __cinit__(self, str name, int partitions, topic):
        self.name = name
        self.partitions = partitions
        self.batches = [None] * partitions
        self.sticky = 0
        self.topic = topic
        self.natives = list(topic._partitions)
        self.plain = topic.config.compression == "none"
        self.ticketed = topic.config.durability != "none"
        self.stale = False


def topic_deleted_error(ProducerTopic st, e):
    """The error for a send whose append failed with ``e``: when the topic was
    deleted (by this handle or another), ``st`` goes stale (the next send looks
    the topic up again, and finds one created again since) and the error is
    UnknownTopicError, Kafka's UNKNOWN_TOPIC_OR_PARTITION; None otherwise."""
    if not isinstance(e, (UnknownTopicError, LogClosedError)):
        return None
    if isinstance(e, LogClosedError) and st.topic._still_there():
        return None  # the log was closed, not the topic deleted
    st.stale = True
    if isinstance(e, UnknownTopicError):
        return e
    err = UnknownTopicError(f"topic {st.name!r} was deleted")
    err.__cause__ = e
    return err


def take_open_batch(ProducerTopic st, int partition, ProducerBatch batch, queue):
    """Seals `batch` if it is still the open batch of its partition and appends it
    to `queue` (a deque), so queue order is seal order; True if this call sealed
    it. Atomic under the GIL (deque.append runs no Python code)."""
    if batch.state != C_BATCH_OPEN or batch.builder.get().count() == 0:
        return False  # an empty batch stays open: a send() may be about to fill it
    batch.state = C_BATCH_SEALED
    queue.append(batch)
    if st.batches[partition] is batch:
        st.batches[partition] = None
    if st.sticky == partition:
        st.sticky = (partition + 1) % st.partitions
    return True


def encode_record_batch(ProducerBatch batch):
    """(pieces, body_offset) of the IPC record-batch message for `batch`: one
    small metadata buffer, then the builder's own column buffers (no copy) with
    zero padding between them (record_codec.pxi)."""
    cdef Py_ssize_t body_offset
    pieces = _record_pieces(batch.builder.get(), &body_offset)
    return pieces, body_offset
