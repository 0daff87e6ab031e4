#include "segment_index.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <climits>

#include "errors.h"
#include "units.h"

namespace tidelog {

segment_index::segment_index(const std::string& base_path, bool read_only, bool create, const std::string& suffix)
    : _offset_path(base_path + ".index" + suffix), _time_path(base_path + ".timeindex" + suffix), _read_only(read_only),
      _max_timestamp(INT64_MIN) {
    if (read_only) {
        try {
            _offset_file = file_handle::open(_offset_path, O_RDONLY);
            _time_file = file_handle::open(_time_path, O_RDONLY);
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;
            return;  // a reader before the writer created them: walk the log instead
        }
    } else {
        _offset_file = file_handle::open(_offset_path, create ? O_RDWR | O_CREAT : O_RDWR);
        _time_file = file_handle::open(_time_path, create ? O_RDWR | O_CREAT : O_RDWR);
    }
    load();
}

static bool follows(const offset_index_entry* prev, const offset_index_entry& e) {
    if (!prev) return e.position == 0 && e.relative_offset == 0;
    return e.position > prev->position && e.relative_offset > prev->relative_offset;
}

static bool follows(const time_index_entry* prev, const time_index_entry& e) {
    if (!prev) return e.position == 0 && e.relative_offset == 0;
    return e.timestamp > prev->timestamp && e.position > prev->position && e.relative_offset >= prev->relative_offset;
}

/// Appends the entries of f from entry `from` on, up to the first one that does
/// not follow its predecessor (what the writer never produces): an index is a
/// hint, and a damaged one must never send a reader past frames it needs.
template <typename Entry>
static void read_entries(const file_handle& f, std::vector<Entry>& out, size_t from, bool& broken) {
    if (!f.is_open() || broken) return;
    uint64_t bytes = f.size() / sizeof(Entry) * sizeof(Entry);
    uint64_t have = from * sizeof(Entry);
    if (bytes <= have) return;
    out.resize(bytes / sizeof(Entry));
    uint64_t got = f.pread_some(out.data() + from, bytes - have, have);
    out.resize(from + got / sizeof(Entry));
    for (size_t i = from; i < out.size(); ++i)
        if (!follows(i ? &out[i - 1] : nullptr, out[i])) {
            out.resize(i);
            broken = true;
            return;
        }
}

void segment_index::load() {
    std::lock_guard<std::mutex> g(_mu);
    _offsets.clear();
    _times.clear();
    _offsets_broken = _times_broken = false;
    read_entries(_offset_file, _offsets, 0, _offsets_broken);
    read_entries(_time_file, _times, 0, _times_broken);
    _max_timestamp = _times.empty() ? INT64_MIN : _times.back().timestamp;
}

void segment_index::refresh() {
    std::lock_guard<std::mutex> g(_mu);
    // Readers call this on every visit; a stale index only means a longer walk,
    // so look at the files at most every refresh_interval.
    auto now = std::chrono::steady_clock::now();
    if (now - _last_refresh < refresh_interval) return;
    _last_refresh = now;
    read_entries(_offset_file, _offsets, _offsets.size(), _offsets_broken);
    read_entries(_time_file, _times, _times.size(), _times_broken);
    if (!_times.empty()) _max_timestamp = std::max(_max_timestamp, _times.back().timestamp);
}

void segment_index::refresh_now() {
    std::lock_guard<std::mutex> g(_mu);
    _last_refresh = std::chrono::steady_clock::now();
    read_entries(_offset_file, _offsets, _offsets.size(), _offsets_broken);
    read_entries(_time_file, _times, _times.size(), _times_broken);
    if (!_times.empty()) _max_timestamp = std::max(_max_timestamp, _times.back().timestamp);
}

index_cursor segment_index::cursor() const {
    std::lock_guard<std::mutex> g(_mu);
    return {static_cast<uint32_t>(_offsets.size()), static_cast<uint32_t>(_times.size()), _bytes_since_entry,
            _max_timestamp};
}

void segment_index::adopt(const index_cursor& c) {
    std::lock_guard<std::mutex> g(_mu);
    if (_offsets.size() > c.offset_entries) _offsets.resize(c.offset_entries);
    if (_times.size() > c.time_entries) _times.resize(c.time_entries);
    if (_offsets.size() < c.offset_entries || _times.size() < c.time_entries) {
        _offsets_broken = _times_broken = false;
        read_entries(_offset_file, _offsets, _offsets.size(), _offsets_broken);
        read_entries(_time_file, _times, _times.size(), _times_broken);
        if (_offsets.size() > c.offset_entries) _offsets.resize(c.offset_entries);
        if (_times.size() > c.time_entries) _times.resize(c.time_entries);
        if (_offsets.size() != c.offset_entries || _times.size() != c.time_entries)
            throw error(errc::corrupt, "index files of " + _offset_path + " are shorter than their shared cursor");
    }
    _bytes_since_entry = c.bytes_since_entry;
    _max_timestamp = c.max_timestamp;
}

void segment_index::truncate_files_to(const index_cursor& c) {
    std::lock_guard<std::mutex> g(_mu);
    if (_read_only) return;
    if (_offset_file.size() > uint64_t{c.offset_entries} * sizeof(offset_index_entry))
        _offset_file.truncate(uint64_t{c.offset_entries} * sizeof(offset_index_entry));
    if (_time_file.size() > uint64_t{c.time_entries} * sizeof(time_index_entry))
        _time_file.truncate(uint64_t{c.time_entries} * sizeof(time_index_entry));
}

void segment_index::on_frame(uint32_t relative_offset, uint32_t position, uint32_t frame_length,
                             int64_t max_timestamp) {
    std::lock_guard<std::mutex> g(_mu);
    bool first = _offsets.empty() && position == 0;
    if (first || _bytes_since_entry >= index_interval_bytes) {
        offset_index_entry e{relative_offset, position};
        _offset_file.pwrite_all(&e, sizeof e, _offsets.size() * sizeof e);
        _offsets.push_back(e);
        int64_t ts = std::max(max_timestamp, _max_timestamp);
        if (_times.empty() || ts > _times.back().timestamp) {
            time_index_entry t{ts, relative_offset, position};
            _time_file.pwrite_all(&t, sizeof t, _times.size() * sizeof t);
            _times.push_back(t);
        }
        _bytes_since_entry = 0;
    }
    _bytes_since_entry += frame_length;
    _max_timestamp = std::max(_max_timestamp, max_timestamp);
}

void segment_index::on_damage(uint32_t position) {
    std::lock_guard<std::mutex> g(_mu);
    if (_offsets.empty() && position == 0) {
        offset_index_entry e{0, 0};
        _offset_file.pwrite_all(&e, sizeof e, 0);
        _offsets.push_back(e);
        if (_times.empty()) {
            time_index_entry t{INT64_MIN, 0, 0};
            _time_file.pwrite_all(&t, sizeof t, 0);
            _times.push_back(t);
        }
    }
    _bytes_since_entry = index_interval_bytes;
}

void segment_index::resume(uint64_t bytes_since_entry, int64_t max_timestamp) {
    std::lock_guard<std::mutex> g(_mu);
    _bytes_since_entry = _offsets.empty() ? index_interval_bytes : bytes_since_entry;
    _max_timestamp = std::max(_max_timestamp, max_timestamp);
}

offset_index_entry segment_index::entry_for_offset(uint32_t relative_offset) const {
    std::lock_guard<std::mutex> g(_mu);
    auto it = std::upper_bound(_offsets.begin(), _offsets.end(), relative_offset,
                               [](uint32_t v, const offset_index_entry& e) { return v < e.relative_offset; });
    return it == _offsets.begin() ? offset_index_entry{0, 0} : *std::prev(it);
}

offset_index_entry segment_index::entry_for_time(int64_t timestamp) const {
    time_index_entry t = time_entry_for(timestamp);
    return {t.relative_offset, t.position};
}

time_index_entry segment_index::time_entry_for(int64_t timestamp) const {
    std::lock_guard<std::mutex> g(_mu);
    // Entries hold the running max timestamp, so they are sorted. Every frame up to
    // the entry before the first entry >= timestamp has a smaller max: the walk could
    // start there. It starts one entry earlier (at most index_interval_bytes more
    // headers to read), so that one damaged entry claiming too small a max cannot
    // make the walk skip the frames between it and its predecessor.
    auto it = std::lower_bound(_times.begin(), _times.end(), timestamp,
                               [](const time_index_entry& e, int64_t v) { return e.timestamp < v; });
    if (it - _times.begin() < 2) return {INT64_MIN, 0, 0};
    return *(it - 2);
}

void segment_index::seal(uint32_t last_relative_offset, uint32_t last_position, int64_t max_timestamp) {
    std::lock_guard<std::mutex> g(_mu);
    if (_read_only) return;
    if (max_timestamp > INT64_MIN && (_times.empty() || max_timestamp > _times.back().timestamp) &&
        (_times.empty() || last_position > _times.back().position)) {
        time_index_entry t{max_timestamp, last_relative_offset, last_position};
        _time_file.pwrite_all(&t, sizeof t, _times.size() * sizeof t);
        _times.push_back(t);
    }
    _max_timestamp = std::max(_max_timestamp, max_timestamp);
}

offset_index_entry segment_index::second_last_offset_entry() const {
    std::lock_guard<std::mutex> g(_mu);
    return _offsets.size() < 2 ? offset_index_entry{0, 0} : _offsets[_offsets.size() - 2];
}

offset_index_entry segment_index::last_offset_entry() const {
    std::lock_guard<std::mutex> g(_mu);
    return _offsets.empty() ? offset_index_entry{0, 0} : _offsets.back();
}

time_index_entry segment_index::last_time_entry() const {
    std::lock_guard<std::mutex> g(_mu);
    return _times.empty() ? time_index_entry{INT64_MIN, 0, 0} : _times.back();
}

size_t segment_index::offset_entries() const {
    std::lock_guard<std::mutex> g(_mu);
    return _offsets.size();
}

size_t segment_index::time_entries() const {
    std::lock_guard<std::mutex> g(_mu);
    return _times.size();
}

int64_t segment_index::max_timestamp() const {
    std::lock_guard<std::mutex> g(_mu);
    return _max_timestamp;
}

uint32_t segment_index::last_position() const {
    std::lock_guard<std::mutex> g(_mu);
    return _offsets.empty() ? 0 : _offsets.back().position;
}

void segment_index::raise_max_timestamp(int64_t max_timestamp) {
    std::lock_guard<std::mutex> g(_mu);
    _max_timestamp = std::max(_max_timestamp, max_timestamp);
}

void segment_index::truncate_from(uint32_t position) {
    std::lock_guard<std::mutex> g(_mu);
    while (!_offsets.empty() && _offsets.back().position >= position) _offsets.pop_back();
    while (!_times.empty() && _times.back().position >= position) _times.pop_back();
    _max_timestamp = _times.empty() ? INT64_MIN : _times.back().timestamp;
    _bytes_since_entry = index_interval_bytes;  // the next frame gets an entry
    if (!_read_only) {
        _offset_file.truncate(_offsets.size() * sizeof(offset_index_entry));
        _time_file.truncate(_times.size() * sizeof(time_index_entry));
        _offsets_broken = _times_broken = false;  // what was past the damage is gone
    }
}

void segment_index::reset() { truncate_from(0); }

bool segment_index::files_whole() const {
    if (!_offset_file.is_open() || !_time_file.is_open()) return true;
    return _offset_file.size() % sizeof(offset_index_entry) == 0 && _time_file.size() % sizeof(time_index_entry) == 0;
}

bool segment_index::consistent_with(uint64_t valid_bytes) const {
    std::lock_guard<std::mutex> g(_mu);
    if (_offsets_broken || _times_broken) return false;  // entries out of order: rebuild
    for (size_t i = 0; i < _offsets.size(); ++i) {
        if (_offsets[i].position >= valid_bytes && !(valid_bytes == 0 && _offsets[i].position == 0)) return false;
        if (i && (_offsets[i].position <= _offsets[i - 1].position ||
                  _offsets[i].relative_offset <= _offsets[i - 1].relative_offset))
            return false;
    }
    for (size_t i = 0; i < _times.size(); ++i) {
        if (_times[i].position >= valid_bytes && !(valid_bytes == 0 && _times[i].position == 0)) return false;
        if (i && (_times[i].timestamp <= _times[i - 1].timestamp || _times[i].position <= _times[i - 1].position))
            return false;
    }
    return true;
}

void segment_index::sync() {
    if (_read_only) return;
    _offset_file.datasync();
    _time_file.datasync();
}

void segment_index::remove_files() {
    remove_file(_offset_path);
    remove_file(_time_path);
}

void segment_index::close() {
    _offset_file.close();
    _time_file.close();
}

}  // namespace tidelog
