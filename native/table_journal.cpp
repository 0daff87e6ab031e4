#include "table_journal.h"

#include <cstring>

#include "crc32c.h"
#include "errors.h"

namespace tidelog {
namespace table_journal {

namespace {

template <class T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class T>
void store(std::string& out, size_t at, T v) {
    std::memcpy(&out[at], &v, sizeof v);
}

/// Header, length and CRC checks (not the sequence, not the payload's shape).
std::optional<record_view> decode_frame(const uint8_t* data, size_t size, uint64_t position) {
    if (size < record_header_bytes || load<uint32_t>(data) != record_magic) return std::nullopt;
    record_view r;
    r.payload_length = load<uint32_t>(data + 8);
    if (r.payload_length > max_record_bytes - record_header_bytes) return std::nullopt;
    if (size - record_header_bytes < r.payload_length) return std::nullopt;
    r.change_count = load<uint32_t>(data + 12);
    r.sequence = load<uint64_t>(data + 16);
    r.vouched_end = load<uint64_t>(data + 24);
    if (r.vouched_end > position) return std::nullopt;
    if (crc32c(data + 8, record_header_bytes - 8 + r.payload_length) != load<uint32_t>(data + 4)) return std::nullopt;
    r.payload = data + record_header_bytes;
    return r;
}

bool payload_is_well_formed(const record_view& r) {
    const uint8_t* p = r.payload;
    uint64_t left = r.payload_length;
    for (uint32_t i = 0; i < r.change_count; ++i) {
        if (left < change_header_bytes) return false;
        uint32_t kl = load<uint32_t>(p), vl = load<uint32_t>(p + 4);
        left -= change_header_bytes;
        p += change_header_bytes;
        if (kl == 0 || kl > max_key_bytes) return false;
        uint64_t value_bytes = vl == delete_marker ? 0 : vl;
        if (vl != delete_marker && vl > max_value_bytes) return false;
        if (left < kl + value_bytes) return false;
        left -= kl + value_bytes;
        p += kl + value_bytes;
    }
    return left == 0;
}

}  // namespace

std::string encode_file_header(uint64_t first_sequence) {
    std::string out(file_header_bytes, '\0');
    store(out, 0, file_magic);
    store(out, 4, version);
    store(out, 8, first_sequence);
    return out;
}

std::optional<uint64_t> decode_file_header(const uint8_t* data, size_t size) {
    if (size < file_header_bytes || load<uint32_t>(data) != file_magic || load<uint32_t>(data + 4) != version)
        return std::nullopt;
    return load<uint64_t>(data + 8);
}

void check_change(std::string_view key, const std::optional<std::string_view>& value) {
    if (key.empty()) throw error(errc::invalid_argument, "durable table: an empty key");
    if (key.size() > max_key_bytes)
        throw error(errc::too_large, "durable table: a key of " + std::to_string(key.size()) +
                                         " bytes (at most " + std::to_string(max_key_bytes) + ")");
    if (value && value->size() > max_value_bytes)
        throw error(errc::too_large, "durable table: a value of " + std::to_string(value->size()) +
                                         " bytes (at most " + std::to_string(max_value_bytes) + ")");
}

void encode_record(std::string& out, uint64_t sequence, uint64_t vouched_end,
                   const std::vector<std::pair<std::string_view, std::optional<std::string_view>>>& changes) {
    uint64_t payload = 0;
    for (const auto& c : changes) payload += change_bytes(c.first.size(), c.second ? c.second->size() : 0);
    if (record_header_bytes + payload > max_record_bytes)
        throw error(errc::too_large, "durable table: a put of " + std::to_string(record_header_bytes + payload) +
                                         " bytes (at most " + std::to_string(max_record_bytes) + " per put)");
    size_t start = out.size();
    out.resize(start + record_header_bytes + payload);
    store(out, start, record_magic);
    store(out, start + 8, static_cast<uint32_t>(payload));
    store(out, start + 12, static_cast<uint32_t>(changes.size()));
    store(out, start + 16, sequence);
    store(out, start + 24, vouched_end);
    size_t at = start + record_header_bytes;
    for (const auto& c : changes) {
        store(out, at, static_cast<uint32_t>(c.first.size()));
        store(out, at + 4, c.second ? static_cast<uint32_t>(c.second->size()) : delete_marker);
        at += change_header_bytes;
        std::memcpy(&out[at], c.first.data(), c.first.size());
        at += c.first.size();
        if (c.second) {
            if (!c.second->empty()) std::memcpy(&out[at], c.second->data(), c.second->size());
            at += c.second->size();
        }
    }
    uint32_t crc = crc32c(reinterpret_cast<const uint8_t*>(out.data()) + start + 8, record_header_bytes - 8 + payload);
    store(out, start + 4, crc);
}

std::optional<record_view> decode_record(const uint8_t* data, size_t size, uint64_t position,
                                         uint64_t expected_sequence) {
    std::optional<record_view> r = decode_frame(data, size, position);
    if (!r || r->sequence != expected_sequence || !payload_is_well_formed(*r)) return std::nullopt;
    return r;
}

std::optional<uint64_t> find_vouching_record(const uint8_t* data, size_t size, uint64_t base,
                                             uint64_t bad_position) {
    const uint8_t magic[4] = {'T', 'L', 'T', 'R'};
    size_t from = bad_position + 1 - base;
    while (from + record_header_bytes <= size) {
        const void* hit = std::memchr(data + from, magic[0], size - from);
        if (!hit) break;
        size_t at = static_cast<const uint8_t*>(hit) - data;
        if (at + record_header_bytes > size) break;
        if (std::memcmp(data + at, magic, 4) == 0) {
            std::optional<record_view> r = decode_frame(data + at, size - at, base + at);
            if (r && r->vouched_end > bad_position) return base + at;
        }
        from = at + 1;
    }
    return std::nullopt;
}

}  // namespace table_journal
}  // namespace tidelog
