#pragma once
// Group commit: one committer per log, one flusher thread.
//
// Appenders write frames into the page cache, then call note_written(), which
// records the dirty segment and returns a ticket. Whoever needs durability calls
// wait_durable(ticket) and sleeps (the caller has released the GIL). The flusher
// takes everything written so far, fdatasyncs each dirty segment through the
// descriptor that wrote it, tells each partition how far it is now durable,
// advances the durable ticket and wakes every waiter it covered: concurrent
// appenders share one fdatasync per segment (PostgreSQL's XLogFlush and
// Redpanda's flush debouncing work the same way).
//
// The flusher does no other file work: recovery checkpoints and retention run
// on the log's housekeeper (housekeeper.h), so they never delay a durable ack.
// register_partition gives each partition its checkpoint task (triggered by
// the flushes that make the partition durable further) and, when it has
// retention, its retention task (once a second).
//
// Concurrency: all public methods are thread-safe. Lock order: a partition's
// mutex may be held while calling note_written; the flusher never holds the
// committer mutex while calling into a partition or the housekeeper.
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "housekeeper.h"
#include "log_session.h"
#include "recovery_checkpoint.h"

namespace tidelog {

class partition;
class segment;

struct committer_stats {
    uint64_t appends = 0;
    uint64_t frames = 0;
    uint64_t bytes = 0;
    uint64_t fdatasyncs = 0;
    uint64_t flushes = 0;
    uint64_t durable_waits = 0;
    uint64_t checkpoints = 0;
    uint64_t segments_deleted = 0;
};

class committer {
public:
    /// housekeeper (may be null: no background checkpoints or retention)
    /// must outlive the committer.
    /// session (may be null: no other handle shares the partitions): its flush
    /// lock makes this handle's flushes one at a time with every other
    /// handle's, so each flush first sees what the previous one (in any
    /// process) made durable, and skips the fdatasync when that covers it.
    explicit committer(housekeeper* h = nullptr, log_session* session = nullptr);
    ~committer();
    committer(const committer&) = delete;
    committer& operator=(const committer&) = delete;

    void register_partition(partition* p);
    /// Returns once no flush or housekeeping task is using p, nor ever will.
    void unregister_partition(partition* p);

    /// Records that `seg` of `p` holds data up to `point`, to be flushed by
    /// deadline_ns (CLOCK_MONOTONIC; no_deadline: only by flush_all or a roll).
    /// Returns the ticket to wait for.
    uint64_t note_written(partition* p, std::shared_ptr<segment> seg, const recovery_point& point,
                          int64_t deadline_ns);
    /// An appender that will wait_durable announces itself before it starts its
    /// append: while announced appenders are still on their way, the flusher
    /// holds the next fdatasync (up to a short window) so they share it
    /// (PostgreSQL's commit_siblings, counted instead of guessed).
    void announce() {
        _in_flight.fetch_add(1, std::memory_order_relaxed);
        if (_session) _session->add_in_flight(1);
    }
    /// An announced appender that will not wait after all (an error).
    void retract();
    /// Blocks until everything up to ticket is durable; throws if a flush failed.
    /// `announced`: the caller called announce() before its append.
    /// `interrupted` (may be null) is called about every 50 ms while this waits;
    /// when it returns true the wait ends with error(errc::interrupted). The
    /// append stays as it is: it may still become durable.
    void wait_durable(uint64_t ticket, bool announced = false, bool (*interrupted)(void*) = nullptr,
                      void* interrupted_arg = nullptr);
    /// True once everything up to ticket is durable (never blocks).
    bool is_durable(uint64_t ticket) const {
        std::lock_guard<std::mutex> g(_mu);
        return _durable >= ticket;
    }
    /// Flushes everything written so far (every mode) and waits for it.
    void flush_all();
    static constexpr int64_t no_deadline = INT64_MAX;
    void stop();

    void count_append(uint64_t frames, uint64_t bytes);
    void count_segment_deleted();
    committer_stats stats() const;

private:
    struct pending_flush {
        std::vector<std::shared_ptr<segment>> segments;
        recovery_point point{};
        int64_t deadline_ns = 0;
    };
    void run();
    void flush_locked(std::unique_lock<std::mutex>& lk, bool everything);

    /// A thread in wait_durable. It sleeps on its own futex word, not on a
    /// condition variable of _mu: a flush that wakes several waiters would
    /// otherwise make each one queue for _mu before it can return (measured:
    /// the mutex convoy cost more than the wake-ups). The flusher takes the
    /// waiter out of the list under _mu, then stores its outcome and
    /// futex-wakes it; after that store the flusher never touches it again
    /// (the wake-up syscall only hashes the address).
    struct durable_waiter {
        static constexpr uint32_t waiting = 0, durable = 1, failed = 2;
        uint64_t ticket;
        std::atomic<uint32_t> state{waiting};
    };
    static void release(durable_waiter* w, uint32_t outcome);
    std::vector<durable_waiter*> _durable_waiters;  // sleeping in wait_durable, under _mu

    mutable std::mutex _mu;
    std::condition_variable _flusher_cv;  // wakes the flusher
    std::condition_variable _waiters_cv;  // wakes appenders and unregister
    std::unordered_map<partition*, pending_flush> _pending;
    /// A registered partition's housekeeping tasks (housekeeper::no_task: none).
    struct partition_tasks {
        housekeeper::task_id checkpoint = housekeeper::no_task;
        housekeeper::task_id retention = housekeeper::no_task;
    };
    std::unordered_map<partition*, partition_tasks> _partitions;
    housekeeper* const _housekeeper;
    log_session* const _session;
    std::vector<housekeeper::task_id> _to_trigger;  // flusher thread only: checkpoint tasks of one flush
    uint64_t _written = 0;
    uint64_t _durable = 0;
    // flush_all() waits for a full flush that began after it was called.
    uint64_t _full_wanted = 0, _full_started = 0, _full_done = 0;
    int _sync_waiters = 0;
    bool _busy = false;
    bool _stop = false;
    std::string _failure;  // set once an fdatasync failed: the log is then unusable
    const int64_t _max_gather_ns;
    // Group gathering: see announce().
    std::atomic<int> _in_flight{0};  // announced appenders not yet waiting
    int _gather_target = -1;          // waiters the pending flush gathers for (-1: not decided yet)
    int64_t _oldest_pending_ns = 0;  // first note_written with a deadline since the last flush
    bool _deadline_pending = false;

    std::atomic<uint64_t> _appends{0}, _frames{0}, _bytes{0}, _fdatasyncs{0}, _flushes{0}, _durable_waits{0},
        _checkpoints{0}, _segments_deleted{0};
    std::thread _thread;
};

}  // namespace tidelog
