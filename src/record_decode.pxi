# Consumed records: the Record class and decoding them from a record batch
# (decode_records) or straight from a mapped frame (decode_record_payload, with
# record_codec.pxi's flatbuffer reader), included by _core.pyx.

@cython.freelist(256)
@cython.final
@cython.no_gc
cdef class Record:
    """One record as consumed: topic, partition, offset, timestamp (int ns), key,
    value (bytes or None) and headers (a list of (str, bytes) pairs). Its fields
    are declared in tidelog/_core.pxd."""

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


def decode_records(batch, str topic, int partition, offsets, Py_ssize_t start, Py_ssize_t stop):
    """Records [start, stop) of a record-schema pa.RecordBatch, as a list of
    Record, read straight from its buffers. ``offsets`` numbers the rows: an int
    (row 0's offset, the rest follow it) or the Frame the batch was decoded from
    (its rows' offsets, for sparse frames too)."""
    cdef int64_t first_offset
    cdef const uint32_t* deltas = NULL
    cdef Frame frame
    if isinstance(offsets, Frame):
        frame = <Frame>offsets
        if stop > frame.record_count:
            raise ValueError("row range outside the frame")
        first_offset = frame.base_offset
        deltas = frame._deltas
    else:
        first_offset = offsets
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
    cdef Py_ssize_t n = stop - start
    cdef list out = PyList_New(n)
    # Thousands of fresh objects that all survive would trigger a young-generation
    # collection every 700 allocations (2.5x the cost of decoding): pause the GC.
    cdef int gc_was_enabled = PyGC_Disable()
    try:
        _fill_records(out, n, start, topic, partition, first_offset, deltas, tsv, kval, koff, koffs, kdata, vval, voff,
                      voffs, vdata, hoffs, hbase, noffs, ndata, hvval, hvoff, hvoffs, hvdata)
    finally:
        if gc_was_enabled:
            PyGC_Enable()
    return out


cdef int _fill_records(list out, Py_ssize_t n, Py_ssize_t start, str topic, int partition, int64_t first_offset,
                       const uint32_t* deltas,
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
        r.offset = first_offset + (deltas[row] if deltas != NULL else row)  # deltas: a sparse frame's
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


def decode_record_payload(Frame frame not None, str topic, int partition, Py_ssize_t start, Py_ssize_t stop):
    """Records [start, stop) (rows of the frame) of an uncompressed byte-record
    frame (dense or sparse), straight from the mapping; NotImplementedError for
    other shapes."""
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
        if boff < 0 or bl[i] < 0 or boff > body_len or bl[i] > body_len - boff:
            raise CorruptionError("IPC buffer outside the frame")
        bp[i] = body + boff if bl[i] else NULL
    cdef int64_t n = _i64(meta + nodes), h = _i64(meta + nodes + 16 * 4)
    cdef int64_t key_nulls = _i64(meta + nodes + 16 + 8), value_nulls = _i64(meta + nodes + 32 + 8)
    cdef int64_t hv_nulls = _i64(meta + nodes + 96 + 8)
    # (a sparse frame's deltas number record_count rows)
    if start < 0 or stop > n or start > stop or stop > frame.record_count:
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
        _fill_records(out, stop - start, start, topic, partition, base_offset, frame._deltas, <const int64_t*>bp[1],
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
