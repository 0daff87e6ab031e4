#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by Kafka's
// record batches and ext4. Hardware path: SSE4.2 crc32 instruction with three
// interleaved streams, chosen at run time; portable path: slicing-by-8.
#include <cstddef>
#include <cstdint>

namespace tidelog {

/// Continues a CRC: crc32c_extend(crc32c(a), b) == crc32c(a + b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t length);
inline uint32_t crc32c(const void* data, size_t length) { return crc32c_extend(0, data, length); }

/// The portable implementation, exposed so tests can compare both paths.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t length);
bool crc32c_hardware_available();

}  // namespace tidelog
