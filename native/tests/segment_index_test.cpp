// segment_index: sparse offset/time entries, persistence, truncation, validation.
#include <gtest/gtest.h>

#include <climits>
#include <fstream>
#include <random>

#include "segment_index.h"
#include "test_util.h"
#include "units.h"

using namespace tidelog;
using namespace tidelog_test;

namespace {

class SegmentIndexTest : public ::testing::Test {
protected:
    temp_dir tmp;
    std::string base() const { return tmp.sub("00000000000000000000"); }
    std::string offset_path() const { return base() + ".index"; }
    std::string time_path() const { return base() + ".timeindex"; }
};

// Feeds `frames` frames of `frame_bytes` each with one record and max timestamp
// 1000 + 10 * i; returns the positions that received an offset entry.
std::vector<uint32_t> feed(segment_index& idx, int frames, uint32_t frame_bytes, uint32_t first_rel = 0,
                           uint32_t first_pos = 0) {
    std::vector<uint32_t> indexed;
    uint64_t since = index_interval_bytes;  // mirror of the rule: first frame always indexed
    for (int i = 0; i < frames; ++i) {
        uint32_t pos = first_pos + static_cast<uint32_t>(i) * frame_bytes;
        if ((first_pos == 0 && i == 0) || since >= index_interval_bytes) {
            indexed.push_back(pos);
            since = 0;
        }
        since += frame_bytes;
        idx.on_frame(first_rel + static_cast<uint32_t>(i), pos, frame_bytes, 1000 + 10 * (first_rel + i));
    }
    return indexed;
}

}  // namespace

TEST_F(SegmentIndexTest, EmptyIndex) {
    segment_index idx(base(), false);
    EXPECT_TRUE(fs::exists(offset_path()));
    EXPECT_TRUE(fs::exists(time_path()));
    EXPECT_EQ(idx.entry_for_offset(0).position, 0u);
    EXPECT_EQ(idx.entry_for_offset(UINT32_MAX).position, 0u);
    EXPECT_EQ(idx.entry_for_time(INT64_MAX).position, 0u);
    EXPECT_EQ(idx.max_timestamp(), INT64_MIN);
    EXPECT_EQ(idx.last_position(), 0u);
    EXPECT_TRUE(idx.consistent_with(0));
    EXPECT_TRUE(idx.consistent_with(1000));
}

TEST_F(SegmentIndexTest, EntriesEveryIntervalBytes) {
    segment_index idx(base(), false);
    const uint32_t frame_bytes = 1000;
    auto indexed = feed(idx, 50, frame_bytes);
    // 4 KiB interval with 1000-byte frames: an entry every 5th frame.
    ASSERT_EQ(indexed.size(), 10u);
    for (size_t k = 0; k < indexed.size(); ++k) EXPECT_EQ(indexed[k], k * 5 * frame_bytes);
    EXPECT_EQ(file_size(offset_path()), indexed.size() * sizeof(offset_index_entry));
    EXPECT_EQ(file_size(time_path()), indexed.size() * sizeof(time_index_entry));
    EXPECT_EQ(idx.last_position(), indexed.back());
    EXPECT_EQ(idx.max_timestamp(), 1000 + 10 * 49);

    for (uint32_t rel = 0; rel < 60; ++rel) {
        offset_index_entry e = idx.entry_for_offset(rel);
        uint32_t expected_rel = std::min<uint32_t>(rel / 5 * 5, 45);
        EXPECT_EQ(e.relative_offset, expected_rel) << rel;
        EXPECT_EQ(e.position, expected_rel * frame_bytes) << rel;
    }
    EXPECT_TRUE(idx.consistent_with(50 * frame_bytes));
    EXPECT_FALSE(idx.consistent_with(indexed.back()));  // an entry at the end of valid bytes
}

TEST_F(SegmentIndexTest, EntryForTimeNeverSkipsAMatchingFrame) {
    segment_index idx(base(), false);
    const uint32_t frame_bytes = 1000;
    feed(idx, 50, frame_bytes);
    // Frame i has max timestamp 1000 + 10 i: the first frame reaching ts is ceil((ts-1000)/10).
    for (int64_t ts = 900; ts <= 1600; ts += 3) {
        offset_index_entry e = idx.entry_for_time(ts);
        int64_t first_match = ts <= 1000 ? 0 : (ts - 1000 + 9) / 10;
        EXPECT_LE(static_cast<int64_t>(e.relative_offset), first_match) << ts;
        EXPECT_EQ(e.position, e.relative_offset * frame_bytes) << ts;
        if (first_match >= 15 && first_match < 50) {  // close: at most two intervals behind, plus the step back
            EXPECT_GE(static_cast<int64_t>(e.relative_offset), first_match - 15) << ts;
        }
    }
}

TEST_F(SegmentIndexTest, PersistsAndReloads) {
    {
        segment_index idx(base(), false);
        feed(idx, 30, 1500);
        idx.sync();
        idx.close();
    }
    for (bool read_only : {false, true}) {
        segment_index idx(base(), read_only);
        EXPECT_TRUE(idx.consistent_with(30 * 1500));
        // 1500-byte frames: entries at frames 0, 3, 6, ... (4500 >= 4096).
        EXPECT_EQ(idx.entry_for_offset(4).relative_offset, 3u);
        EXPECT_EQ(idx.entry_for_offset(4).position, 3u * 1500);
        EXPECT_EQ(idx.entry_for_offset(29).relative_offset, 27u);
        EXPECT_EQ(idx.max_timestamp(), 1000 + 10 * 27);  // the last entry's running max
    }
}

TEST_F(SegmentIndexTest, ReaderRefreshSeesWriterEntries) {
    segment_index writer(base(), false);
    feed(writer, 10, 1000);
    segment_index reader(base(), true);
    EXPECT_EQ(reader.entry_for_offset(100).relative_offset, 5u);
    feed(writer, 20, 1000, 10, 10 * 1000);
    EXPECT_EQ(reader.entry_for_offset(100).relative_offset, 5u);  // not yet refreshed
    reader.refresh();
    EXPECT_EQ(reader.entry_for_offset(100).relative_offset, writer.entry_for_offset(100).relative_offset);
    EXPECT_EQ(reader.max_timestamp(), writer.last_time_entry().relative_offset * 10 + 1000);
}

TEST_F(SegmentIndexTest, ReadOnlyWithoutFilesIsEmpty) {
    segment_index idx(base(), true);
    EXPECT_FALSE(fs::exists(offset_path()));
    EXPECT_EQ(idx.entry_for_offset(5).position, 0u);
    idx.refresh();
    idx.sync();
    EXPECT_EQ(idx.max_timestamp(), INT64_MIN);
}

TEST_F(SegmentIndexTest, TruncateFromDropsEntriesInMemoryAndOnDisk) {
    segment_index idx(base(), false);
    feed(idx, 50, 1000);  // entries at 0, 5000, ..., 45000
    idx.truncate_from(20000);
    EXPECT_EQ(idx.entry_for_offset(100).position, 15000u);
    EXPECT_EQ(file_size(offset_path()), 4 * sizeof(offset_index_entry));
    EXPECT_EQ(file_size(time_path()), 4 * sizeof(time_index_entry));
    EXPECT_EQ(idx.max_timestamp(), 1000 + 10 * 15);
    EXPECT_TRUE(idx.consistent_with(20000));
    // The next frame gets an entry right away.
    idx.on_frame(20, 20000, 1000, 5000);
    EXPECT_EQ(idx.entry_for_offset(100).position, 20000u);
    EXPECT_EQ(idx.max_timestamp(), 5000);

    idx.reset();
    EXPECT_EQ(file_size(offset_path()), 0u);
    EXPECT_EQ(file_size(time_path()), 0u);
    EXPECT_EQ(idx.entry_for_offset(100).position, 0u);
    EXPECT_EQ(idx.max_timestamp(), INT64_MIN);
}

TEST_F(SegmentIndexTest, SealRecordsTheTrueMaxTimestamp) {
    segment_index idx(base(), false);
    feed(idx, 7, 1000);  // entries at frames 0 and 5; max ts of frame 6 is 1060
    // 1055: the first entry reaching it is the seal's (1060); the walk starts two entries back.
    EXPECT_EQ(idx.entry_for_time(1055).relative_offset, 0u);
    idx.seal(6, 6000, 1060);
    EXPECT_EQ(idx.max_timestamp(), 1060);
    EXPECT_EQ(file_size(time_path()), 3 * sizeof(time_index_entry));
    EXPECT_EQ(idx.entry_for_time(2000).relative_offset, 5u);  // everything is older: one entry before the last
    // Sealing again adds nothing.
    idx.seal(6, 6000, 1060);
    EXPECT_EQ(file_size(time_path()), 3 * sizeof(time_index_entry));
    EXPECT_TRUE(idx.consistent_with(7000));
    segment_index again(base(), true);
    EXPECT_EQ(again.max_timestamp(), 1060);
}

TEST_F(SegmentIndexTest, TimeEntriesOnlyWhenTheRunningMaxGrows) {
    segment_index idx(base(), false);
    // Frame timestamps go down: the running max stays at the first one.
    for (uint32_t i = 0; i < 20; ++i) idx.on_frame(i, i * 5000, 5000, 10000 - i);
    EXPECT_EQ(file_size(offset_path()), 20 * sizeof(offset_index_entry));
    EXPECT_EQ(file_size(time_path()), 1 * sizeof(time_index_entry));
    EXPECT_EQ(idx.max_timestamp(), 10000);
    EXPECT_TRUE(idx.consistent_with(100000));
}

TEST_F(SegmentIndexTest, GarbageFilesAreInconsistent) {
    {
        std::mt19937_64 rng(1);
        std::vector<uint8_t> junk(8 * 64);
        for (auto& b : junk) b = static_cast<uint8_t>(rng());
        std::ofstream(offset_path(), std::ios::binary).write(reinterpret_cast<char*>(junk.data()), junk.size());
        std::ofstream(time_path(), std::ios::binary).write(reinterpret_cast<char*>(junk.data()), junk.size());
    }
    segment_index idx(base(), false);
    EXPECT_FALSE(idx.consistent_with(1 << 20));
    idx.reset();
    EXPECT_TRUE(idx.consistent_with(1 << 20));
}

TEST_F(SegmentIndexTest, PartialTrailingEntryIsIgnored) {
    {
        segment_index idx(base(), false);
        feed(idx, 20, 1000);  // 4 entries
    }
    truncate_file(offset_path(), 4 * sizeof(offset_index_entry) - 3);
    truncate_file(time_path(), 4 * sizeof(time_index_entry) - 5);
    segment_index idx(base(), false);
    EXPECT_EQ(idx.entry_for_offset(100).relative_offset, 10u);
    EXPECT_TRUE(idx.consistent_with(20000));
}

TEST_F(SegmentIndexTest, ResumeSpacesTheNextEntry) {
    segment_index idx(base(), false);
    feed(idx, 3, 1000);  // one entry, 3000 bytes since
    segment_index again(base(), false);
    again.resume(3000, 1020);
    again.on_frame(3, 3000, 1000, 1030);  // 3000 < 4096: no entry
    EXPECT_EQ(again.entry_for_offset(3).relative_offset, 0u);
    again.on_frame(4, 4000, 1000, 1040);  // 4000 < 4096: no entry
    again.on_frame(5, 5000, 1000, 1050);  // 5000 >= 4096: entry
    EXPECT_EQ(again.entry_for_offset(5).relative_offset, 5u);
    EXPECT_EQ(again.max_timestamp(), 1050);
}
