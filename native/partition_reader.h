#pragma once
// A cursor over one partition's frames (Redpanda's log_reader): it keeps the
// segment, byte position and next offset where its last read ended, so that a
// consumer polling at the tail reads the next frame straight from the mapping
// it already holds: no index lookup, no lock on the segment list, no folder
// listing, and on read-only handles no system call while the frames end in the
// 4 KiB block where the last read ended (else one fstat: partition::frames
// costs ~10 syscalls there).
//
// Anything the straight read does not vouch for (no position yet, a seek, the
// end of a segment, a header or CRC that fails, a sparse frame, a segment that
// retention removed) goes through partition::frames from the cursor's offset,
// so damage, skip mode, rolls, retention and read-only refresh follow exactly
// the rules and errors of frames().
//
// Concurrency: one cursor per thread (it is not locked); the partition's
// appends, rolls and retention may run concurrently. The partition must outlive it.
#include <cstdint>
#include <memory>
#include <vector>

#include "partition.h"

namespace tidelog {

class partition_reader {
public:
    partition_reader(partition& p, int64_t offset);

    /// Appends to *out up to max_frames frames, in offset order, from position()
    /// on: only published (in "fsync" mode: durable) ones. Stops early once
    /// max_bytes of frames were returned (at least one frame is). Damage raises
    /// error(corrupt) as frames() does; with `skipped` non-null it is skipped and
    /// appended there, and the position moves past it. Returns frames appended.
    size_t read(size_t max_frames, uint64_t max_bytes, std::vector<frame_ref>* out,
                std::vector<damaged_range>* skipped = nullptr);
    /// read() of what needs no system call, no wait and no lock but the short
    /// one of a segment's verified range: frames from the mapping the cursor
    /// holds, up to where it can vouch for them without asking the file (its
    /// 4 KiB block on a read-only handle, the segment's size on a read-write
    /// one). Returns 0, the cursor unchanged, whenever read() has more to do
    /// (at the tail, a seek, a segment end, a remap, damage): the caller may
    /// hold a lock a blocking call must not (Python's GIL), and calls read()
    /// without it then.
    size_t read_held(size_t max_frames, uint64_t max_bytes, std::vector<frame_ref>* out);
    /// Moves the cursor (the next read finds the frame holding `offset`).
    void seek(int64_t offset);
    /// The offset the next read starts at.
    int64_t position() const { return _offset; }

private:
    /// Frames straight from the held segment; false when it met something only
    /// frames() may judge (the cursor then forgets its segment).
    bool read_here(size_t max_frames, uint64_t max_bytes, int64_t visible, std::vector<frame_ref>* out);
    /// Takes frames of the held segment from _position over bytes [_position,
    /// end) of _region, counting into taken and bytes; true once it stopped
    /// because the caller has enough, false on something frames() must judge.
    bool walk_held(uint64_t end, size_t max_frames, uint64_t max_bytes, int64_t visible, std::vector<frame_ref>* out,
                   size_t& taken, uint64_t& bytes);
    void read_through_partition(size_t max_frames, uint64_t max_bytes, std::vector<frame_ref>* out,
                                std::vector<damaged_range>* skipped);

    partition& _partition;
    std::shared_ptr<segment> _segment;  // null: the next read goes through frames()
    std::shared_ptr<mapped_region> _region;
    // The next segment's base when _segment was taken (INT64_MAX: it was the
    // last): frames() names a frame reaching past it damage, so a straight read
    // must not take it. (A roll after that starts the next segment where this
    // one's frames end.)
    int64_t _segment_end = INT64_MAX;
    uint64_t _position = 0;  // in _segment: where the frame holding _offset starts
    int64_t _offset;
};

}  // namespace tidelog
