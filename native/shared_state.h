#pragma once
// The live state of a partition, shared with reader processes through a small
// MAP_SHARED file (<partition>/state). Not durable and never fsynced: the writer
// rewrites it from the recovered log at open.
//
// The writer publishes the visible end (in "fsync" mode, the durable end), then
// bumps `sequence` and futex-wakes it if anyone waits. Readers in any process
// read the end with acquire loads and sleep in FUTEX_WAIT on `sequence`: no
// polling, no CPU while caught up. Concurrency: one publishing thread at a time
// (the partition serializes publish); any number of readers.
#include <cstdint>
#include <string>

#include "file_handle.h"
#include "partition_coordination.h"

namespace tidelog {

struct shared_state_layout {
    uint32_t magic;
    uint32_t version;
    int64_t visible_end;     // offsets below this are readable
    int64_t start_offset;    // first offset retention kept
    uint32_t sequence;       // futex word: bumped on every publish
    uint32_t waiters;        // readers sleeping on sequence
    int32_t writer_pid;
    uint32_t padding;
    uint64_t visible_bytes;  // segment bytes up to the visible end (approximate)
    uint32_t swap_count;     // +1 after every compaction swap (FORMAT.md §2.7): handles recheck their segments
    uint32_t reserved[5];
};
static_assert(sizeof(shared_state_layout) == 72, "shared state layout");

class shared_state {
public:
    /// A read-write handle creates the file if missing (and maps all of it,
    /// the coordination block included); readers map an existing one.
    shared_state(const std::string& path, bool writer);
    ~shared_state();
    shared_state(const shared_state&) = delete;
    shared_state& operator=(const shared_state&) = delete;

    bool available() const { return _state != nullptr; }
    /// Writers: the visible end the file held before this open (-1 if it held
    /// none, or one that fails its sanity checks). Not durable: a floor for the
    /// offsets handed out next, never a reason to keep or cut data by itself.
    int64_t inherited_end() const { return _inherited_end; }
    int64_t inherited_start() const { return _inherited_start; }
    int64_t visible_end() const;
    int64_t start_offset() const;
    uint32_t sequence() const;
    uint64_t visible_bytes() const;
    /// Compaction swaps so far (a segment file was replaced: reopen it).
    uint32_t swap_count() const;
    void note_swap();
    /// Raises the visible end to visible_end (never lowers it: several handles
    /// publish), then wakes readers; false (and no wake-up) when the end was
    /// already there. visible_bytes is approximate.
    bool publish(int64_t visible_end, uint64_t visible_bytes);
    /// Sets the first offset retention kept (append lock held; or at init).
    void publish_start(int64_t start_offset);
    /// Read-write handles: the coordination block, and the file (OFD init lock).
    partition_coordination* coordination() const {
        return reinterpret_cast<partition_coordination*>(reinterpret_cast<uint8_t*>(_state) +
                                                         partition_coordination_position);
    }
    int fd() const { return _file.fd(); }
    /// The session's first handle to open the partition takes the file over:
    /// current magic, version and pid, the visible end set to `visible_end`.
    void claim(int64_t visible_end, int64_t start_offset, uint64_t visible_bytes);
    /// Bumps the sequence and wakes sleepers, without touching the offsets (the
    /// log-wide notifier: "something was published somewhere"). The wake-up
    /// goes through wake_or_defer (wake_deferral.h): a thread that defers its
    /// wake-ups makes it later.
    void bump();
    /// Sleeps until sequence differs from `seen` or timeout_ns passes (<0: forever).
    /// Returns false on timeout.
    bool wait_change(uint32_t seen, int64_t timeout_ns) const;
    /// Busy-polls the sequence (no system call, no waiter registered, so
    /// publishers make no wake-up call for it) until it differs from `seen` or
    /// spin_ns passes. Returns false on timeout. Burns a core while it runs.
    bool spin_change(uint32_t seen, int64_t spin_ns) const;
    /// For readers that opened before any writer: try to map the file again.
    void retry_open();

private:
    void open_reader();
    std::string _path;
    file_handle _file;  // read-write handles: kept open for the partition's init lock
    shared_state_layout* _state = nullptr;
    int64_t _inherited_end = -1;
    int64_t _inherited_start = -1;
};

}  // namespace tidelog
