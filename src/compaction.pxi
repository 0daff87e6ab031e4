# Compaction's native side (native/compaction_session.h, FORMAT.md §2.7): a
# pass holds the partition's cleaner lock, lists its segments, and rewrites
# cleanable (sealed, durable) ones through the crash-safe swap. The cleaner
# itself (which records survive) is python/tidelog/compaction/.
#
# Threads: the cleaner lock belongs to the thread that took it (a robust
# pthread mutex): use a session (and its rewriters) from that thread only.

cdef class SegmentRewriter:
    """The new version of one sealed segment, written to ``<base>.log.cleaned``
    (and its indexes). Frames must tile the segment's offsets exactly; every
    frame written is sparse (FLAG_SPARSE added here). ``commit()`` swaps it in."""
    cdef shared_ptr[CSegmentRewriter] w
    cdef CompactionSession session

    cdef CSegmentRewriter* _get(self) except NULL:
        if not self.w:
            raise LogClosedError("the rewrite is over (committed or aborted)")
        return self.w.get()

    @property
    def base_offset(self):
        return self._get().base_offset()

    @property
    def end_offset(self):
        return self._get().end_offset()

    @property
    def next_offset(self):
        """Where the next frame must start."""
        return self._get().next_offset()

    @property
    def bytes_written(self):
        return self._get().bytes()

    def append(self, int64_t base_offset, int64_t span, uint32_t record_count, offset_deltas,
               int64_t delete_horizon_ns, int64_t min_timestamp, int64_t max_timestamp, int codec, int flags,
               payload, int64_t body_offset=-1, uint32_t schema_id=0):
        """Writes one sparse frame: ``record_count`` rows at offsets ``base_offset +
        offset_deltas[i]`` (a buffer of record_count uint32, strictly increasing,
        each < span) within ``span`` offsets. ``payload``: the Arrow part, a
        buffer or a list of buffers (``codec``/``flags`` bit 0 as for a dense
        frame). ``body_offset``: the Arrow part's offset of its first body buffer
        (-1: no alignment)."""
        cdef CSegmentRewriter* w = self._get()
        if codec < 0 or codec > 0xFFFF or flags < 0 or flags > 0xFFFF:
            raise InvalidArgumentError("codec and flags are 16-bit values")
        cdef list pieces = list(payload) if isinstance(payload, (list, tuple)) else [payload]
        cdef Py_ssize_t n = len(pieces), i, got = 0
        cdef vector[Py_buffer] views
        cdef vector[iovec] iov
        cdef vector[uint32_t] deltas
        cdef Py_buffer dv
        cdef CRewriteFrame f
        PyObject_GetBuffer(offset_deltas, &dv, PyBUF_SIMPLE)
        try:
            if dv.len != 4 * <Py_ssize_t>record_count:
                raise InvalidArgumentError(
                    f"offset_deltas holds {dv.len} bytes; {record_count} uint32 deltas take {4 * record_count}")
            deltas.resize(record_count)
            if record_count:
                memcpy(deltas.data(), dv.buf, 4 * record_count)
        finally:
            PyBuffer_Release(&dv)
        views.resize(n)
        iov.resize(n)
        try:
            for i in range(n):
                PyObject_GetBuffer(pieces[i], &views[i], PyBUF_SIMPLE)
                got += 1
                iov[i].iov_base = views[i].buf
                iov[i].iov_len = <size_t>views[i].len
            f.base_offset = base_offset
            f.span = span
            f.record_count = record_count
            f.offset_deltas = deltas.data()
            f.delete_horizon_ns = delete_horizon_ns
            f.min_timestamp = min_timestamp
            f.max_timestamp = max_timestamp
            f.codec = <uint16_t>codec
            f.flags = <uint16_t>flags
            f.schema_id = schema_id
            f.pieces = iov.data()
            f.piece_count = <int>n
            f.body_offset = body_offset
            with nogil:
                w.append(f)
        finally:
            for i in range(got):
                PyBuffer_Release(&views[i])

    def append_empty(self, int64_t base_offset, int64_t span, int64_t timestamp):
        """Writes an empty sparse frame: ``span`` offsets whose records were all removed."""
        cdef CSegmentRewriter* w = self._get()
        with nogil:
            w.append_empty(base_offset, span, timestamp)

    def commit(self):
        """Finishes the new segment (the tiling complete, files synced) and swaps it
        in (FORMAT.md §2.7). Returns {"bytes_before", "bytes_after", "swapped"};
        swapped is False (and both sizes 0 after) when retention deleted the
        segment meanwhile. After it, this handle's reads see the new segment."""
        cdef CSegmentRewriter* w = self._get()
        cdef CCompactionSession* s = self.session._get()
        cdef CSwapStats st
        try:
            with nogil:
                st = s.commit(w[0])
        finally:
            self.w.reset()
        return {"bytes_before": st.bytes_before, "bytes_after": st.bytes_after, "swapped": st.swapped}

    def abort(self):
        """Removes the .cleaned files; the segment stays as it was. Idempotent."""
        if not self.w:
            return
        cdef CSegmentRewriter* w = self.w.get()
        try:
            if not w.finished():
                with nogil:
                    w.abort()
        finally:
            self.w.reset()


cdef class CompactionSession:
    """A compaction pass over one partition, holding its cleaner lock (any
    process: one cleaner per partition). A context manager: leaving it aborts
    an uncommitted rewrite and releases the lock. Starting a pass removes what
    an earlier cleaner left (``*.cleaned`` files) and rebuilds missing indexes."""
    cdef unique_ptr[CCompactionSession] s
    cdef NativePartition part

    cdef CCompactionSession* _get(self) except NULL:
        if not self.s or not self.s.get().held():
            raise LogClosedError("the compaction pass is over")
        self.part._get()
        return self.s.get()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()
        return False

    def segments(self):
        """The partition's segments in offset order: dicts with base_offset,
        end_offset (the next segment's base; the active one: its next offset),
        bytes, max_timestamp, cleanable (sealed and wholly below the recovery
        checkpoint's segment) and compacted (written by a rewrite)."""
        cdef CCompactionSession* s = self._get()
        cdef vector[CCompactionSegmentInfo] info
        with nogil:
            info = s.segments()
        return [
            {
                "base_offset": info[i].base_offset,
                "end_offset": info[i].end_offset,
                "bytes": info[i].bytes,
                "max_timestamp": info[i].max_timestamp,
                "cleanable": info[i].cleanable,
                "compacted": info[i].compacted,
            }
            for i in range(info.size())
        ]

    def rewrite(self, int64_t base_offset):
        """A SegmentRewriter for the cleanable segment starting at base_offset
        (an unfinished earlier rewrite of this pass is aborted).
        InvalidArgumentError if there is none."""
        cdef CCompactionSession* s = self._get()
        cdef shared_ptr[CSegmentRewriter] w
        with nogil:
            w = s.rewrite(base_offset)
        cdef SegmentRewriter out = SegmentRewriter.__new__(SegmentRewriter)
        out.w = w
        out.session = self
        return out

    def release(self):
        """Aborts an uncommitted rewrite and releases the cleaner lock. Idempotent."""
        if self.part is not None and self.part._compaction is self:
            self.part._compaction = None
        self._release_for_partition()

    cdef _release_for_partition(self):
        if not self.s:
            return
        try:
            with nogil:
                self.s.get().release()
        finally:
            self.s.reset()

    def __dealloc__(self):
        # (A session dropped without release: the native destructor releases.)
        pass


def _open_compaction(NativePartition partition, bint wait):
    cdef CPartition* part = partition._get()
    if partition._compaction is not None:
        raise InvalidArgumentError("this partition handle has a compaction pass in progress")
    cdef unique_ptr[CCompactionSession] s
    with nogil:
        s = CCompactionSession.open(part[0], wait, signal_raised, NULL)
    if not s:
        return None
    cdef CompactionSession out = CompactionSession.__new__(CompactionSession)
    out.s.reset(s.release())
    out.part = partition
    partition._compaction = out
    return out
