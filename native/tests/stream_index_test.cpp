// stream_index: versions in order, deletes, event-id lookups, and the snapshot
// round trip; a snapshot of another store, torn, or with a flipped bit is refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "errors.h"
#include "stream_index.h"

using namespace tidelog;

namespace {
stream_index sample() {
    stream_index idx;
    idx.add("a", 0, 10, 0);
    idx.add("b", 1, 11, 0);
    idx.add("a", 2, 12, 1);
    idx.soft_delete("b", 1, 3);
    idx.add("b", 4, 14, 1);
    idx.add("c", 5, 15, 0);
    idx.tombstone("c", 6);
    idx.add("$tracking", 7, 17, 0);
    return idx;
}
}  // namespace

TEST(StreamIndex, VersionsDeletesAndLookups) {
    stream_index idx = sample();
    EXPECT_EQ(idx.through(), 8);
    EXPECT_EQ(idx.event_count(), 6u);
    EXPECT_EQ(idx.last_version("a"), 1);
    EXPECT_EQ(idx.last_version("nope"), -1);
    EXPECT_EQ(idx.find("a")->positions, (std::vector<int64_t>{0, 2}));
    EXPECT_EQ(idx.find("b")->truncate_before, 1);
    EXPECT_TRUE(idx.find("c")->tombstoned);
    EXPECT_EQ(idx.find_event("a", 12, 0), 1);
    EXPECT_EQ(idx.find_event("a", 12, 2), -1);
    EXPECT_EQ(idx.find_event("a", 99, 0), -1);
    EXPECT_EQ(idx.live_streams("", false), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(idx.live_streams("", true), (std::vector<std::string>{"$tracking", "a", "b"}));
    EXPECT_EQ(idx.live_streams("b", false), (std::vector<std::string>{"b"}));
    EXPECT_THROW(idx.add("a", 7, 1, 2), error);  // positions only grow
    idx.advance(20);
    EXPECT_EQ(idx.through(), 20);
    idx.advance(3);
    EXPECT_EQ(idx.through(), 20);
}

TEST(StreamIndex, VersionsLostToDamageStayTaken) {
    stream_index idx;
    idx.add("s", 0, 1, 0);
    idx.add("s", 5, 2, 3);  // versions 1 and 2 were in damaged bytes
    EXPECT_EQ(idx.find("s")->positions, (std::vector<int64_t>{0, -1, -1, 5}));
    EXPECT_EQ(idx.last_version("s"), 3);
    idx.add("s", 6, 3, 3);  // a second row claiming version 3: the first keeps it
    EXPECT_EQ(idx.find("s")->positions.back(), 5);
    EXPECT_EQ(idx.through(), 7);
    std::string bytes = idx.serialize(1);
    stream_index back;
    ASSERT_TRUE(back.parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 1));
    EXPECT_EQ(back.find("s")->positions, (std::vector<int64_t>{0, -1, -1, 5}));
}

TEST(StreamIndex, SnapshotRoundTripAndRefusals) {
    stream_index idx = sample();
    std::string bytes = idx.serialize(42);
    stream_index back;
    ASSERT_TRUE(back.parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 42));
    EXPECT_EQ(back.serialize(42), bytes);
    EXPECT_EQ(back.through(), 8);
    EXPECT_EQ(back.live_streams("", true), idx.live_streams("", true));
    EXPECT_FALSE(back.parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 43));  // another store
    EXPECT_EQ(back.through(), 0);
    for (size_t cut : {size_t{0}, size_t{10}, stream_index::snapshot_header_bytes, bytes.size() - 1})
        EXPECT_FALSE(back.parse(reinterpret_cast<const uint8_t*>(bytes.data()), cut, 42)) << cut;
    for (size_t at = 0; at < bytes.size(); ++at) {
        std::string flipped = bytes;
        flipped[at] ^= 0x01;
        EXPECT_FALSE(back.parse(reinterpret_cast<const uint8_t*>(flipped.data()), flipped.size(), 42)) << at;
    }
}

TEST(StreamIndex, SaveAndLoad) {
    std::string dir = ::testing::TempDir() + "/stream_index_test";
    std::string path = dir + "-snapshot";
    stream_index idx = sample();
    idx.save(path, 7);
    stream_index back;
    ASSERT_TRUE(back.load(path, 7));
    EXPECT_EQ(back.serialize(7), idx.serialize(7));
    EXPECT_FALSE(back.load(path + ".missing", 7));
    EXPECT_FALSE(back.load(path, 8));
}
