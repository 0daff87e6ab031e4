#pragma once
// The frame: the unit of storage. One appended batch is one frame, starting at
// an 8-byte-aligned segment position. Layout (little-endian), see docs/FORMAT.md:
//
//   0  u32 magic           "TLF1"
//   4  u32 crc32c          over the payload, then bytes [8, 64) of the header
//   8  u16 version         2 (1: written before the offset span; still read)
//  10  u16 header_length   64
//  12  u16 codec           0 none, 1 zstd
//  14  u16 flags           bit 0: payload is a whole Arrow IPC stream;
//                          bit 1: sparse (version 2 only): the payload begins
//                          with the offset block (below, FORMAT.md §2.6)
//  16  i64 base_offset
//  24  u32 record_count
//  28  u32 schema_id
//  32  i64 min_timestamp   ns since the epoch
//  40  i64 max_timestamp
//  48  u64 payload_length  stored (possibly compressed) bytes
//  56  u32 payload_offset  from the frame start; >= 64, a multiple of 8
//  60  u32 last_offset_delta  version 2: the frame covers offsets
//                          [base_offset, base_offset + last_offset_delta];
//                          version 1: 0 (reserved), the span is record_count - 1
//  [padding to payload_offset, zeros][payload][padding to 8, zeros]
//
// A sparse frame (written only by compaction) holds record_count <= span
// records; its payload starts with the offset block, never compressed:
//   i64 delete_horizon_ns, u32 offset_delta[record_count], zeros to a multiple of 8
// (deltas strictly increasing, each <= last_offset_delta), then the Arrow
// payload. record_count 0 (an empty frame: payload exactly the 8-byte block)
// keeps the offset range contiguous after every record of it was removed.
#include <cstdint>
#include <cstring>

#include "units.h"

namespace tidelog {

constexpr uint32_t frame_magic = 0x31464C54u;  // bytes "TLF1"
constexpr uint16_t frame_version = 2;             // what writers write
constexpr uint16_t frame_version_dense_only = 1;  // before last_offset_delta: read, never written
constexpr uint32_t frame_header_bytes = 64;

enum class frame_codec : uint16_t { none = 0, zstd = 1 };
constexpr uint16_t frame_flag_ipc_stream = 1;
constexpr uint16_t frame_flag_sparse = 2;

/// Bytes of a sparse frame's offset block for `record_count` records.
inline uint64_t sparse_block_bytes(uint64_t record_count) { return align_up(8 + 4 * record_count, 8); }

struct frame_header {
    uint32_t magic;
    uint32_t crc;
    uint16_t version;
    uint16_t header_length;
    uint16_t codec;
    uint16_t flags;
    int64_t base_offset;
    uint32_t record_count;
    uint32_t schema_id;
    int64_t min_timestamp;
    int64_t max_timestamp;
    uint64_t payload_length;
    uint32_t payload_offset;
    uint32_t last_offset_delta;

    uint64_t frame_length() const { return align_up(uint64_t{payload_offset} + payload_length, frame_alignment); }
    /// Offsets the frame covers, minus one. The one place that knows both
    /// versions: every "where do the offsets go on" goes through next_offset().
    int64_t offset_span() const {
        return version >= 2 ? int64_t{last_offset_delta} : int64_t{record_count} - 1;
    }
    int64_t last_offset() const { return base_offset + offset_span(); }
    int64_t next_offset() const { return last_offset() + 1; }
    /// Every offset it covers holds a record, so record i has offset base_offset + i.
    /// Not so only after compaction (FORMAT.md §2.6): its records carry their offsets.
    bool dense() const { return !sparse() && offset_span() + 1 == int64_t{record_count}; }
    /// Its payload begins with the offset block (FORMAT.md §2.6).
    bool sparse() const { return version >= 2 && (flags & frame_flag_sparse) != 0; }
    /// The offset block's bytes (0 for a dense frame).
    uint64_t block_length() const { return sparse() ? sparse_block_bytes(record_count) : 0; }
};
static_assert(sizeof(frame_header) == frame_header_bytes, "frame header is 64 bytes");

/// Why a frame was rejected; end_of_data is the normal end of a preallocated segment.
enum class frame_check : uint8_t { ok, end_of_data, truncated, bad_magic, bad_header, bad_crc };
const char* describe(frame_check c);

inline frame_header load_header(const uint8_t* p) {
    frame_header h;
    std::memcpy(&h, p, sizeof h);
    return h;
}

/// CRC over the payload, then header bytes [8, 64). Payload first so appenders
/// can checksum their payload before they know its offset and position.
uint32_t frame_crc(const frame_header& h, const uint8_t* payload);
uint32_t frame_crc_with_payload_crc(const frame_header& h, uint32_t payload_crc);
/// Structural checks only (magic, version, lengths fit in `available` bytes,
/// offsets: a count that fits the span, a last offset that fits an i64).
frame_check check_header(const uint8_t* p, uint64_t available);
/// Structural checks plus CRC, plus (CRC-valid frames) the offset block's rules.
frame_check check_frame(const uint8_t* p, uint64_t available);
/// A sparse frame's offset block, given its payload (which must hold
/// payload_length bytes): deltas strictly increasing, each within the span,
/// block padding zero. bad_header if not; ok for dense frames. Run wherever a
/// CRC-valid payload is accepted: a CRC-valid frame with a broken block is damage.
frame_check check_offset_block(const frame_header& h, const uint8_t* payload);

}  // namespace tidelog
