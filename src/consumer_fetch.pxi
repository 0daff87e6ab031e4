# The consumer's per-frame fetch (tidelog._consumer.Consumer), compiled: at one
# record per frame, the Python version of these steps cost ~1.3 us of the ~1.6 us
# a record took, most of a blocked consumer's time between its wake-up and its
# record. Same steps, same state (the consumer's targets, positions, readers and
# round-robin index), with typed access to the readers, frames and partitions.
# Rare paths (a closed topic, damage skipped) call back into the consumer.


cdef inline PartitionReader _reader_of(dict readers, key, NativePartition native, int64_t pos):
    """The partition's cursor, which goes on from where its last frame ended
    instead of seeking from the index."""
    reader = readers.get(key)
    if reader is None or (<PartitionReader>reader).partition is not native:
        reader = readers[key] = PartitionReader(native, pos)  # first fetch, or the topic was created again
    return <PartitionReader>reader


def consumer_frames(consumer, NativePartition native not None, str name, int p, int64_t pos, topic):
    """``Consumer._frames``: the next frame from ``pos`` (one or none) through
    the partition's cursor, skipping damage if the consumer does."""
    return _read_one_frame(consumer, _reader_of(consumer._readers, (name, p), native, pos), name, p, pos, topic,
                           consumer._skip_damage)


cdef list _read_one_frame(consumer, PartitionReader reader, str name, int p, int64_t pos, topic, bint skip_damage):
    """The next frame from ``pos`` (one or none); skipping damage, the position
    moves past what was skipped, which is counted and warned about as
    ``Partition.frames`` does."""
    if not skip_damage:
        return reader.read(pos, 1)
    cdef list skipped = []
    cdef list frames = reader.read(pos, 1, skipped)
    if skipped:
        topic.partition(p)._note_skipped(name, p, skipped)
        past = max(d["end_offset"] for d in skipped)
        if not frames or (<Frame>frames[0]).base_offset >= past:
            key = (name, p)
            positions = consumer._positions
            positions[key] = max(positions[key], past)
    return frames


def consumer_next_frame(consumer, Py_ssize_t max_records):
    """``Consumer._next_frame``: the next frame from the positions on,
    round-robin over partitions: (topic_name, partition, frame, topic,
    start_row, stop_row) or None. The rows may be none (an empty frame of a
    compacted segment, or a position past a sparse frame's last record): the
    position still moves past them."""
    cdef int64_t next_position
    return _next_frame(consumer, max_records, &next_position)


cdef tuple _next_frame(consumer, Py_ssize_t max_records, int64_t* next_position):
    """consumer_next_frame, with the partition's new position in *next_position."""
    cdef list targets = consumer._targets
    cdef dict positions = consumer._positions
    cdef dict readers = consumer._readers
    cdef bint skip_damage = consumer._skip_damage
    cdef Py_ssize_t n = len(targets), i, at = consumer._next
    cdef Py_ssize_t lo, hi, count
    cdef int64_t pos, end, start
    cdef list target
    cdef NativePartition native
    cdef Frame frame
    cdef CPartition* part
    cdef int p
    for i in range(n):
        target = <list>targets[(at + i) % n]
        if target[3].closed:
            target = consumer._live(target)  # looked up again, or raises
        key = target[0]
        native = <NativePartition>target[4]
        part = native._get()
        pos = positions[key]
        if not part.published_offsets(&start, &end):  # no shared state open yet: ask the partition
            end = part.end_offset()
            if pos >= end:
                continue
            with nogil:
                start = part.start_offset()
        if pos >= end:
            continue
        if pos < start:
            pos = start  # retention removed what we had not read: continue from the oldest kept
        name = <str>target[1]
        p = target[2]
        topic = target[3]
        frames = _read_one_frame(consumer, _reader_of(readers, key, native, pos), name, p, pos, topic, skip_damage)
        if not frames:
            if positions[key] < pos:
                positions[key] = pos  # past damage it skipped, if any
            continue
        frame = <Frame>frames[0]
        count = frame.record_count
        lo = frame.row_index(pos) if pos > frame.base_offset else 0  # pos may be an offset compaction removed
        hi = count
        if hi - lo > max_records:
            hi = lo + max_records
        # The whole frame read: where the frame says its offsets go on (past
        # removed offsets too); else the offset of the next unread row.
        next_position[0] = frame.next_offset if hi == count else frame.offset_at(hi)
        positions[key] = next_position[0]
        consumer._next = (at + i + 1) % n
        return name, p, frame, topic, lo, hi
    return None


def consumer_decode_records(Frame frame not None, topic, str name, int partition, Py_ssize_t lo, Py_ssize_t hi):
    """Records (rows [lo, hi)) of one frame: natively from the mapping for plain
    record frames, through pyarrow for compressed or whole-stream ones."""
    if lo >= hi:
        return []
    if frame.codec == C_CODEC_NONE and not (frame.flags & C_FLAG_IPC_STREAM):
        try:
            return decode_record_payload(frame, name, partition, lo, hi)
        except NotImplementedError:
            pass
    (batch,) = topic.partition(partition).decode(frame)
    return decode_records(batch, name, partition, frame, lo, hi)


def consumer_fill(consumer, deadline):
    """``Consumer._fill`` (the method itself: a consumer's iteration calls it
    once a frame, so no Python frame wraps it): buffers the records of the
    next frame that has any, waiting (``consumer._wait``) while no partition
    has; False once ``deadline`` (time.monotonic() seconds, None: never) passes."""
    cdef Py_ssize_t lo, hi
    cdef int64_t next_position
    while True:
        if consumer._closed:
            consumer._check_open()  # raises
        got = _next_frame(consumer, 1 << 62, &next_position)
        if got is not None:
            name, p, frame, topic, lo, hi = got
            if not topic.config.records:
                raise TypeError(f"topic {name!r} is columnar: read it with poll_batch() or topic.scan()")
            if lo == hi:
                continue  # no records there (compaction removed them): the position moved on
            consumer._buffer = consumer_decode_records(frame, topic, name, p, lo, hi)
            consumer._buffer_at = 0
            consumer._buffer_next = next_position
            return True
        if not consumer._wait(deadline) and not consumer.has_data():
            return False


cdef class ConsumerIterator:
    """``iter(consumer)``: the records of the consumer's buffer, refilled by
    ``consumer._fill(None)`` (which waits) when it runs out. Compiled, as a
    generator in Python cost ~1k instructions a record, a fifth of a record's
    cost when each frame holds one. The buffer is taken whole, as the
    generator's ``yield from`` did: the consumer's buffer counts as delivered
    once the iterator holds it."""
    cdef object consumer
    cdef list buf
    cdef Py_ssize_t at

    def __cinit__(self, consumer):
        self.consumer = consumer
        self.buf = []
        self.at = 0

    def __iter__(self):
        return self

    def __next__(self):
        cdef list buf = self.buf
        cdef Py_ssize_t at = self.at
        if at < len(buf):
            self.at = at + 1
            return buf[at]
        consumer = self.consumer
        while True:
            buf = consumer._buffer
            at = consumer._buffer_at
            if at < len(buf):
                break
            consumer._fill(None)
        consumer._buffer_at = len(buf)
        self.buf = buf
        self.at = at + 1
        return buf[at]
