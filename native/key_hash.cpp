#include "key_hash.h"

#include <cstring>

namespace tidelog {
namespace {

inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);  // little-endian hosts only (FORMAT.md conventions)
    return v;
}

}  // namespace

key_hash murmur3_128(const void* data, size_t length, uint64_t seed) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    const size_t blocks = length / 16;
    uint64_t h1 = seed, h2 = seed;
    constexpr uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    for (size_t i = 0; i < blocks; ++i) {
        uint64_t k1 = load64(bytes + i * 16), k2 = load64(bytes + i * 16 + 8);
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
        h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2;
        h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t* tail = bytes + blocks * 16;
    uint64_t k1 = 0, k2 = 0;
    switch (length & 15) {
        case 15: k2 ^= uint64_t{tail[14]} << 48; [[fallthrough]];
        case 14: k2 ^= uint64_t{tail[13]} << 40; [[fallthrough]];
        case 13: k2 ^= uint64_t{tail[12]} << 32; [[fallthrough]];
        case 12: k2 ^= uint64_t{tail[11]} << 24; [[fallthrough]];
        case 11: k2 ^= uint64_t{tail[10]} << 16; [[fallthrough]];
        case 10: k2 ^= uint64_t{tail[9]} << 8; [[fallthrough]];
        case 9:
            k2 ^= uint64_t{tail[8]};
            k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2;
            [[fallthrough]];
        case 8: k1 ^= uint64_t{tail[7]} << 56; [[fallthrough]];
        case 7: k1 ^= uint64_t{tail[6]} << 48; [[fallthrough]];
        case 6: k1 ^= uint64_t{tail[5]} << 40; [[fallthrough]];
        case 5: k1 ^= uint64_t{tail[4]} << 32; [[fallthrough]];
        case 4: k1 ^= uint64_t{tail[3]} << 24; [[fallthrough]];
        case 3: k1 ^= uint64_t{tail[2]} << 16; [[fallthrough]];
        case 2: k1 ^= uint64_t{tail[1]} << 8; [[fallthrough]];
        case 1:
            k1 ^= uint64_t{tail[0]};
            k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
            break;
        default:
            break;
    }
    h1 ^= length;
    h2 ^= length;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    return {h1, h2};
}

void hash_fixed_width_keys(const uint8_t* values, size_t count, size_t width, key_hash* out) {
    for (size_t i = 0; i < count; ++i) out[i] = murmur3_128(values + i * width, width);
}

void hash_binary32_keys(const int32_t* offsets, const uint8_t* data, size_t count, key_hash* out) {
    for (size_t i = 0; i < count; ++i)
        out[i] = murmur3_128(data + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]));
}

void hash_binary64_keys(const int64_t* offsets, const uint8_t* data, size_t count, key_hash* out) {
    for (size_t i = 0; i < count; ++i)
        out[i] = murmur3_128(data + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]));
}

}  // namespace tidelog
