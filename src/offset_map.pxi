# The log cleaner's key hashes and dedupe map (native/key_hash.h,
# native/offset_map.h), for python/tidelog/compaction. Included by _core.pyx.

cdef class _Buffers:
    """Py_buffer views released together (one error path for the functions below)."""
    cdef Py_buffer views[4]
    cdef int count

    cdef const void* take(self, obj, Py_ssize_t need, bint writable, str what) except NULL:
        cdef Py_buffer* v = &self.views[self.count]
        PyObject_GetBuffer(obj, v, PyBUF_SIMPLE | (PyBUF_WRITABLE if writable else 0))
        self.count += 1
        if v.len < need:
            raise ValueError(f"{what}: {v.len} bytes, {need} needed")
        if v.buf == NULL:
            return <const void*>_zeros  # an empty buffer may have no address
        return <const void*>v.buf

    def __dealloc__(self):
        cdef int i
        for i in range(self.count):
            PyBuffer_Release(&self.views[i])


def hash_fixed_width_keys(values, Py_ssize_t count, int width, out):
    """The cleaner's 128-bit hash (MurmurHash3 x64_128) of ``count`` fixed-width
    values of ``width`` bytes, into ``out`` (16 bytes per value)."""
    if width <= 0 or count < 0:
        raise ValueError("width must be positive and count non-negative")
    b = _Buffers()
    cdef const unsigned char* v = <const unsigned char*>b.take(values, count * width, False, "values")
    cdef CKeyHash* o = <CKeyHash*>b.take(out, count * 16, True, "out")
    with nogil:
        hash_fixed_width_keys_native(v, count, width, o)


def hash_binary_keys(offsets, data, Py_ssize_t count, bint large, out):
    """The same for an Arrow binary/string column: its offsets buffer (already
    shifted to the array's offset: count + 1 entries) and data buffer."""
    if count < 0:
        raise ValueError("count must be non-negative")
    b = _Buffers()
    cdef const void* ob = b.take(offsets, (count + 1) * (8 if large else 4), False, "offsets")
    cdef const unsigned char* db = <const unsigned char*>b.take(data, 0, False, "data")
    cdef CKeyHash* o = <CKeyHash*>b.take(out, count * 16, True, "out")
    cdef Py_ssize_t data_len = b.views[1].len
    cdef Py_ssize_t i, lo, hi
    # The offsets come from a file: a value outside the data would read past it.
    for i in range(count + 1):
        lo = (<const int64_t*>ob)[i] if large else (<const int*>ob)[i]
        if lo < 0 or lo > data_len or (i > 0 and lo < hi):
            raise CorruptionError("a binary key column's offsets are out of order or past its data")
        hi = lo
    with nogil:
        if large:
            hash_binary64_keys_native(<const int64_t*>ob, db, count, o)
        else:
            hash_binary32_keys_native(<const int*>ob, db, count, o)


cdef class OffsetMap:
    """Key hash -> latest offset in a fixed memory budget (Kafka's dedupe
    buffer). Not thread-safe: one cleaner owns one map."""
    cdef unique_ptr[COffsetMap] m

    def __cinit__(self, uint64_t budget_bytes, double max_load=0.8):
        self.m.reset(new COffsetMap(budget_bytes, max_load))

    @property
    def slots(self):
        """Slots of the table now: it starts small and doubles up to the budget."""
        return self.m.get().slots()

    @property
    def max_slots(self):
        return self.m.get().max_slots()

    @property
    def capacity(self):
        """Keys it holds before it is full."""
        return self.m.get().capacity()

    @property
    def memory_bytes(self):
        return self.m.get().memory_bytes()

    @property
    def full(self):
        return self.m.get().full()

    def __len__(self):
        return self.m.get().size()

    def put_many(self, hashes, offsets, Py_ssize_t count, skip=None):
        """Records ``offsets[i]`` (int64) as the latest of ``hashes[i]`` (16 bytes
        each) for i < count, skipping rows where ``skip[i]`` (uint8/bool) is set;
        stops before the first new key that does not fit. Returns the rows consumed."""
        b = _Buffers()
        cdef const CKeyHash* h = <const CKeyHash*>b.take(hashes, count * 16, False, "hashes")
        cdef const int64_t* o = <const int64_t*>b.take(offsets, count * 8, False, "offsets")
        cdef const unsigned char* s = NULL
        if skip is not None:
            s = <const unsigned char*>b.take(skip, count, False, "skip")
        cdef size_t done
        with nogil:
            done = self.m.get().put_many(h, o, s, count)
        return done

    def latest_many(self, hashes, Py_ssize_t count, out):
        """``out[i]`` (int64) = the latest offset of ``hashes[i]``, or -1."""
        b = _Buffers()
        cdef const CKeyHash* h = <const CKeyHash*>b.take(hashes, count * 16, False, "hashes")
        cdef int64_t* o = <int64_t*>b.take(out, count * 8, True, "out")
        with nogil:
            self.m.get().latest_many(h, count, o)

    def clear(self):
        cdef COffsetMap* m = self.m.get()
        with nogil:
            m.clear()
