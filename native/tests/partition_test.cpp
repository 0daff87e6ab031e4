// partition: append/read, rolling, clean and unclean reopen, recovery from torn
// tails and lost or garbled indexes, retention, offset_for_time, readers.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <set>
#include <thread>

#include "committer.h"
#include "file_io.h"
#include "partition.h"
#include "test_util.h"
#include "units.h"

using namespace tidelog;
using namespace tidelog_test;

// Known bugs (/work/notes/bugs.md): the checks that hit them run inside
// known_bug(title, ...) (test_util.h), which skips with the title until fixed.
constexpr const char* bug_empty_multi_append =
    "partition::append(requests, 0) dereferences a null segment (SIGSEGV)";

namespace {

// Frame with base offset `off` carries make_payload(payload_size(off), off) and
// timestamps [ts_min(off), ts_max(off)].
size_t payload_size(int64_t off) { return 1 + static_cast<size_t>(off * 131 % 1500); }
int64_t ts_min(int64_t off) { return 1'000'000 + off * 10; }
int64_t ts_max(int64_t off) { return ts_min(off) + 5; }

append_result append_standard(partition& p, int64_t expected_offset) {
    auto payload = make_payload(payload_size(expected_offset), static_cast<uint64_t>(expected_offset));
    append_result r = append_payload(p, payload, 1, ts_min(expected_offset), ts_max(expected_offset));
    EXPECT_EQ(r.base_offset, expected_offset);
    return r;
}

// Appends frames for offsets [from, to) and returns the last ticket.
uint64_t append_range(partition& p, int64_t from, int64_t to) {
    uint64_t ticket = 0;
    for (int64_t off = from; off < to; ++off) ticket = append_standard(p, off).ticket;
    return ticket;
}

// Every frame from start_offset() to end_offset(): dense, and carrying its standard payload.
void expect_standard_frames(partition& p, int64_t start, int64_t end) {
    EXPECT_EQ(p.start_offset(), start);
    EXPECT_EQ(p.end_offset(), end);
    auto frames = all_frames(p);
    ASSERT_EQ(frames.size(), static_cast<size_t>(end - start));
    int64_t off = start;
    for (auto& f : frames) {
        ASSERT_EQ(f.header.base_offset, off);
        ASSERT_EQ(f.header.record_count, 1u);
        ASSERT_EQ(f.header.min_timestamp, ts_min(off));
        ASSERT_EQ(f.header.max_timestamp, ts_max(off));
        ASSERT_EQ(frame_payload(f), make_payload(payload_size(off), static_cast<uint64_t>(off))) << "offset " << off;
        ++off;
    }
}

// Reads starting at every offset return the frame holding it first.
void expect_random_access(partition& p, int64_t start, int64_t end) {
    for (int64_t off = start; off < end; ++off) {
        auto f = p.frames(off, off + 1, INT64_MIN, INT64_MAX, 10);
        ASSERT_EQ(f.size(), 1u) << "offset " << off;
        ASSERT_EQ(f[0].header.base_offset, off);
        ASSERT_EQ(frame_payload(f[0]), make_payload(payload_size(off), static_cast<uint64_t>(off)));
    }
}

// offset_for_time and time-filtered reads against the standard timestamps.
void expect_time_lookups(partition& p, int64_t start, int64_t end) {
    EXPECT_EQ(p.offset_for_time(INT64_MIN), start);
    EXPECT_EQ(p.offset_for_time(0), start);
    EXPECT_EQ(p.offset_for_time(ts_max(end - 1) + 1), end);
    for (int64_t off = start; off < end; off += 7) {
        EXPECT_EQ(p.offset_for_time(ts_min(off)), off) << off;
        EXPECT_EQ(p.offset_for_time(ts_max(off)), off) << off;
        EXPECT_EQ(p.offset_for_time(ts_max(off) + 1), off + 1) << off;
        auto f = p.frames(start, INT64_MAX, ts_min(off) + 1, ts_min(off) + 11, 100);
        ASSERT_FALSE(f.empty()) << off;
        EXPECT_EQ(f.front().header.base_offset, off) << off;
    }
}

// Reads [start, end) skipping damage: the intact frames must be exactly the
// standard frames of every offset outside `damaged`, and the skipped ranges
// must cover exactly the damaged offsets. A plain read of a damaged offset
// raises error(corrupt); of any other, returns its frame.
void expect_frames_around_damage(partition& p, int64_t start, int64_t end, const std::set<int64_t>& damaged) {
    EXPECT_EQ(p.start_offset(), start);
    EXPECT_EQ(p.end_offset(), end);
    std::vector<damaged_range> skipped;
    auto frames = p.frames(start, end, INT64_MIN, INT64_MAX, SIZE_MAX, &skipped);
    std::set<int64_t> covered;
    for (auto& d : skipped)
        for (int64_t o = d.start_offset; o < d.end_offset; ++o) covered.insert(o);
    EXPECT_EQ(covered, damaged);
    size_t k = 0;
    for (int64_t off = start; off < end; ++off) {
        if (damaged.count(off)) {
            EXPECT_THROW(p.frames(off, off + 1, INT64_MIN, INT64_MAX, 10), error) << "offset " << off;
            continue;
        }
        ASSERT_LT(k, frames.size()) << "offset " << off;
        ASSERT_EQ(frames[k].header.base_offset, off);
        ASSERT_EQ(frame_payload(frames[k]), make_payload(payload_size(off), static_cast<uint64_t>(off)));
        ++k;
        auto one = p.frames(off, off + 1, INT64_MIN, INT64_MAX, 10);
        ASSERT_EQ(one.size(), 1u) << "offset " << off;
        ASSERT_EQ(one[0].header.base_offset, off);
    }
    EXPECT_EQ(k, frames.size());
}

std::set<int64_t> offsets(int64_t from, int64_t to) {
    std::set<int64_t> out;
    for (int64_t o = from; o < to; ++o) out.insert(o);
    return out;
}

/// The first recovery event of that kind (kept alive for the test: events are returned by copy).
const recovery_event* find_event(partition& p, const std::string& kind) {
    static std::vector<std::vector<recovery_event>> kept;
    kept.push_back(p.recovery_events());
    for (auto& ev : kept.back())
        if (ev.kind == kind) return &ev;
    return nullptr;
}

struct frame_pos {
    uint64_t position;
    frame_header header;
};
// Frames of one .log file, walked by header.
std::vector<frame_pos> walk_log(const std::string& path) {
    std::vector<frame_pos> out;
    auto bytes = read_file_bytes(path);
    uint64_t pos = 0;
    while (pos < bytes.size() && check_header(bytes.data() + pos, bytes.size() - pos) == frame_check::ok) {
        frame_header h = load_header(bytes.data() + pos);
        out.push_back({pos, h});
        pos += h.frame_length();
    }
    return out;
}

class PartitionTest : public ::testing::Test {
protected:
    temp_dir tmp;
    std::string dir = tmp.sub("topics/t/0");

    // Created on first use, so that tests which fork do so with no extra threads.
    committer& com() {
        if (!_com) _com = std::make_unique<committer>();
        return *_com;
    }
    std::unique_ptr<partition> open(const partition_config& cfg, bool clean = true) {
        return std::make_unique<partition>(&com(), dir, cfg, false, clean);
    }
    std::unique_ptr<partition> open_reader(const partition_config& cfg) {
        return std::make_unique<partition>(nullptr, dir, cfg, true, true);
    }
    // A writer in a forked child appends [from, to) durably, then dies without closing.
    void crash_after_appending(const partition_config& cfg, int64_t from, int64_t to, bool clean = false) {
        ASSERT_FALSE(_com) << "fork before starting threads";
        int rc = run_in_crashing_child([&] {
            // Leaked on purpose: their destructors would close cleanly.
            auto* c = new committer;
            auto* p = new partition(c, dir, cfg, false, clean);
            uint64_t ticket = append_range(*p, from, to);
            c->flush_all();  // every mode: all of it reached the disk before the "crash"
            if (cfg.durability == durability_mode::fsync) c->wait_durable(ticket);
        });
        ASSERT_EQ(rc, 0);
    }
    std::string log_path(int64_t base) const { return dir + "/" + segment_file_stem(base) + ".log"; }

private:
    std::unique_ptr<committer> _com;
};

}  // namespace

TEST_F(PartitionTest, AppendAndReadBack) {
    auto p = open(small_config(1 << 20));
    EXPECT_EQ(p->start_offset(), 0);
    EXPECT_EQ(p->end_offset(), 0);
    EXPECT_TRUE(all_frames(*p).empty());
    append_range(*p, 0, 200);
    expect_standard_frames(*p, 0, 200);
    expect_random_access(*p, 0, 200);
    EXPECT_EQ(p->segment_count(), 1u);
    EXPECT_GT(p->size_bytes(), 200u * 64);
    EXPECT_TRUE(p->recovery_events().empty());
    EXPECT_EQ(com().stats().appends, 200u);
    EXPECT_EQ(com().stats().frames, 200u);
}

TEST_F(PartitionTest, MultiRecordFramesAndPieces) {
    auto p = open(small_config());
    // Three pieces form one payload; offsets advance by record_count.
    std::vector<uint8_t> a = make_payload(10, 1), b = make_payload(0, 2), c = make_payload(23, 3);
    struct iovec iov[3] = {{a.data(), a.size()}, {b.data(), 0}, {c.data(), c.size()}};
    append_request req;
    req.pieces = iov;
    req.piece_count = 3;
    req.record_count = 5;
    req.min_timestamp = 10;
    req.max_timestamp = 20;
    EXPECT_EQ(p->append(req).base_offset, 0);
    req.record_count = 3;
    EXPECT_EQ(p->append(req).base_offset, 5);
    EXPECT_EQ(p->end_offset(), 8);
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), 2u);
    std::vector<uint8_t> joined = a;
    joined.insert(joined.end(), c.begin(), c.end());
    EXPECT_EQ(frame_payload(frames[0]), joined);
    EXPECT_EQ(frames[1].header.base_offset, 5);
    EXPECT_EQ(frames[1].header.next_offset(), 8);
    // A read starting inside a frame returns that frame.
    auto mid = p->frames(6, 7, INT64_MIN, INT64_MAX, 10);
    ASSERT_EQ(mid.size(), 1u);
    EXPECT_EQ(mid[0].header.base_offset, 5);
    // An empty payload is a valid frame too.
    req.piece_count = 0;
    req.record_count = 1;
    EXPECT_EQ(p->append(req).base_offset, 8);
    EXPECT_EQ(all_frames(*p).back().header.payload_length, 0u);
}

TEST_F(PartitionTest, FramesHonoursBoundsAndLimits) {
    auto p = open(small_config());
    append_range(*p, 0, 50);
    EXPECT_EQ(p->frames(10, 20, INT64_MIN, INT64_MAX, 100).size(), 10u);
    EXPECT_EQ(p->frames(10, 20, INT64_MIN, INT64_MAX, 3).size(), 3u);
    EXPECT_EQ(p->frames(10, 20, INT64_MIN, INT64_MAX, 0).size(), 0u);
    EXPECT_EQ(p->frames(20, 10, INT64_MIN, INT64_MAX, 100).size(), 0u);
    EXPECT_EQ(p->frames(50, 60, INT64_MIN, INT64_MAX, 100).size(), 0u);
    EXPECT_EQ(p->frames(-5, 2, INT64_MIN, INT64_MAX, 100).size(), 2u);
    // Time window [ts_min(20), ts_min(30)): frames whose span meets it.
    auto w = p->frames(0, INT64_MAX, ts_min(20), ts_min(30), 100);
    ASSERT_EQ(w.size(), 10u);
    EXPECT_EQ(w.front().header.base_offset, 20);
    EXPECT_EQ(w.back().header.base_offset, 29);
    // A window inside one frame's span.
    w = p->frames(0, INT64_MAX, ts_min(7) + 1, ts_min(7) + 2, 100);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].header.base_offset, 7);
}

TEST_F(PartitionTest, ExcludedFramesAreWalkedPastOnlyWhenBaseAndCrcMatch) {
    auto p = open(small_config());
    append_range(*p, 0, 30);
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), 30u);
    // Exclude frames 5, 6 and 20 by their keys; 9 with a wrong CRC (a stale zone map entry).
    std::vector<frame_key> excluded = {{5, frames[5].header.crc}, {6, frames[6].header.crc},
                                       {20, frames[20].header.crc}, {9, frames[9].header.crc ^ 1u}};
    std::sort(excluded.begin(), excluded.end());
    auto got = p->frames(0, INT64_MAX, INT64_MIN, INT64_MAX, 100, nullptr, &excluded);
    ASSERT_EQ(got.size(), 27u);
    for (auto& f : got) {
        EXPECT_NE(f.header.base_offset, 5);
        EXPECT_NE(f.header.base_offset, 6);
        EXPECT_NE(f.header.base_offset, 20);
    }
    // The walk goes on past excluded frames up to max_frames wanted ones.
    got = p->frames(4, INT64_MAX, INT64_MIN, INT64_MAX, 3, nullptr, &excluded);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].header.base_offset, 4);
    EXPECT_EQ(got[1].header.base_offset, 7);
    EXPECT_EQ(got[2].header.base_offset, 8);
    // Excluding every frame of a range returns none of them.
    std::vector<frame_key> all;
    for (auto& f : frames) all.push_back({f.header.base_offset, f.header.crc});
    EXPECT_TRUE(p->frames(10, 15, INT64_MIN, INT64_MAX, 100, nullptr, &all).empty());
    // Appends report each frame's CRC, which is what names it.
    append_request req;
    auto payload = make_payload(16, 7);
    struct iovec iov = {payload.data(), payload.size()};
    req.pieces = &iov;
    req.piece_count = 1;
    req.record_count = 1;
    append_result r = p->append(req);
    EXPECT_EQ(r.crc, all_frames(*p).back().header.crc);
}

TEST_F(PartitionTest, BodyOffsetIsAlignedTo64) {
    auto p = open(small_config());
    for (int i = 0; i < 20; ++i) {
        int64_t body_offset = 8 * (i % 9);
        auto payload = make_payload(1 + i * 13, i);
        append_payload(*p, payload, 1, 0, 0, body_offset);
    }
    // A body offset that is not a multiple of 8 is ignored (no padding).
    append_payload(*p, make_payload(30, 99), 1, 0, 0, 5);
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), 21u);
    for (int i = 0; i < 20; ++i) {
        uint64_t body = frames[i].position + frames[i].header.payload_offset + 8 * (i % 9);
        EXPECT_EQ(body % body_alignment, 0u) << i;
        EXPECT_EQ(frame_payload(frames[i]), make_payload(1 + i * 13, i));
        EXPECT_EQ(check_frame(frames[i].region->data() + frames[i].position, frames[i].header.frame_length()),
                  frame_check::ok);
    }
    EXPECT_EQ(frames[20].header.payload_offset, frame_header_bytes);
}

TEST_F(PartitionTest, FsyncModePublishesDurableFrames) {
    auto p = open(small_config(1 << 20, durability_mode::fsync));
    append_result r = append_standard(*p, 0);
    EXPECT_GT(r.ticket, 0u);
    com().wait_durable(r.ticket);
    EXPECT_EQ(p->end_offset(), 1);
    uint64_t t = append_range(*p, 1, 20);
    com().wait_durable(t);
    expect_standard_frames(*p, 0, 20);
    EXPECT_GE(com().stats().fdatasyncs, 1u);
}

TEST_F(PartitionTest, IntervalModePublishesAtOnceAndFlushes) {
    partition_config cfg = small_config(1 << 20, durability_mode::interval);
    cfg.flush_interval_ms = 60'000;
    auto p = open(cfg);
    append_result r = append_standard(*p, 0);
    EXPECT_GT(r.ticket, 0u);
    EXPECT_EQ(p->end_offset(), 1);  // visible before it is durable
    uint64_t before = com().stats().fdatasyncs;
    p->flush();
    EXPECT_GT(com().stats().fdatasyncs, before);
}

TEST_F(PartitionTest, AppendErrors) {
    auto p = open(small_config());
    auto payload = make_payload(10, 1);
    try {
        append_payload(*p, payload, 1, 10, 5);
        FAIL() << "min_timestamp > max_timestamp accepted";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::invalid_argument);
    }
    EXPECT_EQ(p->end_offset(), 0);
    p->close();
    try {
        append_payload(*p, payload);
        FAIL() << "append after close";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::closed);
    }
    p.reset();
    auto reader = open_reader(small_config());
    try {
        append_payload(*reader, payload);
        FAIL() << "append through a reader";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::read_only);
    }
    for (uint64_t bad : {uint64_t{0}, max_segment_bytes + 1}) {
        try {
            open(small_config(bad));
            FAIL() << "segment_bytes " << bad << " accepted";
        } catch (const error& e) {
            EXPECT_EQ(e.code(), errc::invalid_argument);
        }
    }
}

TEST_F(PartitionTest, RollsBySegmentBytes) {
    const uint64_t segment_bytes = 8 * 1024;
    auto p = open(small_config(segment_bytes));
    append_range(*p, 0, 150);
    EXPECT_GT(p->segment_count(), 10u);
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_EQ(logs.size(), p->segment_count());
    // Every segment but the active one is sealed: trimmed and within segment_bytes.
    for (size_t i = 0; i + 1 < logs.size(); ++i) {
        auto frames = walk_log(logs[i]);
        ASSERT_FALSE(frames.empty()) << logs[i];
        EXPECT_LE(file_size(logs[i]), segment_bytes) << logs[i];
        uint64_t end = frames.back().position + frames.back().header.frame_length();
        EXPECT_EQ(file_size(logs[i]), end) << logs[i];
        // The file is named after its first offset.
        EXPECT_EQ(fs::path(logs[i]).filename().string(), segment_file_stem(frames.front().header.base_offset) + ".log");
        EXPECT_EQ(frames.back().header.next_offset(), walk_log(logs[i + 1]).front().header.base_offset);
    }
    expect_standard_frames(*p, 0, 150);
    expect_random_access(*p, 0, 150);
    expect_time_lookups(*p, 0, 150);
}

TEST_F(PartitionTest, OversizedFrameGetsASegmentOfItsOwn) {
    auto p = open(small_config(4096));
    append_payload(*p, make_payload(100, 0));
    append_payload(*p, make_payload(10000, 1));  // larger than segment_bytes
    append_payload(*p, make_payload(100, 2));
    EXPECT_EQ(p->segment_count(), 3u);
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frame_payload(frames[1]), make_payload(10000, 1));
}

TEST_F(PartitionTest, RollsBySegmentAge) {
    partition_config cfg = small_config(1 << 20);
    cfg.segment_ms = 0;  // every segment is "old" once it holds a frame
    auto p = open(cfg);
    append_range(*p, 0, 5);
    EXPECT_EQ(p->segment_count(), 5u);
    expect_standard_frames(*p, 0, 5);
}

TEST_F(PartitionTest, CleanReopenContinues) {
    partition_config cfg = small_config(16 * 1024);
    int64_t end = 0;
    for (int cycle = 0; cycle < 3; ++cycle) {
        auto p = open(cfg, true);
        EXPECT_TRUE(p->recovery_events().empty());
        expect_standard_frames(*p, 0, end);
        append_range(*p, end, end + 60);
        end += 60;
        expect_standard_frames(*p, 0, end);
        p->close();
        // After close the active segment is trimmed to its frames.
        for (auto& log : files_with_suffix(dir, ".log")) {
            auto frames = walk_log(log);
            uint64_t bytes = frames.empty() ? 0 : frames.back().position + frames.back().header.frame_length();
            EXPECT_EQ(file_size(log), bytes) << log;
        }
    }
    auto p = open(cfg, true);
    expect_standard_frames(*p, 0, end);
    expect_random_access(*p, 0, end);
    expect_time_lookups(*p, 0, end);
    EXPECT_TRUE(p->recovery_events().empty());
}

TEST_F(PartitionTest, ReopenWithoutAppendsKeepsEverything) {
    partition_config cfg = small_config(16 * 1024);
    { auto p = open(cfg); append_range(*p, 0, 40); }  // the destructor closes
    for (int i = 0; i < 3; ++i) {
        auto p = open(cfg, i % 2 == 0);
        expect_standard_frames(*p, 0, 40);
        EXPECT_TRUE(p->recovery_events().empty());
    }
    auto p = open(cfg);
    append_range(*p, 40, 45);
    expect_standard_frames(*p, 0, 45);
}

TEST_F(PartitionTest, CrashKeepsDurableFrames) {
    partition_config cfg = small_config(16 * 1024, durability_mode::fsync);
    crash_after_appending(cfg, 0, 50);
    // The dead writer left its preallocated active segment behind.
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 2u);
    EXPECT_GE(file_size(logs.back()), first_preallocation_bytes);
    EXPECT_LE(file_size(logs.back()), preallocation_step);
    auto p = open(cfg, false);
    EXPECT_TRUE(p->recovery_events().empty()) << p->recovery_events().front().reason;
    expect_standard_frames(*p, 0, 50);
    uint64_t t = append_range(*p, 50, 60);
    com().wait_durable(t);
    expect_standard_frames(*p, 0, 60);
    expect_random_access(*p, 0, 60);
    expect_time_lookups(*p, 0, 60);
}

TEST_F(PartitionTest, UncleanReopenAfterTornTail) {
    partition_config cfg = small_config(1 << 20);
    crash_after_appending(cfg, 0, 30);
    auto frames = walk_log(log_path(0));
    ASSERT_EQ(frames.size(), 30u);
    // Cut the last frame in half, and make it one that was never acknowledged:
    // neither the checkpoint nor the published end vouch for it.
    const frame_pos& last = frames.back();
    truncate_file(log_path(0), last.position + last.header.frame_length() / 2);
    std::remove((dir + "/recovery-checkpoint").c_str());
    std::remove((dir + "/state").c_str());
    auto p = open(cfg, false);
    ASSERT_FALSE(p->recovery_events().empty());
    const recovery_event ev = p->recovery_events().front();
    EXPECT_EQ(ev.kind, "cut");
    EXPECT_EQ(ev.file, log_path(0));
    EXPECT_EQ(ev.position, last.position);
    EXPECT_EQ(ev.first_offset_dropped, 29);
    EXPECT_EQ(ev.bytes_dropped, last.header.frame_length() / 2);
    EXPECT_EQ(file_size(log_path(0)), last.position);
    expect_standard_frames(*p, 0, 29);
    // Offsets continue densely where the good frames end.
    append_range(*p, 29, 40);
    expect_standard_frames(*p, 0, 40);
    p->close();
    p = open(cfg, true);
    expect_standard_frames(*p, 0, 40);
}

TEST_F(PartitionTest, TornFrameBelowThePublishedDurableEndIsKeptAsDamage) {
    // In "fsync" mode the published end is the durable end: a frame below it that
    // fails its checks lost bytes after it was acknowledged. Its offset is not
    // given out again; the bytes stay for `tidelog verify --repair`.
    partition_config cfg = small_config(1 << 20, durability_mode::fsync);
    crash_after_appending(cfg, 0, 30);
    auto frames = walk_log(log_path(0));
    const frame_pos& last = frames.back();
    truncate_file(log_path(0), last.position + last.header.frame_length() / 2);
    std::remove((dir + "/recovery-checkpoint").c_str());
    auto p = open(cfg, false);
    const recovery_event* ev = find_event(*p, "damaged");
    ASSERT_NE(ev, nullptr);
    EXPECT_EQ(ev->first_offset_dropped, 29);
    EXPECT_EQ(ev->end_offset, 30);
    EXPECT_EQ(ev->bytes_damaged, last.header.frame_length() / 2);
    EXPECT_EQ(find_event(*p, "cut"), nullptr);
    expect_frames_around_damage(*p, 0, 30, {29});
    com().wait_durable(append_range(*p, 30, 35));
    expect_frames_around_damage(*p, 0, 35, {29});
    p->close();
    p = open(cfg, true);
    expect_frames_around_damage(*p, 0, 35, {29});
}

TEST_F(PartitionTest, GarbledPayloadBelowTheDurablePointCostsOnlyThatFrame) {
    partition_config cfg = small_config(1 << 20, durability_mode::fsync);
    crash_after_appending(cfg, 0, 30);
    auto frames = walk_log(log_path(0));
    ASSERT_EQ(frames.size(), 30u);
    const frame_pos& f = frames[25];
    overwrite(log_path(0), f.position + f.header.payload_offset, {0xDE, 0xAD});
    for (bool clean : {false, true}) {
        auto p = open(cfg, clean);
        if (!clean) {
            ASSERT_EQ(p->recovery_events().size(), 1u);
            const recovery_event ev = p->recovery_events()[0];
            EXPECT_EQ(ev.kind, "damaged");
            EXPECT_EQ(ev.reason, describe(frame_check::bad_crc));
            EXPECT_EQ(ev.first_offset_dropped, 25);
            EXPECT_EQ(ev.end_offset, 26);
            EXPECT_EQ(ev.position, f.position);
            EXPECT_EQ(ev.bytes_damaged, f.header.frame_length());
            EXPECT_EQ(ev.bytes_dropped, 0u);
        }
        expect_frames_around_damage(*p, 0, clean ? 35 : 30, {25});
        if (!clean) append_range(*p, 30, 35);
        auto known = p->damaged_ranges();
        ASSERT_EQ(known.size(), 1u);
        EXPECT_EQ(known[0].start_offset, 25);
        EXPECT_EQ(known[0].end_offset, 26);
    }
}

TEST_F(PartitionTest, GarbledHeaderKeepsEveryFrameAndSegmentAfterIt) {
    partition_config cfg = small_config(8 * 1024, durability_mode::fsync);
    crash_after_appending(cfg, 0, 60);
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 4u);
    // Garble the magic of the second frame of the second segment.
    auto frames = walk_log(logs[1]);
    ASSERT_GE(frames.size(), 3u);
    int64_t hit = frames[1].header.base_offset;
    overwrite(logs[1], frames[1].position, {'X'});
    size_t segments = logs.size();
    auto p = open(cfg, false);
    const recovery_event* ev = find_event(*p, "damaged");
    ASSERT_NE(ev, nullptr);
    EXPECT_EQ(ev->reason, describe(frame_check::bad_magic));
    EXPECT_EQ(ev->first_offset_dropped, hit);
    EXPECT_EQ(ev->end_offset, hit + 1);
    EXPECT_EQ(find_event(*p, "cut"), nullptr);
    EXPECT_EQ(p->segment_count(), segments);
    expect_frames_around_damage(*p, 0, 60, {hit});
    com().wait_durable(append_range(*p, 60, 70));
    expect_frames_around_damage(*p, 0, 70, {hit});
    p->close();
    p = open(cfg, true);
    expect_frames_around_damage(*p, 0, 70, {hit});
}

TEST_F(PartitionTest, ZeroedSectorInASealedSegmentCostsOnlyTheFramesInIt) {
    partition_config cfg = small_config(64 * 1024, durability_mode::fsync);
    crash_after_appending(cfg, 0, 120);
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 2u);
    auto frames = walk_log(logs[0]);
    ASSERT_GE(frames.size(), 20u);
    // A lost 4 KiB write in the middle of the first (sealed) segment.
    uint64_t at = frames[10].position / 4096 * 4096 + 4096;
    overwrite(logs[0], at, std::vector<uint8_t>(4096, 0));
    std::set<int64_t> hit;
    for (auto& f : frames)
        if (f.position < at + 4096 && f.position + f.header.frame_length() > at) hit.insert(f.header.base_offset);
    ASSERT_FALSE(hit.empty());
    for (bool clean : {true, false}) {
        auto p = open(cfg, clean);
        expect_frames_around_damage(*p, 0, 120, hit);
    }
}

TEST_F(PartitionTest, DamagedLastFrameOfASealedSegmentDoesNotSkipTheNextSegment) {
    // The last frame of the first segment gets a header (CRC now failing) whose
    // offsets run to the partition's visible end. A read that skips it must stop
    // the skip at the next segment's base, not lose that segment's intact frames
    // (found by segment_recovery_fuzz: regressions/reader-skip-past-segment-end).
    partition_config cfg = small_config(8 * 1024);
    const int64_t end = 40;
    { auto p = open(cfg); append_range(*p, 0, end); }
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 3u);
    auto frames = walk_log(logs[0]);
    ASSERT_GE(frames.size(), 2u);
    const frame_pos& last = frames.back();
    ASSERT_EQ(last.header.version, 2u);
    int64_t hit = last.header.base_offset;
    uint32_t count = static_cast<uint32_t>(end - hit);
    uint32_t delta = count - 1;
    auto le32 = [](uint32_t v) {
        return std::vector<uint8_t>{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    };
    overwrite(logs[0], last.position + offsetof(frame_header, record_count), le32(count));
    overwrite(logs[0], last.position + offsetof(frame_header, last_offset_delta), le32(delta));
    for (bool clean : {true, false}) {
        auto p = open(cfg, clean);
        expect_frames_around_damage(*p, 0, end, {hit});
        for (auto& d : p->damaged_ranges()) EXPECT_LE(d.end_offset, hit + 1) << d.segment;
    }
}

TEST_F(PartitionTest, CleanMarkerOverATornTailIsRecovered) {
    // A clean close vouched for offset 19: after its bytes are lost the log is
    // usable, the loss is reported, and offset 19 is not given out again.
    partition_config cfg = small_config(1 << 20);
    { auto p = open(cfg); append_range(*p, 0, 20); p->close(); }
    auto frames = walk_log(log_path(0));
    ASSERT_EQ(frames.size(), 20u);
    truncate_file(log_path(0), frames.back().position + 70);
    auto p = open(cfg, true);
    const recovery_event* ev = find_event(*p, "damaged");
    ASSERT_NE(ev, nullptr);
    EXPECT_EQ(ev->first_offset_dropped, 19);
    EXPECT_EQ(ev->end_offset, 20);
    EXPECT_EQ(ev->bytes_damaged, 70u);
    expect_frames_around_damage(*p, 0, 20, {19});
    append_range(*p, 20, 25);
    expect_frames_around_damage(*p, 0, 25, {19});
    p->close();
    p = open(cfg, true);
    expect_frames_around_damage(*p, 0, 25, {19});
}

TEST_F(PartitionTest, UncleanReopenWithoutCheckpointChecksEveryCrc) {
    // Without the checkpoint, recovery verifies every frame. What the previous
    // writer published as durable ("fsync" mode) is still never cut.
    partition_config cfg = small_config(1 << 20, durability_mode::fsync);
    { auto p = open(cfg); append_range(*p, 0, 20); }
    auto frames = walk_log(log_path(0));
    overwrite(log_path(0), frames[12].position + frames[12].header.payload_offset, {0x00, 0x01, 0x02});
    fs::remove(dir + "/recovery-checkpoint");
    {
        auto p = open(cfg, false);
        ASSERT_EQ(p->recovery_events().size(), 1u);
        EXPECT_EQ(p->recovery_events()[0].kind, "damaged");
        EXPECT_EQ(p->recovery_events()[0].first_offset_dropped, 12);
        expect_frames_around_damage(*p, 0, 20, {12});
    }
    // Nothing vouches for anything (no checkpoint, no published end): the log
    // is the CRC-valid prefix.
    fs::remove(dir + "/recovery-checkpoint");
    fs::remove(dir + "/state");
    auto p = open(cfg, false);
    ASSERT_EQ(p->recovery_events().size(), 1u);
    EXPECT_EQ(p->recovery_events()[0].kind, "cut");
    EXPECT_EQ(p->recovery_events()[0].first_offset_dropped, 12);
    expect_standard_frames(*p, 0, 12);
}

TEST_F(PartitionTest, LostCheckpointedFramesAreReported) {
    // The log ends, at a frame boundary, before the durable point the checkpoint
    // recorded: offsets that were acknowledged are gone. They are reported and
    // never given out again.
    partition_config cfg = small_config(1 << 20);
    { auto p = open(cfg); append_range(*p, 0, 20); p->close(); }
    auto frames = walk_log(log_path(0));
    truncate_file(log_path(0), frames[15].position);
    auto p = open(cfg, false);
    EXPECT_EQ(p->end_offset(), 20);
    const recovery_event* ev = find_event(*p, "lost");
    ASSERT_NE(ev, nullptr) << "recovery silently lost offsets 15..19 that the checkpoint recorded as durable";
    EXPECT_EQ(ev->first_offset_dropped, 15);
    EXPECT_EQ(ev->end_offset, 20);
    append_range(*p, 20, 23);
    expect_frames_around_damage(*p, 0, 23, offsets(15, 20));
    p->close();
    p = open(cfg, false);
    expect_frames_around_damage(*p, 0, 23, offsets(15, 20));
}

TEST_F(PartitionTest, OffsetsPublishedToReadersAreNotReusedAfterTheirDataIsLost) {
    // "interval" mode: readers saw offsets up to 20 that never reached the disk
    // (a power cut). The next writer continues after them.
    partition_config cfg = small_config(1 << 20, durability_mode::interval);
    crash_after_appending(cfg, 0, 20);
    auto frames = walk_log(log_path(0));
    truncate_file(log_path(0), frames[15].position);
    std::remove((dir + "/recovery-checkpoint").c_str());
    auto p = open(cfg, false);
    EXPECT_EQ(p->end_offset(), 20);
    const recovery_event* ev = find_event(*p, "lost");
    ASSERT_NE(ev, nullptr);
    EXPECT_EQ(ev->first_offset_dropped, 15);
    EXPECT_EQ(ev->end_offset, 20);
    append_range(*p, 20, 22);
    expect_frames_around_damage(*p, 0, 22, offsets(15, 20));
}

enum class index_damage { deleted, random_garbage, plausible_garbage, zeros };

// What can happen to derived data: the index files deleted, overwritten with
// random bytes, with entries that look sane (monotone, inside the file) but do
// not point at frames, or zero-filled at their current size.
void damage_index(const std::string& stem, index_damage how, uint64_t seed) {
    for (const char* ext : {".index", ".timeindex"}) {
        std::string path = stem + ext;
        switch (how) {
            case index_damage::deleted:
                fs::remove(path);
                break;
            case index_damage::random_garbage: {
                std::mt19937_64 rng(seed);
                std::vector<uint8_t> junk(256);
                for (auto& b : junk) b = static_cast<uint8_t>(rng());
                fs::resize_file(path, 0);
                overwrite(path, 0, junk);
                break;
            }
            case index_damage::plausible_garbage: {
                std::vector<uint8_t> junk;
                bool time = std::string(ext) == ".timeindex";
                for (uint32_t i = 0; i < 16; ++i) {
                    uint32_t rel = i + 1, pos = 100 * i + 3;  // not a frame start
                    if (time) {
                        time_index_entry e{ts_min(0) + i, rel, pos};
                        auto* b = reinterpret_cast<uint8_t*>(&e);
                        junk.insert(junk.end(), b, b + sizeof e);
                    } else {
                        offset_index_entry e{rel, pos};
                        auto* b = reinterpret_cast<uint8_t*>(&e);
                        junk.insert(junk.end(), b, b + sizeof e);
                    }
                }
                fs::resize_file(path, 0);
                overwrite(path, 0, junk);
                break;
            }
            case index_damage::zeros: {
                uint64_t n = file_size(path);
                fs::resize_file(path, 0);
                fs::resize_file(path, n);
                break;
            }
        }
    }
}

const char* damage_name(index_damage d);
void PrintTo(index_damage d, std::ostream* os) { *os << damage_name(d); }

const char* damage_name(index_damage d) {
    switch (d) {
        case index_damage::deleted: return "Deleted";
        case index_damage::random_garbage: return "RandomGarbage";
        case index_damage::plausible_garbage: return "PlausibleGarbage";
        case index_damage::zeros: return "Zeros";
    }
    return "?";
}

// (damage, in a sealed segment rather than the active one, clean reopen)
using index_case = std::tuple<index_damage, bool, bool>;

class PartitionIndexRecoveryTest : public PartitionTest, public ::testing::WithParamInterface<index_case> {};

TEST_P(PartitionIndexRecoveryTest, ReadsAndTimeLookupsSurvive) {
    auto [damage, sealed, clean] = GetParam();
    partition_config cfg = small_config(8 * 1024);
    const int64_t end = 80;
    {
        auto w = open(cfg);
        append_range(*w, 0, end);
        w->close();
    }
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 4u);
    std::string victim = logs[sealed ? 1 : logs.size() - 1];
    damage_index(victim.substr(0, victim.size() - 4), damage, 1 + sealed * 2 + clean * 4);
    std::vector<recovery_event> first_events;
    auto check = [&] {
        auto p = open(cfg, clean);
        first_events = p->recovery_events();
        expect_standard_frames(*p, 0, end);
        expect_random_access(*p, 0, end);
        expect_time_lookups(*p, 0, end);
        append_range(*p, end, end + 30);
        expect_standard_frames(*p, 0, end + 30);
        expect_random_access(*p, 0, end + 30);
        expect_time_lookups(*p, 0, end + 30);
        p->close();
        p = open(cfg, true);
        expect_standard_frames(*p, 0, end + 30);
        expect_random_access(*p, 0, end + 30);
        expect_time_lookups(*p, 0, end + 30);
    };
    check();
    if (sealed) {
        // A damaged index of a sealed segment is rebuilt, and the recovery report says so.
        bool reported = false;
        for (auto& ev : first_events) reported |= ev.file == victim;
        EXPECT_TRUE(reported) << "no recovery event for the rebuilt index of " << victim;
        for (auto& ev : first_events) EXPECT_EQ(ev.file, victim) << ev.reason;  // nothing else was damaged
    }
}

INSTANTIATE_TEST_SUITE_P(Damage, PartitionIndexRecoveryTest,
                         ::testing::Combine(::testing::Values(index_damage::deleted, index_damage::random_garbage,
                                                              index_damage::plausible_garbage, index_damage::zeros),
                                            ::testing::Bool(), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<index_case>& info) {
                             return std::string(damage_name(std::get<0>(info.param))) +
                                    (std::get<1>(info.param) ? "SealedSegment" : "ActiveSegment") +
                                    (std::get<2>(info.param) ? "CleanReopen" : "UncleanReopen");
                         });

TEST_F(PartitionTest, TimeRetentionAfterZeroedTimeIndex) {
    // Fresh data (timestamps now) must survive a one-hour time retention even
    // when a sealed segment's time index was zero-filled.
    partition_config cfg = small_config(4 * 1024);
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    {
        auto w = open(cfg);
        for (int i = 0; i < 20; ++i) append_payload(*w, make_payload(1500, i), 1, now + i, now + i);
        w->close();
    }
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 3u);
    damage_index(logs[0].substr(0, logs[0].size() - 4), index_damage::zeros, 9);
    cfg.retention_ms = 3'600'000;
    auto p = open(cfg);
    p->enforce_retention();
    EXPECT_EQ(p->start_offset(), 0) << "fresh data deleted by time retention";
    EXPECT_EQ(p->segment_count(), logs.size());
    EXPECT_EQ(p->offset_for_time(now + 1), 1);
}

TEST_F(PartitionTest, RetentionByBytesDeletesOldSegments) {
    partition_config cfg = small_config(8 * 1024);
    std::vector<frame_ref> old_frames;
    size_t before;
    {
        // Written without retention first, so the committer's housekeeping cannot interfere.
        auto w = open(cfg);
        append_range(*w, 0, 150);
        before = w->segment_count();
        old_frames = w->frames(0, 5, INT64_MIN, INT64_MAX, 5);
        ASSERT_EQ(old_frames.size(), 5u);
    }
    cfg.retention_bytes = 20 * 1024;
    auto p = open(cfg);
    p->enforce_retention();  // housekeeping may have beaten us to it: same outcome
    size_t after = p->segment_count();
    EXPECT_LT(after, before);
    EXPECT_EQ(com().stats().segments_deleted, before - after);
    EXPECT_EQ(files_with_suffix(dir, ".log").size(), after);
    EXPECT_EQ(files_with_suffix(dir, ".index").size(), after);
    EXPECT_EQ(files_with_suffix(dir, ".timeindex").size(), after);
    EXPECT_FALSE(fs::exists(log_path(0)));
    // Kafka's rule: delete the oldest while the rest still holds retention_bytes.
    uint64_t size = p->size_bytes();
    EXPECT_GE(size, static_cast<uint64_t>(cfg.retention_bytes));
    EXPECT_LT(size, static_cast<uint64_t>(cfg.retention_bytes) + cfg.segment_bytes);
    int64_t start = p->start_offset();
    EXPECT_GT(start, 0);
    EXPECT_EQ(files_with_suffix(dir, ".log").front(), log_path(start));
    expect_standard_frames(*p, start, 150);
    EXPECT_EQ(p->frames(0, INT64_MAX, INT64_MIN, INT64_MAX, 1).front().header.base_offset, start);
    EXPECT_EQ(p->offset_for_time(0), start);

    // Frames handed out before the deletion still read fine: the mapping holds the inode.
    for (int64_t off = 0; off < 5; ++off) {
        const frame_ref& f = old_frames[static_cast<size_t>(off)];
        EXPECT_EQ(check_frame(f.region->data() + f.position, f.header.frame_length()), frame_check::ok);
        EXPECT_EQ(frame_payload(f), make_payload(payload_size(off), static_cast<uint64_t>(off)));
    }

    // Retention survives a reopen; a second pass deletes nothing more.
    p->enforce_retention();
    EXPECT_EQ(p->segment_count(), after);
    p->close();
    p = open(cfg, true);
    EXPECT_EQ(p->start_offset(), start);
    expect_standard_frames(*p, start, 150);
    append_range(*p, 150, 160);
    expect_standard_frames(*p, start, 160);
}

namespace {
// I/O hooks recording the order of segment deletions and directory fsyncs: the
// first .log unlink waits at a gate (so a second retention pass can try to run
// meanwhile), and every unlink checks that all older deletions are durable.
struct retention_order_log {
    std::mutex mu;
    std::condition_variable cv;
    bool gate_armed = false;     // the next .log unlink waits until opened
    bool gate_reached = false;
    bool gate_open = false;
    uint64_t events = 0;         // unlinks and fsync starts, numbered
    uint64_t durable_through = 0;  // unlinks numbered below this are durable
    std::vector<std::pair<int64_t, uint64_t>> unlinked;  // .log base, its event number
    std::vector<std::string> violations;
};
retention_order_log* order_log = nullptr;

int64_t log_base(const char* path) {
    std::string p = path;
    if (p.size() < 4 || p.compare(p.size() - 4, 4, ".log") != 0) return -1;
    size_t slash = p.find_last_of('/');
    return std::stoll(p.substr(slash + 1, p.size() - 4 - slash - 1));
}
int ordered_unlink(const char* path) {
    int64_t base = log_base(path);
    if (base >= 0) {
        std::unique_lock<std::mutex> lk(order_log->mu);
        if (order_log->gate_armed) {
            order_log->gate_armed = false;
            order_log->gate_reached = true;
            order_log->cv.notify_all();
            order_log->cv.wait(lk, [] { return order_log->gate_open; });
        }
        for (auto& [earlier, at] : order_log->unlinked) {
            if (earlier > base)
                order_log->violations.push_back("segment " + std::to_string(base) + " deleted after the newer " +
                                                std::to_string(earlier));
            else if (at >= order_log->durable_through)
                order_log->violations.push_back("segment " + std::to_string(base) + " deleted before the deletion of " +
                                                std::to_string(earlier) + " was durable");
        }
        order_log->unlinked.emplace_back(base, order_log->events++);
    }
    return ::unlink(path);
}
int ordered_fsync(int fd) {
    struct stat st;
    bool dir = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    uint64_t started = 0;
    if (dir) {
        std::lock_guard<std::mutex> g(order_log->mu);
        started = order_log->events++;
    }
    int rc = ::fsync(fd);
    if (dir && rc == 0) {
        std::lock_guard<std::mutex> g(order_log->mu);
        order_log->durable_through = std::max(order_log->durable_through, started);
    }
    return rc;
}
const io::hooks retention_order_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.fsync = ordered_fsync;
    h.unlink = ordered_unlink;
    return h;
}();
}  // namespace

TEST_F(PartitionTest, ConcurrentRetentionPassesDeleteOldestFirst) {
    // A retention pass stalls deleting its oldest segment; meanwhile appends roll
    // new segments past the limit and a second pass starts. The second must wait:
    // had it deleted newer segments (and fsynced the folder) first, a power cut
    // could keep the old segment and lose the newer ones, a hole at the front.
    retention_order_log log;
    order_log = &log;
    const io::hooks* previous = io::install_hooks(&retention_order_hooks);
    {
        partition_config cfg = small_config(4 * 1024);
        cfg.retention_bytes = 4 * 1024;
        auto p = open(cfg);
        int64_t end = 0;
        auto roll_a_few = [&] {
            size_t before = p->segment_count();
            while (p->segment_count() < before + 3) append_standard(*p, end++);
        };
        roll_a_few();
        {
            std::lock_guard<std::mutex> g(log.mu);
            log.gate_armed = true;
        }
        std::thread first([&] { p->enforce_retention(); });
        bool stalled;
        {
            std::unique_lock<std::mutex> lk(log.mu);
            stalled = log.cv.wait_for(lk, std::chrono::seconds(10), [&] { return log.gate_reached; });
        }
        std::thread second;
        if (stalled) {
            roll_a_few();  // more segments past the limit, which the stalled pass did not choose
            second = std::thread([&] { p->enforce_retention(); });
            // Give the second pass time to delete (it must not): then let the first go on.
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        {
            std::lock_guard<std::mutex> g(log.mu);
            log.gate_armed = false;
            log.gate_open = true;
            log.cv.notify_all();
        }
        first.join();
        if (second.joinable()) second.join();
        EXPECT_TRUE(stalled) << "the first retention pass deleted nothing";
        EXPECT_TRUE(log.violations.empty()) << log.violations.front();
        EXPECT_GE(log.unlinked.size(), 4u);
        // What is left is the newest segments, contiguous up to the end.
        int64_t start = p->start_offset();
        EXPECT_GT(start, 0);
        EXPECT_EQ(files_with_suffix(dir, ".log").front(), log_path(start));
        expect_standard_frames(*p, start, end);
        p->close();
    }
    io::install_hooks(previous);
    order_log = nullptr;
}

TEST_F(PartitionTest, RetentionByTimeKeepsTheActiveSegment) {
    partition_config cfg = small_config(8 * 1024);
    {
        auto w = open(cfg);
        append_range(*w, 0, 60);
        ASSERT_GT(w->segment_count(), 2u);
    }
    cfg.retention_ms = 60'000;  // the standard timestamps are in 1970: all expired
    auto p = open(cfg);
    p->enforce_retention();
    EXPECT_EQ(p->segment_count(), 1u);
    int64_t start = p->start_offset();
    expect_standard_frames(*p, start, 60);
    append_range(*p, 60, 61);
    EXPECT_EQ(p->end_offset(), 61);
}

TEST_F(PartitionTest, UnlimitedRetentionDeletesNothing) {
    auto p = open(small_config(4096));
    append_range(*p, 0, 40);
    size_t n = p->segment_count();
    p->enforce_retention();
    EXPECT_EQ(p->segment_count(), n);
    expect_standard_frames(*p, 0, 40);
}

TEST_F(PartitionTest, OffsetForTime) {
    auto p = open(small_config(8 * 1024));
    EXPECT_EQ(p->offset_for_time(0), 0);  // empty: end_offset()
    append_range(*p, 0, 120);
    expect_time_lookups(*p, 0, 120);
}

TEST_F(PartitionTest, OffsetForTimeWithUnorderedTimestamps) {
    auto p = open(small_config(4 * 1024));
    // Max timestamps: 100, 50, 300, 200, 400, ...: the first frame reaching ts wins.
    const int64_t ts[] = {100, 50, 300, 200, 400, 350, 500, 90, 600};
    for (int64_t t : ts) append_payload(*p, make_payload(900, t), 1, t - 10, t);
    EXPECT_EQ(p->offset_for_time(40), 0);
    EXPECT_EQ(p->offset_for_time(100), 0);
    EXPECT_EQ(p->offset_for_time(101), 2);
    EXPECT_EQ(p->offset_for_time(250), 2);
    EXPECT_EQ(p->offset_for_time(301), 4);
    EXPECT_EQ(p->offset_for_time(450), 6);
    EXPECT_EQ(p->offset_for_time(501), 8);
    EXPECT_EQ(p->offset_for_time(601), 9);
}

TEST_F(PartitionTest, WaitForData) {
    auto p = open(small_config());
    EXPECT_FALSE(p->wait_for_data(0, 20 * ns_per_ms));
    append_range(*p, 0, 1);
    EXPECT_TRUE(p->wait_for_data(0, 0));
    EXPECT_TRUE(p->wait_for_data(-1, -1));
    EXPECT_FALSE(p->wait_for_data(1, 10 * ns_per_ms));
}

TEST_F(PartitionTest, ReaderSeesTheWriter) {
    partition_config cfg = small_config(8 * 1024);
    auto w = open(cfg);
    append_range(*w, 0, 10);
    auto r = open_reader(cfg);
    EXPECT_EQ(r->end_offset(), 10);
    expect_standard_frames(*r, 0, 10);
    // Appends, rolls and retention become visible without reopening.
    append_range(*w, 10, 100);
    EXPECT_TRUE(r->wait_for_data(10, 0));
    expect_standard_frames(*r, 0, 100);
    expect_random_access(*r, 0, 100);
    EXPECT_EQ(r->offset_for_time(ts_min(50)), 50);
    w->close();
    w.reset();
    partition_config retain = cfg;
    retain.retention_bytes = 16 * 1024;
    w = open(retain);
    w->enforce_retention();
    int64_t start = w->start_offset();
    ASSERT_GT(start, 0);
    EXPECT_EQ(r->start_offset(), start);
    expect_standard_frames(*r, start, 100);
}

TEST_F(PartitionTest, ConcurrentReadersDuringAppendsRollsAndRetention) {
    partition_config cfg = small_config(8 * 1024);
    cfg.retention_bytes = 24 * 1024;
    auto w = open(cfg);
    const int64_t total = 400;
    std::atomic<bool> done{false};
    std::atomic<int64_t> reads{0};
    auto check_snapshot = [&](partition& p) {
        auto frames = all_frames(p);
        if (frames.empty()) return;
        int64_t off = frames.front().header.base_offset;
        for (auto& f : frames) {
            ASSERT_EQ(f.header.base_offset, off);
            ASSERT_EQ(frame_payload(f), make_payload(payload_size(off), static_cast<uint64_t>(off)));
            ++off;
        }
        ++reads;
    };
    std::thread writer([&] {
        for (int64_t off = 0; off < total; ++off) {
            append_standard(*w, off);
            if (off % 25 == 0) w->enforce_retention();
        }
        done = true;
    });
    std::thread in_process([&] {
        while (!done) check_snapshot(*w);
    });
    std::thread other_process([&] {  // a read-only partition, as another process would use
        auto r = open_reader(cfg);
        while (!done) check_snapshot(*r);
    });
    writer.join();
    in_process.join();
    other_process.join();
    EXPECT_GT(reads.load(), 0);
    w->enforce_retention();
    int64_t start = w->start_offset();
    expect_standard_frames(*w, start, total);
    auto r = open_reader(cfg);
    expect_standard_frames(*r, start, total);
}

namespace {
// The hook below runs a retention pass the moment a reader opens one segment
// file: as if the pass had unlinked it between the reader's listing and its open.
std::atomic<partition*> retention_writer{nullptr};
std::string retention_trigger_path;
int64_t retention_trigger_bytes = -1;
int retention_on_open(const char* path, int flags, mode_t mode) {
    partition* w = retention_writer.load();
    if (w && !(flags & O_CREAT) && retention_trigger_path == path && retention_writer.exchange(nullptr)) {
        w->set_retention(retention_trigger_bytes, -1);
        w->enforce_retention();
    }
    return ::open(path, flags, mode);
}
const io::hooks retention_on_open_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.open = retention_on_open;
    return h;
}();
}  // namespace

TEST_F(PartitionTest, ReaderListingRacingRetentionLeavesNoHole) {
    // A reader relists the folder (retention moved the start). Between its listing
    // and its opening of a new segment, another pass unlinks that segment and the
    // older one the reader still holds open. The reader must not keep the older
    // one across the hole and report the unlinked offsets as damage.
    const io::hooks* previous = io::install_hooks(&retention_on_open_hooks);
    {
        partition_config cfg = small_config(8 * 1024);
        auto w = open(cfg);
        int64_t end = 0;
        while (w->segment_count() < 2) append_standard(*w, end++);
        auto r = open_reader(cfg);
        all_frames(*r);  // the reader holds segments 0 and 1 open
        while (w->segment_count() < 5) append_standard(*w, end++);
        std::vector<std::string> logs = files_with_suffix(dir, ".log");
        ASSERT_EQ(logs.size(), 5u);
        std::vector<uint64_t> sizes;
        for (auto& l : logs) sizes.push_back(read_file_bytes(l).size());
        uint64_t total = w->size_bytes();
        // The first pass deletes segment 0 only; the second (in the hook) 1 and 2.
        w->set_retention(static_cast<int64_t>(total - sizes[0]), -1);
        w->enforce_retention();
        ASSERT_EQ(files_with_suffix(dir, ".log").size(), 4u);
        retention_trigger_path = logs[2];
        retention_trigger_bytes = static_cast<int64_t>(total - sizes[0] - sizes[1] - sizes[2]);
        retention_writer = w.get();
        std::vector<frame_ref> frames;
        EXPECT_NO_THROW(frames = all_frames(*r));
        EXPECT_EQ(retention_writer.load(), nullptr) << "the reader never opened segment 2";
        retention_writer = nullptr;
        int64_t start = w->start_offset();
        EXPECT_EQ(files_with_suffix(dir, ".log").front(), log_path(start));
        ASSERT_FALSE(frames.empty());
        int64_t off = frames.front().header.base_offset;
        EXPECT_GE(off, start);
        for (auto& f : frames) ASSERT_EQ(f.header.base_offset, off++);
        EXPECT_EQ(off, end);
        expect_standard_frames(*r, start, end);
        w->close();
    }
    io::install_hooks(previous);
}

TEST_F(PartitionTest, ReaderKeepsUpWithFastRolls) {
    // Every append rolls: the reader must pick up every new segment, however
    // close together they were created.
    partition_config cfg = small_config(1 << 20);
    cfg.segment_ms = 0;
    auto w = open(cfg);
    append_range(*w, 0, 1);
    auto r = open_reader(cfg);
    const int64_t total = 120;
    std::atomic<bool> done{false};
    std::thread writer([&] {
        append_range(*w, 1, total);
        done = true;
    });
    int64_t seen_end = 0;
    while (!done) {
        auto frames = all_frames(*r);
        ASSERT_FALSE(frames.empty());
        seen_end = frames.back().header.next_offset();
    }
    writer.join();
    EXPECT_GT(seen_end, 0);
    EXPECT_EQ(r->end_offset(), total);
    EXPECT_EQ(r->segment_count(), static_cast<size_t>(total));
    expect_standard_frames(*r, 0, total);
}

TEST_F(PartitionTest, MultiFrameAppendGetsConsecutiveOffsetsAndOneTicket) {
    auto p = open(small_config(4 * 1024, durability_mode::fsync));
    std::vector<std::vector<uint8_t>> payloads;
    std::vector<struct iovec> iov(8);
    std::vector<append_request> reqs(8);
    for (size_t k = 0; k < reqs.size(); ++k) {
        payloads.push_back(make_payload(1200, 100 + k));  // 8 x 1.2 KB: rolls inside the call
        iov[k] = {payloads[k].data(), payloads[k].size()};
        reqs[k].pieces = &iov[k];
        reqs[k].piece_count = 1;
        reqs[k].record_count = static_cast<uint32_t>(k + 1);
        reqs[k].min_timestamp = reqs[k].max_timestamp = static_cast<int64_t>(k);
    }
    auto results = p->append(reqs.data(), reqs.size());
    ASSERT_EQ(results.size(), reqs.size());
    int64_t next = 0;
    for (size_t k = 0; k < results.size(); ++k) {
        EXPECT_EQ(results[k].base_offset, next) << k;
        EXPECT_EQ(results[k].ticket, results.back().ticket) << k;
        next += static_cast<int64_t>(k + 1);
    }
    EXPECT_GT(results.back().ticket, 0u);
    com().wait_durable(results.back().ticket);
    EXPECT_EQ(p->end_offset(), next);
    EXPECT_GT(p->segment_count(), 1u);
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), reqs.size());
    for (size_t k = 0; k < frames.size(); ++k) EXPECT_EQ(frame_payload(frames[k]), payloads[k]);
}

TEST_F(PartitionTest, MultiFrameAppendIsAtomicUnderConcurrency) {
    auto p = open(small_config(16 * 1024));
    const int threads = 4, calls = 40, per_call = 4;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int c = 0; c < calls; ++c) {
                std::vector<std::vector<uint8_t>> payloads;
                std::vector<struct iovec> iov(per_call);
                std::vector<append_request> reqs(per_call);
                for (int k = 0; k < per_call; ++k) {
                    uint64_t tag = (uint64_t(t) << 32) | (uint64_t(c) << 8) | uint64_t(k);
                    payloads.push_back(make_payload(100 + 37 * k, tag));
                }
                for (int k = 0; k < per_call; ++k) {
                    iov[k] = {payloads[k].data(), payloads[k].size()};
                    reqs[k].pieces = &iov[k];
                    reqs[k].piece_count = 1;
                    reqs[k].record_count = 1;
                }
                p->append(reqs.data(), reqs.size());
            }
        });
    for (auto& w : workers) w.join();
    auto frames = all_frames(*p);
    ASSERT_EQ(frames.size(), size_t(threads * calls * per_call));
    // Frames of one call are adjacent and in order: k = 0..3 with the same (thread, call).
    for (size_t i = 0; i < frames.size(); i += per_call) {
        uint64_t tag0;
        std::memcpy(&tag0, frames[i].payload(), 8);
        ASSERT_EQ(tag0 & 0xFF, 0u) << "frame " << i << " does not start a call";
        for (int k = 0; k < per_call; ++k) {
            uint64_t tag;
            std::memcpy(&tag, frames[i + k].payload(), 8);
            ASSERT_EQ(tag, tag0 + uint64_t(k)) << "frame " << i + k << ": another writer's frame inside a call";
            ASSERT_EQ(frame_payload(frames[i + k]), make_payload(100 + 37 * k, tag));
        }
    }
}

TEST_F(PartitionTest, EmptyMultiFrameAppendIsHarmless) {
    // Run in a child: a crash here must not take the whole suite down.
    int rc = run_in_crashing_child([&] {
        auto* c = new committer;
        auto* p = new partition(c, dir, small_config(), false, true);
        auto results = p->append(static_cast<const append_request*>(nullptr), 0);
        if (!results.empty()) ::_exit(4);
        p->close();
    });
    known_bug(bug_empty_multi_append, [&] { EXPECT_EQ(rc, 0) << "append(requests, 0) crashed or failed"; });
}

TEST_F(PartitionTest, GarbledLastFrameAfterACleanCloseIsDamageNotATear) {
    // A clean close acknowledged every frame: a garbled last frame is damage
    // (kept, reported, its offset not reused), not a torn write.
    partition_config cfg = small_config(1 << 20);
    { auto p = open(cfg); append_range(*p, 0, 20); }
    auto frames = walk_log(log_path(0));
    ASSERT_EQ(frames.size(), 20u);
    overwrite(log_path(0), frames[19].position + frames[19].header.payload_offset + 3, {0x55, 0xAA});
    {
        auto p = open(cfg, true);
        const recovery_event* ev = find_event(*p, "damaged");
        ASSERT_NE(ev, nullptr);
        EXPECT_EQ(ev->reason, describe(frame_check::bad_crc));
        EXPECT_EQ(ev->first_offset_dropped, 19);
        EXPECT_EQ(ev->end_offset, 20);
        EXPECT_EQ(find_event(*p, "cut"), nullptr);
        expect_frames_around_damage(*p, 0, 20, {19});
        append_range(*p, 20, 22);
        expect_frames_around_damage(*p, 0, 22, {19});
    }
    // The damaged frame now sits in a sealed segment, whose payloads an open does
    // not CRC-check: reads find it, and the offsets stay as they were.
    for (bool clean : {false, true}) {
        auto p = open(cfg, clean);
        EXPECT_EQ(find_event(*p, "cut"), nullptr);
        expect_frames_around_damage(*p, 0, 22, {19});
    }
}

TEST_F(PartitionTest, ReadsAfterCloseFailCleanly) {
    auto p = open(small_config());
    append_range(*p, 0, 10);
    auto before = all_frames(*p);
    p->close();
    p->close();  // idempotent
    // Either still readable or a tidelog::error; never a crash.
    try {
        auto frames = all_frames(*p);
        EXPECT_LE(frames.size(), 10u);
    } catch (const error& e) {
        SUCCEED() << e.what();
    }
    try {
        p->offset_for_time(0);
        p->size_bytes();
        p->segment_count();
    } catch (const error& e) {
        SUCCEED() << e.what();
    }
    // Frames handed out before the close stay readable.
    EXPECT_EQ(frame_payload(before[3]), make_payload(payload_size(3), 3));
}

TEST_F(PartitionTest, UncleanRecoveryCutsStaleFramesBehindALostSector) {
    // A power cut can lose the sector holding a frame's header while later,
    // never-acknowledged frames reach the disk. Recovery ends the log at those
    // zeros; if the frames behind them stayed, a later append that rewrote only
    // the lost sector (and then lost the rest in the next cut) would bring them
    // back under offsets already given to other records.
    partition_config cfg = small_config(1 << 20);
    crash_after_appending(cfg, 0, 20);
    auto frames = walk_log(log_path(0));
    ASSERT_EQ(frames.size(), 20u);
    overwrite(log_path(0), frames[10].position, std::vector<uint8_t>(frame_header_bytes, 0));
    // The lost sector was never acknowledged: neither the checkpoint nor the
    // published end vouch for it.
    std::remove((dir + "/recovery-checkpoint").c_str());
    std::remove((dir + "/state").c_str());
    {
        auto p = open(cfg, /*clean=*/false);
        EXPECT_EQ(p->end_offset(), 10);
        auto bytes = read_file_bytes(log_path(0));
        for (uint64_t i = frames[10].position; i < bytes.size(); ++i)
            ASSERT_EQ(bytes[i], 0) << "stale byte left at " << i << " past the recovered end";
        append_range(*p, 10, 12);
        expect_standard_frames(*p, 0, 12);
    }
    auto p = open(cfg, /*clean=*/false);
    expect_standard_frames(*p, 0, 12);
}
