// libFuzzer target: frame decoding (frame.h check_header / check_frame) over
// arbitrary bytes, walked as a segment would be.
#include <cstdint>
#include <cstring>
#include <vector>

#include "frame.h"
#include "fuzz_common.h"

using namespace tidelog;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // An exact-size heap copy, so ASan sees any read past the end.
    std::vector<uint8_t> buf(data, data + size);
    const uint8_t* p = buf.data();
    uint64_t pos = 0;
    int64_t expected = -1;
    while (pos <= size) {
        uint64_t available = size - pos;
        const uint8_t* at = available ? p + pos : nullptr;
        if (!at) break;
        frame_check header = check_header(at, available);
        frame_check full = check_frame(at, available);
        // check_frame is check_header plus the CRC, plus a sparse frame's offset block.
        if (header != frame_check::ok) FUZZ_CHECK(full == header, int(full), int(header));
        else FUZZ_CHECK(full == frame_check::ok || full == frame_check::bad_crc || full == frame_check::bad_header,
                        int(full));
        if (header == frame_check::end_of_data) {
            for (uint64_t i = 0; i < std::min<uint64_t>(available, frame_header_bytes); ++i)
                FUZZ_CHECK(at[i] == 0, int64_t(i));
        }
        if (header != frame_check::ok) break;
        frame_header h = load_header(at);
        uint64_t length = h.frame_length();
        FUZZ_CHECK(length >= frame_header_bytes && length <= available && length % frame_alignment == 0,
                   int64_t(length), int64_t(available));
        FUZZ_CHECK(h.payload_offset >= frame_header_bytes && h.payload_offset + h.payload_length <= length,
                   int64_t(h.payload_offset), int64_t(h.payload_length));
        if (full == frame_check::ok) FUZZ_CHECK(frame_crc(h, at + h.payload_offset) == h.crc);
        // Only a CRC-valid sparse frame fails on its block.
        if (full == frame_check::bad_header) FUZZ_CHECK(h.sparse() && frame_crc(h, at + h.payload_offset) == h.crc);
        if (!h.sparse()) FUZZ_CHECK(int64_t{h.record_count} == h.offset_span() + 1, int64_t(h.record_count));
        if (h.sparse()) {
            // The block fits the payload; a valid frame's deltas number its records within the span.
            FUZZ_CHECK(h.block_length() <= h.payload_length, int64_t(h.block_length()), int64_t(h.payload_length));
            FUZZ_CHECK(h.record_count > 0 || h.payload_length == 8, int64_t(h.payload_length));
            if (full == frame_check::ok) {
                const uint8_t* block = at + h.payload_offset;
                int64_t previous = -1;
                for (uint32_t i = 0; i < h.record_count; ++i) {
                    uint32_t d;
                    std::memcpy(&d, block + 8 + 4 * uint64_t{i}, sizeof d);
                    FUZZ_CHECK(int64_t{d} > previous && d <= h.last_offset_delta, int64_t(d), previous);
                    previous = d;
                }
            }
        }
        if (expected >= 0 && h.base_offset != expected) break;  // what a segment walk rejects
        expected = h.next_offset();
        pos += length;
    }
    return 0;
}
