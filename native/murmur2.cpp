#include "murmur2.h"

#include <cstring>
#include <vector>

namespace tidelog {

int32_t murmur2(const void* key, size_t length) {
    // Java operates on signed ints with wrap-around; unsigned arithmetic gives the same bits.
    const uint8_t* data = static_cast<const uint8_t*>(key);
    const uint32_t seed = 0x9747b28cu;
    const uint32_t m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = seed ^ static_cast<uint32_t>(length);
    size_t length4 = length / 4;
    for (size_t i = 0; i < length4; ++i) {
        size_t i4 = i * 4;
        uint32_t k = static_cast<uint32_t>(data[i4 + 0]) | (static_cast<uint32_t>(data[i4 + 1]) << 8) |
                     (static_cast<uint32_t>(data[i4 + 2]) << 16) | (static_cast<uint32_t>(data[i4 + 3]) << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    size_t tail = length & ~size_t{3};
    switch (length % 4) {
        case 3: h ^= static_cast<uint32_t>(data[tail + 2]) << 16; [[fallthrough]];
        case 2: h ^= static_cast<uint32_t>(data[tail + 1]) << 8; [[fallthrough]];
        case 1:
            h ^= static_cast<uint32_t>(data[tail]);
            h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return static_cast<int32_t>(h);
}

void partition_fixed_width(const uint8_t* values, size_t count, size_t width, int32_t partitions, int32_t* out) {
    uint8_t be[8];
    for (size_t i = 0; i < count; ++i) {
        const uint8_t* v = values + i * width;
        for (size_t b = 0; b < width; ++b) be[b] = v[width - 1 - b];  // little-endian host -> big-endian key
        out[i] = kafka_partition(be, width, partitions);
    }
}

template <typename Offset>
static void partition_binary(const Offset* offsets, const uint8_t* data, size_t count, int32_t partitions,
                             int32_t* out) {
    for (size_t i = 0; i < count; ++i)
        out[i] = kafka_partition(data + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]), partitions);
}

void partition_binary32(const int32_t* offsets, const uint8_t* data, size_t count, int32_t partitions, int32_t* out) {
    partition_binary(offsets, data, count, partitions, out);
}
void partition_binary64(const int64_t* offsets, const uint8_t* data, size_t count, int32_t partitions, int32_t* out) {
    partition_binary(offsets, data, count, partitions, out);
}

bool group_rows_by_partition(const int32_t* ids, size_t count, int32_t partitions, int64_t* order, int64_t* counts) {
    for (int32_t p = 0; p < partitions; ++p) counts[p] = 0;
    for (size_t i = 0; i < count; ++i) {
        if (ids[i] < 0 || ids[i] >= partitions) return false;
        ++counts[ids[i]];
    }
    std::vector<int64_t> next(static_cast<size_t>(partitions));
    int64_t start = 0;
    for (int32_t p = 0; p < partitions; ++p) {
        next[p] = start;
        start += counts[p];
    }
    for (size_t i = 0; i < count; ++i) order[next[ids[i]]++] = static_cast<int64_t>(i);
    return true;
}

}  // namespace tidelog
