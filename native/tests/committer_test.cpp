// committer (group commit) and log_core (lock, clean-shutdown marker).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <map>
#include <set>
#include <thread>

#include "committer.h"
#include "file_io.h"
#include "log_core.h"
#include "partition.h"
#include "test_util.h"
#include "units.h"

using namespace tidelog;
using namespace tidelog_test;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

class CommitterTest : public ::testing::Test {
protected:
    temp_dir tmp;
    std::string dir = tmp.sub("p");
};

}  // namespace

TEST_F(CommitterTest, ConcurrentDurableAppendsAreDenseAndShareSyncs) {
    committer c;
    partition_config cfg = small_config(256 * 1024, durability_mode::fsync);  // a few rolls too
    auto p = std::make_unique<partition>(&c, dir, cfg, false, true);
    const int threads = 8, per_thread = 60;
    std::vector<std::vector<int64_t>> offsets(threads);
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            for (int i = 0; i < per_thread; ++i) {
                // Payload names its writer and sequence number; records vary.
                uint64_t tag = (static_cast<uint64_t>(t) << 32) | static_cast<uint32_t>(i);
                auto payload = make_payload(100 + (i * 53 + t * 17) % 3000, tag);
                uint32_t records = 1 + (i + t) % 4;
                append_result r = append_payload(*p, payload, records, i, i);
                ASSERT_GT(r.ticket, 0u);
                c.wait_durable(r.ticket);
                // Durable means visible (fsync mode publishes the durable end).
                ASSERT_GT(p->end_offset(), r.base_offset);
                offsets[t].push_back(r.base_offset);
            }
        });
    go = true;
    for (auto& w : workers) w.join();

    const uint64_t appends = threads * per_thread;
    // Each writer's own appends are ordered; all frames are dense and unique.
    std::map<int64_t, std::pair<int, int>> by_offset;
    for (int t = 0; t < threads; ++t) {
        ASSERT_EQ(offsets[t].size(), static_cast<size_t>(per_thread));
        for (int i = 0; i < per_thread; ++i) {
            if (i) {
                EXPECT_GT(offsets[t][i], offsets[t][i - 1]);
            }
            EXPECT_TRUE(by_offset.emplace(offsets[t][i], std::make_pair(t, i)).second) << "duplicate offset";
        }
    }
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), appends);
    int64_t next = 0;
    for (auto& f : frames) {
        ASSERT_EQ(f.header.base_offset, next);
        auto [t, i] = by_offset.at(next);
        uint64_t tag = (static_cast<uint64_t>(t) << 32) | static_cast<uint32_t>(i);
        ASSERT_EQ(frame_payload(f), make_payload(100 + (i * 53 + t * 17) % 3000, tag));
        ASSERT_EQ(f.header.record_count, 1u + (i + t) % 4);
        next = f.header.next_offset();
    }
    EXPECT_EQ(p->end_offset(), next);

    committer_stats s = c.stats();
    std::cout << "[          ] " << appends << " durable appends: " << s.fdatasyncs << " fdatasyncs in " << s.flushes
              << " flushes, " << p->segment_count() << " segments\n";
    EXPECT_EQ(s.appends, appends);
    EXPECT_EQ(s.frames, appends);
    EXPECT_GE(s.durable_waits, appends);
    EXPECT_GE(s.fdatasyncs, 1u);
    EXPECT_LT(s.fdatasyncs, appends);  // group commit: appenders share fdatasyncs
    EXPECT_LE(s.flushes, appends);
    p->close();
}

TEST_F(CommitterTest, FlushAllMakesIntervalAppendsDurable) {
    committer c;
    partition_config cfg = small_config(1 << 20, durability_mode::interval);
    cfg.flush_interval_ms = 3'600'000;  // never by deadline within this test
    auto p = std::make_unique<partition>(&c, dir, cfg, false, true);
    for (int i = 0; i < 20; ++i) append_payload(*p, make_payload(100, i));
    EXPECT_EQ(p->end_offset(), 20);
    uint64_t syncs = c.stats().fdatasyncs;
    auto t0 = clock_type::now();
    c.flush_all();
    EXPECT_LT(seconds_since(t0), 5.0);
    EXPECT_GT(c.stats().fdatasyncs, syncs);
    EXPECT_GE(c.stats().flushes, 1u);
    // Nothing written since: returns at once.
    t0 = clock_type::now();
    c.flush_all();
    EXPECT_LT(seconds_since(t0), 2.0);
    p->close();
}

TEST_F(CommitterTest, FlushSyncsNoneModePartitions) {
    committer c;
    auto p = std::make_unique<partition>(&c, dir, small_config(1 << 20, durability_mode::none), false, true);
    for (int i = 0; i < 5; ++i) append_payload(*p, make_payload(100, i));
    EXPECT_EQ(p->end_offset(), 5);
    uint64_t syncs = c.stats().fdatasyncs;
    p->flush();
    EXPECT_GT(c.stats().fdatasyncs, syncs);
    p->close();
}

TEST_F(CommitterTest, FlushAllWithNothingWrittenReturns) {
    committer c;
    auto t0 = clock_type::now();
    c.flush_all();
    c.wait_durable(0);
    EXPECT_LT(seconds_since(t0), 2.0);
    c.stop();
    c.stop();  // idempotent
}

TEST_F(CommitterTest, WaitForDataWakesOnAppend) {
    for (durability_mode mode : {durability_mode::none, durability_mode::fsync}) {
        temp_dir d;
        committer c;
        auto p = std::make_unique<partition>(&c, d.sub("p"), small_config(1 << 20, mode), false, true);
        std::atomic<bool> woke{false};
        std::atomic<double> waited{0};
        std::thread reader([&] {
            auto t0 = clock_type::now();
            woke = p->wait_for_data(0, 10'000 * ns_per_ms);
            waited = seconds_since(t0);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        append_result r = append_payload(*p, make_payload(10, 1));
        if (mode == durability_mode::fsync) c.wait_durable(r.ticket);
        reader.join();
        EXPECT_TRUE(woke) << "mode " << int(mode);
        EXPECT_LT(waited.load(), 5.0) << "mode " << int(mode);
        // Many waiters, one append.
        std::vector<std::thread> readers;
        std::atomic<int> woken{0};
        for (int i = 0; i < 4; ++i)
            readers.emplace_back([&] {
                if (p->wait_for_data(1, 10'000 * ns_per_ms)) ++woken;
            });
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        r = append_payload(*p, make_payload(10, 2));
        if (mode == durability_mode::fsync) c.wait_durable(r.ticket);
        for (auto& t : readers) t.join();
        EXPECT_EQ(woken.load(), 4);
        p->close();
    }
}

TEST_F(CommitterTest, WaitForDataTimesOut) {
    committer c;
    auto p = std::make_unique<partition>(&c, dir, small_config(), false, true);
    auto t0 = clock_type::now();
    EXPECT_FALSE(p->wait_for_data(0, 50 * ns_per_ms));
    double s = seconds_since(t0);
    EXPECT_GE(s, 0.045);
    EXPECT_LT(s, 5.0);
    p->close();
}

TEST_F(CommitterTest, HousekeepingWritesCheckpointsAndEnforcesRetention) {
    housekeeper h;
    committer c(&h);
    partition_config cfg = small_config(4096, durability_mode::fsync);
    cfg.retention_bytes = 8192;
    auto p = std::make_unique<partition>(&c, dir, cfg, false, true);
    uint64_t t = 0;
    for (int i = 0; i < 30; ++i) t = append_payload(*p, make_payload(1000, i)).ticket;
    c.wait_durable(t);
    // The housekeeper runs each partition's tasks about once a second.
    auto t0 = clock_type::now();
    while ((c.stats().checkpoints == 0 || c.stats().segments_deleted == 0) && seconds_since(t0) < 5.0)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_GT(c.stats().checkpoints, 0u);
    EXPECT_GT(c.stats().segments_deleted, 0u);
    EXPECT_GT(p->start_offset(), 0);
    p->close();
}

TEST_F(CommitterTest, WithoutAHousekeeperNothingRunsInTheBackground) {
    // Fuzzers and single-partition tests: no checkpoints or deletions behind their back.
    committer c;
    partition_config cfg = small_config(4096, durability_mode::fsync);
    cfg.retention_bytes = 4096;
    auto p = std::make_unique<partition>(&c, dir, cfg, false, true);
    for (int i = 0; i < 12; ++i) c.wait_durable(append_payload(*p, make_payload(1000, i)).ticket);
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    EXPECT_EQ(c.stats().checkpoints, 0u);
    EXPECT_EQ(c.stats().segments_deleted, 0u);
    EXPECT_EQ(p->start_offset(), 0);
    p->close();
}

TEST_F(CommitterTest, UnregisterAfterCloseStopsCallbacks) {
    // Partitions come and go while the flusher and the housekeeper run; closing
    // one must race neither.
    housekeeper h;
    committer c(&h);
    for (int round = 0; round < 20; ++round) {
        auto p = std::make_unique<partition>(&c, dir, small_config(1 << 20, durability_mode::fsync), false, true);
        append_result r = append_payload(*p, make_payload(64, round));
        if (round % 2) c.wait_durable(r.ticket);
        p->close();
        p.reset();
    }
    auto p = std::make_unique<partition>(&c, dir, small_config(1 << 20), false, true);
    EXPECT_EQ(p->end_offset(), 20);
}

TEST_F(CommitterTest, NoneModeTicketNeedsNoFurtherCalls) {
    // partition.h: append_result::ticket is "0 when nothing needs waiting for"; a
    // non-zero ticket must become durable by itself (wait_durable must return).
    committer c;
    auto p = std::make_unique<partition>(&c, dir, small_config(1 << 20, durability_mode::none), false, true);
    append_result r = append_payload(*p, make_payload(10, 1));
    bool completed = true;
    if (r.ticket) {
        std::atomic<bool> done{false};
        std::thread waiter([&] {
            c.wait_durable(r.ticket);
            done = true;
        });
        auto t0 = clock_type::now();
        while (!done && seconds_since(t0) < 2.0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        completed = done;
        if (!completed) c.flush_all();  // releases the waiter
        waiter.join();
    }
    EXPECT_TRUE(completed) << "wait_durable(" << r.ticket << ") of a none-mode append blocked for 2 s";
    p->close();
}

// ---- log_core ------------------------------------------------------------

TEST_F(CommitterTest, LogCoreHandlesShareTheLogUnlessExclusive) {
    std::string path = tmp.sub("log");
    auto expect_locked = [&](bool exclusive) {
        try {
            log_core x(path, false, exclusive);
            FAIL() << "a conflicting handle got the log";
        } catch (const error& e) {
            EXPECT_EQ(e.code(), errc::locked);
            EXPECT_NE(std::string(e.what()).find(std::to_string(::getpid())), std::string::npos) << e.what();
        }
    };
    {
        log_core a(path, false);
        EXPECT_TRUE(fs::exists(path + "/LOCK"));
        EXPECT_TRUE(fs::exists(path + "/topics"));
        log_core b(path, false);  // shared: any number of read-write handles
        expect_locked(true);      // but not an exclusive one
        log_core reader(path, true);  // readers take no lock
        EXPECT_TRUE(reader.read_only());
        b.close();
        a.close();
    }
    {
        log_core ex(path, false, true);
        expect_locked(false);  // an exclusive handle has it alone
        expect_locked(true);
        log_core reader(path, true);
        ex.close();
    }
    log_core again(path, false);  // released by close
    again.close();
}

TEST_F(CommitterTest, LogCoreLastCloserOfACleanSessionWritesTheMarker) {
    std::string path = tmp.sub("log");
    {
        log_core a(path, false);
        log_core b(path, false);
        auto pa = a.open_partition(path + "/topics/t/0", small_config());
        auto pb = b.open_partition(path + "/topics/t/0", small_config());
        append_payload(*pa, make_payload(10, 1));
        append_payload(*pb, make_payload(10, 2));
        EXPECT_EQ(pa->end_offset(), 2);
        pa->close();
        a.close();
        EXPECT_FALSE(fs::exists(path + "/clean-shutdown"));  // b still has it open
        pb->close();
        b.close();
        EXPECT_TRUE(fs::exists(path + "/clean-shutdown"));
    }
    log_core c(path, false);
    EXPECT_TRUE(c.was_clean());
    auto p = c.open_partition(path + "/topics/t/0", small_config());
    EXPECT_EQ(p->end_offset(), 2);
    EXPECT_EQ(all_frames(*p).size(), 2u);
    p->close();
    c.close();
}

TEST_F(CommitterTest, LogCoreReadOnlyNeedsAnExistingLog) {
    try {
        log_core r(tmp.sub("missing"), true);
        FAIL() << "read-only open of a missing log";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::not_found);
    }
}

TEST_F(CommitterTest, LogCoreCleanShutdownMarker) {
    std::string path = tmp.sub("log");
    {
        log_core a(path, false);
        EXPECT_TRUE(a.was_clean());  // a fresh log
        EXPECT_FALSE(fs::exists(path + "/clean-shutdown"));
        auto p = a.open_partition(path + "/topics/t/0", small_config());
        for (int i = 0; i < 5; ++i) append_payload(*p, make_payload(10, i));
        p->close();
        a.close();
        EXPECT_TRUE(fs::exists(path + "/clean-shutdown"));
        try {
            a.open_partition(path + "/topics/t/1", small_config());
            FAIL() << "open_partition after close";
        } catch (const error& e) {
            EXPECT_EQ(e.code(), errc::closed);
        }
    }
    log_core b(path, false);
    EXPECT_TRUE(b.was_clean());
    EXPECT_FALSE(fs::exists(path + "/clean-shutdown"));  // removed while a writer has the log
    auto p = b.open_partition(path + "/topics/t/0", small_config());
    EXPECT_EQ(p->end_offset(), 5);
    p->close();
    b.close();
}

TEST_F(CommitterTest, LogCoreDetectsACrashedWriter) {
    std::string path = tmp.sub("log");
    int rc = run_in_crashing_child([&] {
        // Leaked on purpose: their destructors would close cleanly.
        auto* a = new log_core(path, false);
        auto* p = a->open_partition(path + "/topics/t/0", small_config(1 << 20, durability_mode::fsync)).release();
        uint64_t t = 0;
        for (int i = 0; i < 10; ++i) t = append_payload(*p, make_payload(100, i)).ticket;
        a->wait_durable(t);
    });
    ASSERT_EQ(rc, 0);
    log_core b(path, false);  // the dead writer's flock went with it
    EXPECT_FALSE(b.was_clean());
    auto p = b.open_partition(path + "/topics/t/0", small_config(1 << 20, durability_mode::fsync));
    EXPECT_TRUE(p->recovery_events().empty());
    EXPECT_EQ(p->end_offset(), 10);
    EXPECT_EQ(all_frames(*p).size(), 10u);
    p->close();
    b.close();
    log_core c(path, false);
    EXPECT_TRUE(c.was_clean());
}

namespace {
std::atomic<bool> fail_fdatasync{false};
int failing_fdatasync(int fd) {
    if (fail_fdatasync.load()) {
        errno = EIO;
        return -1;
    }
    return ::fdatasync(fd);
}
const io::hooks failing_sync_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.fdatasync = failing_fdatasync;
    return h;
}();

std::atomic<int> slow_fdatasync_ms{0};
int slow_fdatasync(int fd) {
    if (int ms = slow_fdatasync_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ::fdatasync(fd);
}
const io::hooks slow_sync_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.fdatasync = slow_fdatasync;
    return h;
}();
}  // namespace

namespace {
std::atomic<int> slow_unlink_ms{0};
std::atomic<int> unlinks_started{0};
int slow_unlink(const char* path) {
    unlinks_started++;
    if (int ms = slow_unlink_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ::unlink(path);
}
const io::hooks slow_unlink_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.unlink = slow_unlink;
    return h;
}();
}  // namespace

TEST_F(CommitterTest, ASlowRetentionDeleteDoesNotDelayDurableAcks) {
    // Retention runs on the housekeeper, not on the flusher: while it is stuck
    // deleting a segment (a slow disk, a huge file), durable appends go on.
    const io::hooks* previous = io::install_hooks(&slow_unlink_hooks);
    {
        housekeeper h;
        committer c(&h);
        partition_config cfg = small_config(4096, durability_mode::fsync);
        cfg.retention_bytes = 4096;
        auto p = std::make_unique<partition>(&c, dir, cfg, false, true);
        for (int i = 0; i < 12; ++i) c.wait_durable(append_payload(*p, make_payload(1000, i)).ticket);
        slow_unlink_ms = 1500;
        unlinks_started = 0;
        auto t0 = clock_type::now();
        while (unlinks_started.load() == 0 && seconds_since(t0) < 5.0)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ASSERT_GT(unlinks_started.load(), 0) << "retention never ran";
        // The housekeeper now sleeps in unlink for 1.5 s.
        auto t1 = clock_type::now();
        for (int i = 0; i < 20; ++i) c.wait_durable(append_payload(*p, make_payload(100, 100 + i)).ticket);
        EXPECT_LT(seconds_since(t1), 1.0) << "durable acks waited for the retention delete";
        slow_unlink_ms = 0;
        p->close();  // waits for the retention run in progress
    }
    io::install_hooks(previous);
}

TEST_F(CommitterTest, AnInterruptedDurableWaitLeavesAndTheCommitterGoesOn) {
    // Ctrl-C in Python: a durable waiter's interrupt callback says stop. It must
    // leave the committer's list (its record lives on its stack) unless the
    // flusher already took it, and everything else must go on as before.
    const io::hooks* previous = io::install_hooks(&slow_sync_hooks);
    {
        committer c;
        auto p = std::make_unique<partition>(&c, dir, small_config(1 << 20, durability_mode::fsync), false, true);
        c.wait_durable(append_payload(*p, make_payload(100, 1), 1, 0, 0).ticket);
        slow_fdatasync_ms = 400;
        for (int round = 0; round < 20; ++round) {
            append_result r = append_payload(*p, make_payload(100, 2 + round), 1, 0, 0);
            std::atomic<int> asked{0};
            auto stop = [](void* counter) { return static_cast<std::atomic<int>*>(counter)->fetch_add(1) >= 0; };
            auto t0 = std::chrono::steady_clock::now();
            bool interrupted = false;
            try {
                c.wait_durable(r.ticket, false, stop, &asked);
            } catch (const error& e) {
                EXPECT_EQ(e.code(), errc::interrupted) << e.what();
                interrupted = true;
            }
            auto took = std::chrono::steady_clock::now() - t0;
            // Either it left after a slice, or the flusher had already taken it
            // (then it waited for that flush to finish).
            EXPECT_LT(took, std::chrono::milliseconds(interrupted ? 300 : 2000));
            EXPECT_GE(asked.load(), interrupted ? 1 : 0);
        }
        slow_fdatasync_ms = 0;
        // The committer still makes appends durable, for waiters that stay.
        append_result last = append_payload(*p, make_payload(100, 99), 1, 0, 0);
        c.wait_durable(last.ticket);
        EXPECT_TRUE(c.is_durable(last.ticket));
        EXPECT_EQ(p->end_offset(), last.base_offset + 1);
        p->close();
    }
    io::install_hooks(previous);
}

TEST_F(CommitterTest, FailedFdatasyncWakesEveryDurableWaiterWithAnError) {
    // Waiters sleep on their own futex words: a failed flush must release all
    // of them, with an error, and never report their appends durable.
    const io::hooks* previous = io::install_hooks(&failing_sync_hooks);
    {
        committer c;
        auto p = std::make_unique<partition>(&c, dir, small_config(1 << 20, durability_mode::fsync), false, true);
        c.wait_durable(append_payload(*p, make_payload(100, 1), 1, 0, 0).ticket);  // a working flush first
        fail_fdatasync = true;
        const int threads = 6;
        std::atomic<int> failed{0}, succeeded{0};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t)
            workers.emplace_back([&, t] {
                try {
                    append_result r = append_payload(*p, make_payload(100, 10 + t), 1, t, t);
                    c.wait_durable(r.ticket);
                    succeeded++;
                } catch (const error& e) {
                    EXPECT_EQ(e.code(), errc::io_error) << e.what();
                    failed++;
                }
            });
        for (auto& w : workers) w.join();
        EXPECT_EQ(failed.load(), threads);
        EXPECT_EQ(succeeded.load(), 0);
        fail_fdatasync = false;
        try {
            p->close();
        } catch (const error&) {
        }
    }
    io::install_hooks(previous);
}
