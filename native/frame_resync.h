#pragma once
// Finding the next intact frame after damage, so that damage costs only the
// damaged bytes (docs/FORMAT.md §2.5).
//
// Frames start at multiples of 8 and carry a CRC over header and payload, so a
// walk that meets bytes it cannot parse (bit rot in a header, a zeroed sector,
// a misdirected write) can search forward, 8 bytes at a time, for a position
// whose frame is whole and CRC-valid, holds later offsets than the damage, and
// is followed by a consistent frame (or the end of the data). The last check
// rejects a stray copy of another frame: its successor does not line up.
//
// Pure functions over a byte range; thread-safe.
#include <cstdint>

#include "frame.h"

namespace tidelog {

struct resync_hit {
    bool found = false;
    uint64_t position = 0;
    frame_header header{};
};

/// The first intact frame at an 8-aligned position in [from, end) of `data`
/// whose offsets lie in [expected_offset, offset_bound] (the offset the damage
/// held or later: an intact copy of the damaged frame itself is as good as the
/// original) and whose successor is either the end of the
/// data or a structurally valid frame continuing its offsets. Only when no such
/// frame exists, a frame that reaches `published_end` is taken whatever follows
/// it: frames past what readers may see can still be in flight.
resync_hit find_next_intact_frame(const uint8_t* data, uint64_t from, uint64_t end, int64_t expected_offset,
                                  int64_t offset_bound, int64_t published_end);

/// True when the frame at `pos` has a whole header holding `expected_offset`,
/// ends its offsets within `offset_bound`, and is followed by a frame continuing
/// its offsets, or is the last one and ends at `end_offset_if_last` (when known,
/// i.e. not INT64_MIN): then only its payload (or CRC) is damaged and it holds
/// exactly the offsets its header says (*out gets the header). Nothing else
/// vouches for a header whose CRC failed.
bool only_this_frame_damaged(const uint8_t* data, uint64_t pos, uint64_t end, int64_t expected_offset,
                             int64_t offset_bound, frame_header* out, int64_t end_offset_if_last = INT64_MIN);

/// One past the last non-zero byte of [from, end), rounded up to 8 (from when all zero).
uint64_t end_of_nonzero(const uint8_t* data, uint64_t from, uint64_t end);

}  // namespace tidelog
