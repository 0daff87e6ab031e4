# The Arrow IPC codec of byte-record batches, included by _core.pyx: a native
# record_builder (native/record_builder.h) -> the pieces of one IPC
# record-batch message, and the flatbuffer reader record_decode.pxi uses.
# Module state: the template, set once at import by tidelog._producer.
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


cdef inline uint16_t _u16(const unsigned char* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v

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
    vt_size = _u16(buf + vt)  # (memcpy: a damaged vtable may sit at an odd address)
    if 4 + 2 * field + 2 > vt_size:
        return -1
    if vt + 4 + 2 * field + 2 > size:
        raise CorruptionError("flatbuffer vtable out of bounds")
    off = _u16(buf + vt + 4 + 2 * field)
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


cdef bytes _record_message_head(const CRecordBuilder* b, const unsigned char** ptrs, int64_t* lens):
    """The IPC record-batch message for the records in `b` without its body:
    the continuation marker, length and flatbuffer metadata (the template,
    patched). Fills ptrs/lens with the body buffers, which follow it in order,
    each padded to 8 bytes (_record_iov)."""
    if _template is None:
        raise RuntimeError("record template not set")
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


cdef list _record_pieces(const CRecordBuilder* b, Py_ssize_t* body_offset):
    """The IPC record-batch message for the records in `b` as buffers for one
    pwritev: the small metadata head, then the builder's own column buffers
    (memoryviews, no copy: valid while `b` lives and is not added to) with zero
    padding between them. body_offset: where the body starts."""
    cdef const unsigned char* ptrs[RECORD_BUFFERS]
    cdef int64_t lens[RECORD_BUFFERS]
    cdef iovec iov[2 * RECORD_BUFFERS + 1]
    cdef bytes head = _record_message_head(b, ptrs, lens)
    cdef int count = _record_iov(head, ptrs, lens, iov), i
    cdef list pieces = [head]
    for i in range(1, count):
        pieces.append(PyMemoryView_FromMemory(<char*>iov[i].iov_base, <Py_ssize_t>iov[i].iov_len, PyBUF_READ))
    body_offset[0] = PyBytes_GET_SIZE(head)
    return pieces
