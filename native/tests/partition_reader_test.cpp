// partition_reader: a cursor that reads every frame once, in order, across
// rolls, retention, damage (raised or skipped, as frames()), read-only handles
// and concurrent appends.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "committer.h"
#include "partition.h"
#include "partition_reader.h"
#include "test_util.h"

using namespace tidelog;
using namespace tidelog_test;

namespace {

std::vector<uint8_t> payload_of(int64_t off) {
    return make_payload(1 + static_cast<size_t>(off * 131 % 700), static_cast<uint64_t>(off));
}

void append_range(partition& p, int64_t from, int64_t to) {
    for (int64_t off = from; off < to; ++off) ASSERT_EQ(append_payload(p, payload_of(off)).base_offset, off);
}

// Reads until the cursor is at the end; checks offsets and payloads; returns the offsets read.
std::vector<int64_t> read_all(partition_reader& r, size_t per_call = 3, std::vector<damaged_range>* skipped = nullptr) {
    std::vector<int64_t> seen;
    while (true) {
        std::vector<frame_ref> out;
        int64_t before = r.position();
        if (r.read(per_call, UINT64_MAX, &out, skipped) == 0 && r.position() == before) break;  // the end
        for (auto& f : out) {
            EXPECT_EQ(frame_payload(f), payload_of(f.header.base_offset)) << f.header.base_offset;
            seen.push_back(f.header.base_offset);
        }
    }
    return seen;
}

std::vector<int64_t> range(int64_t from, int64_t to) {
    std::vector<int64_t> out;
    for (int64_t o = from; o < to; ++o) out.push_back(o);
    return out;
}

class PartitionReaderTest : public ::testing::Test {
protected:
    temp_dir tmp;
    std::string dir = tmp.sub("topics/t/0");
    committer com;
    std::unique_ptr<partition> open(const partition_config& cfg) {
        return std::make_unique<partition>(&com, dir, cfg, false, true);
    }
    std::unique_ptr<partition> open_reader(const partition_config& cfg) {
        return std::make_unique<partition>(nullptr, dir, cfg, true, true);
    }
};

}  // namespace

TEST_F(PartitionReaderTest, ReadsEveryFrameOnceAcrossRolls) {
    auto p = open(small_config(8 * 1024));
    append_range(*p, 0, 120);
    ASSERT_GT(p->segment_count(), 3u);
    partition_reader r(*p, 0);
    EXPECT_EQ(read_all(r), range(0, 120));
    EXPECT_EQ(r.position(), 120);
    // At the tail: nothing, then what is appended.
    std::vector<frame_ref> out;
    EXPECT_EQ(r.read(10, UINT64_MAX, &out), 0u);
    append_range(*p, 120, 130);
    EXPECT_EQ(read_all(r, 100), range(120, 130));
}

TEST_F(PartitionReaderTest, SeekAndByteLimit) {
    auto p = open(small_config(8 * 1024));
    append_range(*p, 0, 60);
    partition_reader r(*p, 0);
    r.seek(37);
    std::vector<frame_ref> out;
    ASSERT_EQ(r.read(1, UINT64_MAX, &out), 1u);
    EXPECT_EQ(out[0].header.base_offset, 37);
    out.clear();
    EXPECT_EQ(r.read(100, 1, &out), 1u);  // at least one frame, however small max_bytes
    EXPECT_EQ(out[0].header.base_offset, 38);
    r.seek(5);
    EXPECT_EQ(read_all(r, 7), range(5, 60));
}

TEST_F(PartitionReaderTest, FsyncModeReturnsOnlyDurableFrames) {
    auto p = open(small_config(8 * 1024, durability_mode::fsync));
    partition_reader r(*p, 0);
    append_range(*p, 0, 5);
    std::vector<frame_ref> out;
    r.read(100, UINT64_MAX, &out);
    for (auto& f : out) EXPECT_LT(f.header.base_offset, p->end_offset());
    com.flush_all();
    read_all(r);
    EXPECT_EQ(r.position(), p->end_offset());
}

TEST_F(PartitionReaderTest, RetentionMovesACursorInARemovedSegmentToTheStart) {
    partition_config cfg = small_config(8 * 1024);
    {
        auto w = open(cfg);
        append_range(*w, 0, 150);
    }
    cfg.retention_bytes = 16 * 1024;
    auto p = open(cfg);
    partition_reader r(*p, 0);
    std::vector<frame_ref> out;
    ASSERT_EQ(r.read(2, UINT64_MAX, &out), 2u);
    p->enforce_retention();
    int64_t start = p->start_offset();
    ASSERT_GT(start, 2);
    EXPECT_EQ(read_all(r), range(start, 150));
}

TEST_F(PartitionReaderTest, DamageRaisesOrIsSkippedAsFramesDoes) {
    partition_config cfg = small_config(1 << 20);
    {
        auto w = open(cfg);
        append_range(*w, 0, 30);
    }
    // Garble the payload of the frame of offset 20.
    {
        auto w = open(cfg);
        auto f = w->frames(20, 21, INT64_MIN, INT64_MAX, 1);
        ASSERT_EQ(f.size(), 1u);
        overwrite(w->segment_holding(20)->log_path(), f[0].position + f[0].header.payload_offset, {0xDE, 0xAD});
    }
    auto p = open(cfg);
    partition_reader r(*p, 0);
    std::vector<frame_ref> out;
    while (r.position() < 20) ASSERT_GT(r.read(4, UINT64_MAX, &out), 0u);
    EXPECT_EQ(r.position(), 20);
    EXPECT_THROW(r.read(4, UINT64_MAX, &out), error);
    EXPECT_THROW(p->frames(20, 30, INT64_MIN, INT64_MAX, 4), error);
    std::vector<damaged_range> skipped;
    out.clear();
    r.read(4, UINT64_MAX, &out, &skipped);
    ASSERT_EQ(skipped.size(), 1u);
    EXPECT_EQ(skipped[0].start_offset, 20);
    EXPECT_EQ(skipped[0].end_offset, 21);
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out[0].header.base_offset, 21);
    EXPECT_EQ(read_all(r, 4, &skipped), range(21 + static_cast<int64_t>(out.size()), 30));
}

TEST_F(PartitionReaderTest, ReadOnlyHandleFollowsTheWriterAcrossRollsAndRetention) {
    partition_config cfg = small_config(8 * 1024);
    auto w = open(cfg);
    append_range(*w, 0, 10);
    auto ro = open_reader(cfg);
    partition_reader r(*ro, 0);
    EXPECT_EQ(read_all(r), range(0, 10));
    for (int64_t at = 10; at < 200; at += 19) {
        append_range(*w, at, at + 19);
        EXPECT_EQ(read_all(r, 5), range(at, at + 19));
    }
    w->close();
    w.reset();
    partition_config retain = cfg;
    retain.retention_bytes = 16 * 1024;
    w = open(retain);
    w->enforce_retention();
    int64_t start = w->start_offset();
    ASSERT_GT(start, 0);
    r.seek(0);
    EXPECT_EQ(read_all(r), range(start, 200));
}

// held_first: each read tries read_held() first, as the consumer's fetch does.
static void read_concurrent_appends_in_order(partition& p, partition& reading, bool held_first) {
    constexpr int64_t total = 3000;
    std::thread writer([&] { append_range(p, 0, total); });
    partition_reader r(reading, 0);
    int64_t next = 0;
    while (next < total) {
        std::vector<frame_ref> out;
        if (!held_first || r.read_held(16, UINT64_MAX, &out) == 0) r.read(16, UINT64_MAX, &out);
        for (auto& f : out) {
            ASSERT_EQ(f.header.base_offset, next);
            ASSERT_EQ(frame_payload(f), payload_of(next));
            ++next;
        }
        if (out.empty()) reading.wait_for_data(next, 1'000'000);
    }
    writer.join();
}

TEST_F(PartitionReaderTest, ConcurrentAppendsAreReadInOrder) {
    auto p = open(small_config(16 * 1024));
    read_concurrent_appends_in_order(*p, *p, false);
}

TEST_F(PartitionReaderTest, ConcurrentAppendsAreReadInOrderHeldFirst) {
    auto p = open(small_config(16 * 1024));
    read_concurrent_appends_in_order(*p, *p, true);
}

TEST_F(PartitionReaderTest, ConcurrentAppendsAreReadInOrderHeldFirstByAReadOnlyHandle) {
    auto p = open(small_config(16 * 1024));
    auto ro = open_reader(small_config(16 * 1024));
    read_concurrent_appends_in_order(*p, *ro, true);
}

TEST_F(PartitionReaderTest, AFrameReachingIntoTheNextSegmentIsDamageAsFramesSays) {
    // The last frame of the first segment claims (with a valid CRC) offsets that
    // the next segment holds. frames() names it damage (its offsets end past the
    // segment's); a cursor walking on in that segment must not return it and then
    // skip the next segment's first frames.
    partition_config cfg = small_config(8 * 1024);
    const int64_t end = 40;
    { auto w = open(cfg); append_range(*w, 0, end); }
    auto logs = files_with_suffix(dir, ".log");
    ASSERT_GE(logs.size(), 2u);
    auto bytes = read_file_bytes(logs[0]);
    uint64_t pos = 0, last = 0;
    while (pos < bytes.size() && check_header(bytes.data() + pos, bytes.size() - pos) == frame_check::ok) {
        last = pos;
        pos += load_header(bytes.data() + pos).frame_length();
    }
    frame_header h = load_header(bytes.data() + last);
    ASSERT_EQ(h.version, 2u);
    int64_t hit = h.base_offset;
    h.record_count = 3;
    h.last_offset_delta = 2;
    h.crc = frame_crc(h, bytes.data() + last + h.payload_offset);
    std::vector<uint8_t> header(frame_header_bytes);
    std::memcpy(header.data(), &h, sizeof h);
    overwrite(logs[0], last, header);

    auto p = open(cfg);
    std::vector<damaged_range> from_frames;
    auto all = p->frames(0, end, INT64_MIN, INT64_MAX, SIZE_MAX, &from_frames);
    ASSERT_EQ(from_frames.size(), 1u);
    EXPECT_EQ(from_frames[0].start_offset, hit);
    EXPECT_EQ(from_frames[0].end_offset, hit + 1);
    std::vector<int64_t> expected = range(0, hit);
    for (int64_t o = hit + 1; o < end; ++o) expected.push_back(o);
    ASSERT_EQ(all.size(), expected.size());
    partition_reader r(*p, 0);
    std::vector<damaged_range> skipped;
    EXPECT_EQ(read_all(r, 3, &skipped), expected);
    ASSERT_EQ(skipped.size(), 1u);
    EXPECT_EQ(skipped[0].start_offset, hit);
    EXPECT_EQ(skipped[0].end_offset, hit + 1);
}

namespace {

// Appends frames of exactly these lengths (payload + 64-byte header, 8-aligned lengths).
void append_frames_of(partition& p, const std::vector<uint64_t>& frame_lengths, int64_t first_offset) {
    int64_t off = first_offset;
    for (uint64_t len : frame_lengths) {
        ASSERT_EQ(len % 8, 0u);
        ASSERT_EQ(append_payload(p, make_payload(len - frame_header_bytes, static_cast<uint64_t>(off))).base_offset,
                  off);
        ++off;
    }
}

}  // namespace

// A read-only cursor reads frames without asking the file its size while they
// end in the 4 KiB block where its last read ended. When the writer rolls, the
// old segment is trimmed from its preallocated 1 MiB to its last frame: the
// cursor's mapping then reaches past the end of the file, and a read past the
// last page that holds file bytes would be SIGBUS. Segments that end exactly on
// a block boundary, and a header's length before one, must go through the file's
// size and on into the next segment.
TEST_F(PartitionReaderTest, ReadOnlyCursorReadsPastARollThatEndsNearABlockBoundary) {
    for (uint64_t segment_end : {uint64_t{8192}, uint64_t{8192 - 32}, uint64_t{8192 - 64}, uint64_t{8192 - 200}}) {
        SCOPED_TRACE(segment_end);
        temp_dir t;
        std::string d = t.sub("topics/t/0");
        // The roll reserves body_alignment bytes on top of a frame: the last frame
        // fits, a 1 KiB one after it does not.
        partition_config cfg = small_config(segment_end + 2 * body_alignment);
        auto w = std::make_unique<partition>(&com, d, cfg, false, true);
        auto ro = std::make_unique<partition>(nullptr, d, cfg, true, true);
        // The first segment: 1 KiB frames, the last one shorter, ending at segment_end.
        std::vector<uint64_t> first(segment_end / 1024, 1024);
        if (segment_end % 1024) first.push_back(segment_end % 1024);
        append_frames_of(*w, first, 0);
        partition_reader r(*ro, 0);
        std::vector<frame_ref> out;
        while (r.position() < static_cast<int64_t>(first.size())) ASSERT_GT(r.read(1, UINT64_MAX, &out), 0u);
        ASSERT_EQ(out.back().position + out.back().header.frame_length(), segment_end);
        // The next frame does not fit: the writer rolls (trimming the first
        // segment to segment_end) and writes it in the second segment.
        append_frames_of(*w, {1024, 512, 264}, static_cast<int64_t>(first.size()));
        ASSERT_EQ(files_with_suffix(d, ".log").size(), 2u);
        out.clear();
        while (r.position() < static_cast<int64_t>(first.size()) + 3) ASSERT_GT(r.read(1, UINT64_MAX, &out), 0u);
        ASSERT_EQ(out.size(), 3u);
        EXPECT_EQ(out[0].header.base_offset, static_cast<int64_t>(first.size()));
        EXPECT_EQ(out[0].position, 0u);  // from the second segment
        EXPECT_EQ(out[2].header.frame_length(), 264u);
    }
}

// Frames that end inside the block are read from the mapping; the cursor still
// returns every frame once, in order, with its bytes, as a writer appends.
TEST_F(PartitionReaderTest, ReadOnlyCursorAtTheTailReadsEveryFrameOnce) {
    auto w = open(small_config(64 * 1024));
    auto ro = open_reader(small_config(64 * 1024));
    partition_reader r(*ro, 0);
    for (int64_t off = 0; off < 400; ++off) {
        append_range(*w, off, off + 1);
        std::vector<frame_ref> out;
        ASSERT_EQ(r.read(8, UINT64_MAX, &out), 1u) << off;
        EXPECT_EQ(out[0].header.base_offset, off);
        EXPECT_EQ(frame_payload(out[0]), payload_of(off));
        EXPECT_EQ(r.read(8, UINT64_MAX, &out), 0u);  // nothing more yet
    }
}

// Appends one frame at a time and reads each with read_held() first, then
// read() when read_held() declines; returns how many frames read_held() gave.
static size_t read_each_held_first(partition& w, partition_reader& r, int64_t from, int64_t to) {
    size_t held = 0;
    for (int64_t off = from; off < to; ++off) {
        append_range(w, off, off + 1);
        std::vector<frame_ref> out;
        int64_t before = r.position();
        size_t n = r.read_held(8, UINT64_MAX, &out);
        if (n == 0) {
            EXPECT_TRUE(out.empty()) << off;
            EXPECT_EQ(r.position(), before) << off;  // declined: the cursor did not move
            n = r.read(8, UINT64_MAX, &out);
        } else {
            ++held;
        }
        EXPECT_EQ(n, 1u) << off;
        if (out.size() != 1) return held;
        EXPECT_EQ(out[0].header.base_offset, off);
        EXPECT_EQ(frame_payload(out[0]), payload_of(off));
        EXPECT_EQ(r.position(), off + 1);
        out.clear();
        EXPECT_EQ(r.read_held(8, UINT64_MAX, &out), 0u);  // at the tail
        EXPECT_EQ(r.read(8, UINT64_MAX, &out), 0u);
    }
    return held;
}

TEST_F(PartitionReaderTest, ReadHeldGivesTheFramesReadWouldAndDeclinesTheRest) {
    auto w = open(small_config(16 * 1024));  // rolls every few dozen frames: each roll is declined
    partition_reader r(*w, 0);
    std::vector<frame_ref> out;
    EXPECT_EQ(r.read_held(8, UINT64_MAX, &out), 0u);  // no segment held yet
    size_t held = read_each_held_first(*w, r, 0, 300);
    EXPECT_GT(held, 150u);  // most reads at the tail of a read-write handle need no I/O
}

TEST_F(PartitionReaderTest, ReadHeldOnAReadOnlyHandleStaysInItsBlock) {
    auto w = open(small_config(64 * 1024));
    auto ro = open_reader(small_config(64 * 1024));
    partition_reader r(*ro, 0);
    size_t held = read_each_held_first(*w, r, 0, 300);
    EXPECT_GT(held, 50u);  // frames ending in the block where the last read ended
    EXPECT_LT(held, 300u);  // a frame crossing a block goes through read(), which asks the file
}

TEST_F(PartitionReaderTest, ReadHeldDeclinesDamageAndARemovedSegment) {
    partition_config cfg = small_config(8 * 1024);
    {
        auto w = open(cfg);
        append_range(*w, 0, 30);
        auto f = w->frames(20, 21, INT64_MIN, INT64_MAX, 1);
        ASSERT_EQ(f.size(), 1u);
        overwrite(w->segment_holding(20)->log_path(), f[0].position + f[0].header.payload_offset, {0xDE, 0xAD});
    }
    partition_config retain = cfg;
    retain.retention_bytes = 8 * 1024;
    auto p = open(retain);
    partition_reader r(*p, 0);
    std::vector<frame_ref> out;
    while (r.position() < 20) ASSERT_GT(r.read(1, UINT64_MAX, &out), 0u);
    out.clear();
    EXPECT_EQ(r.read_held(4, UINT64_MAX, &out), 0u);  // the CRC fails: read() judges
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(r.position(), 20);
    EXPECT_THROW(r.read(4, UINT64_MAX, &out), error);
    // Past the damage, then retention removes the segment the cursor holds.
    std::vector<damaged_range> skipped;
    r.read(1, UINT64_MAX, &out, &skipped);
    ASSERT_EQ(skipped.size(), 1u);
    append_range(*p, 30, 120);
    p->enforce_retention();
    ASSERT_GT(p->start_offset(), r.position());
    out.clear();
    EXPECT_EQ(r.read_held(4, UINT64_MAX, &out), 0u);  // read() moves the cursor to the start
    int64_t before = r.position();
    ASSERT_GT(r.read(4, UINT64_MAX, &out), 0u);
    EXPECT_GT(r.position(), before);
    EXPECT_EQ(out[0].header.base_offset, p->start_offset());
}
