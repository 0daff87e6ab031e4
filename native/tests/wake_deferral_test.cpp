// Deferred publish wake-ups (wake_deferral.h): a deferring thread's bumps wake
// nobody until wake_deferred(), which wakes every waiter once; nothing is
// deferred outside a defer_wakes() .. wake_deferred() window.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <sys/mman.h>

#include "shared_state.h"
#include "test_util.h"
#include "wake_deferral.h"

using namespace tidelog;
using namespace std::chrono_literals;

namespace {

/// A thread sleeping in wait_change on `state` (no timeout) until it changes.
struct sleeper {
    std::atomic<bool> woke{false};
    std::thread thread;
    sleeper(const shared_state& state) {
        uint32_t seen = state.sequence();
        thread = std::thread([this, &state, seen] {
            state.wait_change(seen, -1);
            woke = true;
        });
        std::this_thread::sleep_for(50ms);  // asleep in FUTEX_WAIT by now
    }
    ~sleeper() { thread.join(); }
};

}  // namespace

TEST(WakeDeferral, BumpsWakeOnlyWhenTheDeferralEnds) {
    tidelog_test::temp_dir dir;
    shared_state state(dir.sub("state"), true);
    sleeper s(state);
    defer_wakes();
    state.bump();
    state.bump();  // the same word: recorded once
    EXPECT_TRUE(wakes_pending());
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(s.woke.load()) << "a deferred bump woke its waiter";
    EXPECT_EQ(wake_deferred(false), 1);
    EXPECT_FALSE(wakes_pending());
    s.thread.join();
    s.thread = std::thread([] {});
    EXPECT_TRUE(s.woke.load());
}

TEST(WakeDeferral, OutsideTheWindowBumpsWakeAtOnce) {
    tidelog_test::temp_dir dir;
    shared_state state(dir.sub("state"), true);
    defer_wakes();
    EXPECT_EQ(wake_deferred(true), 0);  // nothing recorded: no wake, no yield
    sleeper s(state);
    state.bump();
    s.thread.join();
    s.thread = std::thread([] {});
    EXPECT_TRUE(s.woke.load());
    EXPECT_FALSE(wakes_pending());
}

TEST(WakeDeferral, MoreWordsThanItHoldsAreWokenAtOnce) {
    tidelog_test::temp_dir dir;
    shared_state state(dir.sub("state"), true);
    void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(page, MAP_FAILED);
    sleeper s(state);
    defer_wakes();
    for (int i = 0; i < 8; ++i) EXPECT_EQ(wake_or_defer(static_cast<uint32_t*>(page) + i), 0);  // all it holds
    state.bump();  // a ninth word: woken at its bump
    s.thread.join();
    s.thread = std::thread([] {});
    EXPECT_TRUE(s.woke.load());
    EXPECT_EQ(wake_deferred(false), 0);  // the eight recorded had no waiters
    ::munmap(page, 4096);
}

TEST(WakeDeferral, AWordWhoseMappingWentAwayOnlyFailsItsWake) {
    // A log closed between the append and the wake: the futex call fails
    // with EFAULT, nothing crashes, and the deferral ends.
    void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(page, MAP_FAILED);
    defer_wakes();
    EXPECT_EQ(wake_or_defer(static_cast<uint32_t*>(page)), 0);
    ASSERT_EQ(::munmap(page, 4096), 0);
    EXPECT_EQ(wake_deferred(true), 0);
    EXPECT_FALSE(wakes_pending());
}
