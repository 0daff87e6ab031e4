#include "durable_table.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "errors.h"
#include "file_io.h"
#include "kill_points.h"
#include "ofd_lock.h"
#include "units.h"

namespace tidelog {

namespace {

constexpr uint32_t lock_page_version = 1;
constexpr uint64_t lock_byte = 0;
constexpr uint64_t open_handles_byte = 1;
constexpr uint64_t end_bits = 40;
constexpr uint64_t end_mask = (uint64_t{1} << end_bits) - 1;
constexpr uint64_t generation_mask = (uint64_t{1} << (64 - end_bits)) - 1;

uint64_t pack_durable(uint64_t generation, uint64_t end) {
    return ((generation & generation_mask) << end_bits) | (end & end_mask);
}
bool durable_is_for(uint64_t word, uint64_t generation) {
    return (word >> end_bits) == (generation & generation_mask);
}
uint64_t durable_end_of(uint64_t word) { return word & end_mask; }

/// A catch-up reads this far past the last record (or past the page's
/// tail_end) to see that only zeros follow: a record starting there shows its
/// magic in its first bytes.
constexpr uint64_t end_probe_bytes = 512;

/// The length of data[0, size) up to and including its last non-zero byte.
size_t nonzero_length(const uint8_t* data, size_t size) {
    // By 4 KiB chunks aligned to data (memcmp is vectorized), then bytewise in
    // the last chunk holding a non-zero byte: a reopen scans up to 4 MiB of
    // preallocated zeros.
    static const uint8_t zeros[4096] = {};
    while (size > 0) {
        size_t chunk = size % sizeof zeros ? size % sizeof zeros : sizeof zeros;
        if (std::memcmp(data + size - chunk, zeros, chunk) != 0) break;
        size -= chunk;
    }
    while (size > 0 && data[size - 1] == 0) --size;
    return size;
}

std::string parent_of(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

/// mkdir -p, then fsync the parent of every folder it created, so that a power
/// cut cannot take a table (and its synced puts) away with a folder's name.
void make_directories_durably(const std::string& path) {
    std::vector<std::string> created;
    size_t i = 0;
    while (i <= path.size()) {
        size_t slash = path.find('/', i);
        if (slash == std::string::npos) slash = path.size();
        std::string partial = path.substr(0, slash);
        if (!partial.empty()) {
            if (io::mkdir(partial.c_str(), 0755) == 0) created.push_back(partial);
            else if (errno != EEXIST) throw_errno("mkdir " + partial);
        }
        i = slash + 1;
    }
    for (const std::string& d : created) fsync_directory(parent_of(d));
}

[[noreturn]] void throw_corrupt(const std::string& path, uint64_t position, const std::string& what) {
    damage_place place;
    place.segment = path;
    place.position = position;
    throw error(errc::corrupt, "durable table journal " + path + ": " + what + " at byte " + std::to_string(position),
                std::move(place));
}

// The page's layout is FORMAT.md's ("Durable tables", `lock`).
static_assert(offsetof(table_lock_page, change_counter) == 8 && offsetof(table_lock_page, generation) == 16 &&
                  offsetof(table_lock_page, durable) == 24 && offsetof(table_lock_page, tail_generation) == 32 &&
                  offsetof(table_lock_page, tail_end) == 40 && sizeof(table_lock_page) == 48,
              "lock page layout");

using change_views = std::vector<std::pair<std::string_view, std::optional<std::string_view>>>;

}  // namespace

durable_table::durable_table(const std::string& dir, bool create) : _dir(dir) {
    while (_dir.size() > 1 && _dir.back() == '/') _dir.pop_back();
    _lock_path = _dir + "/lock";
    _journal_path = _dir + "/journal";
    _new_path = _dir + "/journal.new";
    if (create) make_directories_durably(_dir);
    else if (!path_exists(_journal_path)) throw error(errc::not_found, "no durable table in " + _dir);
    // The lock file holds no durable state: created whenever missing.
    _lock_file = file_handle::open(_lock_path, O_RDWR | O_CREAT);
    ofd_lock(_lock_file.fd(), lock_byte, ofd_lock_kind::exclusive, true);
    _locked = true;
    try {
        if (_lock_file.size() < lock_page_bytes) _lock_file.truncate(lock_page_bytes);
        void* p = ::mmap(nullptr, lock_page_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, _lock_file.fd(), 0);
        if (p == MAP_FAILED) throw_errno("mmap " + _lock_path);
        _page = static_cast<table_lock_page*>(p);
        if (!path_exists(_journal_path)) {
            if (!create) throw error(errc::not_found, "no durable table in " + _dir);
            create_journal_locked();
        }
        if (ofd_lock(_lock_file.fd(), open_handles_byte, ofd_lock_kind::exclusive, false)) {
            reset_page_locked();
            ofd_lock(_lock_file.fd(), open_handles_byte, ofd_lock_kind::shared, true);  // a conversion: granted
        } else {
            ofd_lock(_lock_file.fd(), open_handles_byte, ofd_lock_kind::shared, true);
            if (_page->magic != lock_page_magic || _page->version != lock_page_version)
                throw error(errc::corrupt, "durable table " + _lock_path + ": the shared page of open handles is damaged");
        }
        reload_locked();
        _seen_counter = _page->change_counter.load(std::memory_order_acquire);
        unlock();
    } catch (...) {
        close();
        throw;
    }
}

durable_table::~durable_table() {
    try {
        close();
    } catch (...) {
    }
}

void durable_table::close() {
    if (_page) {
        ::munmap(_page, lock_page_bytes);
        _page = nullptr;
    }
    _locked = false;
    _journal.close();
    _lock_file.close();  // releases both OFD locks
}

void durable_table::require_open() const {
    if (!_page) throw error(errc::closed, "durable table " + _dir + " is closed");
}

void durable_table::require_locked(const char* what) const {
    require_open();
    if (!_locked) throw error(errc::invalid_argument, std::string("durable table: ") + what + " needs the table lock");
}

void durable_table::lock(bool (*interrupted)(void*), void* context) {
    require_open();
    if (_locked) throw error(errc::invalid_argument, "durable table: this handle holds the lock already");
    // ofd_lock() retries EINTR by itself; here a signal may end the wait.
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(lock_byte);
    fl.l_len = 1;
    while (::fcntl(_lock_file.fd(), F_OFD_SETLKW, &fl) != 0) {
        if (errno != EINTR) throw_errno("fcntl(F_OFD_SETLKW) " + _lock_path);
        if (interrupted && interrupted(context)) throw error(errc::interrupted, "durable table: lock wait interrupted");
    }
    _locked = true;
}

bool durable_table::try_lock() {
    require_open();
    if (_locked) throw error(errc::invalid_argument, "durable table: this handle holds the lock already");
    _locked = ofd_lock(_lock_file.fd(), lock_byte, ofd_lock_kind::exclusive, false);
    return _locked;
}

void durable_table::unlock() {
    require_locked("unlock");
    ofd_lock(_lock_file.fd(), lock_byte, ofd_lock_kind::unlock, false);
    _locked = false;
}

void durable_table::create_journal_locked() {
    // Built aside and renamed into place: a journal is never seen half-created.
    remove_file(_new_path);
    file_handle f = file_handle::open(_new_path, O_RDWR | O_CREAT | O_TRUNC);
    std::string header = table_journal::encode_file_header(1);
    f.pwrite_all(header.data(), header.size(), 0);
    f.datasync();
    f.close();
    rename_file(_new_path, _journal_path);
    fsync_directory(_dir);
}

void durable_table::reset_page_locked() {
    // No other handle has the table open: what the page says may predate a
    // power cut (a durable_end the disk no longer backs). Start a generation.
    bool valid = _page->magic == lock_page_magic && _page->version == lock_page_version;
    if (!valid) {
        std::memset(static_cast<void*>(_page), 0, lock_page_bytes);
        _page->magic = lock_page_magic;
        _page->version = lock_page_version;
    }
    uint64_t generation = valid ? _page->generation.load() + 1 : 1;
    _page->durable.store(pack_durable(generation, 0), std::memory_order_release);
    // No tail hint (generations start at 1): the first catch-up reads the whole
    // journal, so the bytes a power cut left past its last record are all seen
    // (even a hint a dead rewriter set for this generation number is dropped).
    _page->tail_generation.store(0, std::memory_order_release);
    _page->generation.store(generation, std::memory_order_release);
}

void durable_table::reload_locked() {
    // Under the lock, a journal.new is a rewrite that died before its rename.
    remove_file(_new_path);
    _generation = _page->generation.load(std::memory_order_acquire);
    _journal = file_handle::open(_journal_path, O_RDWR);
    // The rewrite that renamed this journal into place may have died before its
    // folder fsync: appending (and syncing) here is safe only once the name is durable.
    fsync_directory(_dir);
    uint8_t header[table_journal::file_header_bytes];
    uint64_t got = _journal.pread_some(header, sizeof header, 0);
    std::optional<uint64_t> first = table_journal::decode_file_header(header, got);
    if (!first) throw_corrupt(_journal_path, 0, "not a version-1 journal header");
    _entries.clear();
    _live_bytes = 0;
    _next_sequence = *first;
    _end = table_journal::file_header_bytes;
    catch_up_locked();
}

void durable_table::catch_up_locked() {
    // Reads from _end: the records other handles appended, then enough past the
    // last one to know what follows it. The page's tail_end (when it is for this
    // generation) says how far non-zero bytes can reach; without it (the first
    // open after a crash) the whole file is read.
    uint64_t size = _journal.size();
    if (size < _end) throw_corrupt(_journal_path, size, "the journal ends inside records already read");
    _allocated = size;
    uint64_t hint = size;
    if (_page->tail_generation.load(std::memory_order_acquire) == _generation)
        hint = std::min(size, _page->tail_end.load(std::memory_order_acquire));
    const uint64_t base = _end;
    std::vector<uint8_t> bytes;  // the journal's bytes [base, base + bytes.size())
    auto read_to = [&](uint64_t to) {
        uint64_t have = base + bytes.size();
        bytes.resize(to - base);
        uint64_t got = _journal.pread_some(bytes.data() + (have - base), to - have, have);
        bytes.resize(have - base + got);
        if (got < to - have) size = base + bytes.size();  // shorter than fstat said: it ends here
    };
    read_to(std::min(size, std::max(hint, base) + end_probe_bytes));
    for (;;) {
        parse_records_locked(bytes, base);
        uint64_t have = base + bytes.size();
        // The records may go on past the hint (it is only a hint): whatever
        // follows the last one must be read far enough to show zeros, or all of
        // it when it does not.
        uint64_t probe_end = std::min(size, std::max(hint, _end) + end_probe_bytes);
        if (have < probe_end) {
            read_to(probe_end);
            continue;
        }
        if (have < size && nonzero_length(bytes.data() + (_end - base), have - _end) > 0) {
            read_to(size);
            continue;
        }
        break;
    }
    size_t tail = nonzero_length(bytes.data() + (_end - base), bytes.size() - (_end - base));
    if (tail > 0) {
        // No valid record starts at _end, yet non-zero bytes follow it.
        if (std::optional<uint64_t> proof = table_journal::find_vouching_record(bytes.data(), bytes.size(), base, _end))
            throw_corrupt(_journal_path, _end,
                          "a damaged record (the record at byte " + std::to_string(*proof) +
                              " vouches that it had been written durably)");
        // A torn tail: a holder died mid-put, or a power cut kept some unsynced
        // sectors and not others. Zero it before anyone appends after it (the
        // preallocated space stays; a cut that loses the zeros brings back a torn
        // tail again, which the next open zeroes again).
        raise_tail_end_locked(_end + tail);
        zero_locked(_end, _end + tail);
    }
    set_tail_end_locked(_end);
}

void durable_table::parse_records_locked(const std::vector<uint8_t>& bytes, uint64_t base) {
    size_t at = _end - base;
    while (at < bytes.size()) {
        std::optional<table_journal::record_view> r =
            table_journal::decode_record(bytes.data() + at, bytes.size() - at, base + at, _next_sequence);
        if (!r) break;
        table_journal::for_each_change(*r, [&](std::string_view k, const std::optional<std::string_view>& v) { apply(k, v); });
        ++_next_sequence;
        at += r->total_bytes();
        _end = base + at;
    }
}

void durable_table::raise_tail_end_locked(uint64_t end) {
    if (_page->tail_generation.load(std::memory_order_acquire) == _generation &&
        _page->tail_end.load(std::memory_order_acquire) >= end)
        return;
    set_tail_end_locked(end);
}

void durable_table::set_tail_end_locked(uint64_t end) {
    // A holder that dies between the two stores leaves a pair that is not for
    // this generation: ignored (the next catch-up reads the whole file).
    _page->tail_end.store(end, std::memory_order_release);
    if (_page->tail_generation.load(std::memory_order_acquire) != _generation)
        _page->tail_generation.store(_generation, std::memory_order_release);
}

void durable_table::zero_locked(uint64_t from, uint64_t to) {
    static const uint8_t zeros[64 * 1024] = {};
    for (uint64_t at = from; at < to; at += sizeof zeros)
        _journal.pwrite_all(zeros, std::min<uint64_t>(sizeof zeros, to - at), at);
}

void durable_table::allocate_locked(uint64_t end) {
    // Another handle may have grown the file since this one looked.
    _allocated = _journal.size();
    if (end <= _allocated) return;
    uint64_t target = preallocation_target(_allocated, end, first_allocation_bytes, allocation_step_bytes);
    target = std::max(end, std::min(target, max_journal_bytes));
    _journal.allocate(_allocated, target - _allocated);
    _allocated = target;
}

void durable_table::apply(std::string_view key, const std::optional<std::string_view>& value) {
    auto it = _entries.find(key);
    if (it != _entries.end()) {
        _live_bytes -= table_journal::change_bytes(it->first.size(), it->second.size());
        if (!value) {
            _entries.erase(it);
            return;
        }
        it->second.assign(value->data(), value->size());
    } else {
        if (!value) return;
        it = _entries.emplace(std::string(key), std::string(*value)).first;
    }
    _live_bytes += table_journal::change_bytes(key.size(), value->size());
}

void durable_table::refresh() {
    require_locked("refresh");
    uint64_t generation = _page->generation.load(std::memory_order_acquire);
    uint64_t counter = _page->change_counter.load(std::memory_order_acquire);
    if (generation == _generation && counter == _seen_counter) return;
    if (generation != _generation) reload_locked();
    else catch_up_locked();
    _seen_counter = counter;
}

const std::string* durable_table::get(std::string_view key) const {
    require_open();
    auto it = _entries.find(key);
    return it == _entries.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, std::string>> durable_table::items(std::string_view prefix) const {
    require_open();
    std::vector<std::pair<std::string, std::string>> out;
    for_each(prefix, [&](const std::string& k, const std::string& v) { out.emplace_back(k, v); });
    return out;
}

uint64_t durable_table::vouched_end_now() const {
    uint64_t word = _page->durable.load(std::memory_order_acquire);
    if (_page->generation.load(std::memory_order_acquire) != _generation || !durable_is_for(word, _generation)) return 0;
    return std::min(durable_end_of(word), _end);
}

table_sync_token durable_table::put(const std::vector<change>& changes) {
    change_views views;
    views.reserve(changes.size());
    for (const change& c : changes)
        views.emplace_back(c.key, c.value ? std::optional<std::string_view>(*c.value) : std::nullopt);
    return put(views);
}

table_sync_token durable_table::put(const change_views& changes) {
    require_locked("put");
    for (const auto& c : changes) table_journal::check_change(c.first, c.second);
    refresh();
    std::string record;
    table_journal::encode_record(record, _next_sequence, vouched_end_now(), changes);
    uint64_t record_end = _end + record.size();
    if (record_end > max_journal_bytes)
        throw error(errc::too_large, "durable table journal " + _journal_path + " would pass 1 TiB");
    // Written inside the file's size: its fdatasync then has no size to commit.
    if (record_end > _allocated) allocate_locked(record_end);
    // Announced before the bytes land: a holder that dies mid-write has bumped
    // the counter and raised tail_end, so the next refresh reads (and zeroes)
    // what it left.
    raise_tail_end_locked(record_end);
    _seen_counter = _page->change_counter.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (kill_point_due("table.put.mid")) {
        _journal.pwrite_all(record.data(), record.size() / 2, _end);
        kill_now();
    }
    try {
        _journal.pwrite_all(record.data(), record.size(), _end);
    } catch (...) {
        try {
            zero_locked(_end, record_end);  // leave no partial record behind (best effort)
        } catch (...) {
        }
        throw;
    }
    kill_point("table.put.written");
    for (const auto& c : changes) apply(c.first, c.second);
    ++_next_sequence;
    _end = record_end;
    table_sync_token token{_generation, _end};
    uint64_t live_journal = table_journal::file_header_bytes + table_journal::record_header_bytes + _live_bytes;
    if (_end > std::max(rewrite_min_bytes, 4 * live_journal)) {
        rewrite();
        token = {_generation, _end};  // the rewrite synced everything
    }
    return token;
}

void durable_table::rewrite() {
    require_locked("rewrite");
    remove_file(_new_path);
    file_handle f = file_handle::open(_new_path, O_RDWR | O_CREAT | O_TRUNC);
    std::string buffer = table_journal::encode_file_header(_next_sequence);
    uint64_t position = 0, sequence = _next_sequence;
    change_views chunk;
    uint64_t chunk_bytes = table_journal::record_header_bytes;
    auto flush_chunk = [&] {
        table_journal::encode_record(buffer, sequence++, 0, chunk);
        chunk.clear();
        chunk_bytes = table_journal::record_header_bytes;
        if (buffer.size() >= (uint64_t{4} << 20)) {
            f.pwrite_all(buffer.data(), buffer.size(), position);
            position += buffer.size();
            buffer.clear();
        }
    };
    for (const auto& [key, value] : _entries) {
        uint64_t bytes = table_journal::change_bytes(key.size(), value.size());
        if (!chunk.empty() && chunk_bytes + bytes > table_journal::max_record_bytes) flush_chunk();
        chunk.emplace_back(key, std::string_view(value));
        chunk_bytes += bytes;
    }
    if (!chunk.empty()) flush_chunk();
    f.pwrite_all(buffer.data(), buffer.size(), position);
    position += buffer.size();
    f.datasync();
    kill_point("table.rewrite.written");
    // The generation moves before the rename: a handle that finds it moved
    // reopens `journal` by name under the lock, which then names the old or the
    // new file, both complete (and fsyncs the folder, in case we die before it).
    uint64_t generation = _page->generation.load(std::memory_order_acquire) + 1;
    _page->durable.store(pack_durable(generation, 0), std::memory_order_release);
    _page->tail_end.store(position, std::memory_order_release);  // journal.new holds nothing past its records
    _page->tail_generation.store(generation, std::memory_order_release);
    _page->generation.store(generation, std::memory_order_release);
    rename_file(_new_path, _journal_path);
    kill_point("table.rewrite.renamed");
    fsync_directory(_dir);
    _journal = std::move(f);
    _generation = generation;
    _end = position;
    _allocated = position;  // the next put preallocates again
    _next_sequence = sequence;
    _page->durable.store(pack_durable(generation, _end), std::memory_order_release);
}

void durable_table::sync(const table_sync_token& token) {
    require_open();
    if (_page->generation.load(std::memory_order_acquire) == token.generation) {
        uint64_t word = _page->durable.load(std::memory_order_acquire);
        if (durable_is_for(word, token.generation) && durable_end_of(word) >= token.end) return;
    }
    // A token of an older generation: a rewrite holds its put, but may not have
    // made its rename durable yet; syncing this handle's file (the old one, or
    // the new one it reloaded) is correct either way, and rare.
    _journal.datasync();
    uint64_t word = _page->durable.load(std::memory_order_acquire);
    while (_page->generation.load(std::memory_order_acquire) == token.generation &&
           durable_is_for(word, token.generation) && durable_end_of(word) < token.end) {
        if (_page->durable.compare_exchange_weak(word, pack_durable(token.generation, token.end),
                                                 std::memory_order_acq_rel))
            break;
    }
}

}  // namespace tidelog
