#include "frame_resync.h"

#include <algorithm>
#include <cstring>

#include "units.h"

namespace tidelog {

namespace {

bool successor_lines_up(const uint8_t* data, uint64_t next, uint64_t end, int64_t expected_offset) {
    if (next >= end) return true;
    frame_check c = check_header(data + next, end - next);
    if (c == frame_check::end_of_data) return true;
    return c == frame_check::ok && load_header(data + next).base_offset == expected_offset;
}

}  // namespace

resync_hit find_next_intact_frame(const uint8_t* data, uint64_t from, uint64_t end, int64_t expected_offset,
                                  int64_t offset_bound, int64_t published_end) {
    resync_hit hit;
    if (!data) return hit;
    // First a frame whose successor lines up. Only when there is none, a frame
    // that reaches published_end without one: its successor may be in flight
    // (a stray copy of the last frame must not win over the real frames).
    for (int pass = 0; pass < 2 && !hit.found; ++pass) {
        if (pass == 1 && published_end == INT64_MAX) break;
        for (uint64_t q = align_up(from, frame_alignment); q + frame_header_bytes <= end; q += frame_alignment) {
            uint32_t magic;
            std::memcpy(&magic, data + q, sizeof magic);
            if (magic != frame_magic) continue;
            if (check_frame(data + q, end - q) != frame_check::ok) continue;
            frame_header h = load_header(data + q);
            if (h.base_offset < expected_offset || h.next_offset() > offset_bound) continue;
            bool lines_up = successor_lines_up(data, q + h.frame_length(), end, h.next_offset());
            if (!lines_up && !(pass == 1 && h.next_offset() >= published_end)) continue;
            hit.found = true;
            hit.position = q;
            hit.header = h;
            break;
        }
    }
    return hit;
}

bool only_this_frame_damaged(const uint8_t* data, uint64_t pos, uint64_t end, int64_t expected_offset,
                             int64_t offset_bound, frame_header* out, int64_t end_offset_if_last) {
    if (!data || pos + frame_header_bytes > end || check_header(data + pos, end - pos) != frame_check::ok) return false;
    frame_header h = load_header(data + pos);
    if (h.base_offset != expected_offset || h.next_offset() > offset_bound) return false;
    uint64_t next = pos + h.frame_length();
    bool last = next >= end || check_header(data + next, end - next) == frame_check::end_of_data;
    if (last ? end_offset_if_last != INT64_MIN && h.next_offset() != end_offset_if_last
             : !successor_lines_up(data, next, end, h.next_offset()))
        return false;
    *out = h;
    return true;
}

uint64_t end_of_nonzero(const uint8_t* data, uint64_t from, uint64_t end) {
    if (!data) return from;
    uint64_t e = end;
    while (e > from && data[e - 1] == 0) --e;
    return e == from ? from : std::min(align_up(e, frame_alignment), end);
}

}  // namespace tidelog
