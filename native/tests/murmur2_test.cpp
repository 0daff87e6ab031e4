// murmur2 / Kafka's default partitioner: Kafka's UtilsTest vectors, the
// fixed-width (IntegerSerializer/LongSerializer) and Arrow-offsets variants.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "murmur2.h"

using namespace tidelog;

namespace {

int32_t murmur2_of(const std::string& s) { return murmur2(s.data(), s.size()); }

// Kafka's Utils.toPositive(murmur2(key)) % numPartitions, spelled out.
int32_t kafka_reference_partition(int32_t hash, int32_t partitions) {
    return static_cast<int32_t>((hash & 0x7fffffff) % partitions);
}

std::vector<uint8_t> big_endian32(int32_t v) {
    uint32_t u = static_cast<uint32_t>(v);
    return {static_cast<uint8_t>(u >> 24), static_cast<uint8_t>(u >> 16), static_cast<uint8_t>(u >> 8),
            static_cast<uint8_t>(u)};
}

std::vector<uint8_t> big_endian64(int64_t v) {
    uint64_t u = static_cast<uint64_t>(v);
    std::vector<uint8_t> out(8);
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(u >> (56 - 8 * i));
    return out;
}

}  // namespace

// org.apache.kafka.common.utils.UtilsTest#testMurmur2
TEST(Murmur2, KafkaUtilsTestVectors) {
    EXPECT_EQ(murmur2_of("21"), -973932308);
    EXPECT_EQ(murmur2_of("foobar"), -790332482);
    EXPECT_EQ(murmur2_of("a-little-bit-long-string"), -985981536);
    EXPECT_EQ(murmur2_of("a-little-bit-longer-string"), -1486304829);
    EXPECT_EQ(murmur2_of("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
    EXPECT_EQ(murmur2_of("abc"), 479470107);
}

TEST(Murmur2, AllTailLengthsAreDeterministicAndDistinct) {
    // Lengths 0..9 cover every tail (length % 4) case at least twice.
    std::string s = "0123456789";
    std::vector<int32_t> seen;
    for (size_t n = 0; n <= s.size(); ++n) {
        int32_t h = murmur2(s.data(), n);
        EXPECT_EQ(h, murmur2(s.data(), n));
        for (int32_t prev : seen) EXPECT_NE(h, prev) << "length " << n;
        seen.push_back(h);
    }
    // Empty key: seed ^ 0 mixed, a fixed value that must not depend on the pointer.
    EXPECT_EQ(murmur2(nullptr, 0), murmur2(s.data(), 0));
}

TEST(Murmur2, KafkaPartitionIsToPositiveModulo) {
    const char* keys[] = {"21", "foobar", "a-little-bit-long-string", "a-little-bit-longer-string", "abc"};
    for (const char* k : keys)
        for (int32_t parts : {1, 2, 3, 7, 12, 100, 2147483647}) {
            int32_t h = murmur2(k, std::strlen(k));
            int32_t p = kafka_partition(k, std::strlen(k), parts);
            EXPECT_EQ(p, kafka_reference_partition(h, parts)) << k << " % " << parts;
            EXPECT_GE(p, 0);
            EXPECT_LT(p, parts);
        }
    // Hand-computed: murmur2("foobar") = -790332482 -> & 0x7fffffff = 1357151166.
    EXPECT_EQ(kafka_partition("foobar", 6, 10), 6);
    EXPECT_EQ(kafka_partition("foobar", 6, 1000), 166);
    EXPECT_EQ(kafka_partition("foobar", 6, 1), 0);
}

TEST(Murmur2, FixedWidthInt32MatchesBigEndianBytes) {
    std::vector<int32_t> keys = {0, 1, -1, 2, 255, 256, 65535, 65536, INT32_MAX, INT32_MIN, 123456789, -987654321};
    std::mt19937 rng(17);
    for (int i = 0; i < 2000; ++i) keys.push_back(static_cast<int32_t>(rng()));
    for (int32_t parts : {1, 3, 16, 1000}) {
        std::vector<int32_t> out(keys.size(), -1);
        // Values as they sit in an Arrow int32 buffer: native (little-endian) order.
        partition_fixed_width(reinterpret_cast<const uint8_t*>(keys.data()), keys.size(), 4, parts, out.data());
        for (size_t i = 0; i < keys.size(); ++i) {
            auto be = big_endian32(keys[i]);
            ASSERT_EQ(out[i], kafka_partition(be.data(), be.size(), parts)) << "key " << keys[i] << " % " << parts;
        }
    }
}

TEST(Murmur2, FixedWidthInt64MatchesBigEndianBytes) {
    std::vector<int64_t> keys = {0, 1, -1, INT64_MAX, INT64_MIN, 1LL << 32, (1LL << 32) + 1, -4294967296LL};
    std::mt19937_64 rng(23);
    for (int i = 0; i < 2000; ++i) keys.push_back(static_cast<int64_t>(rng()));
    for (int32_t parts : {1, 5, 64}) {
        std::vector<int32_t> out(keys.size(), -1);
        partition_fixed_width(reinterpret_cast<const uint8_t*>(keys.data()), keys.size(), 8, parts, out.data());
        for (size_t i = 0; i < keys.size(); ++i) {
            auto be = big_endian64(keys[i]);
            ASSERT_EQ(out[i], kafka_partition(be.data(), be.size(), parts)) << "key " << keys[i] << " % " << parts;
        }
    }
}

TEST(Murmur2, FixedWidthEmptyInputWritesNothing) {
    int32_t out[1] = {-7};
    partition_fixed_width(nullptr, 0, 4, 3, out);
    EXPECT_EQ(out[0], -7);
}

namespace {
template <typename Offset>
void check_binary(void (*fn)(const Offset*, const uint8_t*, size_t, int32_t, int32_t*), Offset first) {
    std::vector<std::string> keys = {"21", "", "foobar", "abc", "a-little-bit-long-string",
                                     "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", "x"};
    std::mt19937 rng(31);
    for (int i = 0; i < 500; ++i) {
        std::string k(rng() % 40, '\0');
        for (auto& c : k) c = static_cast<char>(rng());
        keys.push_back(k);
    }
    // Arrow layout; `first` > 0 models a sliced array whose offsets do not start at 0.
    std::vector<uint8_t> data(static_cast<size_t>(first), 0xAB);
    std::vector<Offset> offsets = {first};
    for (auto& k : keys) {
        data.insert(data.end(), k.begin(), k.end());
        offsets.push_back(static_cast<Offset>(data.size()));
    }
    for (int32_t parts : {1, 4, 9}) {
        std::vector<int32_t> out(keys.size(), -1);
        fn(offsets.data(), data.data(), keys.size(), parts, out.data());
        for (size_t i = 0; i < keys.size(); ++i)
            ASSERT_EQ(out[i], kafka_partition(keys[i].data(), keys[i].size(), parts)) << "key #" << i;
    }
    // The vectors, partitioned over 2^31-1 partitions, give toPositive(hash) itself.
    std::vector<int32_t> out(keys.size());
    fn(offsets.data(), data.data(), keys.size(), INT32_MAX, out.data());
    EXPECT_EQ(out[0], -973932308 & 0x7fffffff);
    EXPECT_EQ(out[2], -790332482 & 0x7fffffff);
    EXPECT_EQ(out[3], 479470107);
    EXPECT_EQ(out[4], -985981536 & 0x7fffffff);
    EXPECT_EQ(out[5], -58897971 & 0x7fffffff);
}
}  // namespace

TEST(Murmur2, Binary32Offsets) {
    check_binary<int32_t>(partition_binary32, 0);
    check_binary<int32_t>(partition_binary32, 13);
}

TEST(Murmur2, Binary64Offsets) {
    check_binary<int64_t>(partition_binary64, 0);
    check_binary<int64_t>(partition_binary64, 5);
}
