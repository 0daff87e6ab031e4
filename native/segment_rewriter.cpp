#include "segment_rewriter.h"

#include <fcntl.h>

#include <climits>
#include <vector>

#include "crc32c.h"
#include "errors.h"
#include "frame.h"
#include "frame_walker.h"
#include "segment.h"
#include "units.h"

namespace tidelog {

namespace {
const uint8_t zeros[body_alignment] = {};

error bad_frame(const std::string& what) { return error(errc::invalid_argument, "compaction rewrite: " + what); }
}  // namespace

segment_rewriter::segment_rewriter(const std::string& dir, int64_t base_offset, int64_t end_offset)
    : _dir(dir),
      _base(base_offset),
      _end(end_offset),
      _log_path(dir + "/" + segment_file_stem(base_offset) + ".log" + cleaned_suffix()),
      _next(base_offset) {
    if (end_offset <= base_offset || end_offset - base_offset > int64_t{UINT32_MAX} + 1)
        throw bad_frame("bad segment range " + std::to_string(base_offset) + ".." + std::to_string(end_offset));
    _log = file_handle::open(_log_path, O_RDWR | O_CREAT | O_TRUNC);
    // (Leftover index files of an earlier attempt: emptied, so the new entries start at 0.)
    for (const char* name : {".index", ".timeindex"}) {
        file_handle f = file_handle::open(dir + "/" + segment_file_stem(base_offset) + name + cleaned_suffix(),
                                          O_RDWR | O_CREAT | O_TRUNC);
    }
    _index.reset(new segment_index(dir + "/" + segment_file_stem(base_offset), false, true, cleaned_suffix()));
}

segment_rewriter::~segment_rewriter() {
    if (!_finished && !_aborted) {
        try {
            abort();
        } catch (...) {
        }
    }
}

void segment_rewriter::check_open() const {
    if (_aborted) throw error(errc::closed, "the rewrite of segment " + segment_file_stem(_base) + " was aborted");
    if (_finished) throw error(errc::invalid_argument, "the rewrite of segment " + segment_file_stem(_base) +
                                                           " is finished: no more frames");
}

void segment_rewriter::append(const rewrite_frame& f) {
    check_open();
    if (f.base_offset != _next)
        throw bad_frame("frames must tile the segment: expected a frame at offset " + std::to_string(_next) +
                        ", got " + std::to_string(f.base_offset));
    if (f.span < 1 || f.span > _end - _next)
        throw bad_frame("a frame at " + std::to_string(f.base_offset) + " spanning " + std::to_string(f.span) +
                        " offsets runs past the segment's end " + std::to_string(_end));
    if (f.record_count == 0) throw bad_frame("a frame holds at least one record (append_empty for none)");
    if (int64_t{f.record_count} > f.span) throw bad_frame("more records than offsets");
    if (f.min_timestamp > f.max_timestamp) throw bad_frame("min_timestamp > max_timestamp");
    if (f.codec > static_cast<uint16_t>(frame_codec::zstd)) throw bad_frame("unknown codec");
    if (f.flags & ~frame_flag_ipc_stream) throw bad_frame("flags other than the IPC-stream bit");
    if (!f.offset_deltas) throw bad_frame("no offset deltas");
    for (uint32_t i = 0; i < f.record_count; ++i)
        if ((i > 0 && f.offset_deltas[i] <= f.offset_deltas[i - 1]) || int64_t{f.offset_deltas[i]} >= f.span)
            throw bad_frame("offset deltas must increase strictly and stay below the span (record " +
                            std::to_string(i) + ")");
    uint64_t block = sparse_block_bytes(f.record_count);
    std::vector<uint8_t> block_bytes(block, 0);
    std::memcpy(block_bytes.data(), &f.delete_horizon_ns, 8);
    std::memcpy(block_bytes.data() + 8, f.offset_deltas, 4 * uint64_t{f.record_count});
    uint64_t arrow = 0;
    uint32_t crc = crc32c(block_bytes.data(), block);
    for (int i = 0; i < f.piece_count; ++i) {
        crc = crc32c_extend(crc, f.pieces[i].iov_base, f.pieces[i].iov_len);
        arrow += f.pieces[i].iov_len;
    }
    if (block + arrow + frame_header_bytes + body_alignment > max_frame_bytes)
        throw error(errc::too_large, "compaction rewrite: a frame over the 2 GiB frame limit");
    frame_header h{};
    h.magic = frame_magic;
    h.version = frame_version;
    h.header_length = frame_header_bytes;
    h.codec = f.codec;
    h.flags = static_cast<uint16_t>(f.flags | frame_flag_sparse);
    h.base_offset = f.base_offset;
    h.record_count = f.record_count;
    h.schema_id = f.schema_id;
    h.min_timestamp = f.min_timestamp;
    h.max_timestamp = f.max_timestamp;
    h.payload_length = block + arrow;
    h.payload_offset = frame_header_bytes;
    h.last_offset_delta = static_cast<uint32_t>(f.span - 1);
    if (f.body_offset >= 0 && f.body_offset % frame_alignment == 0) {
        // body_offset counts from the payload start, so it includes the block.
        uint64_t body = _position + frame_header_bytes + block + static_cast<uint64_t>(f.body_offset);
        h.payload_offset += static_cast<uint32_t>((body_alignment - body % body_alignment) % body_alignment);
    }
    h.crc = frame_crc_with_payload_crc(h, crc);
    std::vector<struct iovec> pieces;
    pieces.reserve(f.piece_count + 1);
    pieces.push_back({block_bytes.data(), block});
    for (int i = 0; i < f.piece_count; ++i)
        if (f.pieces[i].iov_len) pieces.push_back(f.pieces[i]);
    write(h, pieces.data(), static_cast<int>(pieces.size()));
}

void segment_rewriter::append_empty(int64_t base_offset, int64_t span, int64_t timestamp) {
    check_open();
    if (base_offset != _next)
        throw bad_frame("frames must tile the segment: expected a frame at offset " + std::to_string(_next) +
                        ", got " + std::to_string(base_offset));
    if (span < 1 || span > _end - _next)
        throw bad_frame("an empty frame at " + std::to_string(base_offset) + " spanning " + std::to_string(span) +
                        " offsets runs past the segment's end " + std::to_string(_end));
    int64_t horizon = 0;
    frame_header h{};
    h.magic = frame_magic;
    h.version = frame_version;
    h.header_length = frame_header_bytes;
    h.flags = frame_flag_sparse;
    h.base_offset = base_offset;
    h.min_timestamp = timestamp;
    h.max_timestamp = timestamp;
    h.payload_length = 8;
    h.payload_offset = frame_header_bytes;
    h.last_offset_delta = static_cast<uint32_t>(span - 1);
    h.crc = frame_crc(h, reinterpret_cast<const uint8_t*>(&horizon));
    struct iovec piece{&horizon, 8};
    write(h, &piece, 1);
}

void segment_rewriter::write(const frame_header& h, const struct iovec* pieces, int count) {
    if (_position + h.frame_length() > max_segment_bytes)
        throw error(errc::too_large, "compaction rewrite: the new segment would pass the segment size limit");
    std::vector<struct iovec> iov;
    iov.reserve(count + 3);
    iov.push_back({const_cast<frame_header*>(&h), frame_header_bytes});
    if (h.payload_offset > frame_header_bytes)
        iov.push_back({const_cast<uint8_t*>(zeros), h.payload_offset - frame_header_bytes});
    for (int i = 0; i < count; ++i) iov.push_back(pieces[i]);
    uint64_t tail = h.frame_length() - h.payload_offset - h.payload_length;
    if (tail) iov.push_back({const_cast<uint8_t*>(zeros), tail});
    _log.pwritev_all(iov.data(), static_cast<int>(iov.size()), _position);
    _index->on_frame(static_cast<uint32_t>(h.base_offset - _base), static_cast<uint32_t>(_position),
                     static_cast<uint32_t>(h.frame_length()), h.max_timestamp);
    _last_frame_position = _position;
    _last_frame_base = h.base_offset;
    if (h.max_timestamp > _max_timestamp) _max_timestamp = h.max_timestamp;
    _position += h.frame_length();
    _next = h.next_offset();
}

void segment_rewriter::finish() {
    check_open();
    if (_next != _end)
        throw bad_frame("the frames end at offset " + std::to_string(_next) + ", the segment at " +
                        std::to_string(_end) + ": they must tile it exactly");
    _index->seal(static_cast<uint32_t>(_last_frame_base - _base), static_cast<uint32_t>(_last_frame_position),
                 _max_timestamp);
    _log.datasync();
    _index->sync();
    fsync_directory(_dir);
    _finished = true;
}

void segment_rewriter::abort() {
    if (_aborted) return;
    _aborted = true;
    std::string stem = _dir + "/" + segment_file_stem(_base);
    _log.close();
    if (_index) _index->close();
    remove_file(stem + ".log" + cleaned_suffix());
    remove_file(stem + ".index" + cleaned_suffix());
    remove_file(stem + ".timeindex" + cleaned_suffix());
}

bool write_indexes_for_log(const std::string& dir, int64_t base_offset, const uint8_t* data, uint64_t bytes,
                           const std::string& suffix) {
    std::string stem = dir + "/" + segment_file_stem(base_offset);
    for (const char* name : {".index", ".timeindex"}) file_handle::open(stem + name + suffix, O_RDWR | O_CREAT | O_TRUNC);
    segment_index index(stem, false, true, suffix);
    uint64_t last_position = 0;
    int64_t last_base = base_offset, max_ts = INT64_MIN;
    bool damaged = false;
    auto visitor = make_frame_visitor(
        [](uint64_t, const frame_header&) { return frame_admission::take; },  // headers only
        [&](uint64_t at, const frame_header& h, bool) {
            if (h.next_offset() - base_offset > int64_t{UINT32_MAX} + 1) return false;
            index.on_frame(static_cast<uint32_t>(h.base_offset - base_offset), static_cast<uint32_t>(at),
                           static_cast<uint32_t>(h.frame_length()), h.max_timestamp);
            last_position = at;
            last_base = h.base_offset;
            if (h.max_timestamp > max_ts) max_ts = h.max_timestamp;
            return true;
        },
        [&](uint64_t, int64_t, frame_check c) {
            damaged = c != frame_check::end_of_data;
            return walk_resume::stop_here();
        });
    walk_frames(data, bytes, 0, base_offset, INT64_MAX, visitor);
    index.seal(static_cast<uint32_t>(last_base - base_offset), static_cast<uint32_t>(last_position), max_ts);
    index.sync();
    return !damaged;
}

}  // namespace tidelog
