#include "segment.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "errors.h"
#include "frame_resync.h"
#include "frame_walker.h"
#include "kill_points.h"
#include "units.h"

namespace tidelog {

namespace {
int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}
const uint8_t zero_padding[body_alignment] = {};
// Frames up to this size go to the kernel as one contiguous write (see append).
constexpr uint64_t coalesced_write_bytes = 4096;
}  // namespace

std::string segment_file_stem(int64_t base_offset) {
    char name[32];
    std::snprintf(name, sizeof name, "%020lld", static_cast<long long>(base_offset));
    return name;
}

segment::segment(const std::string& dir, int64_t base_offset, bool read_only, bool create)
    : _base_offset(base_offset),
      _read_only(read_only),
      _log_path(dir + "/" + segment_file_stem(base_offset) + ".log"),
      _created_ns(now_ns()),
      _log(file_handle::open(_log_path, read_only ? O_RDONLY : create ? O_RDWR | O_CREAT : O_RDWR)),
      _index(dir + "/" + segment_file_stem(base_offset), read_only, create),
      _next_offset(base_offset) {
    _allocated = _log.size();
}

segment::~segment() = default;

std::shared_ptr<segment> segment::create(const std::string& dir, int64_t base_offset) {
    std::string path = dir + "/" + segment_file_stem(base_offset) + ".log";
    if (path_exists(path)) throw error(errc::already_exists, "segment already exists: " + path);
    // Nothing is allocated until the first append (units.h).
    return std::shared_ptr<segment>(new segment(dir, base_offset, false));
}

namespace {
/// Opens a segment whose log and indexes are one version: compaction unlinks
/// the old indexes before it renames the new log over the old one and renames
/// the new indexes last (FORMAT.md §2.7), and the log is opened first, so an
/// old log paired with new indexes shows as a log name that moved meanwhile.
template <typename Make>
std::shared_ptr<segment> open_matching(Make make) {
    for (int attempt = 0;; ++attempt) {
        std::shared_ptr<segment> s = make();
        if (attempt == 8 || s->log_is_current()) return s;
    }
}
}  // namespace

std::shared_ptr<segment> segment::open_existing(const std::string& dir, int64_t base_offset) {
    return open_matching([&] { return std::shared_ptr<segment>(new segment(dir, base_offset, false, false)); });
}

std::shared_ptr<segment> segment::open(const std::string& dir, int64_t base_offset, bool read_only) {
    return open_matching([&] { return std::shared_ptr<segment>(new segment(dir, base_offset, read_only)); });
}

std::shared_ptr<segment> segment::open_sealed(const std::string& dir, int64_t base_offset, int64_t next_base) {
    auto s = open(dir, base_offset, true);
    s->adopt_sealed(next_base);
    return s;
}

bool segment::log_is_current() const {
    struct stat by_name, held;
    if (::stat(_log_path.c_str(), &by_name) != 0) return true;  // gone (retention): nothing newer to take
    if (::fstat(_log.fd(), &held) != 0) return true;
    return by_name.st_ino == held.st_ino && by_name.st_dev == held.st_dev;
}

bool segment::compacted() const {
    frame_header h;
    if (_log.pread_some(&h, sizeof h, 0) != sizeof h) return false;
    return h.magic == frame_magic && h.sparse();
}

void segment::ensure_allocated(uint64_t end) {
    if (end <= _allocated) return;
    uint64_t target = preallocation_target(_allocated, end, first_preallocation_bytes, preallocation_step);
    _log.allocate(_allocated, target - _allocated);
    _allocated = target;
}

void segment::append(const frame_header& header, const struct iovec* payload, int pieces) {
    if (_read_only) throw error(errc::read_only, "segment opened read-only: " + _log_path);
    uint64_t position = size();
    uint64_t frame_length = header.frame_length();
    ensure_allocated(position + frame_length);

    struct iovec stack_iov[64];
    std::unique_ptr<struct iovec[]> heap_iov;
    int needed = pieces + 3;
    struct iovec* iov = stack_iov;
    if (needed > 64) {
        heap_iov.reset(new struct iovec[needed]);
        iov = heap_iov.get();
    }
    int n = 0;
    iov[n++] = {const_cast<frame_header*>(&header), frame_header_bytes};
    if (header.payload_offset > frame_header_bytes)
        iov[n++] = {const_cast<uint8_t*>(zero_padding), header.payload_offset - frame_header_bytes};
    for (int i = 0; i < pieces; ++i)
        if (payload[i].iov_len) iov[n++] = payload[i];
    uint64_t tail = frame_length - header.payload_offset - header.payload_length;
    if (tail) iov[n++] = {const_cast<uint8_t*>(zero_padding), tail};
    if (kill_point_due("append.mid_pwritev")) {
        _log.pwritev_all(iov, 1, position);  // the header and nothing after it: a torn frame
        kill_now();
    }
    size_t gathered_bytes = 0;
    for (int i = 0; i < n; ++i) gathered_bytes += iov[i].iov_len;
    if (gathered_bytes <= coalesced_write_bytes) {
        // A small frame is a dozen short pieces (header, flatbuffer head, each
        // buffer and its padding). The kernel's per-piece cost dominates at this
        // size: one pwritev of 14 pieces took 1.4 us where one pwrite of the same
        // 704 bytes took 0.9 us. Gathering them here costs a few nanoseconds.
        // (Sized by the pieces themselves, not by the header, so a header that
        // disagrees with its pieces cannot overrun the buffer.)
        alignas(64) uint8_t gathered[coalesced_write_bytes];
        size_t at = 0;
        for (int i = 0; i < n; ++i) {
            std::memcpy(gathered + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        struct iovec whole = {gathered, at};
        _log.pwritev_all(&whole, 1, position);
    } else {
        _log.pwritev_all(iov, n, position);
    }
    note_appended(header, position);
}

void segment::note_appended(const frame_header& header, uint64_t position) {
    uint64_t frame_length = header.frame_length();
    _index.on_frame(static_cast<uint32_t>(header.base_offset - _base_offset), static_cast<uint32_t>(position),
                    static_cast<uint32_t>(frame_length), header.max_timestamp);
    _last_frame_position = static_cast<uint32_t>(position);
    if (header.max_timestamp > _max_timestamp.load(std::memory_order_relaxed))
        _max_timestamp.store(header.max_timestamp, std::memory_order_release);
    _next_offset.store(header.next_offset(), std::memory_order_release);
    _size.store(position + frame_length, std::memory_order_release);
}

committed_point segment::cursor(int64_t active_created_ns) const {
    index_cursor ic = _index.cursor();
    committed_point c{};
    c.segment_base = _base_offset;
    c.position = size();
    c.next_offset = next_offset();
    c.max_timestamp = max_timestamp();
    c.allocated = _allocated;
    c.offset_entries = ic.offset_entries;
    c.time_entries = ic.time_entries;
    c.bytes_since_entry = ic.bytes_since_entry;
    c.index_max_timestamp = ic.max_timestamp;
    c.last_frame_position = _last_frame_position;
    c.active_created_ns = active_created_ns;
    return c;
}

void segment::adopt(const committed_point& c) {
    _index.adopt({c.offset_entries, c.time_entries, c.bytes_since_entry, c.index_max_timestamp});
    _allocated = std::max(_allocated, c.allocated);
    _last_frame_position = c.last_frame_position;
    _max_timestamp.store(c.max_timestamp, std::memory_order_release);
    _next_offset.store(c.next_offset, std::memory_order_release);
    _size.store(c.position, std::memory_order_release);
}

void segment::adopt_sealed(int64_t next_base) {
    _index.refresh_now();
    uint64_t bytes = _log.size();
    _allocated = bytes;
    int64_t ts = std::max(_max_timestamp.load(std::memory_order_relaxed), _index.max_timestamp());
    _max_timestamp.store(ts, std::memory_order_release);
    _next_offset.store(next_base, std::memory_order_release);
    _size.store(bytes, std::memory_order_release);
}

bool segment::frame_whole_at(uint64_t position, uint64_t length, int64_t base_offset, frame_header* out) {
    if (length < frame_header_bytes || _log.size() < position + length) return false;
    std::shared_ptr<mapped_region> region;
    try {
        region = mapping(position + length);
    } catch (const error& e) {
        if (e.code() != errc::corrupt) throw;
        return false;
    }
    const uint8_t* p = region->data() + position;
    if (check_frame(p, length) != frame_check::ok) return false;
    *out = load_header(p);
    return out->base_offset == base_offset && out->frame_length() == length;
}

void segment::zero_range(uint64_t position, uint64_t length) {
    uint64_t end = std::min(position + length, _log.size());
    static const uint8_t zeros[64 * 1024] = {};
    for (uint64_t at = position; at < end; at += sizeof zeros)
        _log.pwrite_all(zeros, std::min<uint64_t>(sizeof zeros, end - at), at);
}

scan_result segment::scan(uint64_t position, int64_t offset, const walk_policy& policy) {
    scan_result r;
    r.file_bytes = _log.size();
    r.valid_bytes = position;
    r.next_offset = offset;
    auto region = mapping(r.file_bytes);
    const uint8_t* data = region->data();
    uint64_t since_entry = 0;
    // The last frame accepted on its header alone (before verify_from): when the
    // walk meets damage right after it, its header (a flipped count or length)
    // may be what led the walk astray; its CRC decides.
    struct accepted {
        bool header_only = false;
        uint64_t position = 0;
        int64_t offset = 0;
        uint64_t frame_length = 0;
        int64_t scan_max = INT64_MIN, index_max = INT64_MIN;
        uint32_t last_frame_position = 0;
    } prev;
    auto fits_checkpoint = [&](uint64_t at, const frame_header& h) {
        if (at >= policy.trusted_position) return true;
        uint64_t frame_end = at + h.frame_length();
        return frame_end < policy.trusted_position    ? h.next_offset() <= policy.trusted_offset
               : frame_end == policy.trusted_position ? h.next_offset() == policy.trusted_offset
                                                      : false;
    };
    // A frame vouched for by header alone ends before the trusted point; one
    // that claims to reach past it (a flipped length) is checked in full.
    auto admit = [&](uint64_t pos, const frame_header& h) {
        return pos + h.frame_length() > policy.verify_from || !fits_checkpoint(pos, h) ? frame_admission::take_after_crc
                                                                                        : frame_admission::take;
    };
    auto on_frame = [&](uint64_t pos, const frame_header& h, bool crc_checked) {
        prev = {!crc_checked, pos, h.base_offset, h.frame_length(), r.max_timestamp, _index.max_timestamp(),
                _last_frame_position};
        if (policy.rebuild_index)
            _index.on_frame(static_cast<uint32_t>(h.base_offset - _base_offset), static_cast<uint32_t>(pos),
                            static_cast<uint32_t>(h.frame_length()), h.max_timestamp);
        else
            since_entry += h.frame_length();
        _last_frame_position = static_cast<uint32_t>(pos);
        r.valid_bytes = pos + h.frame_length();
        r.next_offset = h.next_offset();
        if (h.max_timestamp > r.max_timestamp) r.max_timestamp = h.max_timestamp;
        ++r.frames;
        return true;
    };
    auto on_damage = [&](uint64_t pos, int64_t off, frame_check c) -> walk_resume {
        // (Zeros count when they come before the offsets the walk must reach: a
        // length that swallowed the rest of the file ends the walk there.)
        if (prev.header_only && prev.position + prev.frame_length == pos &&
            (c != frame_check::end_of_data || off < policy.expected_end)) {
            prev.header_only = false;
            if (check_frame(data + prev.position, r.file_bytes - prev.position) == frame_check::bad_crc) {
                // The damage starts at that frame: walk back to it.
                if (policy.rebuild_index) {
                    if (_index.last_position() >= prev.position && _index.offset_entries() > 0)
                        _index.truncate_from(static_cast<uint32_t>(prev.position));
                    _index.raise_max_timestamp(prev.index_max);
                } else {
                    since_entry -= prev.frame_length;
                }
                _last_frame_position = prev.last_frame_position;
                pos = prev.position;
                off = prev.offset;
                r.valid_bytes = pos;
                r.next_offset = off;
                r.max_timestamp = prev.scan_max;
                --r.frames;
                c = frame_check::bad_crc;
            }
        }
        prev.header_only = false;
        bool zeros = c == frame_check::end_of_data;
        bool maybe_end = zeros && off >= policy.expected_end;
        if ((maybe_end && !policy.zeros_may_hide_frames) || off >= policy.keep_below) {
            r.stop = c;  // the end of the data, or a torn tail for the caller to cut
            return walk_resume::stop_here();
        }
        // Durable data that fails its checks: skip exactly the frame when only its
        // payload is damaged, else to the next intact frame.
        frame_header only;
        // (Below the durable point frames end at or before it: a count that
        // claims more is itself damage, whatever follows.)
        if (!maybe_end && only_this_frame_damaged(data, pos, r.file_bytes, off,
                                                  std::min(policy.offset_bound, policy.keep_below), &only,
                                                  policy.expected_end) &&
            fits_checkpoint(pos, only)) {
            r.damage.push_back({pos, only.frame_length(), off, only.next_offset(), c});
            if (policy.rebuild_index) _index.on_damage(static_cast<uint32_t>(pos));
            return walk_resume::at(pos + only.frame_length(), only.next_offset());
        }
        // (Frames that reach the durable point may be followed by a torn tail:
        // their successor need not line up.)
        resync_hit hit = find_next_intact_frame(data, pos + frame_alignment, r.file_bytes, off, policy.offset_bound,
                                                policy.keep_below);
        if (maybe_end && !hit.found) {
            r.stop = c;  // zeros to the end: the end of the data
            return walk_resume::stop_here();
        }
        if (hit.found) {
            r.damage.push_back({pos, hit.position - pos, off, hit.header.base_offset, c});
            if (policy.rebuild_index) _index.on_damage(static_cast<uint32_t>(pos));
            return walk_resume::at(hit.position, hit.header.base_offset);
        }
        uint64_t tail_end = end_of_nonzero(data, pos, r.file_bytes);
        r.damage.push_back({pos, tail_end - pos, off, -1, c});
        r.damaged_tail = true;
        r.data_end = tail_end;
        r.stop = c;
        return walk_resume::stop_here();
    };
    auto visitor = make_frame_visitor(admit, on_frame, on_damage);
    walk_frames(data, r.file_bytes, position, offset, policy.offset_bound, visitor);
    if (!r.damaged_tail && !r.damage.empty() && r.damage.back().position >= r.valid_bytes) {
        // The data ends in damage whose extent is known (a frame whose payload
        // failed its CRC, the last thing in the file): a damaged tail too.
        r.damaged_tail = true;
        r.data_end = r.damage.back().position + r.damage.back().bytes;
    }
    r.data_end = std::max(r.data_end, r.valid_bytes);
    if (!policy.rebuild_index) _index.resume(since_entry, r.max_timestamp);
    return r;
}

bool segment::index_matches_log(uint64_t valid_bytes) {
    if (!_index.files_whole() || !_index.consistent_with(valid_bytes)) return false;
    if (valid_bytes == 0) return _index.offset_entries() == 0;
    if (_index.offset_entries() == 0 || _index.time_entries() == 0) return false;
    auto region = mapping(valid_bytes);
    auto frame_at = [&](uint32_t position, uint32_t relative_offset) {
        if (uint64_t{position} + frame_header_bytes > valid_bytes) return false;
        const uint8_t* p = region->data() + position;
        return check_header(p, valid_bytes - position) == frame_check::ok &&
               load_header(p).base_offset == _base_offset + relative_offset;
    };
    offset_index_entry o = _index.last_offset_entry();
    time_index_entry t = _index.last_time_entry();
    if (!frame_at(o.position, o.relative_offset) || !frame_at(t.position, t.relative_offset)) return false;
    // The last entry must also be where the frames lead: a walk of the headers
    // from the entry before it lands on it (a damaged index can point at a stray
    // copy of a frame, which passes the checks above).
    offset_index_entry before = _index.second_last_offset_entry();
    uint64_t pos = before.position;
    int64_t off = _base_offset + before.relative_offset;
    auto relative = [&](int64_t at) { return at - _base_offset >= 0 && at - _base_offset <= int64_t{UINT32_MAX}; };
    if (pos < o.position) {
        if (!relative(off)) return false;
        bool walked = true;
        auto visitor = make_frame_visitor(
            [](uint64_t, const frame_header&) { return frame_admission::take; },  // headers only
            [&](uint64_t at, const frame_header& h, bool) {
                if (at + h.frame_length() >= o.position) return false;
                if (!relative(h.next_offset())) walked = false;
                return walked;
            },
            [&](uint64_t, int64_t, frame_check) {
                walked = false;
                return walk_resume::stop_here();
            });
        walk_end e = walk_frames(region->data(), valid_bytes, pos, off, INT64_MAX, visitor);
        if (!walked) return false;
        pos = e.position;
        off = e.offset;
    }
    return pos == o.position && off == _base_offset + o.relative_offset;
}

void segment::set_end(uint64_t valid_bytes, int64_t next_offset, int64_t max_timestamp) {
    int64_t ts = std::max(max_timestamp, _index.max_timestamp());
    _max_timestamp.store(ts, std::memory_order_release);
    _next_offset.store(next_offset, std::memory_order_release);
    _size.store(valid_bytes, std::memory_order_release);
}

void segment::truncate_to(uint64_t valid_bytes) {
    _index.truncate_from(static_cast<uint32_t>(std::min<uint64_t>(valid_bytes, UINT32_MAX)));
    // Zero the torn tail by cutting the file; appends re-allocate zeroed space.
    _log.truncate(valid_bytes);
    _allocated = valid_bytes;
    _size.store(valid_bytes, std::memory_order_release);
    // A mapping longer than the file would SIGBUS a read of the cut bytes (a damaged
    // header can claim a length past the new end): the next read maps afresh.
    std::lock_guard<std::mutex> g(_map_mu);
    _mapping.reset();
}

void segment::seal() {
    if (_read_only) return;
    uint64_t end = size();
    // The last frame may be missing (a segment that holds only damaged bytes).
    auto region = end > 0 ? mapping(end) : nullptr;
    if (end > 0 && _last_frame_position + uint64_t{frame_header_bytes} <= end &&
        check_header(region->data() + _last_frame_position, end - _last_frame_position) == frame_check::ok &&
        load_header(region->data() + _last_frame_position).base_offset >= _base_offset)
        _index.seal(static_cast<uint32_t>(load_header(region->data() + _last_frame_position).base_offset -
                                          _base_offset),
                    _last_frame_position, max_timestamp());
    if (_log.size() != end) _log.truncate(end);
    _allocated = end;
}

bool segment::verified(uint64_t position, uint64_t end) const {
    std::lock_guard<std::mutex> g(_verified_mu);
    return position >= _verified_begin && end <= _verified_end;
}

void segment::mark_verified(uint64_t position, uint64_t end) {
    std::lock_guard<std::mutex> g(_verified_mu);
    if (position <= _verified_end && end >= _verified_begin && _verified_end > _verified_begin) {
        _verified_begin = std::min(_verified_begin, position);
        _verified_end = std::max(_verified_end, end);
    } else if (end - position > _verified_end - _verified_begin) {
        _verified_begin = position;  // keep the larger of two disjoint ranges
        _verified_end = end;
    }
}

std::shared_ptr<mapped_region> segment::mapping(uint64_t end) {
    std::lock_guard<std::mutex> g(_map_mu);
    if (_mapping && _mapping->length() >= end) return _mapping;
    uint64_t file_bytes = _log.size();
    if (file_bytes < end)
        throw error(errc::corrupt, "segment " + _log_path + " is shorter (" + std::to_string(file_bytes) +
                                       " bytes) than its frames need (" + std::to_string(end) + ")");
    _mapping = mapped_region::map(_log.fd(), file_bytes, _log_path);
    return _mapping;
}

void segment::remove_files() {
    _removed.store(true, std::memory_order_release);
    remove_file(_log_path);
    _index.remove_files();
}

void segment::close() {
    _log.close();
    _index.close();
}

}  // namespace tidelog
