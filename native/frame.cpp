#include "frame.h"

#include "crc32c.h"

namespace tidelog {

const char* describe(frame_check c) {
    switch (c) {
        case frame_check::ok: return "ok";
        case frame_check::end_of_data: return "end of data";
        case frame_check::truncated: return "frame extends past the end of the file";
        case frame_check::bad_magic: return "bad magic";
        case frame_check::bad_header: return "inconsistent header";
        case frame_check::bad_crc: return "CRC32C mismatch";
    }
    return "?";
}

uint32_t frame_crc_with_payload_crc(const frame_header& h, uint32_t payload_crc) {
    const uint8_t* raw = reinterpret_cast<const uint8_t*>(&h);
    return crc32c_extend(payload_crc, raw + 8, frame_header_bytes - 8);
}

uint32_t frame_crc(const frame_header& h, const uint8_t* payload) {
    return frame_crc_with_payload_crc(h, crc32c(payload, h.payload_length));
}

frame_check check_header(const uint8_t* p, uint64_t available) {
    if (available < frame_header_bytes) {
        for (uint64_t i = 0; i < available; ++i)
            if (p[i]) return frame_check::truncated;
        return frame_check::end_of_data;
    }
    frame_header h = load_header(p);
    if (h.magic != frame_magic) {
        static const uint8_t zeros[frame_header_bytes] = {};
        return std::memcmp(p, zeros, frame_header_bytes) == 0 ? frame_check::end_of_data : frame_check::bad_magic;
    }
    int64_t span = h.offset_span();
    if ((h.version != frame_version && h.version != frame_version_dense_only) ||
        h.header_length != frame_header_bytes || h.payload_offset < frame_header_bytes ||
        h.payload_offset % frame_alignment != 0 || h.payload_length > max_frame_bytes || h.base_offset < 0 ||
        h.codec > static_cast<uint16_t>(frame_codec::zstd) || h.min_timestamp > h.max_timestamp ||
        (h.record_count == 0 && !h.sparse()) ||
        (h.version < frame_version && (h.flags & frame_flag_sparse)) ||  // only version 2 is ever sparse
        int64_t{h.record_count} > span + 1 ||  // more records than offsets
        h.base_offset > INT64_MAX - 1 - span)  // next_offset() must not overflow
        return frame_check::bad_header;
    if (h.sparse()) {
        // An empty frame is exactly its block; a block never outgrows the payload.
        if (h.block_length() > h.payload_length || (h.record_count == 0 && h.payload_length != 8))
            return frame_check::bad_header;
    } else if (int64_t{h.record_count} != span + 1) {
        return frame_check::bad_header;  // without the flag a frame is dense (and never empty)
    }
    if (h.frame_length() > available) return frame_check::truncated;
    return frame_check::ok;
}

frame_check check_frame(const uint8_t* p, uint64_t available) {
    frame_check c = check_header(p, available);
    if (c != frame_check::ok) return c;
    frame_header h = load_header(p);
    if (frame_crc(h, p + h.payload_offset) != h.crc) return frame_check::bad_crc;
    return check_offset_block(h, p + h.payload_offset);
}

frame_check check_offset_block(const frame_header& h, const uint8_t* payload) {
    if (!h.sparse()) return frame_check::ok;
    const uint8_t* deltas = payload + 8;
    int64_t previous = -1;
    for (uint32_t i = 0; i < h.record_count; ++i) {
        uint32_t d;
        std::memcpy(&d, deltas + 4 * uint64_t{i}, sizeof d);
        if (int64_t{d} <= previous || d > h.last_offset_delta) return frame_check::bad_header;
        previous = d;
    }
    for (uint64_t at = 8 + 4 * uint64_t{h.record_count}; at < h.block_length(); ++at)
        if (payload[at]) return frame_check::bad_header;
    return frame_check::ok;
}

}  // namespace tidelog
