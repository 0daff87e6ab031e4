#include "frame_walker.h"

namespace tidelog {

walk_end walk_frames(const uint8_t* data, uint64_t end, uint64_t position, int64_t offset, int64_t offset_bound,
                     frame_visitor& visitor, check_order order) {
    uint64_t pos = position;
    int64_t off = offset;
    while (true) {
        uint64_t available = end > pos ? end - pos : 0;
        const uint8_t* p = available ? data + pos : nullptr;
        frame_check c = available == 0 ? frame_check::end_of_data : check_header(p, available);
        bool crc_checked = false;
        frame_header h{};
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
            }
        }
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

}  // namespace tidelog
