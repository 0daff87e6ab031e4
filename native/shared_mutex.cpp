#include "shared_mutex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <string>

#include "errors.h"
#include "linux_syscalls.h"

// ThreadSanitizer (gcc 12's libtsan) intercepts pthread_mutex_lock/trylock/
// timedlock but not pthread_mutex_clocklock: tell it about lock_for's locks.
#if defined(__SANITIZE_THREAD__)
#define TIDELOG_SHARED_MUTEX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TIDELOG_SHARED_MUTEX_TSAN 1
#endif
#endif
#ifdef TIDELOG_SHARED_MUTEX_TSAN
#include <sanitizer/tsan_interface.h>
#endif

// pthread_mutex_clocklock came with glibc 2.30; the wheels are built against
// glibc 2.17's symbols. A weak reference resolves to it where it exists and is
// null before 2.30, where lock_for falls back to pthread_mutex_timedlock with a
// CLOCK_REALTIME deadline (the same wait, except that a jump of the wall clock
// during it lengthens or shortens it).
extern "C" int pthread_mutex_clocklock(pthread_mutex_t*, clockid_t, const struct timespec*) __attribute__((weak));

namespace tidelog {

#ifdef TIDELOG_IO_HOOKS
bool shared_mutex_without_clocklock_for_tests = false;
#endif

namespace {
bool clocklock_available() {
#ifdef TIDELOG_IO_HOOKS
    if (shared_mutex_without_clocklock_for_tests) return false;
#endif
    return pthread_mutex_clocklock != nullptr;
}
}  // namespace

namespace {

[[noreturn, gnu::cold, gnu::noinline]] void fail(const char* what, int rc) {
    switch (rc) {
        case ENOTRECOVERABLE:
            throw error(errc::corrupt,
                        std::string("shared mutex is not recoverable (") + what +
                            "): a previous owner died and the thread that inherited the mutex unlocked it "
                            "without mark_consistent(); the protected state must be rebuilt and the mutex "
                            "re-initialized by the region's creator");
        case EPERM:
            throw error(errc::invalid_argument,
                        std::string("shared mutex ") + what + ": the calling thread does not hold it");
        case EDEADLK:
            throw error(errc::invalid_argument,
                        std::string("shared mutex ") + what + ": the calling thread already holds it");
        default:
            throw_errno(std::string("shared mutex ") + what, rc);
    }
}

// 0 and EOWNERDEAD acquire; EBUSY/ETIMEDOUT do not; anything else throws.
inline shared_mutex::lock_result result_of(const char* what, int rc) {
    if (__builtin_expect(rc == 0, 1)) return {true, false};
    if (rc == EOWNERDEAD) return {true, true};
    if (rc == EBUSY || rc == ETIMEDOUT) return {false, false};
    fail(what, rc);
}

// glibc (seen on 2.36) pthread_mutex_trylock on a not-recoverable robust
// mutex returns ENOTRECOVERABLE but leaves the futex word holding the caller's
// TID (its "if (oldval == id) lll_unlock" tests the CAS result, which is 0 on
// success): the caller's next attempt gets EDEADLK and every other process's
// lock() sleeps forever. Release the word if it is ours; waiters then wake, see
// not-recoverable and fail as they should. Cold path: the mutex is dead anyway.
[[gnu::cold, gnu::noinline]] void release_word_left_by_trylock(pthread_mutex_t* m) {
#ifdef __GLIBC__
    int* word = &m->__data.__lock;  // glibc: the futex word
    const int tid = static_cast<int>(linux_syscall::gettid());
    int old = __atomic_load_n(word, __ATOMIC_RELAXED);
    if ((old & FUTEX_TID_MASK) != tid) return;
    if (!__atomic_compare_exchange_n(word, &old, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        // Only FUTEX_WAITERS can have been added meanwhile (the word is ours).
        old = __atomic_exchange_n(word, 0, __ATOMIC_RELEASE);
    }
    if (old & FUTEX_WAITERS) ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
#else
    (void)m;
#endif
}

}  // namespace

void shared_mutex::init(void* where) {
    if (where == nullptr || reinterpret_cast<uintptr_t>(where) % alignment != 0)
        throw error(errc::invalid_argument, "shared mutex: init at a null or misaligned address");
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0) fail("attributes", rc);
    struct attr_guard {
        pthread_mutexattr_t* a;
        ~attr_guard() { pthread_mutexattr_destroy(a); }
    } guard{&attr};
    if ((rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) != 0) fail("setpshared", rc);
    if ((rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) != 0) fail("setrobust", rc);
    if ((rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK)) != 0) fail("settype", rc);
    if ((rc = pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_NONE)) != 0) fail("setprotocol", rc);
    std::memset(where, 0, size);
    if ((rc = pthread_mutex_init(static_cast<pthread_mutex_t*>(where), &attr)) != 0) fail("init", rc);
}

shared_mutex::shared_mutex(void* where) : _m(static_cast<pthread_mutex_t*>(where)) {
    if (where == nullptr || reinterpret_cast<uintptr_t>(where) % alignment != 0)
        throw error(errc::invalid_argument, "shared mutex: attach at a null or misaligned address");
}

shared_mutex::lock_result shared_mutex::lock() { return result_of("lock", pthread_mutex_lock(_m)); }

shared_mutex::lock_result shared_mutex::try_lock() {
    int rc = pthread_mutex_trylock(_m);
    if (__builtin_expect(rc == ENOTRECOVERABLE, 0)) release_word_left_by_trylock(_m);
    return result_of("try_lock", rc);
}

shared_mutex::lock_result shared_mutex::lock_for(int64_t timeout_ns) {
    if (timeout_ns <= 0) return try_lock();
    lock_result r = try_lock();  // the uncontended case without reading the clock
    if (r.acquired) return r;
    const bool monotonic = clocklock_available();
    timespec deadline;
    ::clock_gettime(monotonic ? CLOCK_MONOTONIC : CLOCK_REALTIME, &deadline);
    constexpr int64_t billion = 1000000000;
    int64_t sec = timeout_ns / billion;
    int64_t nsec = deadline.tv_nsec + timeout_ns % billion;
    if (nsec >= billion) {
        nsec -= billion;
        sec += 1;
    }
    deadline.tv_sec += static_cast<time_t>(sec);
    deadline.tv_nsec = static_cast<long>(nsec);
#ifdef TIDELOG_SHARED_MUTEX_TSAN
    __tsan_mutex_pre_lock(_m, __tsan_mutex_try_lock);
#endif
    int rc = monotonic ? pthread_mutex_clocklock(_m, CLOCK_MONOTONIC, &deadline)
                       : pthread_mutex_timedlock(_m, &deadline);
#ifdef TIDELOG_SHARED_MUTEX_TSAN
    __tsan_mutex_post_lock(_m, (rc == 0 || rc == EOWNERDEAD) ? __tsan_mutex_try_lock
                                                              : __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed, 0);
#endif
    return result_of("lock_for", rc);
}

void shared_mutex::mark_consistent() {
    int rc = pthread_mutex_consistent(_m);
    if (rc == EINVAL)
        throw error(errc::invalid_argument,
                    "shared mutex mark_consistent: the mutex is not in the owner-died state");
    if (rc != 0) fail("mark_consistent", rc);
}

void shared_mutex::unlock() {
    int rc = pthread_mutex_unlock(_m);
    if (__builtin_expect(rc != 0, 0)) fail("unlock", rc);
}

}  // namespace tidelog
