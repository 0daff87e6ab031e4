# The append of one small record batch as one frame, in one call (included by
# _core.pyx). A 1-row append is all per-call cost: through the general Python
# path it made eight Python calls around pyarrow's serialize() and the native
# append; here it is serialize(), a read of the IPC message's own metadata for
# the timestamp column's span, and the append. The flatbuffer readers
# (_fb_field, _fb_deref, _u32, _i64) are record_codec.pxi's.

@cython.final
cdef class SmallAppender:
    """Appends one small ``pa.RecordBatch`` of a topic's schema to one partition
    as one frame, the same frame the general path writes (same payload, same
    header), or returns None and leaves the batch to that path: another schema,
    no rows, too big, nulls in a non-nullable column or in the timestamp
    column, implausible timestamps (the general path warns), or a message this
    reader does not expect.

    Thread-safe as the partition's append is. Topic builds one for topics whose
    frames are a plain IPC message of flat columns (no dictionary, no zstd, not
    compacted) and whose rows all go to one partition."""
    cdef NativePartition part
    cdef object schema
    cdef Py_ssize_t ts_node, ts_buffer, max_rows
    cdef int64_t unit_ns, plausible_lo, plausible_hi
    cdef vector[Py_ssize_t] required_nodes

    def __init__(self, NativePartition part not None, schema, Py_ssize_t ts_node, Py_ssize_t ts_buffer,
                  int64_t unit_ns, int64_t plausible_lo, int64_t plausible_hi, required_nodes, Py_ssize_t max_rows):
        """``ts_node``/``ts_buffer``: the timestamp column's field node and values
        buffer in the IPC message (-1: the topic has none; frames get the append
        time); ``required_nodes``: nodes of non-nullable columns; ``max_rows``:
        bigger batches take the general path (zone maps)."""
        self.part = part
        self.schema = schema
        self.ts_node = ts_node
        self.ts_buffer = ts_buffer
        self.unit_ns = unit_ns
        self.plausible_lo = plausible_lo
        self.plausible_hi = plausible_hi
        for k in required_nodes:
            self.required_nodes.push_back(k)
        self.max_rows = max_rows

    def append(self, batch):
        """(base_offset, ticket, rows), or None: the general path's turn."""
        if type(batch) is not _RecordBatch:
            return None
        schema = batch.schema
        if schema is not self.schema and not schema.equals(self.schema):
            return None
        cdef Py_ssize_t rows = batch.num_rows
        if rows == 0 or rows > self.max_rows or batch.get_total_buffer_size() >= SMALL_APPEND_BYTES:
            return None
        message = batch.serialize()
        cdef Py_buffer view
        PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
        cdef CAppendRequest req
        cdef iovec piece
        cdef CAppendResult res
        try:
            try:
                if not self._describe(<const unsigned char*>view.buf, view.len, rows, &req):
                    return None
            except CorruptionError:
                return None  # a message this reader does not follow: the general path writes it
            piece.iov_base = view.buf
            piece.iov_len = <size_t>view.len
            req.pieces = &piece
            req.piece_count = 1
            res = self.part._get().append(req)
        finally:
            PyBuffer_Release(&view)
        return (res.base_offset, res.ticket, rows)

    cdef int _describe(self, const unsigned char* m, Py_ssize_t n, Py_ssize_t rows, CAppendRequest* req) except -1:
        """Fills the request's counts, time span, flags and body offset from the
        message (False: the general path's turn)."""
        cdef timespec now
        cdef const unsigned char* fb
        cdef Py_ssize_t body, nodes, buffers, node_count, buffer_count, k, node
        if not _ipc_batch_layout(m, n, &body, &fb, &nodes, &node_count, &buffers, &buffer_count):
            return False
        for k in range(<Py_ssize_t>self.required_nodes.size()):
            node = self.required_nodes[k]
            if node >= node_count or _i64(fb + nodes + 4 + 16 * node + 8) != 0:
                return False
        cdef int64_t lo, hi
        cdef int64_span span
        cdef bint ordered = True
        cdef const unsigned char* data
        if self.ts_node < 0:
            clock_gettime(CLOCK_REALTIME, &now)
            lo = hi = <int64_t>now.tv_sec * 1000000000 + now.tv_nsec
            ordered = False
        else:
            if self.ts_node >= node_count or self.ts_buffer >= buffer_count:
                return False
            if _i64(fb + nodes + 4 + 16 * self.ts_node + 8) != 0:
                return False  # nulls in the timestamp column
            data = _ipc_int64_values(m, n, body, fb, buffers, self.ts_buffer, rows)
            if data == NULL:
                return False
            span = int64_span_of(<const int64_t*>data, <size_t>rows)
            lo, hi, ordered = span.min, span.max, span.ordered
            if self.unit_ns != 1:
                if lo < INT64_MIN // self.unit_ns or hi > INT64_MAX // self.unit_ns:
                    return False
                lo *= self.unit_ns
                hi *= self.unit_ns
            if lo < self.plausible_lo or hi >= self.plausible_hi:
                return False
        req.record_count = <uint32_t>rows
        req.min_timestamp = lo
        req.max_timestamp = hi
        req.codec = 0
        req.flags = C_FLAG_TIME_ORDERED if ordered else 0
        req.schema_id = 0
        req.body_offset = body
        return True


cdef bint _ipc_batch_layout(const unsigned char* m, Py_ssize_t n, Py_ssize_t* body, const unsigned char** fb,
                            Py_ssize_t* nodes, Py_ssize_t* node_count, Py_ssize_t* buffers,
                            Py_ssize_t* buffer_count) except -1:
    """Locates the field nodes and buffers of an uncompressed record-batch IPC
    message ``m`` (continuation marker, metadata size, flatbuffer, body): their
    vectors' positions in the flatbuffer ``fb``, and where the body starts in
    ``m``. False when ``m`` is not such a message."""
    cdef int32_t metadata_bytes
    if n < 12 or _u32(m) != 0xFFFFFFFF:
        return False
    memcpy(&metadata_bytes, m + 4, 4)
    body[0] = 8 + <Py_ssize_t>metadata_bytes
    if metadata_bytes <= 0 or body[0] > n:
        return False
    fb[0] = m + 8  # flatbuffer offsets count from the metadata's start
    cdef const unsigned char* f = fb[0]
    cdef Py_ssize_t fb_n = metadata_bytes
    cdef Py_ssize_t root = _fb_deref(f, fb_n, 0)
    cdef Py_ssize_t header_type_at = _fb_field(f, fb_n, root, 1)
    if header_type_at < 0 or f[header_type_at] != 3:  # MessageHeader.RecordBatch
        return False
    cdef Py_ssize_t header = _fb_deref(f, fb_n, _fb_field(f, fb_n, root, 2))
    if _fb_field(f, fb_n, header, 3) >= 0:
        return False  # body compression
    nodes[0] = _fb_deref(f, fb_n, _fb_field(f, fb_n, header, 1))
    buffers[0] = _fb_deref(f, fb_n, _fb_field(f, fb_n, header, 2))
    if nodes[0] + 4 > fb_n or buffers[0] + 4 > fb_n:
        return False
    node_count[0] = _u32(f + nodes[0])
    buffer_count[0] = _u32(f + buffers[0])
    return nodes[0] + 4 + 16 * node_count[0] <= fb_n and buffers[0] + 4 + 16 * buffer_count[0] <= fb_n


cdef const unsigned char* _ipc_int64_values(const unsigned char* m, Py_ssize_t n, Py_ssize_t body,
                                            const unsigned char* fb, Py_ssize_t buffers, Py_ssize_t index,
                                            Py_ssize_t rows) noexcept:
    """The first of ``rows`` 8-byte values of buffer ``index`` of the message
    (_ipc_batch_layout's), or NULL if they are not all inside it or not 8-byte
    aligned. The buffer count is the caller's to check."""
    cdef int64_t offset = _i64(fb + buffers + 4 + 16 * index)
    cdef int64_t length = _i64(fb + buffers + 4 + 16 * index + 8)
    if offset < 0 or offset > n or length < 8 * rows or body + offset + 8 * rows > n:  # (offset > n first: no overflow)
        return NULL
    cdef const unsigned char* data = m + body + offset
    if (<uintptr_t>data) & 7:
        return NULL
    return data
