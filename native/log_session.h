#pragma once
// The log folder's read-write session: who has the log open for writing, the
// log-wide shared memory (<log>/shm) and the clean-shutdown marker.
//
// A *session* is a period during which at least one read-write handle has the
// log open. Any number of handles (in any processes on the machine, or several
// in one process) may share it; an exclusive handle has it alone.
//
//   <log>/LOCK   flock(LOCK_SH) by every shared handle, flock(LOCK_EX) by an
//                exclusive one (as tidelog 0.1 writers took it, so old writers
//                and new handles exclude each other). Byte 1: the dead-man
//                switch, an OFD lock every live handle holds shared (taking it
//                exclusively proves no other handle is live). Byte 2: the
//                transition lock, held exclusively while a handle opens or
//                closes, so "first in" and "last out" are decided one at a time.
//   <log>/shm    the layout below; re-initialized by the session's first
//                handle, never fsynced, never trusted across sessions.
//
// The first handle of a session draws a new epoch (partitions recover once per
// epoch: partition.h), consumes the clean-shutdown marker and empties trash/.
// The last handle to close writes the marker, but only when every handle of
// the session closed cleanly (a handle that died left its count behind, and
// the next session then recovers every partition).
//
// Concurrency: the class is used by one log_core; its shared memory by every
// handle of the session (atomics and the robust flush lock only).
#include <cstdint>
#include <string>
#include <vector>

#include "file_handle.h"
#include "shared_mutex.h"

namespace tidelog {

struct log_shm_layout {
    uint32_t magic;             // "TLSH"
    uint32_t version;           // 1
    uint32_t init_state;        // 2 once the first handle finished initializing (stored last)
    uint32_t abi_tag;           // sizeof(pthread_mutex_t) | word size << 8: handles with another ABI are refused
    uint64_t epoch;             // random, per session
    int32_t first_opener_pid;
    uint32_t flags;             // bit 0: the previous session closed cleanly
    int32_t open_handles;       // read-write handles opened this session and not closed cleanly
    uint32_t reserved0;
    int64_t session_start_ns;   // CLOCK_REALTIME
    uint8_t reserved1[16];
    // 64: log-wide statistics, written by flush leaders
    uint64_t flushes;
    uint64_t fdatasyncs;
    uint32_t flush_generation;  // futex word: +1 (and a wake-up) after every flush that advanced durable points
    uint32_t flush_waiters;     // flushers sleeping on flush_generation
    uint64_t reserved2[5];
    // 128: the flush leader's lock (committer.h)
    alignas(64) uint8_t flush_lock[64];
    uint8_t reserved3[4096 - 192];
    // 4096: one slot per read-write handle (its liveness: an OFD write lock on
    // byte 4096 + slot of LOCK, so a dead handle's slot is known dead)
    struct slot {
        uint32_t state;      // 1: in use
        int32_t pid;
        int32_t in_flight;   // the handle's announced appenders not yet waiting (committer.h)
        uint32_t reserved[13];
    } slots[256];
};
static_assert(sizeof(log_shm_layout) == 4096 + 256 * 64, "log shm layout");

class log_session {
public:
    /// Opens the session (joining a live one, or starting one). Throws
    /// errc::locked naming the holders when the mode conflicts.
    log_session(const std::string& path, bool exclusive);
    ~log_session();
    log_session(const log_session&) = delete;
    log_session& operator=(const log_session&) = delete;

    /// Whether the previous session ended with a clean close.
    bool was_clean() const { return _was_clean; }
    uint64_t epoch() const { return _shm->epoch; }
    shared_mutex flush_lock() const { return shared_mutex(_shm->flush_lock); }
    void count_flush(uint64_t fdatasyncs) {
        __atomic_add_fetch(&_shm->flushes, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&_shm->fdatasyncs, fdatasyncs, __ATOMIC_RELAXED);
    }
    uint64_t log_fdatasyncs() const { return __atomic_load_n(&_shm->fdatasyncs, __ATOMIC_RELAXED); }
    uint64_t log_flushes() const { return __atomic_load_n(&_shm->flushes, __ATOMIC_RELAXED); }
    /// The flush leader, after it advanced durable points: wakes the flushers
    /// of every handle waiting for it (they check whether it covered them).
    void flush_done();
    uint32_t flush_generation() const { return __atomic_load_n(&_shm->flush_generation, __ATOMIC_ACQUIRE); }
    /// This handle's announced appenders (committer::announce), seen by every handle's flusher.
    void add_in_flight(int n) {
        if (_slot >= 0) __atomic_add_fetch(&_shm->slots[_slot].in_flight, n, __ATOMIC_RELAXED);
    }
    /// Announced appenders of the other live handles (a dead handle's slot is
    /// ignored: its OFD liveness lock went with it). A system call only per
    /// slot that claims some.
    int others_in_flight() const;
    /// Sleeps until flush_generation differs from `seen`, at most timeout_ns.
    void wait_flush(uint32_t seen, int64_t timeout_ns);
    /// Leaves the session. clean: this handle closed everything cleanly. If it is
    /// the session's last handle and every handle closed cleanly, writes the
    /// clean-shutdown marker (fsynced). Then releases every lock.
    void close(bool clean);
    /// Leaves without any file work (the handle failed): the session then ends unclean.
    void abandon();

private:
    void start_session();
    void join_session();
    void claim_slot();
    std::string _path;
    file_handle _lock;
    log_shm_layout* _shm = nullptr;
    int _slot = -1;           // this handle's slot (-1: none free: it gathers for itself only)
    bool _was_clean = true;
    bool _closed = false;
};

/// The pids holding flock(2) locks on the file open as fd (from /proc/locks), for messages.
std::vector<int> flock_holders(int fd);
/// Removes a folder and everything in it (missing: nothing to do).
void remove_tree(const std::string& path);

}  // namespace tidelog
