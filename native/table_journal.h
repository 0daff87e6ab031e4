#pragma once
// The byte format of a durable table's journal (docs/FORMAT.md, "Durable
// tables"): a 16-byte file header, then records, each one `put` (or one piece
// of a rewrite). Pure functions over bytes: no files, no locks (durable_table.h
// owns those), so the fuzz target can drive the decoder directly.
//
//   file header (16 bytes)      record header (32 bytes), then payload
//   0  u32 magic "TLTJ"         0  u32 magic "TLTR"
//   4  u32 version (1)          4  u32 crc32c of bytes [8, 32 + payload_length)
//   8  u64 first_sequence       8  u32 payload_length
//                               12 u32 change_count
//                               16 u64 sequence (first_sequence, +1 per record)
//                               24 u64 vouched_end: every byte of the file below
//                                      it was fdatasync'd when the record was written
//   payload: change_count x { u32 key_length, u32 value_length (0xFFFFFFFF: delete), key, value }
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tidelog {
namespace table_journal {

constexpr uint32_t file_magic = 0x4A544C54u;    // "TLTJ" little-endian
constexpr uint32_t record_magic = 0x52544C54u;  // "TLTR"
constexpr uint32_t version = 1;
constexpr uint64_t file_header_bytes = 16;
constexpr uint64_t record_header_bytes = 32;
constexpr uint64_t change_header_bytes = 8;
constexpr uint32_t delete_marker = 0xFFFFFFFFu;

constexpr size_t max_key_bytes = 4096;
constexpr size_t max_value_bytes = size_t{16} << 20;
/// A whole record, header included.
constexpr uint64_t max_record_bytes = uint64_t{64} << 20;

/// One change of a put: a key and its new value, or no value (delete).
struct change {
    std::string key;
    std::optional<std::string> value;
};

struct record_view {
    uint64_t sequence = 0;
    uint64_t vouched_end = 0;
    uint32_t change_count = 0;
    const uint8_t* payload = nullptr;
    uint32_t payload_length = 0;
    uint64_t total_bytes() const { return record_header_bytes + payload_length; }
};

/// The file header for a journal whose first record has sequence `first_sequence`.
std::string encode_file_header(uint64_t first_sequence);
/// first_sequence, or nothing when the 16 bytes are not a version-1 journal header.
std::optional<uint64_t> decode_file_header(const uint8_t* data, size_t size);

/// Throws error(invalid_argument / too_large) for a change outside the limits.
void check_change(std::string_view key, const std::optional<std::string_view>& value);
/// Bytes one change takes in a payload.
inline uint64_t change_bytes(size_t key_length, size_t value_length) {
    return change_header_bytes + key_length + value_length;
}

/// Appends one record (header + payload) to `out`. The changes are given as a
/// callback-free pair of spans so callers can encode from any container.
void encode_record(std::string& out, uint64_t sequence, uint64_t vouched_end,
                   const std::vector<std::pair<std::string_view, std::optional<std::string_view>>>& changes);

/// Decodes the record at data[0, size) (size: the bytes available from its
/// start to the end of the file). Nothing when it fails any check: too short,
/// magic, length over max_record_bytes, CRC, sequence != expected_sequence,
/// vouched_end > position (a record cannot vouch for itself), or a payload
/// that does not decode exactly into change_count valid changes.
std::optional<record_view> decode_record(const uint8_t* data, size_t size, uint64_t position,
                                         uint64_t expected_sequence);

/// Calls visit(key, value-or-nullopt) for each change of a decoded record.
template <class Visit>
void for_each_change(const record_view& r, Visit&& visit) {
    const uint8_t* p = r.payload;
    for (uint32_t i = 0; i < r.change_count; ++i) {
        uint32_t kl, vl;
        __builtin_memcpy(&kl, p, 4);
        __builtin_memcpy(&vl, p + 4, 4);
        p += change_header_bytes;
        std::string_view key(reinterpret_cast<const char*>(p), kl);
        p += kl;
        if (vl == delete_marker) {
            visit(key, std::optional<std::string_view>());
        } else {
            visit(key, std::optional<std::string_view>(std::string_view(reinterpret_cast<const char*>(p), vl)));
            p += vl;
        }
    }
}

/// After a record that fails its checks at `bad_position`: the position of the
/// first CRC-valid record later in data[0, size) (positions relative to the
/// file: data starts at file position `base`) whose vouched_end lies past
/// bad_position, i.e. proof that the bad bytes had been durable, or nothing.
/// Its sequence is not checked (it cannot be known past the damage).
std::optional<uint64_t> find_vouching_record(const uint8_t* data, size_t size, uint64_t base,
                                             uint64_t bad_position);

}  // namespace table_journal
}  // namespace tidelog
