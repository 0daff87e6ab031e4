#pragma once
// A small durable key -> value table kept in a folder, shared by threads and
// processes (docs/FORMAT.md, "Durable tables"; docs/ARCHITECTURE.md). Generic:
// consumer groups keep committed offsets and coordination state in one,
// projections and exports their checkpoints.
//
// Files in the folder:
//   lock     never replaced. Byte 0: the table lock (exclusive OFD lock, which
//            the kernel releases when its holder dies). Byte 1: a shared OFD lock
//            of every open handle (the first opener, finding none, resets the
//            page). Bytes [0, 4096): a shared page (MAP_SHARED, not durable):
//            change_counter, the journal's generation, how far that
//            generation is known durable, and past where it holds only zeros.
//   journal  an append-only journal of records (table_journal.h); one record per
//            put, wholly present or wholly absent after any crash. Preallocated
//            in steps (fallocate), so that a put writes inside the file's size
//            and its fdatasync has no size to commit: the journal ends at the
//            first position where no valid record starts and only zeros follow.
//
// Concurrency contract: one handle is NOT thread-safe; each thread and process
// opens its own. Between handles, lock()/unlock() exclude (threads of one
// process too). refresh(), get(), items(), put() need the lock (put refreshes
// itself first; get/items read this handle's view as of its last refresh).
// sync() and change_counter() may run without it. A holder that dies leaves at
// most a torn last record, which the next refresh zeroes. Open handles after
// fork(), not before: a child that inherits a handle shares its open file
// description, hence its locks.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "file_handle.h"
#include "table_journal.h"

namespace tidelog {

/// What sync() needs to make one put durable: the journal generation it went
/// to and the end of its record there.
struct table_sync_token {
    uint64_t generation = 0;
    uint64_t end = 0;
};

/// The shared page at the start of `lock` (FORMAT.md). Volatile: reset by the
/// first handle that opens the table while no other handle has it open.
struct table_lock_page {
    uint32_t magic;
    uint32_t version;
    std::atomic<uint64_t> change_counter;  // +1 by every put, before its record is written
    std::atomic<uint64_t> generation;      // +1 by every rewrite of the journal (and every reset)
    /// (generation & 0xFFFFFF) << 40 | durable_end: that generation's journal is
    /// fdatasync'd up to durable_end (one word, so a sync cannot credit one
    /// generation's end to another).
    std::atomic<uint64_t> durable;
    /// Every byte of generation tail_generation's journal at or past tail_end is
    /// zero (as the page cache holds it), except what a put in progress writes:
    /// a put raises tail_end over its record before writing it. A hint that
    /// bounds a catch-up's read (it is checked by parsing: records found past it
    /// are read too). Both change only under the table lock.
    std::atomic<uint64_t> tail_generation;
    std::atomic<uint64_t> tail_end;
};
static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free,
              "the lock page needs lock-free 64-bit atomics");

class durable_table {
public:
    using change = table_journal::change;
    static constexpr uint64_t lock_page_bytes = 4096;
    static constexpr uint32_t lock_page_magic = 0x4C544C54u;  // "TLTL"
    static constexpr uint64_t rewrite_min_bytes = uint64_t{1} << 20;
    /// Journal positions travel in 40 bits of the lock page's durable word.
    static constexpr uint64_t max_journal_bytes = uint64_t{1} << 40;
    /// The journal grows (fallocate) by steps that start here and double...
    static constexpr uint64_t first_allocation_bytes = uint64_t{64} << 10;
    /// ... up to this.
    static constexpr uint64_t allocation_step_bytes = uint64_t{4} << 20;

    /// Opens the table in `dir` (create: make the folder, lock and journal when
    /// missing; otherwise errc::not_found). Takes the table lock briefly.
    durable_table(const std::string& dir, bool create);
    ~durable_table();
    durable_table(const durable_table&) = delete;
    durable_table& operator=(const durable_table&) = delete;

    /// Blocks until this handle holds the table lock (the caller releases the
    /// GIL). interrupted (optional) runs whenever a signal interrupts the wait;
    /// returning true ends it with errc::interrupted.
    void lock(bool (*interrupted)(void*) = nullptr, void* context = nullptr);
    bool try_lock();
    void unlock();
    bool locked() const { return _locked; }

    /// Under the lock: applies what other handles appended, re-reads the journal
    /// after a rewrite, zeroes a torn tail (zeros after the last record are the
    /// journal's preallocated end, left as they are). No system call when
    /// nothing changed. errc::corrupt (with the journal's path and position) for
    /// a bad record that later records prove was durable (media damage); nothing
    /// is changed then.
    void refresh();

    /// This handle's view (as of its last refresh): the value, or nullptr.
    const std::string* get(std::string_view key) const;
    /// visit(key, value) for every key starting with prefix, in key order.
    template <class Visit>
    void for_each(std::string_view prefix, Visit&& visit) const {
        for (auto it = _entries.lower_bound(prefix); it != _entries.end(); ++it) {
            if (std::string_view(it->first).substr(0, prefix.size()) != prefix) break;
            visit(it->first, it->second);
        }
    }
    std::vector<std::pair<std::string, std::string>> items(std::string_view prefix) const;

    /// Under the lock: appends one record holding every change (atomic: after
    /// any crash all or none of them), applies it, bumps change_counter, and
    /// rewrites the journal when it outgrew max(1 MiB, 4x the live data).
    /// Not durable until sync(token).
    table_sync_token put(const std::vector<change>& changes);
    /// The same, with views (what the Python binding passes).
    table_sync_token put(const std::vector<std::pair<std::string_view, std::optional<std::string_view>>>& changes);
    /// Makes the put behind token durable: fdatasync, unless another handle's
    /// sync (or a rewrite) already covered it. May run without the lock.
    void sync(const table_sync_token& token);

    /// Lock-free (one atomic load of the shared page): changes whenever any
    /// handle puts. Equal values around a lock-free read mean nothing changed.
    uint64_t change_counter() const { return _page->change_counter.load(std::memory_order_acquire); }

    size_t size() const { return _entries.size(); }
    /// Journal bytes up to the end of its last record (this handle's view; the
    /// file is longer by its preallocation) and live bytes (what a rewrite
    /// would write).
    uint64_t journal_bytes() const { return _end; }
    uint64_t live_bytes() const { return _live_bytes; }
    uint64_t generation() const { return _generation; }
    const std::string& dir() const { return _dir; }
    /// Rewrites the journal now (under the lock); tests and tools.
    void rewrite();
    void close();
    bool is_open() const { return _page != nullptr; }

private:
    void require_open() const;
    void require_locked(const char* what) const;
    void create_journal_locked();
    void reset_page_locked();
    void reload_locked();
    void catch_up_locked();
    void parse_records_locked(const std::vector<uint8_t>& bytes, uint64_t base);
    void raise_tail_end_locked(uint64_t end);
    void set_tail_end_locked(uint64_t end);
    void zero_locked(uint64_t from, uint64_t to);
    void allocate_locked(uint64_t end);
    void apply(std::string_view key, const std::optional<std::string_view>& value);
    uint64_t vouched_end_now() const;

    std::string _dir, _lock_path, _journal_path, _new_path;
    file_handle _lock_file;
    file_handle _journal;
    table_lock_page* _page = nullptr;
    bool _locked = false;

    // This handle's view: the journal generation it reads, how far it parsed
    // (always a record boundary), the journal file's size as last seen, the
    // next record's sequence, and the change_counter value it last caught up with.
    uint64_t _generation = 0;
    uint64_t _end = 0;
    uint64_t _allocated = 0;
    uint64_t _next_sequence = 0;
    uint64_t _seen_counter = 0;
    std::map<std::string, std::string, std::less<>> _entries;
    uint64_t _live_bytes = 0;  // sum of change_bytes over _entries
};

}  // namespace tidelog
