# One published frame as NativePartition.frames() hands it to Python (included
# by _core.pyx). Fields are C values copied out of the native frame header, so
# building one boxes nothing; Python boxes a field only when it reads it.
# decode_frame reads them in C: a scan pays one call per frame, not one
# attribute lookup per field.
from pyarrow import foreign_buffer as _foreign_buffer, py_buffer as _py_buffer, RecordBatch as _RecordBatch
from pyarrow.ipc import open_stream as _open_stream, read_record_batch as _read_record_batch

cdef class Frame:
    """One published frame of a partition: where its payload lies in the mapped
    segment and what its header says (FORMAT.md §4).

    Made only by ``NativePartition.frames``. Immutable, so it may be shared
    between threads; ``mapping`` keeps the segment mapped while the Frame (or a
    buffer over the payload) lives.
    """
    cdef readonly Mapping mapping
    cdef readonly uintptr_t address        # of the first payload byte
    cdef readonly uint64_t length          # payload bytes
    cdef readonly uint64_t position        # of the frame header in its segment file
    cdef readonly int64_t base_offset
    cdef readonly uint32_t record_count
    cdef readonly int64_t next_offset      # one past the frame's last offset, as the header says
    cdef readonly int64_t min_timestamp
    cdef readonly int64_t max_timestamp
    cdef readonly uint16_t codec
    cdef readonly uint16_t flags
    cdef readonly uint32_t schema_id
    cdef readonly uint16_t version         # frame format version

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
        f.version = ref.header.version
        return f

    def payload(self):
        """The payload as a pyarrow Buffer over the mapping (no copy; it keeps
        the mapping alive)."""
        return _foreign_buffer(self.address, self.length, self.mapping)

    def __repr__(self):
        return (f"<tidelog Frame offsets {self.base_offset}..{self.next_offset} ({self.record_count} records) "
                f"at {self.position} of {self.mapping.path!r}, payload {self.length} bytes, codec {self.codec}, "
                f"flags {self.flags}>")


def decode_frame(Frame frame not None, schema, decompress):
    """The record batches stored in one frame (zero-copy when uncompressed);
    ``decompress`` turns a zstd payload into bytes."""
    buf = frame.payload()
    if frame.codec != C_CODEC_NONE:
        buf = _py_buffer(decompress(buf))
    if frame.flags & C_FLAG_IPC_STREAM:
        return _open_stream(buf).read_all().to_batches() or [_RecordBatch.from_pylist([], schema=schema)]
    return [_read_record_batch(buf, schema)]
