#pragma once
// A cross-process mutex that lives in shared memory and that the kernel
// releases when its holder dies: a pthread mutex with PTHREAD_PROCESS_SHARED,
// PTHREAD_MUTEX_ROBUST and PTHREAD_MUTEX_ERRORCHECK (Linux, glibc).
//
// Cost. Uncontended lock + unlock is a few atomic instructions in user space
// plus glibc's robust-list bookkeeping (also user space): no system call. A
// system call (futex) happens only when a locker must sleep or an unlocker
// must wake a sleeper.
//
// The memory.
// - `shared_mutex::size` bytes (sizeof(pthread_mutex_t): 40 on x86-64 and
//   aarch64 glibc), aligned to `shared_mutex::alignment`, inside a MAP_SHARED
//   mapping of a file or of POSIX shm (or MAP_SHARED|MAP_ANONYMOUS between
//   fork relatives). Never MAP_PRIVATE, never ordinary heap or stack: another
//   process would see a copy, and the kernel's death handling would not reach
//   it. The mapping may sit at different addresses in different processes
//   (futexes on shared mappings are keyed by file and offset).
// - The bytes are glibc's pthread_mutex_t, an ABI and not a file format: every
//   process using one mutex must run the same libc on the same word size, in
//   the same PID namespace (the owner is recorded as a TID). Whoever embeds
//   the mutex in a file layout must version that layout (a magic/version
//   field beside it) and must treat the bytes as meaningless across reboots:
//   the shared file is re-initialized by its creator, never trusted from disk.
//
// Who may call what.
// - init(where): once, by the creator of the region, before any other process
//   or thread can reach it (e.g. while holding the flock that guards the
//   file's creation, before publishing the magic/version that tells others
//   the region is ready). Calling it on a mutex that anyone may hold or wait
//   on is undefined behaviour.
// - shared_mutex(where): any process that maps the region attaches; the object
//   is just a pointer, cheap to copy, and holds no resources.
// - lock(), try_lock(), lock_for(), unlock(), mark_consistent(): any thread.
//   Ownership belongs to a THREAD, not to a process: the thread that locked
//   must be the one that unlocks (another thread's unlock() throws
//   errc::invalid_argument, and so does relocking a mutex the calling thread
//   already holds: it is not recursive). A thread that exits while holding
//   the mutex counts as a dead owner, exactly like a killed process.
// - Do not munmap the region while holding the mutex: the kernel finds held
//   robust mutexes through the dying thread's address space, and an unmapped
//   one stays locked forever.
//
// A dead owner, and what a repair must do.
// When the owner dies (SIGKILL, crash, _exit or a thread exit while holding),
// the kernel marks the mutex and wakes one waiter; the next locker gets it with
// `acquired_after_owner_died == true`. The state the mutex protects may then
// be half-updated. The new owner must
//   1. repair that state (redo or undo what the dead owner was doing, from
//      durable data or from redundancy in the shared state itself),
//   2. call mark_consistent(), then
//   3. unlock() as usual.
// A repair must be idempotent and restartable: if the repairer itself dies
// before mark_consistent(), the next locker again gets
// acquired_after_owner_died (POSIX and glibc behaviour; it does NOT become
// "not recoverable") and must repair from whatever the dead repairer left.
// A new owner that cannot repair calls unlock() without mark_consistent():
// that deliberately makes the mutex NOT RECOVERABLE.
//
// Not recoverable. Once a holder of an inconsistent mutex unlocks it without
// mark_consistent(), every later lock()/try_lock()/lock_for() in every process
// throws tidelog::error with errc::corrupt (message: "shared mutex is not
// recoverable ..."), immediately and without blocking. The mutex cannot be
// used again. The caller must stop trusting the protected state, rebuild it
// from durable data, and have the region re-created and init() run again under
// the same exclusion that guards the region's creation (for tidelog's shared
// files: the process that resets the file, with no one else mapping the old
// bytes as live).
//
// (glibc 2.36's pthread_mutex_trylock leaves a not-recoverable mutex's futex
// word holding the caller's TID, which would hang every other process's
// lock(); try_lock() releases it again: see shared_mutex.cpp.)
//
// fork(). A child inherits the mapping (MAP_SHARED stays shared) and may use
// the same mutex like any other process. It does NOT own a mutex the parent
// held at fork() (ownership is per thread; the child's threads are new): the
// child must not unlock it, and when the parent exits or dies the usual
// owner-died path applies. Do not fork while holding the mutex if the child
// is expected to release it. A child that exec()s keeps nothing.
//
// Errors: tidelog::error; errc::corrupt for not-recoverable, errc::
// invalid_argument for misuse (unlock by a non-owner, relock by the owner,
// mark_consistent on a consistent mutex), errc::io_error for anything else
// pthread reports.
#include <pthread.h>

#include <cstddef>
#include <cstdint>

namespace tidelog {

class shared_mutex {
public:
    static constexpr size_t size = sizeof(pthread_mutex_t);
    static constexpr size_t alignment = alignof(pthread_mutex_t);

    struct lock_result {
        bool acquired = false;                   // the caller now holds the mutex
        bool acquired_after_owner_died = false;  // ... and must repair, then mark_consistent()
    };

    /// Initializes the mutex at `where` (unlocked, consistent). Creator only, once.
    static void init(void* where);

    /// Attaches to a mutex some process init()ed at `where`.
    explicit shared_mutex(void* where);

    /// Blocks until acquired. acquired is always true on return.
    lock_result lock();
    /// Never blocks; acquired == false when another thread holds the mutex.
    lock_result try_lock();
    /// Waits at most `timeout_ns` (CLOCK_MONOTONIC); acquired == false on time-out.
    /// timeout_ns <= 0 is try_lock().
    lock_result lock_for(int64_t timeout_ns);
    /// After acquired_after_owner_died and a completed repair, before unlock().
    void mark_consistent();
    void unlock();

    void* where() const { return _m; }

private:
    pthread_mutex_t* _m;
};

#ifdef TIDELOG_IO_HOOKS
/// Tests only (builds with TIDELOG_IO_HOOKS): lock_for as on glibc before 2.30,
/// which has no pthread_mutex_clocklock (pthread_mutex_timedlock instead).
extern bool shared_mutex_without_clocklock_for_tests;
#endif

/// Holds a shared_mutex for a scope. When the previous owner died, `repair`
/// runs first (with the mutex held), then mark_consistent(). A repair that
/// throws leaves the mutex consistent all the same and unlocked (every repair
/// must be idempotent: the next holder finds the same leftovers and repairs
/// again), and the exception goes on.
class shared_mutex_guard {
public:
    template <class Repair>
    shared_mutex_guard(shared_mutex m, Repair&& repair) : _m(m) {
        if (!_m.lock().acquired_after_owner_died) return;
        try {
            repair();
        } catch (...) {
            try {
                _m.mark_consistent();
            } catch (...) {
            }
            _m.unlock();
            throw;
        }
        _m.mark_consistent();
    }
    ~shared_mutex_guard() { _m.unlock(); }
    shared_mutex_guard(const shared_mutex_guard&) = delete;
    shared_mutex_guard& operator=(const shared_mutex_guard&) = delete;

private:
    shared_mutex _m;
};

}  // namespace tidelog
