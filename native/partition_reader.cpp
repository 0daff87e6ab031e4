#include "partition_reader.h"

#include <algorithm>

#include "errors.h"
#include "frame_walker.h"

namespace tidelog {

partition_reader::partition_reader(partition& p, int64_t offset) : _partition(p), _offset(offset) {}

void partition_reader::seek(int64_t offset) {
    _offset = offset;
    _segment.reset();
    _region.reset();
}

size_t partition_reader::read(size_t max_frames, uint64_t max_bytes, std::vector<frame_ref>* out,
                              std::vector<damaged_range>* skipped) {
    size_t before = out->size();
    if (max_frames == 0) return 0;
    int64_t visible = _partition.end_offset();
    if (_offset >= visible) return 0;  // at the tail: nothing to do, no syscall
    if (_segment && read_here(max_frames, max_bytes, visible, out)) return out->size() - before;
    if (out->size() > before) return out->size() - before;  // the rest on the next read
    read_through_partition(max_frames, max_bytes, out, skipped);
    return out->size() - before;
}

bool partition_reader::walk_held(uint64_t end, size_t max_frames, uint64_t max_bytes, int64_t visible,
                                 std::vector<frame_ref>* out, size_t& taken, uint64_t& bytes) {
    segment& s = *_segment;
    bool complete = false;  // stopped because the caller has enough, not on something to judge
    auto visitor = make_frame_visitor(
        [&](uint64_t pos, const frame_header& h) {
            return s.verified(pos, pos + h.frame_length()) ? frame_admission::take : frame_admission::take_after_crc;
        },
        [&](uint64_t pos, const frame_header& h, bool crc_checked) {
            if (crc_checked) s.mark_verified(pos, pos + h.frame_length());
            out->push_back(frame_ref{_region, pos, h});
            ++taken;
            bytes += h.frame_length();
            _position = pos + h.frame_length();
            _offset = h.next_offset();
            complete = taken == max_frames || bytes >= max_bytes || _offset >= visible;
            return !complete;
        },
        // Damage, a frame not yet visible, the end of the bytes known: frames() judges.
        [](uint64_t, int64_t, frame_check) { return walk_resume::stop_here(); });
    walk_frames(_region->data(), end, _position, _offset, std::min(visible, _segment_end), visitor,
                check_order::offsets_first);
    return complete;
}

// The part of a read-only handle's segment that reads without asking the file
// its size (an fstat: a system call per read): _position ends a published frame
// of this segment, and the file never shrinks below a published frame (a roll
// trims only the preallocated tail), so the 4 KiB block holding byte
// _position - 1 is in a page that holds file bytes, and all of it reads (zeros
// past the end of the file), never SIGBUS. A walk confined to that block takes
// the frames that end in it; anything else (a frame crossing the block,
// _position on a block boundary, the zeros after a roll) is left to a walk that
// learns the size from the file. 0 when there is no such block.
static uint64_t held_block_end(uint64_t position, uint64_t region_length) {
    constexpr uint64_t block_bytes = 4096;  // no page is smaller
    uint64_t in_block = position % block_bytes;
    uint64_t block_end = std::min(position - in_block + block_bytes, region_length);
    return in_block != 0 && position + frame_header_bytes <= block_end ? block_end : 0;
}

size_t partition_reader::read_held(size_t max_frames, uint64_t max_bytes, std::vector<frame_ref>* out) {
    if (max_frames == 0 || !_segment || !_region) return 0;
    int64_t start, visible;
    if (!_partition.published_offsets(&start, &visible) || _offset >= visible) return 0;
    segment& s = *_segment;
    if (s.removed() || start > s.base_offset()) return 0;  // read() moves the cursor to the start
    uint64_t end;
    if (_partition.read_only()) {
        end = held_block_end(_position, _region->length());
    } else {
        end = s.size();  // a read-write handle knows its segments' sizes
        if (_region->length() < end || _position + frame_header_bytes > end) end = 0;  // a remap, or the next segment
    }
    if (end == 0) return 0;
    size_t before = out->size(), taken = 0;
    uint64_t bytes = 0, position = _position;
    int64_t offset = _offset;
    if (walk_held(end, max_frames, max_bytes, visible, out, taken, bytes)) return out->size() - before;
    out->resize(before);  // read() takes it from here, and judges what stopped the walk
    _position = position;
    _offset = offset;
    return 0;
}

bool partition_reader::read_here(size_t max_frames, uint64_t max_bytes, int64_t visible, std::vector<frame_ref>* out) {
    segment& s = *_segment;
    // Retention removed the segment (its mapping still reads): frames() moves to the start.
    if (s.removed() || _partition.start_offset() > s.base_offset()) {
        seek(_offset);
        return false;
    }
    size_t taken = 0;
    uint64_t bytes = 0;
    if (_partition.read_only() && _region) {
        uint64_t block_end = held_block_end(_position, _region->length());  // first without an fstat
        if (block_end != 0 && walk_held(block_end, max_frames, max_bytes, visible, out, taken, bytes)) return true;
    }
    // The bytes known to be in the file. A reader process learns it from the
    // file: read after `visible`, it cannot be a size from before a roll trimmed
    // the file (the writer trims before it publishes anything in the next segment).
    uint64_t file_end = _partition.read_only() ? s.log_file().size() : s.size();
    if (_position + frame_header_bytes <= file_end) {  // else the segment ends here: frames() finds the next
        try {
            if (!_region || _region->length() < file_end) _region = s.mapping(file_end);
        } catch (const error& err) {
            if (err.code() != errc::corrupt) throw;
            _region.reset();
        }
    }
    if (_region && _position + frame_header_bytes <= file_end &&
        walk_held(file_end, max_frames, max_bytes, visible, out, taken, bytes))
        return true;
    // Stopped on something frames() must judge: the next read goes through it.
    _segment.reset();
    _region.reset();
    return false;
}

void partition_reader::read_through_partition(size_t max_frames, uint64_t max_bytes, std::vector<frame_ref>* out,
                                              std::vector<damaged_range>* skipped) {
    size_t first_skip = skipped ? skipped->size() : 0;
    std::vector<frame_ref> got = _partition.frames(_offset, INT64_MAX, INT64_MIN, INT64_MAX, max_frames, skipped);
    uint64_t bytes = 0;
    size_t keep = 0;
    while (keep < got.size() && (keep == 0 || bytes < max_bytes)) bytes += got[keep++].header.frame_length();
    got.resize(keep);
    if (skipped)  // past damage skipped before (or instead of) the frames returned
        for (size_t k = first_skip; k < skipped->size(); ++k)
            if (got.empty() || (*skipped)[k].end_offset <= got.front().header.base_offset)
                _offset = std::max(_offset, (*skipped)[k].end_offset);
    if (got.empty()) {
        _segment.reset();
        _region.reset();
        return;
    }
    const frame_ref& last = got.back();
    _offset = last.header.next_offset();
    _position = last.position + last.header.frame_length();
    _region = last.region;
    _segment = _partition.segment_holding(last.header.base_offset, &_segment_end);
    out->insert(out->end(), got.begin(), got.end());
}

}  // namespace tidelog
