// CRC-32C: standard check values, hardware path == portable path, chaining.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "crc32c.h"

using namespace tidelog;

namespace {

struct vector_case {
    std::vector<uint8_t> data;
    uint32_t expected;
    const char* name;
};

std::vector<vector_case> standard_vectors() {
    std::vector<vector_case> v;
    std::string check = "123456789";
    v.push_back({std::vector<uint8_t>(check.begin(), check.end()), 0xE3069283u, "123456789"});
    v.push_back({std::vector<uint8_t>(32, 0x00), 0x8A9136AAu, "32 x 0x00"});
    v.push_back({std::vector<uint8_t>(32, 0xFF), 0x62A8AB43u, "32 x 0xFF"});
    std::vector<uint8_t> ascending(32);
    for (int i = 0; i < 32; ++i) ascending[i] = static_cast<uint8_t>(i);
    v.push_back({ascending, 0x46DD794Eu, "bytes 0..31"});
    std::vector<uint8_t> descending(32);
    for (int i = 0; i < 32; ++i) descending[i] = static_cast<uint8_t>(31 - i);
    v.push_back({descending, 0x113FDB5Cu, "bytes 31..0"});  // RFC 3720 B.4
    return v;
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
    std::vector<uint8_t> out(n);
    std::mt19937_64 rng(seed);
    for (auto& b : out) b = static_cast<uint8_t>(rng());
    return out;
}

// Bit-at-a-time reference, independent of both optimized paths.
uint32_t reference_crc32c(const uint8_t* p, size_t n, uint32_t crc = 0) {
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

// Lengths around the 3 x 4096-byte interleaved blocks of the hardware path.
std::vector<size_t> interesting_lengths() {
    std::vector<size_t> lengths;
    for (size_t n = 0; n <= 80; ++n) lengths.push_back(n);
    for (size_t k = 1; k <= 5; ++k) {
        size_t block = k * 3 * 4096;
        for (size_t d : {block - 9, block - 8, block - 1, block, block + 1, block + 7, block + 8, block + 9})
            lengths.push_back(d);
    }
    for (size_t n : {size_t{4095}, size_t{4096}, size_t{4097}, size_t{8191}, size_t{8192}, size_t{8193},
                     size_t{65536}, size_t{100003}})
        lengths.push_back(n);
    std::mt19937_64 rng(42);
    for (int i = 0; i < 60; ++i) lengths.push_back(rng() % 70000);
    return lengths;
}

}  // namespace

TEST(Crc32c, StandardVectors) {
    for (const auto& c : standard_vectors()) {
        EXPECT_EQ(crc32c(c.data.data(), c.data.size()), c.expected) << c.name;
        EXPECT_EQ(crc32c_extend_portable(0, c.data.data(), c.data.size()), c.expected) << c.name;
        EXPECT_EQ(reference_crc32c(c.data.data(), c.data.size()), c.expected) << c.name;
    }
}

TEST(Crc32c, EmptyInputKeepsCrc) {
    EXPECT_EQ(crc32c(nullptr, 0), 0u);
    EXPECT_EQ(crc32c_extend(0xE3069283u, nullptr, 0), 0xE3069283u);
    EXPECT_EQ(crc32c_extend_portable(0xE3069283u, nullptr, 0), 0xE3069283u);
}

TEST(Crc32c, ReportsHardwarePath) {
    // Informational: on x86-64 with SSE4.2 the comparisons below test two real paths.
    std::cout << "[          ] crc32c hardware path: " << (crc32c_hardware_available() ? "yes" : "no") << "\n";
#if defined(__x86_64__)
    // Against the kernel's view of the CPU, not __builtin_cpu_supports (a stub
    // that finds no feature under zig's compiler-rt, which builds the wheels).
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    bool sse42 = false;
    while (std::getline(cpuinfo, line))
        if (line.rfind("flags", 0) == 0) {
            sse42 = line.find(" sse4_2") != std::string::npos;
            break;
        }
    EXPECT_EQ(crc32c_hardware_available(), sse42);
#endif
}

TEST(Crc32c, HardwareMatchesPortableOnRandomData) {
    const auto lengths = interesting_lengths();
    const auto data = random_bytes(110000, 7);
    for (size_t n : lengths) {
        ASSERT_LE(n + 8, data.size());
        // Every alignment of the start pointer: the hardware path reads 8-byte words.
        for (size_t misalign : {0, 1, 3, 7}) {
            const uint8_t* p = data.data() + misalign;
            uint32_t hw = crc32c_extend(0, p, n);
            uint32_t sw = crc32c_extend_portable(0, p, n);
            ASSERT_EQ(hw, sw) << "length " << n << " misalign " << misalign;
            // A non-zero starting CRC goes through the same paths.
            ASSERT_EQ(crc32c_extend(0xDEADBEEFu, p, n), crc32c_extend_portable(0xDEADBEEFu, p, n))
                << "length " << n << " misalign " << misalign;
        }
    }
}

TEST(Crc32c, MatchesBitwiseReference) {
    const auto data = random_bytes(3 * 3 * 4096 + 17, 11);
    for (size_t n : {size_t{0}, size_t{1}, size_t{13}, size_t{3 * 4096 - 1}, size_t{3 * 4096}, size_t{3 * 4096 + 1},
                     size_t{2 * 3 * 4096 + 5}, data.size()}) {
        uint32_t ref = reference_crc32c(data.data(), n);
        EXPECT_EQ(crc32c(data.data(), n), ref) << n;
        EXPECT_EQ(crc32c_extend_portable(0, data.data(), n), ref) << n;
    }
}

TEST(Crc32c, HardwareMatchesPortableOnStructuredData) {
    // Zeros and ones stress the stream-merge tables differently from random bytes.
    for (uint8_t fill : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x80}, uint8_t{0x01}}) {
        std::vector<uint8_t> data(4 * 3 * 4096 + 3, fill);
        for (size_t n : {size_t{3 * 4096}, size_t{3 * 4096 + 1}, size_t{2 * 3 * 4096}, size_t{4 * 3 * 4096 + 3}})
            EXPECT_EQ(crc32c(data.data(), n), crc32c_extend_portable(0, data.data(), n))
                << "fill " << int(fill) << " length " << n;
    }
}

TEST(Crc32c, ChainingEqualsOneShot) {
    const auto data = random_bytes(4 * 3 * 4096 + 123, 99);
    const uint32_t whole_hw = crc32c(data.data(), data.size());
    const uint32_t whole_sw = crc32c_extend_portable(0, data.data(), data.size());
    ASSERT_EQ(whole_hw, whole_sw);

    // Every split point in a small prefix, and split points around block boundaries.
    std::vector<size_t> splits;
    for (size_t s = 0; s <= 70; ++s) splits.push_back(s);
    for (size_t k = 1; k <= 4; ++k)
        for (long d : {-1L, 0L, 1L}) splits.push_back(k * 3 * 4096 + d);
    splits.push_back(data.size());
    for (size_t s : splits) {
        ASSERT_LE(s, data.size());
        uint32_t a = crc32c(data.data(), s);
        EXPECT_EQ(crc32c_extend(a, data.data() + s, data.size() - s), whole_hw) << "split at " << s;
        uint32_t as = crc32c_extend_portable(0, data.data(), s);
        EXPECT_EQ(crc32c_extend_portable(as, data.data() + s, data.size() - s), whole_hw) << "split at " << s;
        // Mixed: hardware prefix, portable suffix.
        EXPECT_EQ(crc32c_extend_portable(a, data.data() + s, data.size() - s), whole_hw) << "split at " << s;
    }

    // Many random pieces.
    std::mt19937_64 rng(5);
    for (int round = 0; round < 50; ++round) {
        uint32_t crc = 0;
        size_t at = 0;
        while (at < data.size()) {
            size_t piece = std::min<size_t>(data.size() - at, rng() % (round % 2 ? 20000 : 40));
            crc = crc32c_extend(crc, data.data() + at, piece);
            at += piece;
        }
        ASSERT_EQ(crc, whole_hw) << "round " << round;
    }
}

TEST(Crc32c, SingleBitFlipsChangeTheCrc) {
    auto data = random_bytes(257, 3);
    const uint32_t good = crc32c(data.data(), data.size());
    for (size_t i = 0; i < data.size(); ++i)
        for (int bit = 0; bit < 8; ++bit) {
            data[i] ^= static_cast<uint8_t>(1u << bit);
            ASSERT_NE(crc32c(data.data(), data.size()), good) << "byte " << i << " bit " << bit;
            data[i] ^= static_cast<uint8_t>(1u << bit);
        }
}
