# The event store's native pieces (tidelog.es), included by _core.pyx after
# record_codec.pxi (whose flatbuffer reader it uses): the stream index
# (native/stream_index.h) and event-store frames read straight from the
# mapping, without pyarrow, for the two hot paths - indexing frames (catch-up,
# rebuild) and decoding the few rows a stream read wants.
#
# The event schema is fixed (tidelog/es/_events.py EVENT_SCHEMA): 7 flat
# columns, 18 buffers -
#   stream_id utf8 (validity, offsets, data) | version int64 (validity, data)
#   type utf8 (3) | event_id fixed_size_binary(16) (2) | timestamp ns (2)
#   data binary (3) | metadata binary (3)
# Other frame shapes (zstd, a schema that is not this one) raise
# NotImplementedError; the caller decodes them with pyarrow instead.

cdef enum:
    EVENT_NODES = 7
    EVENT_BUFFERS = 18

# First buffer of each column, and whether it is variable-width.
cdef int[EVENT_NODES] _EVENT_FIRST_BUFFER = [0, 3, 5, 8, 10, 12, 15]


cdef inline string_view _str_view(str s) except *:
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)
    return string_view(p, <size_t>n)


cdef inline uint64_t _id_hash(const unsigned char* uuid16) noexcept nogil:
    """64 bits of an event id for the index (a UUID's two halves folded)."""
    cdef uint64_t a, b
    memcpy(&a, uuid16, 8)
    memcpy(&b, uuid16 + 8, 8)
    return a ^ (b * <uint64_t>0x9E3779B97F4A7C15)


def event_id_hash(bytes event_id):
    """The index's 64-bit hash of a 16-byte event id."""
    if PyBytes_GET_SIZE(event_id) != 16:
        raise ValueError("an event id is 16 bytes")
    return _id_hash(<const unsigned char*>PyBytes_AS_STRING(event_id))


cdef struct EventFrameView:
    int64_t rows
    const unsigned char* validity[EVENT_NODES]
    int64_t nulls[EVENT_NODES]
    const int* offsets[EVENT_NODES]     # variable-width columns
    const unsigned char* data[EVENT_NODES]


cdef int _view_event_frame(Frame frame, EventFrameView* v) except -1:
    """Locates the columns of an uncompressed event-schema frame in its mapping,
    checking every buffer against the frame's bounds and every offsets buffer
    for order (so the row accessors below need no checks)."""
    if frame.codec != 0 or frame.flags & 1:
        raise NotImplementedError("not an uncompressed record-batch frame")
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
    cdef Py_ssize_t root = _fb_deref(meta, meta_len, 0)
    cdef Py_ssize_t f_type = _fb_field(meta, meta_len, root, 1)
    if f_type < 0 or meta[f_type] != 3:
        raise NotImplementedError("not a record batch message")
    cdef Py_ssize_t rb = _fb_deref(meta, meta_len, _fb_field(meta, meta_len, root, 2))
    if _fb_field(meta, meta_len, rb, 3) >= 0:
        raise NotImplementedError("compressed record batch")
    cdef Py_ssize_t nv = _fb_deref(meta, meta_len, _fb_field(meta, meta_len, rb, 1))
    cdef Py_ssize_t bv = _fb_deref(meta, meta_len, _fb_field(meta, meta_len, rb, 2))
    if _u32(meta + nv) != EVENT_NODES or _u32(meta + bv) != EVENT_BUFFERS:
        raise NotImplementedError("not the event schema")
    if nv + 4 + 16 * EVENT_NODES > meta_len or bv + 4 + 16 * EVENT_BUFFERS > meta_len:
        raise CorruptionError("flatbuffer vector out of bounds")
    cdef const unsigned char* nodes = meta + nv + 4
    cdef const unsigned char* buffers = meta + bv + 4
    cdef const unsigned char* body = p + 8 + meta_len
    cdef int64_t body_len = plen - 8 - meta_len
    cdef const unsigned char* bp[EVENT_BUFFERS]
    cdef int64_t bl[EVENT_BUFFERS]
    cdef int64_t boff
    cdef int i, c, first
    for i in range(EVENT_BUFFERS):
        boff = _i64(buffers + 16 * i)
        bl[i] = _i64(buffers + 16 * i + 8)
        if boff < 0 or bl[i] < 0 or boff > body_len or bl[i] > body_len - boff:
            raise CorruptionError("IPC buffer outside the frame")
        bp[i] = body + boff if bl[i] else NULL
    cdef int64_t n = _i64(nodes)
    if n != frame.record_count:
        raise CorruptionError("the record batch's length is not the frame's record count")
    v.rows = n
    for c in range(EVENT_NODES):
        first = _EVENT_FIRST_BUFFER[c]
        if _i64(nodes + 16 * c) != n:
            raise CorruptionError("an event column's length differs from the batch's")
        v.nulls[c] = _i64(nodes + 16 * c + 8)
        if v.nulls[c] and bl[first] < (n + 7) // 8:
            raise CorruptionError("validity bitmap too short")
        v.validity[c] = bp[first] if v.nulls[c] else NULL
        if c in (0, 2, 5, 6):  # variable width: offsets then data
            if bl[first + 1] < (n + 1) * 4:
                raise CorruptionError("IPC offsets too short for their rows")
            v.offsets[c] = <const int*>bp[first + 1]
            v.data[c] = bp[first + 2]
            if n:
                _check_offsets(v.offsets[c], n, bl[first + 2])
        else:
            if bl[first + 1] < n * (16 if c == 3 else 8):
                raise CorruptionError("IPC data too short for its rows")
            v.offsets[c] = NULL
            v.data[c] = bp[first + 1]
    if v.nulls[0] or v.nulls[1] or v.nulls[2] or v.nulls[3] or v.nulls[4]:
        raise CorruptionError("a null in a non-nullable event column")
    return 0


cdef inline bint _is_null(const EventFrameView* v, int c, int64_t row) noexcept:
    return v.validity[c] != NULL and not (v.validity[c][row >> 3] >> (row & 7)) & 1


cdef inline string_view _cell_view(const EventFrameView* v, int c, int64_t row) noexcept:
    return string_view(<const char*>v.data[c] + v.offsets[c][row], <size_t>(v.offsets[c][row + 1] - v.offsets[c][row]))


cdef inline object _cell_bytes(const EventFrameView* v, int c, int64_t row):
    if _is_null(v, c, row):
        return None
    return PyBytes_FromStringAndSize(<const char*>v.data[c] + v.offsets[c][row], v.offsets[c][row + 1] - v.offsets[c][row])


cdef inline str _cell_str(const EventFrameView* v, int c, int64_t row):
    return PyUnicode_DecodeUTF8(<const char*>v.data[c] + v.offsets[c][row], v.offsets[c][row + 1] - v.offsets[c][row], NULL)


cdef inline int64_t _cell_i64(const EventFrameView* v, int c, int64_t row) noexcept:
    cdef int64_t out
    memcpy(&out, v.data[c] + 8 * row, 8)
    return out


def decode_event_rows(Frame frame not None, rows, make):
    """``make(position, stream_id, version, type, event_id, timestamp, data,
    metadata)`` for each row index in ``rows`` (ints), in that order; a list of
    what it returns. event_id is 16 bytes; metadata None when null."""
    cdef EventFrameView v
    _view_event_frame(frame, &v)
    cdef list out = []
    cdef int64_t row
    for r in rows:
        row = r
        if row < 0 or row >= v.rows:
            raise ValueError("row outside the frame")
        out.append(make(frame.offset_at(row), _cell_str(&v, 0, row), _cell_i64(&v, 1, row), _cell_str(&v, 2, row),
                        PyBytes_FromStringAndSize(<const char*>v.data[3] + 16 * row, 16), _cell_i64(&v, 4, row),
                        _cell_bytes(&v, 5, row), _cell_bytes(&v, 6, row)))
    return out


cdef class StreamIndex:
    """The event store's per-stream index (native/stream_index.h): stream id ->
    positions of its events in version order. Not thread-safe: the event store
    serializes every call (its index lock)."""
    cdef CStreamIndex idx

    @property
    def through(self):
        """Positions below this are indexed."""
        return self.idx.through()

    @property
    def event_count(self):
        return self.idx.event_count()

    @property
    def stream_count(self):
        return self.idx.stream_count()

    def add(self, str stream, int64_t position, uint64_t id_hash, int64_t version):
        """Records version ``version`` of ``stream`` at ``position`` (see stream_index.h)."""
        self.idx.add(_str_view(stream), position, id_hash, version)

    def soft_delete(self, str stream, int64_t truncate_before, int64_t position):
        self.idx.soft_delete(_str_view(stream), truncate_before, position)

    def tombstone(self, str stream, int64_t position):
        self.idx.tombstone(_str_view(stream), position)

    def advance(self, int64_t position):
        self.idx.advance(position)

    def last_version(self, str stream):
        """The stream's last version, hidden (soft-deleted) or not; -1 when unknown."""
        return self.idx.last_version(_str_view(stream))

    def state(self, str stream):
        """(last_version, truncate_before, tombstoned); (-1, 0, False) when unknown."""
        cdef const CStreamEntry* e = self.idx.find(_str_view(stream))
        if e == NULL:
            return (-1, 0, False)
        return (<int64_t>e.positions.size() - 1, e.truncate_before, e.tombstoned)

    def positions(self, str stream, int64_t first_version, int64_t last_version):
        """Positions of versions first_version..last_version (inclusive, clamped to
        the stream); -1 for a version whose row was lost to damage."""
        cdef const CStreamEntry* e = self.idx.find(_str_view(stream))
        cdef list out = []
        if e == NULL:
            return out
        cdef int64_t n = e.positions.size(), v
        if first_version < 0:
            first_version = 0
        if last_version >= n:
            last_version = n - 1
        for v in range(first_version, last_version + 1):
            out.append(e.positions[v])
        return out

    def id_hashes(self, str stream, int64_t first_version, int64_t count):
        """The event-id hashes of versions first_version .. first_version+count-1 (clamped)."""
        cdef const CStreamEntry* e = self.idx.find(_str_view(stream))
        cdef list out = []
        if e == NULL:
            return out
        cdef int64_t n = e.id_hashes.size(), v
        for v in range(max(first_version, 0), min(first_version + count, n)):
            out.append(e.id_hashes[v])
        return out

    def find_event(self, str stream, uint64_t id_hash, int64_t start=0):
        """The first version at or after ``start`` whose event id hashes to id_hash, or -1."""
        return self.idx.find_event(_str_view(stream), id_hash, start)

    def live_streams(self, str prefix="", bint include_system=False):
        cdef vector[string] got = self.idx.live_streams(_str_view(prefix), include_system)
        return [s.decode("utf-8", "surrogateescape") for s in got]

    def index_frame(self, Frame frame not None):
        """Indexes an event-store frame's rows (markers: '$deleted' rows soft-delete
        their stream below their version column, '$tombstone' rows hard-delete it),
        then advances past the frame. NotImplementedError for frames it cannot
        read natively (the caller indexes their decoded rows instead)."""
        cdef EventFrameView v
        _view_event_frame(frame, &v)
        cdef int64_t row, position
        cdef string_view kind
        cdef string_view deleted = string_view(b"$deleted", 8)
        cdef string_view tomb = string_view(b"$tombstone", 10)
        for row in range(v.rows):
            position = frame.offset_at(row)
            kind = _cell_view(&v, 2, row)
            if kind.size() and kind.data()[0] == b'$' and kind == deleted:
                self.idx.soft_delete(_cell_view(&v, 0, row), _cell_i64(&v, 1, row), position)
            elif kind.size() and kind.data()[0] == b'$' and kind == tomb:
                self.idx.tombstone(_cell_view(&v, 0, row), position)
            else:
                self.idx.add(_cell_view(&v, 0, row), position, _id_hash(v.data[3] + 16 * row), _cell_i64(&v, 1, row))
        self.idx.advance(frame.next_offset)

    def save(self, str path, uint64_t identity):
        cdef string p = path.encode("utf-8", "surrogateescape")
        with nogil:
            self.idx.save(p, identity)

    def load(self, str path, uint64_t identity):
        """Replaces the index by the snapshot at ``path``; False (index empty) when
        the file is missing, torn, damaged or of another store."""
        cdef string p = path.encode("utf-8", "surrogateescape")
        cdef cbool ok
        with nogil:
            ok = self.idx.load(p, identity)
        return ok

    def serialize(self, uint64_t identity):
        return <bytes>self.idx.serialize(identity)

    def parse(self, const unsigned char[::1] data, uint64_t identity):
        if data.shape[0] == 0:
            return self.idx.parse(NULL, 0, identity)
        return self.idx.parse(&data[0], data.shape[0], identity)

    def clear(self):
        self.idx.clear()


# ---------------------------------------------------------------- encoding
# Like record_codec.pxi: pyarrow serializes a 1-row event batch once (every
# length non-zero, so that the flatbuffer holds every field); an append patches
# that template's lengths, null counts and buffer offsets and lays the body
# out after it, in one bytes object.
cdef bytes _event_template = None
cdef Py_ssize_t _etpl_nodes = -1, _etpl_buffers = -1, _etpl_length = -1, _etpl_body_length = -1


def set_event_template(message):
    """Registers pyarrow's serialization of a 1-row event batch (every column
    non-empty, metadata not null) as the template for encode_event_rows."""
    global _event_template, _etpl_nodes, _etpl_buffers, _etpl_length, _etpl_body_length
    cdef bytes m = bytes(message)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(m)
    cdef Py_ssize_t meta_len = <Py_ssize_t>_u32(p + 4)
    meta = m[8:8 + meta_len]
    cdef const unsigned char* mp = <const unsigned char*>PyBytes_AS_STRING(meta)
    cdef Py_ssize_t root = _fb_deref(mp, meta_len, 0)
    cdef Py_ssize_t body_at = _fb_field(mp, meta_len, root, 3)
    cdef Py_ssize_t rb = _fb_deref(mp, meta_len, _fb_field(mp, meta_len, root, 2))
    cdef Py_ssize_t length_at = _fb_field(mp, meta_len, rb, 0)
    cdef Py_ssize_t nv = _fb_deref(mp, meta_len, _fb_field(mp, meta_len, rb, 1))
    cdef Py_ssize_t bv = _fb_deref(mp, meta_len, _fb_field(mp, meta_len, rb, 2))
    if _u32(mp + nv) != EVENT_NODES or _u32(mp + bv) != EVENT_BUFFERS or length_at < 0 or body_at < 0:
        raise ValueError("not a 1-row event batch")
    _event_template = meta
    _etpl_nodes, _etpl_buffers, _etpl_length, _etpl_body_length = nv + 4, bv + 4, length_at, body_at


cdef inline int64_t _pad8(int64_t n) noexcept nogil:
    return (n + 7) & ~(<int64_t>7)


def encode_event_rows(list rows, int64_t timestamp_ns):
    """One IPC record-batch message (bytes) of event rows - tuples (stream_id
    str, version int, type str, event_id 16 bytes, data bytes, metadata bytes
    or None) - all with timestamp_ns; and where its body starts."""
    if _event_template is None:
        raise RuntimeError("event template not set")
    cdef Py_ssize_t n = len(rows), i, sz
    if n == 0:
        raise ValueError("no rows")
    cdef int64_t sid_bytes = 0, type_bytes = 0, data_bytes = 0, meta_bytes = 0, meta_nulls = 0
    cdef const char* s
    cdef tuple row
    for i in range(n):
        row = <tuple>rows[i]
        PyUnicode_AsUTF8AndSize(row[0], &sz); sid_bytes += sz
        PyUnicode_AsUTF8AndSize(row[2], &sz); type_bytes += sz
        if PyBytes_GET_SIZE(row[3]) != 16:
            raise ValueError("an event id is 16 bytes")
        data_bytes += PyBytes_GET_SIZE(row[4])
        if row[5] is None:
            meta_nulls += 1
        else:
            meta_bytes += PyBytes_GET_SIZE(row[5])
    if sid_bytes > 0x7FFFFFFF or type_bytes > 0x7FFFFFFF or data_bytes > 0x7FFFFFFF or meta_bytes > 0x7FFFFFFF:
        raise RecordTooLargeError("an append of events over 2 GiB in one column")
    cdef int64_t lens[EVENT_BUFFERS]
    lens[0] = 0; lens[1] = (n + 1) * 4; lens[2] = sid_bytes
    lens[3] = 0; lens[4] = n * 8
    lens[5] = 0; lens[6] = (n + 1) * 4; lens[7] = type_bytes
    lens[8] = 0; lens[9] = n * 16
    lens[10] = 0; lens[11] = n * 8
    lens[12] = 0; lens[13] = (n + 1) * 4; lens[14] = data_bytes
    lens[15] = (n + 7) // 8 if meta_nulls else 0; lens[16] = (n + 1) * 4; lens[17] = meta_bytes
    cdef int64_t starts[EVENT_BUFFERS]
    cdef int64_t body = 0
    cdef int b
    for b in range(EVENT_BUFFERS):
        starts[b] = body
        body += _pad8(lens[b])
    cdef Py_ssize_t meta_len = PyBytes_GET_SIZE(_event_template)
    cdef Py_ssize_t head = 8 + meta_len
    cdef bytes out = PyBytes_FromStringAndSize(NULL, head + body)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    memset(o + head, 0, body)  # padding and the validity bitmap's unused bits
    cdef uint32_t prefix[2]
    prefix[0] = 0xFFFFFFFF
    prefix[1] = <uint32_t>meta_len
    memcpy(o, prefix, 8)
    memcpy(o + 8, PyBytes_AS_STRING(_event_template), meta_len)
    cdef unsigned char* mp = o + 8
    cdef int64_t zero = 0, n64 = n
    for b in range(EVENT_NODES):
        memcpy(mp + _etpl_nodes + 16 * b, &n64, 8)
        if b == 6:
            memcpy(mp + _etpl_nodes + 16 * b + 8, &meta_nulls, 8)
        else:
            memcpy(mp + _etpl_nodes + 16 * b + 8, &zero, 8)
    for b in range(EVENT_BUFFERS):
        memcpy(mp + _etpl_buffers + 16 * b, &starts[b], 8)
        memcpy(mp + _etpl_buffers + 16 * b + 8, &lens[b], 8)
    memcpy(mp + _etpl_body_length, &body, 8)
    memcpy(mp + _etpl_length, &n64, 8)
    cdef unsigned char* bd = o + head
    cdef int32_t* sid_off = <int32_t*>(bd + starts[1])
    cdef int32_t* type_off = <int32_t*>(bd + starts[6])
    cdef int32_t* data_off = <int32_t*>(bd + starts[13])
    cdef int32_t* meta_off = <int32_t*>(bd + starts[16])
    cdef unsigned char* meta_valid = bd + starts[15]
    cdef int32_t at_sid = 0, at_type = 0, at_data = 0, at_meta = 0
    cdef int64_t version
    sid_off[0] = 0; type_off[0] = 0; data_off[0] = 0; meta_off[0] = 0
    for i in range(n):
        row = <tuple>rows[i]
        s = PyUnicode_AsUTF8AndSize(row[0], &sz)
        memcpy(bd + starts[2] + at_sid, s, sz); at_sid += <int32_t>sz; sid_off[i + 1] = at_sid
        version = row[1]
        memcpy(bd + starts[4] + 8 * i, &version, 8)
        s = PyUnicode_AsUTF8AndSize(row[2], &sz)
        memcpy(bd + starts[7] + at_type, s, sz); at_type += <int32_t>sz; type_off[i + 1] = at_type
        memcpy(bd + starts[9] + 16 * i, PyBytes_AS_STRING(row[3]), 16)
        memcpy(bd + starts[11] + 8 * i, &timestamp_ns, 8)
        sz = PyBytes_GET_SIZE(row[4])
        memcpy(bd + starts[14] + at_data, PyBytes_AS_STRING(row[4]), sz); at_data += <int32_t>sz; data_off[i + 1] = at_data
        if row[5] is not None:
            sz = PyBytes_GET_SIZE(row[5])
            memcpy(bd + starts[17] + at_meta, PyBytes_AS_STRING(row[5]), sz); at_meta += <int32_t>sz
            if meta_nulls:
                meta_valid[i >> 3] |= <unsigned char>(1 << (i & 7))
        meta_off[i + 1] = at_meta
    return out, head


def read_event_rows(PartitionReader reader not None, positions, make):
    """decode_event_rows for the rows at ``positions`` (ascending), each frame
    found through ``reader`` (a seek only when the next position is outside the
    frame at hand) - the stream read's loop, without a Python call per frame.
    Positions with no row (damaged bytes) are left out. NotImplementedError
    when a frame is not one the native decoder reads (the caller falls back)."""
    if reader.partition._get() != reader.part:
        raise LogClosedError("the partition is closed (its topic was deleted or its log closed)")
    cdef CPartitionReader* r = reader.r.get()
    cdef vector[CFrameRef] refs
    cdef Frame frame = None
    cdef EventFrameView v
    cdef list out = []
    cdef int64_t pos, row
    cdef NativePartition owner = reader.partition
    for p in positions:
        pos = p
        if frame is None or not (frame.base_offset <= pos < frame.next_offset):
            if r.position() != pos:
                r.seek(pos)
            refs.clear()
            with nogil:
                r.read(1, UINT64_MAX, &refs, NULL)
            if refs.size() == 0:
                break
            frame = Frame._from_ref(owner._mapping_for(refs[0].region), refs[0])
            _view_event_frame(frame, &v)
        if pos < frame.base_offset:
            continue
        row = frame.row_index(pos)
        if row < 0 or row >= v.rows or frame.offset_at(row) != pos:
            continue
        out.append(make(pos, _cell_str(&v, 0, row), _cell_i64(&v, 1, row), _cell_str(&v, 2, row),
                        PyBytes_FromStringAndSize(<const char*>v.data[3] + 16 * row, 16), _cell_i64(&v, 4, row),
                        _cell_bytes(&v, 5, row), _cell_bytes(&v, 6, row)))
    return out
