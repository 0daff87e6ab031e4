#pragma once
// One handle on the log folder: its place in the read-write session
// (log_session.h: the locks, the shared memory, the clean-shutdown marker), and
// the committer and housekeeper shared by the partitions it opens.
//
// Concurrency: open_partition and stats are thread-safe; close() is called once.
#include <memory>
#include <string>

#include "committer.h"
#include "file_handle.h"
#include "housekeeper.h"
#include "log_session.h"
#include "partition.h"
#include "shared_state.h"

namespace tidelog {

class log_core {
public:
    /// exclusive: no other read-write handle may open the log while this one has it.
    log_core(const std::string& path, bool read_only, bool exclusive = false);
    ~log_core();
    log_core(const log_core&) = delete;
    log_core& operator=(const log_core&) = delete;

    bool read_only() const { return _read_only; }
    /// Whether the previous session ended with a clean close (always true for readers).
    bool was_clean() const { return _was_clean; }
    const std::string& path() const { return _path; }
    std::unique_ptr<partition> open_partition(const std::string& dir, const partition_config& config);
    /// The log-wide publish sequence (see shared_state): read it, check for data,
    /// then wait_notify(seen) sleeps until any partition publishes. GIL-free.
    uint32_t notify_sequence() const { return _notifier ? _notifier->sequence() : 0; }
    bool wait_notify(uint32_t seen, int64_t timeout_ns);
    /// As wait_notify, but busy-polls for up to spin_ns (no system call): the
    /// consumers' "spin" wait strategy. False when nothing was published.
    bool spin_notify(uint32_t seen, int64_t spin_ns);
    /// Wakes every wait_notify sleeper (they re-check and, finding nothing, sleep again).
    void wake_waiters() {
        if (_notifier) _notifier->bump();
    }
    committer_stats stats() const { return _committer ? _committer->stats() : committer_stats{}; }
    /// fdatasyncs by every handle of the session (0 for readers).
    uint64_t session_fdatasyncs() const { return _session ? _session->log_fdatasyncs() : 0; }
    uint64_t session_flushes() const { return _session ? _session->log_flushes() : 0; }
    void flush_all();
    /// Blocks until the committer's durable ticket reaches ticket (see committer).
    void wait_durable(uint64_t ticket, bool announced = false, bool (*interrupted)(void*) = nullptr,
                      void* interrupted_arg = nullptr) {
        if (ticket || announced) _committer->wait_durable(ticket, announced, interrupted, interrupted_arg);
    }
    bool is_durable(uint64_t ticket) const { return !ticket || _committer->is_durable(ticket); }
    void announce() { _committer->announce(); }
    void retract() { _committer->retract(); }
    /// After every partition is closed: stop the flusher and the housekeeper,
    /// mark the shutdown clean.
    void close();

private:
    std::string _path;
    bool _read_only;
    bool _was_clean = true;
    bool _closed = false;
    std::unique_ptr<log_session> _session;  // declared first: outlives the committer that uses it
    std::unique_ptr<housekeeper> _housekeeper;  // declared first: outlives the committer that uses it
    std::unique_ptr<committer> _committer;
    std::unique_ptr<shared_state> _notifier;
};

}  // namespace tidelog
