// key_hash (MurmurHash3 x64_128, checked against the reference's outputs) and
// offset_map (the cleaner's dedupe map): latest wins, full stops puts, clear.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "errors.h"
#include "key_hash.h"
#include "offset_map.h"

using namespace tidelog;

namespace {

key_hash hash_of(const std::string& s) { return murmur3_128(s.data(), s.size()); }

key_hash key_number(uint64_t i) { return murmur3_128(&i, sizeof i); }

}  // namespace

TEST(KeyHash, MatchesTheReferenceImplementation) {
    // Values of the reference MurmurHash3_x64_128 (seed 0), as the mmh3 package gives them.
    EXPECT_EQ(hash_of(""), (key_hash{0, 0}));
    EXPECT_EQ(hash_of("a"), (key_hash{9607679276477937801ULL, 16624257681780017498ULL}));
    EXPECT_EQ(hash_of("bc"), (key_hash{4832945267908438539ULL, 7076534853104406562ULL}));
    EXPECT_EQ(hash_of("hello world, this is more than 16 bytes!"),
              (key_hash{17224523230623563874ULL, 2880092135532263773ULL}));
}

TEST(KeyHash, ArrowOffsetsVariantsAgreeWithTheScalarHash) {
    std::string data = "keyk2longer-key";
    std::vector<int32_t> off32{0, 3, 5, 5, 15};
    std::vector<int64_t> off64(off32.begin(), off32.end());
    std::vector<key_hash> a(4), b(4);
    hash_binary32_keys(off32.data(), reinterpret_cast<const uint8_t*>(data.data()), 4, a.data());
    hash_binary64_keys(off64.data(), reinterpret_cast<const uint8_t*>(data.data()), 4, b.data());
    for (size_t i = 0; i < 4; ++i) {
        key_hash want = hash_of(data.substr(off32[i], off32[i + 1] - off32[i]));
        EXPECT_EQ(a[i], want);
        EXPECT_EQ(b[i], want);
    }
    int64_t values[3] = {1, -7, 1};
    std::vector<key_hash> f(3);
    hash_fixed_width_keys(reinterpret_cast<const uint8_t*>(values), 3, 8, f.data());
    EXPECT_EQ(f[0], f[2]);
    EXPECT_FALSE(f[0] == f[1]);
}

TEST(OffsetMap, KeepsTheLatestOffsetPerKeyAgainstAModel) {
    offset_map m(24 * 5000);
    std::unordered_map<uint64_t, int64_t> model;
    for (int64_t offset = 0; offset < 20000; ++offset) {
        uint64_t k = static_cast<uint64_t>(offset * 7919) % 3000;
        ASSERT_TRUE(m.put(key_number(k), offset));
        model[k] = offset;
    }
    EXPECT_EQ(m.size(), model.size());
    for (auto& [k, offset] : model) EXPECT_EQ(m.latest(key_number(k)), offset);
    EXPECT_EQ(m.latest(key_number(1u << 30)), -1);
    // An older offset never replaces a newer one.
    m.put(key_number(5), 0);
    EXPECT_EQ(m.latest(key_number(5)), model[5]);
}

TEST(OffsetMap, AFullMapRefusesNewKeysButUpdatesKnownOnes) {
    offset_map m(24 * 100, 0.5);
    EXPECT_EQ(m.slots(), 100u);
    EXPECT_EQ(m.capacity(), 50u);
    std::vector<key_hash> keys;
    std::vector<int64_t> offsets;
    for (uint64_t i = 0; i < 80; ++i) {
        keys.push_back(key_number(i));
        offsets.push_back(static_cast<int64_t>(i));
    }
    std::vector<uint8_t> skip(80, 0);
    skip[3] = 1;  // a null key: not put, does not count against the map
    EXPECT_EQ(m.put_many(keys.data(), offsets.data(), skip.data(), 80), 51u);
    EXPECT_TRUE(m.full());
    EXPECT_EQ(m.latest(keys[3]), -1);
    EXPECT_FALSE(m.put(key_number(1000), 99));
    EXPECT_TRUE(m.put(keys[0], 99));
    EXPECT_EQ(m.latest(keys[0]), 99);
    std::vector<int64_t> out(80);
    m.latest_many(keys.data(), 80, out.data());
    EXPECT_EQ(out[1], 1);
    EXPECT_EQ(out[60], -1);
    m.clear();
    EXPECT_EQ(m.size(), 0u);
    EXPECT_EQ(m.latest(keys[1]), -1);
}

TEST(OffsetMap, RejectsABudgetWithoutRoom) {
    EXPECT_THROW(offset_map(10), error);
    EXPECT_THROW(offset_map(24 * 10, 0.0), error);
    EXPECT_THROW(offset_map(24 * 10, 1.5), error);
}

TEST(OffsetMap, GrowsFromSmallToItsBudgetKeepingEveryKey) {
    offset_map m(24 * 100000, 0.8, 16);
    EXPECT_EQ(m.slots(), 16u);
    EXPECT_EQ(m.max_slots(), 100000u);
    uint64_t n = 0;
    while (m.put(key_number(n), static_cast<int64_t>(n) * 3)) ++n;
    EXPECT_EQ(n, m.capacity());  // grew up to the budget, then refused
    EXPECT_EQ(m.slots(), 100000u);
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(m.latest(key_number(i)), static_cast<int64_t>(i) * 3);
    m.clear();
    EXPECT_EQ(m.slots(), 16u);
    EXPECT_EQ(m.size(), 0u);
    EXPECT_EQ(m.latest(key_number(1)), -1);
}
