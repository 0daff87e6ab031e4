#pragma once
// Kafka's default partitioner: murmur2 (seed 0x9747b28c) of the serialized key,
// made positive with & 0x7fffffff, modulo the partition count; the same as
// org.apache.kafka.common.utils.Utils.murmur2 / toPositive.
#include <cstddef>
#include <cstdint>

namespace tidelog {

int32_t murmur2(const void* data, size_t length);
inline int32_t kafka_partition(const void* key, size_t length, int32_t partitions) {
    return static_cast<int32_t>((static_cast<uint32_t>(murmur2(key, length)) & 0x7fffffffu) %
                                static_cast<uint32_t>(partitions));
}

/// Partitions for fixed-width integer keys, serialized big-endian as Kafka's
/// IntegerSerializer/LongSerializer do. width is 4 or 8.
void partition_fixed_width(const uint8_t* values, size_t count, size_t width, int32_t partitions,
                           int32_t* out);
/// Partitions for variable-length keys given Arrow-style int32/int64 offsets.
void partition_binary32(const int32_t* offsets, const uint8_t* data, size_t count, int32_t partitions,
                        int32_t* out);
void partition_binary64(const int64_t* offsets, const uint8_t* data, size_t count, int32_t partitions,
                        int32_t* out);

/// Stable counting sort of row indices by partition: order receives the row
/// numbers grouped by partition (rows keep their order within a partition),
/// counts[p] the number of rows of partition p. Returns false (and leaves order
/// unspecified) if an id is outside [0, partitions).
bool group_rows_by_partition(const int32_t* ids, size_t count, int32_t partitions, int64_t* order, int64_t* counts);

}  // namespace tidelog
