// housekeeper: schedules, triggers, removal while running, stop. (Its use by
// the committer for checkpoints and retention: committer_test.cpp.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "housekeeper.h"
#include "units.h"

using namespace tidelog;

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int64_t ms = 1'000'000;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Polls cond for up to `seconds` (sanitizer builds on busy machines are slow).
template <typename F>
bool eventually(F cond, double seconds = 5.0) {
    auto t0 = clock_type::now();
    while (!cond()) {
        if (seconds_since(t0) > seconds) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

void sleep_ms(int n) { std::this_thread::sleep_for(std::chrono::milliseconds(n)); }

}  // namespace

TEST(Housekeeper, PeriodicTaskRunsEveryIntervalButNotAtOnce) {
    housekeeper h;
    std::atomic<int> runs{0};
    std::atomic<double> first_at{-1};
    auto t0 = clock_type::now();
    h.add_task({"tick", 100 * ms, housekeeping_task::schedule::periodic, [&] {
                    if (runs.fetch_add(1) == 0) first_at = seconds_since(t0);
                }});
    ASSERT_TRUE(eventually([&] { return runs.load() >= 3; }));
    // Not before one interval (less the few milliseconds wake-ups are shared by).
    EXPECT_GE(first_at.load(), 0.075);
    h.stop();
    int after_stop = runs.load();
    sleep_ms(250);
    EXPECT_EQ(runs.load(), after_stop);
    EXPECT_EQ(h.runs(), static_cast<uint64_t>(after_stop));
}

TEST(Housekeeper, TriggeredTaskRunsOnlyAfterATriggerAtMostOncePerInterval) {
    housekeeper h;
    std::atomic<int> runs{0};
    std::atomic<int64_t> last_run_ns{0};
    auto id = h.add_task({"checkpoint", 300 * ms, housekeeping_task::schedule::when_triggered, [&] {
                              last_run_ns = monotonic_ns();
                              runs++;
                          }});
    sleep_ms(400);
    EXPECT_EQ(runs.load(), 0) << "never triggered";
    h.trigger(id);
    ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
    int64_t first = last_run_ns.load();
    // A stream of triggers: one more run, no earlier than one interval later.
    for (int i = 0; i < 100; ++i) h.trigger(id);
    ASSERT_TRUE(eventually([&] { return runs.load() == 2; }));
    EXPECT_GE(last_run_ns.load() - first, 280 * ms);
    sleep_ms(400);
    EXPECT_EQ(runs.load(), 2) << "a run clears the trigger";
}

TEST(Housekeeper, TriggersOfUnknownOrPeriodicTasksAreIgnored) {
    housekeeper h;
    std::atomic<int> runs{0};
    auto id = h.add_task({"tick", 60'000 * ms, housekeeping_task::schedule::periodic, [&] { runs++; }});
    h.trigger(id);
    h.trigger(id + 100);
    h.trigger(housekeeper::no_task);
    h.remove_task(id + 100);
    sleep_ms(100);
    EXPECT_EQ(runs.load(), 0);
}

TEST(Housekeeper, RemoveTaskWaitsForARunInProgressAndEndsTheTask) {
    housekeeper h;
    std::atomic<bool> in_run{false}, finished{false};
    std::atomic<int> runs{0};
    auto id = h.add_task({"slow", 20 * ms, housekeeping_task::schedule::periodic, [&] {
                              runs++;
                              in_run = true;
                              sleep_ms(200);
                              finished = true;
                              in_run = false;
                          }});
    ASSERT_TRUE(eventually([&] { return in_run.load(); }));
    h.remove_task(id);
    EXPECT_TRUE(finished.load()) << "remove_task returned while the task ran";
    int seen = runs.load();
    sleep_ms(150);
    EXPECT_EQ(runs.load(), seen) << "a removed task ran again";
}

TEST(Housekeeper, ATaskThatThrowsRunsAgainAndOthersGoOn) {
    housekeeper h;
    std::atomic<int> failing{0}, fine{0};
    h.add_task({"fails", 30 * ms, housekeeping_task::schedule::periodic, [&] {
                    failing++;
                    throw std::runtime_error("disk full");
                }});
    h.add_task({"works", 30 * ms, housekeeping_task::schedule::periodic, [&] { fine++; }});
    ASSERT_TRUE(eventually([&] { return failing.load() >= 3 && fine.load() >= 3; }));
    h.stop();
    EXPECT_EQ(h.runs(), static_cast<uint64_t>(fine.load())) << "only runs that returned count";
}

TEST(Housekeeper, TasksAddedAndRemovedFromManyThreadsWhileItRuns) {
    // Partitions open and close on any thread while tasks run and flushes trigger.
    housekeeper h;
    std::atomic<int> runs{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                auto when = (i + t) % 2 ? housekeeping_task::schedule::periodic
                                        : housekeeping_task::schedule::when_triggered;
                auto id = h.add_task({"churn", 1 * ms, when, [&] { runs++; }});
                h.trigger(id);
                sleep_ms(1 + (i * 7 + t) % 4);
                h.remove_task(id);
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_GT(runs.load(), 0);
    int seen = runs.load();
    sleep_ms(50);
    EXPECT_EQ(runs.load(), seen) << "every task was removed";
}

TEST(Housekeeper, StopEndsTheThreadAndLaterTasksNeverRun) {
    std::atomic<int> runs{0};
    {
        housekeeper h;
        h.stop();  // never started: nothing to join
        EXPECT_EQ(h.add_task({"late", 1 * ms, housekeeping_task::schedule::periodic, [&] { runs++; }}),
                  housekeeper::no_task);
        h.stop();  // idempotent
    }
    {
        housekeeper h;  // destroyed with a task scheduled: the destructor stops it
        h.add_task({"pending", 60'000 * ms, housekeeping_task::schedule::periodic, [&] { runs++; }});
    }
    sleep_ms(20);
    EXPECT_EQ(runs.load(), 0);
}
