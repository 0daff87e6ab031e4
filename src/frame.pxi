# One published frame as NativePartition.frames() hands it to Python (included
# by _core.pyx). Fields are C values copied out of the native frame header, so
# building one boxes nothing; Python boxes a field only when it reads it.
# decode_frame reads them in C: a scan pays one call per frame, not one
# attribute lookup per field.
#
# Sparse frames (FORMAT.md §2.6, written by compaction) carry each record's
# offset in an offset block at the start of their stored payload; the Frame
# parses and checks it here (from the mapped bytes, independently of the native
# frame_ref helpers) and keeps a pointer to its deltas, which stay valid while
# the Frame holds the mapping.
from pyarrow import (foreign_buffer as _foreign_buffer, py_buffer as _py_buffer, RecordBatch as _RecordBatch,
                     Array as _Array, int64 as _pa_int64)
from pyarrow.ipc import open_stream as _open_stream, read_record_batch as _read_record_batch

cdef extern from *:
    # Unaligned-safe little-endian loads of the offset block (the host is little-endian, FORMAT.md).
    """
    static inline int64_t tidelog_load_i64(const unsigned char* p) { int64_t v; memcpy(&v, p, 8); return v; }
    static inline uint32_t tidelog_load_u32(const unsigned char* p) { uint32_t v; memcpy(&v, p, 4); return v; }
    """
    int64_t _load_i64 "tidelog_load_i64"(const unsigned char* p) nogil
    uint32_t _load_u32 "tidelog_load_u32"(const unsigned char* p) nogil

@cython.final
@cython.freelist(64)
@cython.no_gc  # it refers only to a Mapping, which refers to no Python object: no cycle can pass through it
@cython.auto_pickle(False)
cdef class Frame:
    """One published frame of a partition: where its payload lies in the mapped
    segment and what its header says (FORMAT.md §2).

    Made only by ``NativePartition.frames``. Immutable, so it may be shared
    between threads; ``mapping`` keeps the segment mapped while the Frame (or a
    buffer over the payload) lives.

    A dense frame holds a record at every offset it covers (row i has offset
    ``base_offset + i``); a sparse one (``sparse``, written by compaction) holds
    ``record_count`` records at the offsets its offset block gives (possibly
    none): ``offset_at``, ``row_index`` and ``offsets`` number rows either way.
    """
    cdef readonly Mapping mapping
    cdef readonly uintptr_t address        # of the Arrow payload's first byte (after a sparse frame's offset block)
    cdef readonly uint64_t length          # Arrow payload bytes (stored: compressed for zstd)
    cdef readonly uint64_t position        # of the frame header in its segment file
    cdef readonly int64_t base_offset
    cdef readonly uint32_t record_count    # rows
    cdef readonly int64_t next_offset      # one past the frame's last offset, as the header says
    cdef readonly int64_t min_timestamp
    cdef readonly int64_t max_timestamp
    cdef readonly uint16_t codec
    cdef readonly uint16_t flags
    cdef readonly uint32_t schema_id
    cdef readonly uint32_t crc             # CRC32C of payload and header: with base_offset, the frame's identity
    cdef readonly uint16_t version         # frame format version
    cdef readonly bint sparse              # FLAG_SPARSE: the rows carry their offsets
    cdef readonly uint32_t block_length    # bytes of the offset block before the Arrow payload (0: dense)
    cdef readonly int64_t delete_horizon_ns  # from the offset block; 0: none (and for dense frames)
    cdef const uint32_t* _deltas           # sparse: record i has offset base_offset + _deltas[i]; NULL: dense

    @staticmethod
    cdef Frame _from_ref(Mapping mapping, const CFrameRef& ref):
        # __new__ skips __init__ and argument parsing: this is the scan's per-frame cost.
        cdef Frame f = Frame.__new__(Frame)
        f.mapping = mapping
        f.address = <uintptr_t>ref.payload()
        f.length = ref.header.payload_length
        f.position = ref.position
        f.base_offset = ref.header.base_offset
        f.record_count = ref.header.record_count
        f.next_offset = ref.header.next_offset()
        f.min_timestamp = ref.header.min_timestamp
        f.max_timestamp = ref.header.max_timestamp
        f.codec = ref.header.codec
        f.flags = ref.header.flags
        f.schema_id = ref.header.schema_id
        f.crc = ref.header.crc
        f.version = ref.header.version
        # One test keeps the dense path as it was; sparse frames (and headers
        # that break the dense rule) are checked out of line.
        if (f.flags & C_FLAG_SPARSE) or f.next_offset - f.base_offset != f.record_count:
            f._load_offset_block()
        return f

    cdef int _load_offset_block(self) except -1:
        """Parses and checks the offset block (FORMAT.md §2.6) of a sparse frame;
        CorruptionError naming the frame if it breaks a rule (the CRC passed, so
        a writer wrote it wrong: never number rows from it)."""
        cdef int64_t span = self.next_offset - self.base_offset
        if not self.flags & C_FLAG_SPARSE:
            self._corrupt(f"{self.record_count} records over {span} offsets without FLAG_SPARSE")
        if self.version < 2:
            self._corrupt("FLAG_SPARSE on a version-1 frame")
        cdef uint64_t block = (8 + 4 * <uint64_t>self.record_count + 7) & ~(<uint64_t>7)
        if block > self.length:
            self._corrupt(f"offset block of {block} bytes longer than the payload ({self.length} bytes)")
        cdef const unsigned char* p = <const unsigned char*>self.address
        # 4-aligned: a payload starts 8-aligned in a page-aligned mapping
        cdef const uint32_t* deltas = <const uint32_t*>(p + 8)
        cdef uint32_t i
        cdef int64_t prev = -1
        for i in range(self.record_count):
            if <int64_t>deltas[i] <= prev:
                self._corrupt(f"offset deltas not strictly increasing at record {i}")
            prev = deltas[i]
        if prev >= span:
            self._corrupt(f"offset delta {prev} past the frame's last offset (span {span})")
        self.sparse = True
        self.delete_horizon_ns = _load_i64(p)
        self._deltas = deltas
        self.block_length = <uint32_t>block
        self.address += block
        self.length -= block
        return 0

    cdef int _corrupt(self, str reason) except -1:
        path = self.mapping.path
        # <log>/topics/<topic>/<partition>/<base>.log (FORMAT.md §1); (no negative
        # indexing: the module is compiled without wraparound)
        folder = path.rpartition("/")[0]
        rest, _, partition = folder.rpartition("/")
        place = {"topic": rest.rpartition("/")[2], "partition": int(partition) if partition.isdigit() else -1,
                 "segment": path, "position": self.position, "start_offset": self.base_offset,
                 "end_offset": self.next_offset}
        raise _from_native("corrupt", f"sparse frame at position {self.position} of {path} (offsets "
                                 f"{self.base_offset}..{self.next_offset - 1}): {reason}", place)

    cpdef int64_t offset_at(self, Py_ssize_t i) except? -1:
        """The offset of row ``i`` (0 <= i < record_count)."""
        if i < 0 or i >= self.record_count:
            raise IndexError(f"row {i} of a frame of {self.record_count} records")
        return self.base_offset + (self._deltas[i] if self._deltas != NULL else i)

    cpdef Py_ssize_t row_index(self, int64_t offset) except? -1:
        """The first row whose offset is >= ``offset``: 0 .. record_count
        (record_count: every row lies before it)."""
        cdef int64_t rel = offset - self.base_offset
        if rel <= 0:
            return 0
        if self._deltas == NULL:
            return rel if rel < self.record_count else self.record_count
        if rel > 0xFFFFFFFF:
            return self.record_count
        cdef Py_ssize_t lo = 0, hi = self.record_count, mid  # lower bound of rel among the deltas
        while lo < hi:
            mid = (lo + hi) >> 1
            if <int64_t>self._deltas[mid] < rel:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def offsets(self):
        """The rows' offsets as an int64 ``pyarrow.Array`` (a dense frame's are
        ``base_offset + arange(record_count)``)."""
        cdef Py_ssize_t n = self.record_count, i
        out = bytearray(8 * n)
        cdef int64_t* dst = <int64_t*><char*>out
        cdef int64_t base = self.base_offset
        if self._deltas == NULL:
            for i in range(n):
                dst[i] = base + i
        else:
            for i in range(n):
                dst[i] = base + self._deltas[i]
        return _Array.from_buffers(_pa_int64(), n, [None, _py_buffer(out)])

    def payload(self):
        """The Arrow payload (after a sparse frame's offset block) as a pyarrow
        Buffer over the mapping (no copy; it keeps the mapping alive)."""
        return _foreign_buffer(self.address, self.length, self.mapping)

    def sorted_rows_in(self, Py_ssize_t ts_buffer, int64_t lo, int64_t hi):
        """(first, stop): the rows whose values in the payload's 8-byte buffer
        ``ts_buffer`` (the timestamp column's values, in its unit) are in
        [lo, hi), by binary search over the stored column, before anything is
        decoded; None when this frame is not one plain, uncompressed IPC
        message whose rows are in time order without nulls (FLAG_TIME_ORDERED).
        A time-range read of a frame at the range's edge is then a search and
        one slice: with cold CPU caches, the Arrow views the search took
        otherwise cost as much as the decode."""
        if self.codec != C_CODEC_NONE or self.sparse or self.record_count == 0 \
                or self.flags & C_FLAG_IPC_STREAM or not self.flags & C_FLAG_TIME_ORDERED:
            return None
        cdef const unsigned char* m = <const unsigned char*>self.address
        cdef Py_ssize_t n = <Py_ssize_t>self.length, rows = self.record_count
        cdef const unsigned char* fb
        cdef const unsigned char* data
        cdef Py_ssize_t body, nodes, buffers, node_count, buffer_count
        try:
            if not _ipc_batch_layout(m, n, &body, &fb, &nodes, &node_count, &buffers, &buffer_count):
                return None
        except CorruptionError:
            return None  # (the decode reports it)
        if ts_buffer < 0 or ts_buffer >= buffer_count or node_count < 1 or _i64(fb + nodes + 4) != rows:
            return None
        data = _ipc_int64_values(m, n, body, fb, buffers, ts_buffer, rows)
        if data == NULL:
            return None
        return _sorted_range(<const int64_t*>data, rows, lo, hi)

    def __repr__(self):
        return (f"<tidelog Frame offsets {self.base_offset}..{self.next_offset} ({self.record_count} records"
                f"{', sparse' if self.sparse else ''}) at {self.position} of {self.mapping.path!r}, payload "
                f"{self.length} bytes, codec {self.codec}, flags {self.flags}>")


def decode_frame(Frame frame not None, schema, decompress):
    """The record batches stored in one frame (zero-copy when uncompressed),
    none for an empty (sparse) frame; ``decompress`` turns a zstd payload into bytes."""
    if frame.record_count == 0:
        return []
    buf = frame.payload()
    if frame.codec != C_CODEC_NONE:
        buf = _py_buffer(decompress(buf))
    if frame.flags & C_FLAG_IPC_STREAM:
        return _open_stream(buf).read_all().to_batches() or [_RecordBatch.from_pylist([], schema=schema)]
    return [_read_record_batch(buf, schema)]
