// shared_mutex: the robust process-shared mutex (native/shared_mutex.h).
// Mutual exclusion across fork()ed processes on a MAP_SHARED file mapping,
// failover after a SIGKILLed holder (timed), repair + mark_consistent, a
// repairer that dies, not-recoverable as a typed error, misuse, and the
// uncontended cost (printed, not asserted).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "errors.h"
#include "shared_mutex.h"
#include "test_util.h"

using namespace tidelog;
using tidelog_test::temp_dir;

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifdef UNDER_TSAN
constexpr bool under_tsan = true;
#else
constexpr bool under_tsan = false;
#endif

namespace {

using clock_type = std::chrono::steady_clock;

// The protected state: `a == b` outside the lock; a holder that dies between
// the two writes leaves a != b for the next owner to repair.
struct region {
    alignas(64) unsigned char mutex[shared_mutex::size];
    alignas(64) uint64_t counter;
    uint64_t a;
    uint64_t b;
    int32_t inside;      // 1 while someone is in the critical section
    int32_t violations;  // entries that found inside == 1
    int32_t ready;       // children at the start line
    int32_t go;          // the start signal
};
static_assert(alignof(region) >= shared_mutex::alignment, "region alignment");

constexpr size_t map_size = 4096;

region* map_region(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) return nullptr;
    void* p = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    return p == MAP_FAILED ? nullptr : static_cast<region*>(p);
}

/// A MAP_SHARED mapping of a file in a fresh temp dir, with an init()ed mutex.
class shared_file {
public:
    shared_file() {
        _path = _dir.sub("mutex");
        int fd = ::open(_path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || ::ftruncate(fd, map_size) != 0) throw std::runtime_error("shared_file: create");
        ::close(fd);
        _r = map_region(_path);
        if (!_r) throw std::runtime_error("shared_file: mmap");
        shared_mutex::init(_r->mutex);
    }
    ~shared_file() { ::munmap(_r, map_size); }
    region* r() const { return _r; }
    shared_mutex mutex() const { return shared_mutex(_r->mutex); }
    const std::string& path() const { return _path; }

private:
    temp_dir _dir;
    std::string _path;
    region* _r = nullptr;
};

/// fork()s a child that runs `body` and _exit()s with its return value (98 on
/// an exception, after printing it). A backstop alarm kills a stuck child.
pid_t spawn(const std::function<int()>& body) {
    fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::alarm(60);
        int rc = 97;
        try {
            rc = body();
        } catch (const std::exception& e) {
            fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), e.what());
            rc = 98;
        }
        ::_exit(rc);
    }
    return pid;
}

/// The child's exit code, or 128 + signal.
int wait_for(pid_t pid) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// A pipe the child writes one byte to once it holds the lock.
struct ready_pipe {
    int fd[2] = {-1, -1};
    ready_pipe() {
        if (::pipe(fd) != 0) throw std::runtime_error("pipe");
    }
    ~ready_pipe() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
    void signal() const {
        char c = 1;
        (void)!::write(fd[1], &c, 1);
    }
    bool wait() const {
        char c = 0;
        return ::read(fd[0], &c, 1) == 1;
    }
};

/// A child that locks, breaks the invariant half-way (a = b + 1), signals and
/// waits to be killed.
pid_t spawn_holder_that_will_be_killed(const shared_file& f, const ready_pipe& ready) {
    return spawn([&]() {
        shared_mutex m = f.mutex();
        m.lock();
        f.r()->a = f.r()->b + 1;  // ... and b never catches up
        ready.signal();
        for (;;) ::pause();
        return 0;
    });
}

// A non-atomic read-modify-write, with a yield now and then to widen the window.
void increment(region* r, int i) {
    volatile int32_t* inside = &r->inside;
    if (*inside != 0) r->violations = r->violations + 1;
    *inside = 1;
    volatile uint64_t* c = &r->counter;
    uint64_t v = *c;
    if (i % 97 == 0) sched_yield();
    *c = v + 1;
    *inside = 0;
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

TEST(SharedMutex, LayoutIsOnePthreadMutex) {
    EXPECT_EQ(shared_mutex::size, sizeof(pthread_mutex_t));
    EXPECT_EQ(shared_mutex::alignment, alignof(pthread_mutex_t));
    alignas(16) unsigned char buf[64];
    EXPECT_THROW(shared_mutex::init(nullptr), error);
    try {
        shared_mutex m(buf + 1);
        FAIL() << "a misaligned attach must throw";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::invalid_argument);
    }
}

TEST(SharedMutex, MutualExclusionAcrossProcesses) {
    shared_file f;
    constexpr int children = 4;
    const int per_child = 50000;
    std::vector<pid_t> pids;
    for (int c = 0; c < children; ++c) {
        pids.push_back(spawn([&, c]() {
            // Half the children map the file afresh (another address, the same
            // futex: keyed by file and offset), half use the inherited mapping.
            region* r = (c % 2 == 0) ? map_region(f.path()) : f.r();
            if (!r) return 2;
            shared_mutex m(r->mutex);
            // Start together, so the children really contend.
            __atomic_add_fetch(&r->ready, 1, __ATOMIC_SEQ_CST);
            while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE)) sched_yield();
            for (int i = 0; i < per_child; ++i) {
                auto res = m.lock();
                if (!res.acquired || res.acquired_after_owner_died) return 3;
                increment(r, i);
                m.unlock();
            }
            return 0;
        }));
    }
    while (__atomic_load_n(&f.r()->ready, __ATOMIC_SEQ_CST) < children) sched_yield();
    __atomic_store_n(&f.r()->go, 1, __ATOMIC_RELEASE);
    for (pid_t p : pids) EXPECT_EQ(wait_for(p), 0);
    EXPECT_EQ(f.r()->counter, static_cast<uint64_t>(children) * per_child);
    EXPECT_EQ(f.r()->violations, 0);
}

// Threads of one process on the same shared mapping (what TSan can check).
TEST(SharedMutex, MutualExclusionAcrossThreads) {
    shared_file f;
    constexpr int threads = 4;
    const int per_thread = 20000;
    std::vector<std::thread> ts;
    uint64_t plain = 0;  // non-atomic, only touched under the mutex
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&]() {
            shared_mutex m = f.mutex();
            for (int i = 0; i < per_thread; ++i) {
                auto res = m.lock_for(10'000'000'000);
                ASSERT_TRUE(res.acquired);
                ++plain;
                m.unlock();
            }
        });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(plain, static_cast<uint64_t>(threads) * per_thread);
}

// The parent waits in lock() while the holder is SIGKILLed: the kernel hands
// the mutex over. Prints the failover time (kill() -> lock() returning).
TEST(SharedMutex, KilledHolderFailsOverToWaiter) {
    shared_file f;
    const int rounds = 20;
    std::vector<double> failover_us;
    for (int round = 0; round < rounds; ++round) {
        ready_pipe ready;
        pid_t holder = spawn_holder_that_will_be_killed(f, ready);
        ASSERT_TRUE(ready.wait());

        std::atomic<bool> waiting{false};
        clock_type::time_point acquired_at;
        shared_mutex::lock_result res;
        bool repaired = false;
        std::thread waiter([&]() {
            shared_mutex m = f.mutex();
            waiting.store(true);
            // Even rounds block in lock(), odd rounds in lock_for().
            res = (round % 2 == 0) ? m.lock() : m.lock_for(30'000'000'000);
            acquired_at = clock_type::now();
            if (res.acquired_after_owner_died) {
                repaired = f.r()->a != f.r()->b;
                f.r()->b = f.r()->a;  // the repair
                m.mark_consistent();
            }
            if (res.acquired) m.unlock();
        });
        while (!waiting.load()) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let it block in the futex
        auto killed_at = clock_type::now();
        ASSERT_EQ(::kill(holder, SIGKILL), 0);
        waiter.join();
        EXPECT_EQ(wait_for(holder), 128 + SIGKILL);
        ASSERT_TRUE(res.acquired);
        ASSERT_TRUE(res.acquired_after_owner_died) << "round " << round;
        EXPECT_TRUE(repaired) << "the waiter must see the dead holder's half-done update";
        failover_us.push_back(std::chrono::duration<double, std::micro>(acquired_at - killed_at).count());
    }
    double mx = *std::max_element(failover_us.begin(), failover_us.end());
    double mn = *std::min_element(failover_us.begin(), failover_us.end());
    double med = median_of(failover_us);
    printf("[ failover ] SIGKILLed holder -> waiter acquires: min %.0f us, median %.0f us, max %.0f us (%d rounds)\n",
           mn, med, mx, rounds);
    EXPECT_LT(med, 100'000.0) << "median failover must stay well under 100 ms";
    EXPECT_LT(mx, 1'000'000.0);
    // After the repairs the mutex is an ordinary mutex again.
    auto r = f.mutex().try_lock();
    EXPECT_TRUE(r.acquired);
    EXPECT_FALSE(r.acquired_after_owner_died);
    f.mutex().unlock();
}

// Nobody waits: the holder exits (no signal, no unlock); the next lock() finds
// the owner dead, repairs, marks consistent, and from then on the mutex works
// as usual, across processes too.
TEST(SharedMutex, RepairThenConsistentAllowsNormalUse) {
    shared_file f;
    pid_t holder = spawn([&]() {
        shared_mutex m = f.mutex();
        m.lock();
        f.r()->a = f.r()->b + 1;
        return 0;  // _exit() with the mutex held
    });
    ASSERT_EQ(wait_for(holder), 0);

    shared_mutex m = f.mutex();
    auto res = m.lock();
    ASSERT_TRUE(res.acquired);
    ASSERT_TRUE(res.acquired_after_owner_died);
    EXPECT_NE(f.r()->a, f.r()->b);
    f.r()->b = f.r()->a;
    m.mark_consistent();
    m.unlock();

    res = m.lock();
    EXPECT_TRUE(res.acquired);
    EXPECT_FALSE(res.acquired_after_owner_died);
    m.unlock();

    std::vector<pid_t> pids;
    for (int c = 0; c < 3; ++c) {
        pids.push_back(spawn([&]() {
            shared_mutex cm = f.mutex();
            for (int i = 0; i < 5000; ++i) {
                auto r = cm.lock();
                if (r.acquired_after_owner_died) return 3;
                increment(f.r(), i);
                cm.unlock();
            }
            return 0;
        }));
    }
    for (pid_t p : pids) EXPECT_EQ(wait_for(p), 0);
    EXPECT_EQ(f.r()->counter, 15000u);
    EXPECT_EQ(f.r()->violations, 0);
}

// The ownership is per thread: a thread that exits holding the mutex is a dead
// owner too.
TEST(SharedMutex, ThreadExitWhileHoldingIsAnOwnerDeath) {
    shared_file f;
    std::thread([&]() { f.mutex().lock(); }).join();
    shared_mutex m = f.mutex();
    auto res = m.try_lock();
    ASSERT_TRUE(res.acquired);
    EXPECT_TRUE(res.acquired_after_owner_died);
    m.mark_consistent();
    m.unlock();
}

// A repairer that dies before mark_consistent() does not make the mutex
// unrecoverable (POSIX, glibc): the next locker again gets owner-died and must
// repair from what the dead repairer left. Repairs must be restartable.
TEST(SharedMutex, RepairerDyingBeforeMarkConsistentHandsOwnerDiedOn) {
    shared_file f;
    {
        ready_pipe ready;
        pid_t holder = spawn_holder_that_will_be_killed(f, ready);
        ASSERT_TRUE(ready.wait());
        ASSERT_EQ(::kill(holder, SIGKILL), 0);
        EXPECT_EQ(wait_for(holder), 128 + SIGKILL);
    }
    for (int repairer = 0; repairer < 3; ++repairer) {
        ready_pipe ready;
        pid_t p = spawn([&]() {
            shared_mutex m = f.mutex();
            auto r = m.lock();
            if (!r.acquired_after_owner_died) return 3;
            ready.signal();
            for (;;) ::pause();  // dies mid-repair
            return 0;
        });
        ASSERT_TRUE(ready.wait());
        ASSERT_EQ(::kill(p, SIGKILL), 0);
        EXPECT_EQ(wait_for(p), 128 + SIGKILL);
    }
    shared_mutex m = f.mutex();
    auto res = m.lock();
    ASSERT_TRUE(res.acquired);
    EXPECT_TRUE(res.acquired_after_owner_died);
    f.r()->b = f.r()->a;
    m.mark_consistent();
    m.unlock();
    res = m.lock();
    EXPECT_FALSE(res.acquired_after_owner_died);
    m.unlock();
}

// An inheritor that unlocks without mark_consistent() gives the mutex up: every
// later lock attempt, in any process, fails at once with a typed error.
TEST(SharedMutex, UnlockWithoutMarkConsistentIsNotRecoverable) {
    shared_file f;
    {
        ready_pipe ready;
        pid_t holder = spawn_holder_that_will_be_killed(f, ready);
        ASSERT_TRUE(ready.wait());
        ASSERT_EQ(::kill(holder, SIGKILL), 0);
        EXPECT_EQ(wait_for(holder), 128 + SIGKILL);
    }
    pid_t giver_up = spawn([&]() {
        shared_mutex m = f.mutex();
        auto r = m.lock();
        if (!r.acquired_after_owner_died) return 3;
        m.unlock();  // cannot repair: give up
        return 0;
    });
    ASSERT_EQ(wait_for(giver_up), 0);

    shared_mutex m = f.mutex();
    auto expect_not_recoverable = [](const std::function<void()>& attempt, const char* what) {
        try {
            attempt();
            ADD_FAILURE() << what << " must throw on a not-recoverable mutex";
        } catch (const error& e) {
            EXPECT_EQ(e.code(), errc::corrupt) << what;
            EXPECT_NE(std::string(e.what()).find("not recoverable"), std::string::npos) << e.what();
        }
    };
    // lock, then try_lock twice (lock_for tries first): glibc's trylock leaves
    // the word held on not-recoverable unless shared_mutex releases it, and
    // the other process's lock() below would then sleep forever.
    expect_not_recoverable([&]() { m.lock(); }, "lock");
    expect_not_recoverable([&]() { m.try_lock(); }, "try_lock");
    auto t0 = clock_type::now();
    expect_not_recoverable([&]() { m.lock_for(5'000'000'000); }, "lock_for");
    EXPECT_LT(clock_type::now() - t0, std::chrono::seconds(1)) << "not-recoverable must not block";
    pid_t other = spawn([&]() {
        try {
            f.mutex().lock();
        } catch (const error& e) {
            return e.code() == errc::corrupt ? 0 : 4;
        }
        return 5;
    });
    EXPECT_EQ(wait_for(other), 0);

    // What the caller does then: rebuild the protected state and re-init the
    // region (here trivially: nobody else uses it any more).
    shared_mutex::init(f.r()->mutex);
    auto res = m.lock();
    EXPECT_TRUE(res.acquired);
    EXPECT_FALSE(res.acquired_after_owner_died);
    m.unlock();
}

void check_try_lock_and_lock_for_across_processes() {
    shared_file f;
    shared_mutex m = f.mutex();
    ASSERT_TRUE(m.lock().acquired);
    ready_pipe go;
    pid_t p = spawn([&]() {
        shared_mutex cm = f.mutex();
        if (cm.try_lock().acquired) return 2;
        auto t0 = clock_type::now();
        if (cm.lock_for(20'000'000).acquired) return 3;
        if (clock_type::now() - t0 < std::chrono::milliseconds(20)) return 4;
        if (cm.lock_for(0).acquired) return 5;
        go.signal();
        // The parent unlocks while this waits: woken, not timed out.
        auto r = cm.lock_for(30'000'000'000);
        if (!r.acquired || r.acquired_after_owner_died) return 6;
        cm.unlock();
        return 0;
    });
    ASSERT_TRUE(go.wait());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m.unlock();
    EXPECT_EQ(wait_for(p), 0);
}

TEST(SharedMutex, TryLockAndLockForAcrossProcesses) { check_try_lock_and_lock_for_across_processes(); }

// glibc before 2.30 (the wheels' floor is 2.17) has no pthread_mutex_clocklock:
// lock_for then waits in pthread_mutex_timedlock. Time-outs, wake-ups and an
// owner's death behave the same.
TEST(SharedMutex, LockForWithoutClocklockAsOnOldGlibc) {
    shared_mutex_without_clocklock_for_tests = true;
    check_try_lock_and_lock_for_across_processes();
    shared_file f;
    ready_pipe ready;
    pid_t holder = spawn_holder_that_will_be_killed(f, ready);
    ASSERT_TRUE(ready.wait());
    std::thread killer([&]() {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ::kill(holder, SIGKILL);
    });
    auto res = f.mutex().lock_for(30'000'000'000);
    killer.join();
    EXPECT_EQ(wait_for(holder), 128 + SIGKILL);
    EXPECT_TRUE(res.acquired);
    EXPECT_TRUE(res.acquired_after_owner_died);
    f.r()->b = f.r()->a;
    f.mutex().mark_consistent();
    f.mutex().unlock();
    shared_mutex_without_clocklock_for_tests = false;
}

TEST(SharedMutex, MisuseIsInvalidArgument) {
    shared_file f;
    shared_mutex m = f.mutex();
    auto code_of = [](const std::function<void()>& fn) {
        try {
            fn();
        } catch (const error& e) {
            return static_cast<int>(e.code());
        }
        return 0;
    };
    const int invalid = static_cast<int>(errc::invalid_argument);
    // TSan reports the wrong unlocks itself (pthread's EPERM notwithstanding).
    if (!under_tsan) EXPECT_EQ(code_of([&]() { m.unlock(); }), invalid) << "unlock of an unlocked mutex";
    ASSERT_TRUE(m.lock().acquired);
    EXPECT_EQ(code_of([&]() { m.lock(); }), invalid) << "relock by the owner";
    EXPECT_EQ(code_of([&]() { m.mark_consistent(); }), invalid) << "mark_consistent when consistent";
    if (!under_tsan) {
        int from_other_thread = -1;
        std::thread([&]() { from_other_thread = code_of([&]() { f.mutex().unlock(); }); }).join();
        EXPECT_EQ(from_other_thread, invalid) << "unlock by a thread that does not hold it";
    }
    bool other_got_it = true;
    std::thread([&]() { other_got_it = f.mutex().try_lock().acquired; }).join();
    EXPECT_FALSE(other_got_it);
    m.unlock();
}

// Uncontended lock + unlock on a MAP_SHARED file mapping: printed, not asserted.
// TIDELOG_SHARED_MUTEX_OPS sets the loop length (for `strace -c -f` runs).
TEST(SharedMutex, UncontendedCost) {
    shared_file f;
    shared_mutex m = f.mutex();
    long ops = 2'000'000;
    if (const char* env = std::getenv("TIDELOG_SHARED_MUTEX_OPS")) ops = std::atol(env);
    for (int i = 0; i < 1000; ++i) {
        m.lock();
        m.unlock();
    }
    auto t0 = clock_type::now();
    for (long i = 0; i < ops; ++i) {
        m.lock();
        m.unlock();
    }
    double ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / static_cast<double>(ops);

    pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;
    t0 = clock_type::now();
    for (long i = 0; i < ops; ++i) {
        pthread_mutex_lock(&plain);
        pthread_mutex_unlock(&plain);
    }
    double plain_ns =
        std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / static_cast<double>(ops);
    printf("[ uncontended ] shared_mutex lock+unlock: %.1f ns/op; plain private pthread_mutex: %.1f ns/op (%ld ops)\n",
           ns, plain_ns, ops);
}
