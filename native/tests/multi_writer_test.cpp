// Several read-write handles on one log folder (log_session.h, partition.h):
// two log_core objects in this process (each with its own LOCK descriptor,
// committer and segment objects: as two processes), and a forked child writer
// that is SIGKILLed while it appends.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "file_io.h"
#include "log_core.h"
#include "recovery_checkpoint.h"
#include "test_util.h"

namespace {

using namespace tidelog;
using namespace tidelog_test;

std::string part_dir(const std::string& log) { return log + "/topics/t/0"; }

/// A payload that names its writer and sequence (make_payload puts the tag in bytes 0..7).
std::vector<uint8_t> payload_of(uint32_t writer, uint64_t sequence, size_t size = 100) {
    return make_payload(std::max<size_t>(size, 8), (uint64_t{writer} << 40) | sequence);
}

/// Every frame of p from its start, checked dense; frame payloads by base offset.
std::map<int64_t, std::vector<uint8_t>> read_dense(partition& p) {
    std::map<int64_t, std::vector<uint8_t>> out;
    int64_t start = p.start_offset(), end = p.end_offset();
    auto frames = p.frames(start, end, INT64_MIN, INT64_MAX, SIZE_MAX);
    int64_t next = start;
    for (auto& f : frames) {
        EXPECT_EQ(f.header.base_offset, next) << "offsets not dense";
        next = f.header.next_offset();
        out[f.header.base_offset] = frame_payload(f);
    }
    EXPECT_EQ(next, end) << "the frames read do not reach the end offset";
    return out;
}

TEST(MultiWriter, InterleavedAppendsAreDenseAndEachHandleReadsTheOthers) {
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(64 * 1024, durability_mode::none);
    log_core a(log, false), b(log, false);
    auto pa = a.open_partition(part_dir(log), config);
    auto pb = b.open_partition(part_dir(log), config);
    std::map<int64_t, std::vector<uint8_t>> written;
    // Strictly alternating, then from two threads at once.
    for (uint64_t i = 0; i < 50; ++i) {
        auto pay = payload_of(i % 2, i, 50 + i);
        written[append_payload(i % 2 ? *pb : *pa, pay).base_offset] = pay;
    }
    std::mutex mu;
    std::vector<std::thread> threads;
    for (uint32_t w = 0; w < 2; ++w)
        threads.emplace_back([&, w] {
            for (uint64_t i = 0; i < 300; ++i) {
                auto pay = payload_of(10 + w, i, 30 + i % 200);
                int64_t off = append_payload(w ? *pb : *pa, pay).base_offset;
                std::lock_guard<std::mutex> g(mu);
                EXPECT_TRUE(written.emplace(off, pay).second) << "offset " << off << " handed out twice";
            }
        });
    for (auto& t : threads) t.join();
    ASSERT_EQ(written.size(), 650u);
    EXPECT_EQ(written.begin()->first, 0);
    EXPECT_EQ(written.rbegin()->first, 649);  // dense: 650 one-record frames from 0
    for (partition* p : {pa.get(), pb.get()}) {
        EXPECT_EQ(p->end_offset(), 650);
        EXPECT_EQ(read_dense(*p), written);  // each handle reads the other's frames, byte for byte
    }
    pa->close();
    pb->close();
    a.close();
    b.close();
}

TEST(MultiWriter, RollByOneHandleThenAppendByTheOther) {
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(1024, durability_mode::fsync);
    log_core a(log, false), b(log, false);
    auto pa = a.open_partition(part_dir(log), config);
    auto pb = b.open_partition(part_dir(log), config);
    std::map<int64_t, std::vector<uint8_t>> written;
    for (int round = 0; round < 6; ++round) {
        partition& roller = round % 2 ? *pb : *pa;
        partition& other = round % 2 ? *pa : *pb;
        log_core& other_core = round % 2 ? a : b;
        size_t before = roller.segment_count();
        uint64_t seq = 0;
        while (roller.segment_count() == before) {
            auto pay = payload_of(round % 2, round * 1000 + seq++, 200);
            auto r = append_payload(roller, pay);
            (round % 2 ? b : a).wait_durable(r.ticket);
            written[r.base_offset] = pay;
        }
        // The other handle appends next: into the segment the roller created.
        auto pay = payload_of(7, round, 100);
        auto r = append_payload(other, pay);
        other_core.wait_durable(r.ticket);
        written[r.base_offset] = pay;
        EXPECT_EQ(other.segment_count(), roller.segment_count()) << "round " << round;
        auto holding = other.segment_holding(r.base_offset);
        ASSERT_NE(holding, nullptr);
        EXPECT_EQ(holding->base_offset(), roller.segment_holding(r.base_offset)->base_offset());
    }
    EXPECT_EQ(read_dense(*pa), written);
    EXPECT_EQ(read_dense(*pb), written);
    pa->close();
    pb->close();
}

TEST(MultiWriter, RetentionByOneHandleWhileTheOtherAppendsAndReads) {
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(2048, durability_mode::interval);
    config.flush_interval_ms = 2;
    config.retention_bytes = 8 * 1024;
    log_core a(log, false), b(log, false);
    auto pa = a.open_partition(part_dir(log), config);
    auto pb = b.open_partition(part_dir(log), config);
    std::atomic<bool> stop{false};
    std::atomic<int> passes{0};
    std::thread retention([&] {
        while (!stop) {
            pa->enforce_retention();
            passes++;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::map<int64_t, std::vector<uint8_t>> written;
    int64_t last_start = 0;
    for (uint64_t i = 0; i < 600; ++i) {
        auto pay = payload_of(1, i, 100 + i % 300);
        written[append_payload(*pb, pay).base_offset] = pay;
        if (i % 25 == 0) {
            // B reads from its start while A's retention removes segments under it.
            int64_t start = pb->start_offset();
            EXPECT_GE(start, last_start);
            last_start = start;
            try {
                auto got = pb->frames(start, pb->end_offset(), INT64_MIN, INT64_MAX, SIZE_MAX);
                int64_t next = -1;
                for (auto& f : got) {
                    if (next >= 0) EXPECT_EQ(f.header.base_offset, next);
                    next = f.header.next_offset();
                    EXPECT_EQ(frame_payload(f), written[f.header.base_offset]);
                }
            } catch (const error& e) {
                // A segment retention unlinked between the start and the read.
                EXPECT_EQ(e.code(), errc::not_found) << e.what();
            }
        }
    }
    stop = true;
    retention.join();
    pa->enforce_retention();
    EXPECT_GT(passes.load(), 0);
    int64_t start = pb->start_offset();
    EXPECT_GT(start, 0) << "retention never removed a segment";
    EXPECT_EQ(pa->start_offset(), start);
    b.flush_all();
    for (partition* p : {pa.get(), pb.get()}) {
        auto got = read_dense(*p);
        EXPECT_EQ(got.begin()->first, start);
        for (auto& [off, pay] : got) EXPECT_EQ(pay, written[off]) << off;
        EXPECT_EQ(p->end_offset(), 600);
    }
}

TEST(MultiWriter, OneHandleClosesThePartitionWhileTheOtherKeepsAppending) {
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(4096, durability_mode::fsync);
    log_core a(log, false), b(log, false);
    auto pa = a.open_partition(part_dir(log), config);
    auto pb = b.open_partition(part_dir(log), config);
    std::map<int64_t, std::vector<uint8_t>> written;
    auto append_by = [&](log_core& core, partition& p, uint32_t writer, uint64_t i) {
        auto pay = payload_of(writer, i, 150);
        auto r = append_payload(p, pay);
        core.wait_durable(r.ticket);
        written[r.base_offset] = pay;
    };
    for (uint64_t i = 0; i < 40; ++i) append_by(i % 2 ? b : a, i % 2 ? *pb : *pa, i % 2, i);
    pa->close();  // A's partition goes; B is not the last handle to close, so nothing is sealed under it
    EXPECT_THROW(append_payload(*pa, payload_of(0, 999)), error);
    for (uint64_t i = 40; i < 120; ++i) append_by(b, *pb, 1, i);  // rolls included
    EXPECT_GT(pb->segment_count(), 1u);
    // A opens the partition again: it joins (no recovery) and sees B's frames.
    pa = a.open_partition(part_dir(log), config);
    EXPECT_TRUE(pa->recovery_events().empty());
    EXPECT_EQ(read_dense(*pa), written);
    append_by(a, *pa, 0, 1000);
    EXPECT_EQ(read_dense(*pb), written);
    pa->close();
    pb->close();
}

TEST(MultiWriter, TheLastCloserWritesTheCleanShutdownMarker) {
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(2048, durability_mode::interval);
    std::map<int64_t, std::vector<uint8_t>> written;
    {
        auto a = std::make_unique<log_core>(log, false);
        auto b = std::make_unique<log_core>(log, false);
        auto pa = a->open_partition(part_dir(log), config);
        auto pb = b->open_partition(part_dir(log), config);
        for (uint64_t i = 0; i < 60; ++i) {
            auto pay = payload_of(i % 2, i, 120);
            written[append_payload(i % 2 ? *pb : *pa, pay).base_offset] = pay;
        }
        pa->close();
        a->close();  // not the last: B still has the log open
        for (uint64_t i = 60; i < 80; ++i) {
            auto pay = payload_of(1, i, 120);
            written[append_payload(*pb, pay).base_offset] = pay;
        }
        pb->close();
        b->close();  // the last closer: seals, checkpoints, writes the marker
    }
    log_core c(log, false);
    EXPECT_TRUE(c.was_clean()) << "the last clean closer wrote no clean-shutdown marker";
    auto pc = c.open_partition(part_dir(log), config);
    for (auto& ev : pc->recovery_events()) ADD_FAILURE() << "recovery after a clean close: " << ev.kind << ": " << ev.reason;
    EXPECT_EQ(read_dense(*pc), written);
    EXPECT_EQ(pc->end_offset(), 80);
}

TEST(MultiWriter, TheRecoveryCheckpointNeverMovesBack) {
    // The partition's last handle stores its own synced end as the checkpoint
    // when it closes. A handle that opens the partition again in the same
    // epoch, and checkpoints, never stores a point before it. (The race the
    // power-cut torture found, a closer storing its end after another handle
    // reopened, appended and checkpointed further, is closed by the same rule:
    // checkpoints only move forward, under the checkpoint lock.)
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(2048, durability_mode::none);
    log_core keeper(log, false);  // keeps the epoch open throughout
    recovery_point closed_at{};
    {
        auto pa = keeper.open_partition(part_dir(log), config);
        for (uint64_t i = 0; i < 40; ++i) append_payload(*pa, payload_of(0, i, 120));
        pa->close();  // the partition's last handle: seal, sync, checkpoint at the end
    }
    {
        recovery_checkpoint rw(part_dir(log) + "/recovery-checkpoint", false);
        auto got = rw.load();
        ASSERT_TRUE(got.has_value());
        closed_at = *got;
        EXPECT_EQ(closed_at.next_offset, 40);
    }
    log_core other(log, false);
    auto pb = other.open_partition(part_dir(log), config);  // joins: same epoch, no recovery
    EXPECT_TRUE(pb->recovery_events().empty());
    pb->write_checkpoint();
    recovery_checkpoint rw(part_dir(log) + "/recovery-checkpoint", false);
    auto after = rw.load();
    ASSERT_TRUE(after.has_value());
    EXPECT_GE(after->next_offset, closed_at.next_offset) << "the checkpoint moved back";
    pb->close();
    other.close();
    keeper.close();
}

TEST(MultiWriter, AppendsGoOnWhenAnotherWriterIsKilledAmidItsAppends) {
    // A forked child appends in a loop (through its own handle, the same
    // partition) and reports each acknowledged frame; the parent appends too, and
    // SIGKILLs the child at a random moment, maybe holding the append lock or the
    // flush lock. The parent's next append must succeed promptly (the robust
    // lock's repair), the offsets stay dense and every acknowledged frame stays.
    // (The parent opens its handle after each fork and closes it before the
    // next: a process forks only while single-threaded, which ThreadSanitizer
    // requires. Each cycle's child so starts a new session, recovering after
    // the previous one's death.)
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(4096, durability_mode::interval);
    config.flush_interval_ms = 1;
    std::map<int64_t, std::vector<uint8_t>> acked;  // by either writer
    std::mt19937_64 rng(12345);
    double max_resume_ms = 0;
    int repairs = 0, recoveries = 0;
    uint64_t parent_seq = 0;
    for (int cycle = 0; cycle < 20; ++cycle) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        fflush(nullptr);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fds[0]);
            // The child never cleans up: it leaks its handle and is killed.
            auto* core = new log_core(log, false);
            auto* p = core->open_partition(part_dir(log), config).release();
            uint64_t ready[2] = {UINT64_MAX, 0};
            if (::write(fds[1], ready, sizeof ready) != sizeof ready) ::_exit(2);
            for (uint64_t seq = 0;; ++seq) {
                uint64_t tag = (uint64_t{100 + static_cast<uint32_t>(cycle)} << 40) | seq;
                auto pay = payload_of(100 + cycle, seq, 20 + seq % 400);
                auto r = append_payload(*p, pay);
                if (seq % 4 == 0) {
                    core->wait_durable(r.ticket);
                    uint64_t rec[2] = {static_cast<uint64_t>(r.base_offset), tag};
                    if (::write(fds[1], rec, sizeof rec) != sizeof rec) ::_exit(2);
                }
            }
        }
        ::close(fds[1]);
        uint64_t rec[2];
        ASSERT_EQ(::read(fds[0], rec, sizeof rec), static_cast<ssize_t>(sizeof rec)) << "the child did not start";
        auto parent = std::make_unique<log_core>(log, false);  // joins the child's session
        EXPECT_FALSE(parent->was_clean() && cycle > 0);
        auto pp = parent->open_partition(part_dir(log), config);        // Interleave with the child for a random while, then kill it.
        auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(rng() % 30000);
        while (std::chrono::steady_clock::now() < until) {
            auto pay = payload_of(1, parent_seq++, 64);
            auto r = append_payload(*pp, pay);
            parent->wait_durable(r.ticket);
            acked[r.base_offset] = pay;
        }
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        auto killed = std::chrono::steady_clock::now();
        auto pay = payload_of(1, parent_seq++, 64);
        auto r = append_payload(*pp, pay);
        double resume_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed).count();
        max_resume_ms = std::max(max_resume_ms, resume_ms);
        parent->wait_durable(r.ticket);
        acked[r.base_offset] = pay;
        // The child's acknowledged frames (those it reported before it died).
        ssize_t n;
        while ((n = ::read(fds[0], rec, sizeof rec)) == static_cast<ssize_t>(sizeof rec)) {
            uint32_t writer = static_cast<uint32_t>(rec[1] >> 40);
            uint64_t seq = rec[1] & ((uint64_t{1} << 40) - 1);
            acked[static_cast<int64_t>(rec[0])] = payload_of(writer, seq, 20 + seq % 400);
        }
        ::close(fds[0]);
        auto got = read_dense(*pp);
        for (auto& [off, bytes] : acked) {
            auto it = got.find(off);
            ASSERT_NE(it, got.end()) << "cycle " << cycle << ": acknowledged frame at offset " << off << " is gone";
            EXPECT_EQ(it->second, bytes) << "cycle " << cycle << ": offset " << off;
        }
        for (auto& ev : pp->recovery_events()) (ev.kind == "repair" ? repairs : recoveries)++;
        pp->close();
        parent->close();  // the session ends unclean: the child never closed
    }
    std::printf("[ multiwriter ] 20 writers SIGKILLed amid their appends: %zu acknowledged frames kept, %d repairs "
                "of a dead lock holder, %d other recovery events; the first append after a kill took at most %.1f ms\n",
                acked.size(), repairs, recoveries, max_resume_ms);
    EXPECT_LT(max_resume_ms, 100.0);
    EXPECT_FALSE(log_core(log, false).was_clean()) << "killed writers left the session unclean";
}

}  // namespace

namespace {
using namespace tidelog;
using namespace tidelog_test;

/// The base offsets of the partition's segment files (.log), ascending.
std::vector<int64_t> segment_bases(const std::string& dir) {
    std::vector<int64_t> out;
    for (auto& name : files_with_suffix(dir, ".log")) out.push_back(std::stoll(fs::path(name).filename().string()));
    std::sort(out.begin(), out.end());
    return out;
}

// A hook on open(2) (file_io.h) that runs `between` once, just before the
// open of `target`: what another process does between this handle's folder
// listing and its open of a segment it listed.
std::string hook_target;
std::function<void()> hook_between;
int open_with_interleaving(const char* path, int flags, mode_t mode) {
    if (hook_between && hook_target == path) {
        auto run = std::move(hook_between);
        hook_between = nullptr;
        run();
    }
    return ::open(path, flags, mode);
}
const io::hooks interleaving_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.open = open_with_interleaving;
    return h;
}();

TEST(MultiWriter, ASegmentRetentionRemovesWhileAnotherHandleListsItStaysRemoved) {
    // Handle B catches up with A's rolls (it lists the folder, then opens the
    // segments it does not know); A's retention pass unlinks one of them in
    // between. B's open must not create the file again: an empty segment file
    // below the start would come back as the log's first segment.
    // (Once, the open used O_CREAT and brought the unlinked segment back,
    // empty; after a clean close the log started there, reported its offsets
    // lost, and reads from the start raised CorruptionError.)
    temp_dir dir;
    std::string log = dir.sub("log");
    auto config = small_config(1024, durability_mode::none);
    config.retention_bytes = 2048;
    log_core a(log, false), b(log, false);
    auto pa = a.open_partition(part_dir(log), config);
    auto pb = b.open_partition(part_dir(log), config);
    for (uint64_t i = 0; i < 40; ++i) append_payload(*pa, payload_of(0, i, 200));  // B does not look meanwhile
    auto bases = segment_bases(part_dir(log));
    ASSERT_GE(bases.size(), 5u);
    int64_t doomed = bases[1];  // B knows segment bases[0] from its open; it opens this one first
    hook_target = part_dir(log) + "/" + segment_file_stem(doomed) + ".log";
    hook_between = [&] { pa->enforce_retention(); };
    const io::hooks* before = io::install_hooks(&interleaving_hooks);
    std::vector<frame_ref> got;
    try {
        got = pb->frames(pb->start_offset(), pb->end_offset(), INT64_MIN, INT64_MAX, SIZE_MAX);
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::not_found) << e.what();
    }
    io::install_hooks(before);
    EXPECT_FALSE(hook_between) << "the interleaving did not happen";
    int64_t start = pa->start_offset();
    EXPECT_GT(start, doomed) << "retention did not remove the segment";
    for (int64_t base : segment_bases(part_dir(log)))
        EXPECT_GE(base, start) << "segment " << segment_file_stem(base) << " is back below the start " << start;
    for (uint64_t i = 40; i < 60; ++i) append_payload(*pb, payload_of(1, i, 200));
    int64_t end = pb->end_offset();
    pa->close();
    pb->close();
    a.close();
    b.close();
    // Reopen: the log starts where retention left it, and reads dense to its end.
    log_core c(log, false);
    auto pc = c.open_partition(part_dir(log), config);
    for (auto& ev : pc->recovery_events()) ADD_FAILURE() << "recovery after a clean close: " << ev.kind << ": " << ev.reason;
    EXPECT_EQ(pc->start_offset(), start);
    EXPECT_EQ(pc->end_offset(), end);
    read_dense(*pc);
}

}  // namespace
