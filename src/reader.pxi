# PartitionReader: the native partition_reader cursor (native/partition_reader.h),
# which the consumer's fetch uses instead of a fresh NativePartition.frames seek per poll.
from cython.operator cimport dereference as _deref
from libc.stdint cimport UINT64_MAX


cdef class PartitionReader:
    """A cursor over one partition: it keeps the segment and byte position where
    its last read ended, so the next read at the tail starts there. Frames are
    ``Frame`` objects, as ``NativePartition.frames`` gives. Not thread-safe: one per thread (the
    partition's appends may run concurrently). Reading after the partition was
    released raises LogClosedError."""
    cdef unique_ptr[CPartitionReader] r
    cdef readonly NativePartition partition
    cdef CPartition* part

    def __cinit__(self, NativePartition partition, int64_t offset=0):
        self.partition = partition
        self.part = partition._get()
        self.r.reset(new CPartitionReader(_deref(self.part), offset))

    def read(self, int64_t offset, size_t max_frames=1, list skipped=None, uint64_t max_bytes=UINT64_MAX):
        """Up to ``max_frames`` published frames from ``offset`` on, in order (a
        read from where the last one ended goes on from the held position; any
        other offset seeks). Damage raises CorruptionError; with ``skipped`` (a
        list) it is skipped, a dict per range appended there, as frames() does."""
        if self.partition._get() != self.part:
            raise LogClosedError("the partition is closed (its topic was deleted or its log closed)")
        cdef CPartitionReader* r = self.r.get()
        if r.position() != offset:
            r.seek(offset)
        cdef vector[CFrameRef] refs
        cdef vector[CDamagedRange] damage
        cdef vector[CDamagedRange]* damage_out = &damage if skipped is not None else NULL
        if r.read_held(max_frames, max_bytes, &refs) == 0:  # else frames the held mapping vouches for: no I/O
            with nogil:
                r.read(max_frames, max_bytes, &refs, damage_out)
        out = []
        cdef size_t i
        cdef NativePartition owner = self.partition
        for i in range(refs.size()):
            out.append(Frame._from_ref(owner._mapping_for(refs[i].region), refs[i]))
        if skipped is not None:
            for i in range(damage.size()):
                skipped.append(_damaged_range_dict(damage[i]))
        return out

    @property
    def position(self):
        """The offset the next read starts at."""
        return self.r.get().position()
