# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
"""Bindings to tidelog's native core (native/).

Buffers come in through the buffer protocol without copies; every call that may
block or do I/O releases the GIL; native errors reach Python through one path,
``raise_native_error`` (src/error_bridge.h), which asks
``tidelog.errors._from_native`` for the exception to raise, by the error
code's name (``ErrorCode``, declared in tidelog/_core.pxd).
"""
cimport cython
from cpython.buffer cimport PyBUF_ANY_CONTIGUOUS, PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_READ, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.ref cimport Py_INCREF
from cpython.type cimport PyType_Check, PyType_IsSubtype
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t, INT64_MAX, INT64_MIN
from libc.string cimport memcpy, memset
from libcpp.algorithm cimport sort
from libcpp.memory cimport shared_ptr, unique_ptr
from libcpp.string cimport string
from libcpp.utility cimport pair
from libcpp.vector cimport vector
from libcpp cimport bool as cbool
from cpython.exc cimport PyErr_CheckSignals
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

from tidelog_native cimport *

from tidelog.errors import (CorruptionError, DeliveryError, InvalidArgumentError, InvalidRecordError, LogClosedError,
                            RecordTooLargeError, TidelogError, UnknownTopicError, _from_native)

#: errc value -> name, from the ErrorCode declaration (tidelog/_core.pxd).
cdef dict _ERROR_NAMES = {int(code): code.name for code in ErrorCode}


def _error_from_native(int code, str message, place):
    """The exception for a native error (called by error_bridge.h): ``place``
    is None or a dict of where damage lies (native damage_place)."""
    return _from_native(_ERROR_NAMES.get(code, "unknown"), message, place)


set_error_factory(_error_from_native)

cdef extern from "Python.h":
    # Without Cython's exception check: a raised exception stays set for the caller.
    int _check_signals_raw "PyErr_CheckSignals"()
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    int PyGC_Disable()
    int PyGC_Enable()

# Blocking waits sleep in slices of this much and run Python's signal handlers
# in between, so Ctrl-C (KeyboardInterrupt) reaches a blocked consumer or future
# at once; data still wakes them through their futex without delay.
cdef double WAIT_SLICE_S = 0.05


cdef cbool signal_raised(void* unused) noexcept nogil:
    """For native waits: runs pending signal handlers; True if one raised (the
    exception stays set, and error_bridge.h lets it through)."""
    cdef int rc
    with gil:
        rc = _check_signals_raw()
    return rc != 0

# The durability names, defined here only (python/tidelog imports them), the
# default first; the values are the native durability_mode's.
DURABILITY_MODES = {"fsync": <int>CDurability.fsync, "interval": <int>CDurability.interval, "none": <int>CDurability.none}
cdef enum:  # frame header values (FORMAT.md §4)
    C_FLAG_IPC_STREAM = 1
    C_FLAG_SPARSE = 2  # compaction: the payload starts with the offset block (FORMAT.md §2.6)
    C_FLAG_TIME_ORDERED = 4  # the timestamp column is non-decreasing, without nulls (FORMAT.md §2.1)
    C_CODEC_NONE = 0
    C_CODEC_ZSTD = 1
FLAG_IPC_STREAM = C_FLAG_IPC_STREAM
FLAG_SPARSE = C_FLAG_SPARSE
FLAG_TIME_ORDERED = C_FLAG_TIME_ORDERED
CODEC_NONE = C_CODEC_NONE
CODEC_ZSTD = C_CODEC_ZSTD
cdef Py_ssize_t SMALL_APPEND_BYTES = 64 * 1024


def crc32c(data, unsigned int value=0):
    """CRC-32C of ``data`` (any buffer), continuing from ``value``."""
    cdef Py_buffer view
    cdef uint32_t out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            out = crc32c_extend(value, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return out


def crc32c_portable(data, unsigned int value=0):
    """The portable (table-driven) CRC-32C, for testing the hardware path against."""
    cdef Py_buffer view
    cdef uint32_t out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        out = crc32c_extend_portable(value, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return out


def int64_min_max(values):
    """(min, max, ordered) of the valid values of an int64 or timestamp pyarrow
    Array, or None if none is valid; ``ordered``: no nulls and the values never
    decrease (native/column_stats: one vectorized pass when ordered). Without
    pyarrow compute's dispatch (and its GIL release) so that small appends stay
    cheap under thread contention."""
    cdef Py_ssize_t n = len(values), i, off = values.offset, nulls = values.null_count
    if nulls == n:
        return None
    bufs = values.buffers()
    cdef const int64_t* data = (<const int64_t*><uintptr_t>bufs[1].address) + off
    cdef const unsigned char* valid = (<const unsigned char*><uintptr_t>bufs[0].address) if nulls and bufs[0] is not None else NULL
    cdef int64_t lo = INT64_MAX, hi = INT64_MIN, v
    cdef int64_span span
    cdef Py_ssize_t j
    if valid == NULL:
        if n > 4096:
            with nogil:
                span = int64_span_of(data, <size_t>n)
        else:
            span = int64_span_of(data, <size_t>n)
        return span.min, span.max, span.ordered
    for i in range(n):
        j = off + i
        if (valid[j >> 3] >> (j & 7)) & 1:
            v = data[i]
            if v < lo: lo = v
            if v > hi: hi = v
    return lo, hi, False


def simd_column_stats():
    """Whether the column passes at append (native/column_stats) run vectorized for AVX2 on this CPU."""
    return cpu_has_avx2()


def wake_deferral_state():
    """(deferring, pending) of the calling thread's publish wake-ups
    (native/wake_deferral.h): both False outside a direct send's append."""
    return deferring_wakes(), wakes_pending()


ctypedef fused zone_value_t:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t
    float
    double


cdef void _zone_min_max(const zone_value_t* data, Py_ssize_t n, const unsigned char* valid, Py_ssize_t off,
                        zone_value_t* lo, zone_value_t* hi, bint* found, bint* nan) noexcept nogil:
    """Min and max of the valid, non-NaN values (found: there was one), and whether a NaN was seen."""
    cdef Py_ssize_t i, j
    cdef zone_value_t v
    cdef cbool any_nan = False
    if valid == NULL:
        found[0] = min_max_of(data, <size_t>n, lo, hi, &any_nan)  # one vectorized pass (native/column_stats)
        nan[0] = any_nan
        return
    for i in range(n):
        j = off + i
        if not (valid[j >> 3] >> (j & 7)) & 1:
            continue
        v = data[i]
        if zone_value_t is float or zone_value_t is double:
            if v != v:
                nan[0] = True
                continue
        if not found[0]:
            lo[0] = v
            hi[0] = v
            found[0] = True
        elif v < lo[0]:
            lo[0] = v
        elif v > hi[0]:
            hi[0] = v


cdef tuple _zone_stats_of(const zone_value_t* data, Py_ssize_t n, const unsigned char* valid, Py_ssize_t off,
                          Py_ssize_t nulls):
    cdef zone_value_t lo = 0, hi = 0
    cdef bint found = False, nan = False
    with nogil:
        _zone_min_max(data, n, valid, off, &lo, &hi, &found, &nan)
    return (nulls, lo if found else None, hi if found else None, nan)


_ZONE_TYPES = {"b": 0, "h": 1, "i": 2, "l": 3, "B": 4, "H": 5, "I": 6, "L": 7, "f": 8, "d": 9}


def zone_stats(values, str physical):
    """(null_count, min, max, has_nan) of a pyarrow Array of a fixed-width
    numeric or temporal type, read as ``physical`` (a struct format letter of
    the values' width and signedness: b h i l B H I L f d). min and max are of
    the valid, non-NaN values (None if there is none). One pass over the
    buffer, without the GIL: zone maps (tidelog._zones) are built at append."""
    cdef Py_ssize_t n = len(values), off = values.offset, nulls = values.null_count
    bufs = values.buffers()
    cdef const unsigned char* valid = (<const unsigned char*><uintptr_t>bufs[0].address) if nulls and bufs[0] is not None else NULL
    cdef uintptr_t at = bufs[1].address if n else 0
    cdef int kind = _ZONE_TYPES[physical]
    if n == 0 or nulls == n:
        return (nulls, None, None, False)
    if kind == 0:
        return _zone_stats_of((<const int8_t*>at) + off, n, valid, off, nulls)
    if kind == 1:
        return _zone_stats_of((<const int16_t*>at) + off, n, valid, off, nulls)
    if kind == 2:
        return _zone_stats_of((<const int32_t*>at) + off, n, valid, off, nulls)
    if kind == 3:
        return _zone_stats_of((<const int64_t*>at) + off, n, valid, off, nulls)
    if kind == 4:
        return _zone_stats_of((<const uint8_t*>at) + off, n, valid, off, nulls)
    if kind == 5:
        return _zone_stats_of((<const uint16_t*>at) + off, n, valid, off, nulls)
    if kind == 6:
        return _zone_stats_of((<const uint32_t*>at) + off, n, valid, off, nulls)
    if kind == 7:
        return _zone_stats_of((<const uint64_t*>at) + off, n, valid, off, nulls)
    if kind == 8:
        return _zone_stats_of((<const float*>at) + off, n, valid, off, nulls)
    return _zone_stats_of((<const double*>at) + off, n, valid, off, nulls)


def int64_sorted_range(values, int64_t lo, int64_t hi):
    """(first, stop): the rows of a non-decreasing int64 or timestamp pyarrow
    Array without nulls whose values are in [lo, hi), by binary search over
    its buffer (the caller knows the order: FLAG_TIME_ORDERED or a check)."""
    cdef Py_ssize_t n = len(values), off = values.offset
    if n == 0:
        return 0, 0
    bufs = values.buffers()
    cdef const int64_t* data = (<const int64_t*><uintptr_t>bufs[1].address) + off
    return _sorted_range(data, n, lo, hi)


cdef inline tuple _sorted_range(const int64_t* data, Py_ssize_t n, int64_t lo, int64_t hi):
    """(first, stop) of the values in [lo, hi) of sorted ``data``; an empty
    range (hi <= lo) is (first, first), never a negative length."""
    cdef Py_ssize_t first = _lower_bound(data, n, lo)
    return first, (_lower_bound(data, n, hi) if hi > lo else first)


cdef inline Py_ssize_t _lower_bound(const int64_t* data, Py_ssize_t n, int64_t value) noexcept:
    """The first index whose value is >= ``value`` (n if none) in sorted ``data``."""
    cdef Py_ssize_t a = 0, b = n, m
    while a < b:
        m = (a + b) >> 1
        if data[m] < value:
            a = m + 1
        else:
            b = m
    return a


def crc32c_hardware():
    """Whether the SSE4.2 path is in use."""
    return crc32c_hardware_available()


def kafka_murmur2(data):
    """Kafka's ``Utils.murmur2`` of ``data`` (a signed 32-bit int, as Java returns it)."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return murmur2(view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)


def partition_fixed_width_keys(values, Py_ssize_t count, int width, int partitions, out):
    """Kafka partition per key for ``count`` little-endian ints of ``width`` bytes
    (serialized big-endian, as Kafka's Integer/LongSerializer do) into ``out`` (int32)."""
    cdef Py_buffer v, o
    if width != 4 and width != 8:
        raise ValueError("width must be 4 or 8")
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    PyObject_GetBuffer(values, &v, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(out, &o, PyBUF_SIMPLE | PyBUF_WRITABLE)
        try:
            if v.len < count * width or o.len < count * 4:
                raise ValueError("buffer too small for count")
            with nogil:
                partition_fixed_width(<const unsigned char*>v.buf, count, width, partitions, <int*>o.buf)
        finally:
            PyBuffer_Release(&o)
    finally:
        PyBuffer_Release(&v)


def partition_binary_keys(offsets, data, Py_ssize_t count, bint large, int partitions, out):
    """Kafka partition per key for Arrow binary/string keys given their offsets
    buffer (already shifted to the array's offset) and data buffer."""
    cdef Py_buffer ob, db, o
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    PyObject_GetBuffer(offsets, &ob, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(data, &db, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(out, &o, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                if ob.len < (count + 1) * (8 if large else 4) or o.len < count * 4:
                    raise ValueError("buffer too small for count")
                with nogil:
                    if large:
                        partition_binary64(<const int64_t*>ob.buf, <const unsigned char*>db.buf, count, partitions, <int*>o.buf)
                    else:
                        partition_binary32(<const int*>ob.buf, <const unsigned char*>db.buf, count, partitions, <int*>o.buf)
            finally:
                PyBuffer_Release(&o)
        finally:
            PyBuffer_Release(&db)
    finally:
        PyBuffer_Release(&ob)


def group_by_partition(ids, Py_ssize_t count, int partitions, order, counts):
    """Stable counting sort: ``order`` (int64[count]) gets row numbers grouped by
    partition, ``counts`` (int64[partitions]) the rows per partition. ``ids`` is
    int32[count] with values in [0, partitions)."""
    cdef Py_buffer ib, ob, cb
    cdef bint ok
    PyObject_GetBuffer(ids, &ib, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(order, &ob, PyBUF_SIMPLE | PyBUF_WRITABLE)
        try:
            PyObject_GetBuffer(counts, &cb, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                if ib.len < count * 4 or ob.len < count * 8 or cb.len < partitions * 8:
                    raise ValueError("buffer too small")
                with nogil:
                    ok = group_rows_by_partition(<const int*>ib.buf, count, partitions, <int64_t*>ob.buf, <int64_t*>cb.buf)
                if not ok:
                    raise ValueError(f"a partition id is outside [0, {partitions})")
            finally:
                PyBuffer_Release(&cb)
        finally:
            PyBuffer_Release(&ob)
    finally:
        PyBuffer_Release(&ib)


cdef dict _damaged_range_dict(const CDamagedRange& d):
    return {
        "start_offset": d.start_offset,
        "end_offset": d.end_offset,
        "segment": d.segment.decode("utf-8", "surrogateescape").rpartition("/")[2],
        "path": d.segment.decode("utf-8", "surrogateescape"),
        "position": d.position,
        "bytes": d.bytes,
        "reason": d.reason.decode("utf-8", "replace"),
    }


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class Mapping:
    """A read-only mapping of a segment file. Arrow buffers built over it keep
    it alive, so it stays valid after retention unlinks the file."""
    cdef shared_ptr[CMappedRegion] region
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    cdef CMappedRegion* _get(self) except NULL:
        if not self.region:
            raise ValueError("an empty Mapping (mappings come from NativePartition.frames)")
        return self.region.get()

    @property
    def address(self):
        return <uintptr_t>self._get().data()

    @property
    def size(self):
        return self._get().length()

    @property
    def path(self):
        return self._get().path().decode("utf-8", "surrogateescape")

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        self._get()
        if flags & PyBUF_WRITABLE:
            raise BufferError("segment mappings are read-only")
        self.shape[0] = <Py_ssize_t>self.region.get().length()
        self.strides[0] = 1
        buffer.buf = <void*>self.region.get().data()
        buffer.obj = self
        buffer.len = self.shape[0]
        buffer.readonly = 1
        buffer.itemsize = 1
        buffer.format = "B"
        buffer.ndim = 1
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __releasebuffer__(self, Py_buffer* buffer):
        pass

    def __repr__(self):
        return f"<tidelog Mapping {self.path!r} {self.size} bytes>"


include "frame.pxi"


cdef class NativeLog:
    """One handle on the log folder: its place in the read-write session (shared
    by any number of handles, or ``exclusive``), the clean-shutdown marker, the
    group committer."""
    cdef unique_ptr[CLogCore] core
    cdef readonly str path

    def __cinit__(self, str path, bint read_only=False, bint exclusive=False):
        cdef string p = path.encode("utf-8", "surrogateescape")
        self.path = path
        with nogil:
            self.core.reset(new CLogCore(p, read_only, exclusive))

    @property
    def read_only(self):
        return self.core.get().read_only()

    @property
    def was_clean(self):
        return self.core.get().was_clean()

    def open_partition(self, str directory, *, uint64_t segment_bytes, int64_t segment_ms=-1,
                       int64_t retention_bytes=-1, int64_t retention_ms=-1, str durability="fsync",
                       int64_t flush_interval_ms=100):
        cdef CPartitionConfig config
        cdef string d = directory.encode("utf-8", "surrogateescape")
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {sorted(DURABILITY_MODES)}, not {durability!r}")
        config.segment_bytes = segment_bytes
        config.segment_ms = segment_ms
        config.retention_bytes = retention_bytes
        config.retention_ms = retention_ms
        config.durability = <CDurability><unsigned char>DURABILITY_MODES[durability]
        config.flush_interval_ms = flush_interval_ms
        cdef NativePartition part = NativePartition.__new__(NativePartition)
        part.log = self
        with nogil:
            part.p = self.core.get().open_partition(d, config)
        return part

    def wait_durable(self, uint64_t ticket, bint announced=False):
        """Blocks (GIL released) until the append that got ``ticket`` is durable.
        ``announced``: the caller called announce() before appending."""
        if ticket == 0 and not announced:
            return
        with nogil:
            self.core.get().wait_durable(ticket, announced, signal_raised, NULL)

    def announce(self):
        """Tells the group committer an append that will wait is on its way."""
        self.core.get().announce()

    def retract(self):
        """Withdraws an announce() whose append will not wait (it failed)."""
        self.core.get().retract()

    def flush(self):
        with nogil:
            self.core.get().flush_all()

    def notify_sequence(self):
        """The log-wide publish sequence; pass it to wait_notify after checking for data."""
        return self.core.get().notify_sequence()

    def wake_waiters(self):
        """Wakes every thread sleeping in wait_notify (used to cancel a wait)."""
        self.core.get().wake_waiters()

    def wait_notify(self, uint32_t seen, timeout=None):
        """Sleeps (GIL released, futex) until any partition of the log publishes
        after ``seen`` was read; False on timeout (seconds; None: forever)."""
        return self._notify_sliced(seen, -1.0 if timeout is None else max(float(timeout), 0.0), False)

    def spin_notify(self, uint32_t seen, double spin_s):
        """Busy-polls (GIL released, no system call) for up to ``spin_s``
        seconds until any partition of the log publishes after ``seen`` was
        read; False when nothing was. The consumers' "spin" wait strategy:
        it burns a core while it runs."""
        return self._notify_sliced(seen, max(spin_s, 0.0), True)

    cdef bint _notify_sliced(self, uint32_t seen, double timeout, bint spin) except -1:
        # In slices of at most WAIT_SLICE_S, so that signals (Ctrl-C) are seen
        # between them. timeout < 0: no limit.
        cdef double deadline = _monotonic() + timeout
        cdef double left
        cdef bint ok
        while True:
            left = WAIT_SLICE_S if timeout < 0 else min(deadline - _monotonic(), WAIT_SLICE_S)
            if left < 0:
                left = 0
            with nogil:
                if spin:
                    ok = self.core.get().spin_notify(seen, <int64_t>(left * 1e9))
                else:
                    ok = self.core.get().wait_notify(seen, <int64_t>(left * 1e9))
            if ok:
                return True
            PyErr_CheckSignals()
            if timeout >= 0 and _monotonic() >= deadline:
                return False

    def stats(self):
        cdef CCommitterStats s = self.core.get().stats()
        return {
            "appends": s.appends,
            "frames": s.frames,
            "bytes": s.bytes,
            "fdatasyncs": s.fdatasyncs,
            "flushes": s.flushes,
            "durable_waits": s.durable_waits,
            "checkpoints": s.checkpoints,
            "segments_deleted": s.segments_deleted,
            # By every read-write handle of the log, in any process, since the first of them opened it:
            "log_fdatasyncs": self.core.get().session_fdatasyncs(),
            "log_flushes": self.core.get().session_flushes(),
        }

    def close(self):
        with nogil:
            self.core.get().close()


cdef class NativePartition:
    """One partition of a topic. Appends are thread-safe; reads see published frames."""
    cdef unique_ptr[CPartition] p
    cdef NativeLog log
    cdef CMappedRegion* last_region
    cdef Mapping last_mapping
    cdef object _compaction  # the CompactionSession in progress (compaction.pxi), released before the partition

    cdef CPartition* _get(self) except NULL:
        if not self.p:
            raise LogClosedError("the partition is closed (its topic was deleted or its log closed)")
        return self.p.get()

    def append(self, pieces, uint32_t record_count, int64_t min_timestamp, int64_t max_timestamp,
               int codec=0, int flags=0, uint32_t schema_id=0, int64_t body_offset=-1):
        """Writes one frame whose payload is the concatenation of ``pieces`` (buffers,
        not copied: handed to one pwritev). Returns (base_offset, ticket)."""
        return self.append_frames([(pieces, record_count, min_timestamp, max_timestamp, codec, flags,
                                    schema_id, body_offset)])[0]

    def append_frames(self, frames, bint with_crcs=False):
        """Writes several frames with consecutive offsets (nothing else lands in
        between). Each item: (pieces, record_count, min_timestamp, max_timestamp,
        codec, flags, schema_id, body_offset). Returns [(base_offset, ticket)],
        or with ``with_crcs`` [(base_offset, ticket, crc)]: the frame's CRC32C,
        which with its base offset names it (``frames(excluded=...)``)."""
        cdef CPartition* part = self._get()
        cdef Py_ssize_t nframes = len(frames), total_pieces = 0, k, i, got = 0, total = 0, at = 0
        for k in range(nframes):
            total_pieces += len(frames[k][0])
        cdef vector[Py_buffer] views
        cdef vector[iovec] iov
        cdef vector[CAppendRequest] reqs
        cdef vector[CAppendResult] res
        views.resize(total_pieces)
        iov.resize(total_pieces)
        reqs.resize(nframes)
        try:
            for k in range(nframes):
                pieces, count, lo, hi, codec, flags, schema_id, body_offset = frames[k]
                reqs[k].piece_count = <int>len(pieces)
                reqs[k].record_count = count
                reqs[k].min_timestamp = lo
                reqs[k].max_timestamp = hi
                reqs[k].codec = codec
                reqs[k].flags = flags
                reqs[k].schema_id = schema_id
                reqs[k].body_offset = body_offset
                for i in range(len(pieces)):
                    PyObject_GetBuffer(pieces[i], &views[at + i], PyBUF_SIMPLE)
                    got += 1
                    iov[at + i].iov_base = views[at + i].buf
                    iov[at + i].iov_len = <size_t>views[at + i].len
                    total += views[at + i].len
                at += len(pieces)
            at = 0
            for k in range(nframes):
                reqs[k].pieces = iov.data() + at
                at += reqs[k].piece_count
            if total < SMALL_APPEND_BYTES:
                # A small pwritev into the page cache takes a few microseconds; giving
                # up and re-taking a contended GIL costs more than that.
                res = part.append(reqs.data(), <size_t>nframes)
            else:
                with nogil:
                    res = part.append(reqs.data(), <size_t>nframes)
        finally:
            for i in range(got):
                PyBuffer_Release(&views[i])
        if with_crcs:
            return [(res[k].base_offset, res[k].ticket, res[k].crc) for k in range(nframes)]
        return [(res[k].base_offset, res[k].ticket) for k in range(nframes)]

    cdef Mapping _mapping_for(self, shared_ptr[CMappedRegion]& region):
        if region.get() == self.last_region and self.last_mapping is not None:
            return self.last_mapping
        cdef Mapping m = Mapping.__new__(Mapping)
        m.region = region
        self.last_region = region.get()
        self.last_mapping = m
        return m

    def frames(self, int64_t start_offset=0, int64_t end_offset=INT64_MAX, int64_t min_timestamp=INT64_MIN,
               int64_t max_timestamp=INT64_MAX, size_t max_frames=1024, list skipped=None, excluded=None):
        """Published frames holding offsets in [start_offset, end_offset) whose time
        span meets [min_timestamp, max_timestamp), as Frame objects (frame.pxi).

        Damage holding offsets asked for raises CorruptionError; with ``skipped``
        (a list) it is skipped instead, and a dict per damaged range (as
        ``damaged_ranges()`` gives) is appended to ``skipped``.

        ``excluded``: (base_offset, crc) pairs of frames not wanted (a zone map
        ruled them out): walked past on their header alone, their payload
        neither read nor CRC-checked. A pair that names no frame (a stale
        entry) excludes nothing."""
        cdef vector[CFrameRef] refs
        cdef vector[CDamagedRange] damage
        cdef vector[CDamagedRange]* damage_out = &damage if skipped is not None else NULL
        cdef vector[CFrameKey] keys
        cdef const vector[CFrameKey]* keys_in = NULL
        cdef CPartition* part = self._get()
        if excluded:
            keys.resize(len(excluded))
            for n, (base, crc) in enumerate(excluded):
                keys[n].base_offset = base
                keys[n].crc = crc
            with nogil:
                sort(keys.begin(), keys.end())
            keys_in = &keys
        with nogil:
            refs = part.frames(start_offset, end_offset, min_timestamp, max_timestamp, max_frames, damage_out,
                               keys_in)
        cdef list out = []
        cdef size_t i
        for i in range(refs.size()):
            out.append(Frame._from_ref(self._mapping_for(refs[i].region), refs[i]))
        if skipped is not None:
            for i in range(damage.size()):
                skipped.append(_damaged_range_dict(damage[i]))
        return out

    def damaged_ranges(self):
        """Damage this process knows of (found by recovery or by reads), by offset:
        dicts with start_offset, end_offset (exclusive), segment, position, bytes, reason."""
        cdef vector[CDamagedRange] damage
        cdef CPartition* part = self._get()
        with nogil:
            damage = part.damaged_ranges()
        return [_damaged_range_dict(damage[i]) for i in range(damage.size())]

    def offset_for_time(self, int64_t timestamp):
        cdef int64_t out
        cdef CPartition* part = self._get()
        with nogil:
            out = part.offset_for_time(timestamp)
        return out

    @property
    def start_offset(self):
        cdef int64_t out
        cdef CPartition* part = self._get()
        with nogil:
            out = part.start_offset()
        return out

    @property
    def end_offset(self):
        return self._get().end_offset()

    def written_end(self):
        """One past the last offset any read-write handle wrote, durable or not
        (read-write handles only; see partition.h)."""
        cdef CPartition* part = self._get()
        cdef int64_t out = part.written_end_nowait()  # a seqlock read: no wait, the GIL stays
        if out >= 0:
            return out
        with nogil:
            out = part.written_end()
        return out

    @property
    def size_bytes(self):
        cdef uint64_t out
        cdef CPartition* part = self._get()
        with nogil:
            out = part.size_bytes()
        return out

    @property
    def segment_count(self):
        cdef size_t out
        cdef CPartition* part = self._get()
        with nogil:
            out = part.segment_count()
        return out

    def wait_for_data(self, int64_t known_end, timeout=None):
        """Sleeps (GIL released, futex on the shared state) until the visible end
        passes ``known_end``; returns False on timeout (seconds; None waits forever)."""
        cdef double limit = -1.0 if timeout is None else max(float(timeout), 0.0)
        cdef double deadline = _monotonic() + limit
        cdef double left
        cdef bint ok
        cdef CPartition* part
        while True:
            part = self._get()
            left = WAIT_SLICE_S if limit < 0 else min(deadline - _monotonic(), WAIT_SLICE_S)
            if left < 0:
                left = 0
            with nogil:
                ok = part.wait_for_data(known_end, <int64_t>(left * 1e9))
            if ok:
                return True
            PyErr_CheckSignals()
            if limit >= 0 and _monotonic() >= deadline:
                return False

    def enforce_retention(self):
        cdef CPartition* part = self._get()
        with nogil:
            part.enforce_retention()

    def write_checkpoint(self):
        """Stores the durable point as the recovery checkpoint now (the
        housekeeper does it about once a second); False if it had not moved."""
        cdef CPartition* part = self._get()
        cdef cbool moved
        with nogil:
            moved = part.write_checkpoint()
        return moved

    def set_retention(self, int64_t retention_bytes=-1, int64_t retention_ms=-1):
        """Changes this handle's retention limits (<0: none) for its next passes."""
        self._get().set_retention(retention_bytes, retention_ms)

    def recovery_events(self):
        cdef vector[CRecoveryEvent] ev = self._get().recovery_events()
        return [
            {
                "file": ev.at(i).file.decode("utf-8", "surrogateescape"),
                "position": ev.at(i).position,
                "bytes_dropped": ev.at(i).bytes_dropped,
                "first_offset_dropped": ev.at(i).first_offset_dropped,
                "reason": ev.at(i).reason.decode(),
                "kind": ev.at(i).kind.decode(),
                "bytes_damaged": ev.at(i).bytes_damaged,
                "end_offset": ev.at(i).end_offset,
            }
            for i in range(ev.size())
        ]

    def mark_deleted(self):
        """Makes every handle's appends to this partition fail: its topic is being deleted."""
        cdef CPartition* part = self._get()
        with nogil:
            part.mark_deleted()

    def compaction(self, bint wait=True):
        """Starts a compaction pass: a CompactionSession holding the partition's
        cleaner lock (one cleaner per partition across processes), or None when
        ``wait`` is False and another cleaner holds it. See compaction.pxi."""
        return _open_compaction(self, wait)

    cdef _end_compaction(self):
        if self._compaction is not None:
            session, self._compaction = self._compaction, None
            session.release()

    def close(self):
        self._end_compaction()
        self.last_mapping = None
        self.last_region = NULL
        cdef CPartition* part = self.p.get()
        if part != NULL:
            with nogil:
                part.close()

    def remove_files(self):
        cdef CPartition* part = self._get()
        with nogil:
            part.remove_files()

    def release(self):
        """Drops the native partition (after close)."""
        self._end_compaction()
        self.last_mapping = None
        self.last_region = NULL
        with nogil:
            self.p.reset()


# The producer and record paths, one concept per file (each says what it holds).
include "binary_buffers.pxi"
include "record_codec.pxi"
include "record_decode.pxi"
include "producer_batch.pxi"
include "producer_engine.pxi"
include "producer.pxi"
include "reader.pxi"
include "consumer_fetch.pxi"
include "durable_table.pxi"
include "offset_map.pxi"
include "compaction.pxi"
include "event_codec.pxi"
include "small_append.pxi"
