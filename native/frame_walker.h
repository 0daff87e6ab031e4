#pragma once
// The one loop that walks a segment's frames (Redpanda's continuous batch
// parser with batch consumers). It checks each header, the CRC when the
// visitor asks for it, and that the frame holds the offset expected (and none
// at or past `offset_bound`), in the order the caller reports failures by;
// what to do with a good frame, and where to go on
// after damage (FORMAT.md §2.5: frame_resync.h), is the visitor's.
//
// Recovery (segment::scan), reads (partition::frames), the index check
// (segment::index_matches_log) and partition_reader walk through it.
// Pure over a byte range; thread-safe as its visitor is.
#include <cstdint>
#include <utility>

#include "frame.h"

namespace tidelog {

/// Where a walk goes on after damage, or that it stops there.
struct walk_resume {
    bool stop = true;
    uint64_t position = 0;
    int64_t offset = 0;
    static walk_resume stop_here() { return {}; }
    static walk_resume at(uint64_t position, int64_t offset) { return {false, position, offset}; }
};

/// What a visitor makes of a frame whose header passed.
enum class frame_admission : uint8_t {
    take,            // on its header alone
    take_after_crc,  // if its CRC passes too
    reject,          // as damage (bad_header): the visitor does not trust it
};

/// Which check decides first when a frame fails both: the CRC (bad_crc), as
/// recovery reports it, or the offsets (bad_header), as reads report it.
enum class check_order : uint8_t { crc_first, offsets_first };

/// A visitor (any type with these three members; make_frame_visitor builds one
/// from lambdas). The walk is a template over it, so that the per-frame calls
/// inline: reads walk millions of small frames.
///   frame_admission admit(uint64_t position, const frame_header& h);
///     what to make of a frame whose header passed;
///   bool on_frame(uint64_t position, const frame_header& h, bool crc_checked);
///     a frame that passed every check; false stops the walk after it;
///   walk_resume on_damage(uint64_t position, int64_t offset, frame_check why);
///     the bytes at `position`, where the frame holding `offset` should start,
///     fail `why` (end_of_data: zeros or no bytes left): where to go on, or stop.

/// Where a walk ended: after the last frame a visitor stopped at, or at the damage it stopped at.
struct walk_end {
    uint64_t position;
    int64_t offset;
};

/// Walks the frames of data[0, end) from `position`, where the frame holding
/// `offset` starts (data may be null when end is 0).
template <typename Visitor>
walk_end walk_frames(const uint8_t* data, uint64_t end, uint64_t position, int64_t offset, int64_t offset_bound,
                     Visitor& visitor, check_order order = check_order::crc_first) {
    uint64_t pos = position;
    int64_t off = offset;
    while (true) {
        uint64_t available = end > pos ? end - pos : 0;
        const uint8_t* p = available ? data + pos : nullptr;
        frame_check c = available == 0 ? frame_check::end_of_data : check_header(p, available);
        bool crc_checked = false;
        frame_header h;
        if (c == frame_check::ok) h = load_header(p);
        auto offsets_fit = [&] { return h.base_offset == off && h.next_offset() <= offset_bound; };
        if (c == frame_check::ok && order == check_order::offsets_first && !offsets_fit()) c = frame_check::bad_header;
        if (c == frame_check::ok) {
            frame_admission a = visitor.admit(pos, h);
            if (a == frame_admission::reject) {
                c = frame_check::bad_header;
            } else if (a == frame_admission::take_after_crc) {
                crc_checked = true;
                if (frame_crc(h, p + h.payload_offset) != h.crc) c = frame_check::bad_crc;
                else c = check_offset_block(h, p + h.payload_offset);  // a CRC-valid broken block is damage
            }
        }
        // (crc_first: a frame whose CRC fails is bad_crc whatever it holds.)
        if (c == frame_check::ok && order == check_order::crc_first && !offsets_fit()) c = frame_check::bad_header;
        if (c == frame_check::ok) {
            bool go_on = visitor.on_frame(pos, h, crc_checked);
            pos += h.frame_length();
            off = h.next_offset();
            if (!go_on) return {pos, off};
            continue;
        }
        walk_resume next = visitor.on_damage(pos, off, c);
        if (next.stop) return {pos, off};
        pos = next.position;
        off = next.offset;
    }
}

/// A visitor from three callables (admit, on_frame, on_damage), so a walk's
/// logic stays next to the state it updates.
template <typename Admit, typename OnFrame, typename OnDamage>
class lambda_frame_visitor {
public:
    lambda_frame_visitor(Admit a, OnFrame f, OnDamage d) : _admit(std::move(a)), _frame(std::move(f)), _damage(std::move(d)) {}
    frame_admission admit(uint64_t position, const frame_header& h) { return _admit(position, h); }
    bool on_frame(uint64_t position, const frame_header& h, bool crc_checked) {
        return _frame(position, h, crc_checked);
    }
    walk_resume on_damage(uint64_t position, int64_t offset, frame_check why) {
        return _damage(position, offset, why);
    }

private:
    Admit _admit;
    OnFrame _frame;
    OnDamage _damage;
};

template <typename Admit, typename OnFrame, typename OnDamage>
lambda_frame_visitor<Admit, OnFrame, OnDamage> make_frame_visitor(Admit c, OnFrame f, OnDamage d) {
    return {std::move(c), std::move(f), std::move(d)};
}

}  // namespace tidelog
