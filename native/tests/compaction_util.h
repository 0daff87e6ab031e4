#pragma once
// Helpers of the compaction tests: partitions of one-record frames whose
// payloads name their offset, a deterministic rewrite (records kept by a rule,
// grouped `chunk` offsets to a frame, empty frames where nothing is kept), and
// a segment's content as read, to compare with the old or the new version.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "compaction_session.h"
#include "test_util.h"

namespace tidelog_test {

inline std::vector<uint8_t> record_payload(int64_t offset) {
    return make_payload(16 + static_cast<size_t>(offset % 17), static_cast<uint64_t>(offset) + 1);
}
inline int64_t record_ts(int64_t offset) { return 1'000'000 + offset; }

/// Appends [from, to), one record per frame.
inline void fill(partition& p, int64_t from, int64_t to) {
    for (int64_t o = from; o < to; ++o) {
        auto r = append_payload(p, record_payload(o), 1, record_ts(o), record_ts(o));
        EXPECT_EQ(r.base_offset, o);
    }
}

/// A frame as read (or as planned): what the comparison looks at.
struct seen_frame {
    int64_t base;
    int64_t next;
    uint32_t records;
    bool sparse;
    std::vector<uint32_t> deltas;
    std::vector<uint8_t> arrow;  // the Arrow part (here: opaque record bytes)
    int64_t min_ts, max_ts;
    bool operator==(const seen_frame& o) const {
        return base == o.base && next == o.next && records == o.records && sparse == o.sparse && deltas == o.deltas &&
               arrow == o.arrow && min_ts == o.min_ts && max_ts == o.max_ts;
    }
};

inline seen_frame seen(const frame_ref& f) {
    seen_frame s{f.header.base_offset, f.header.next_offset(), f.header.record_count, f.sparse(), {}, {},
                 f.header.min_timestamp, f.header.max_timestamp};
    for (uint32_t i = 0; i < f.header.record_count; ++i) s.deltas.push_back(f.offset_delta(i));
    s.arrow.assign(f.arrow_payload(), f.arrow_payload() + f.arrow_payload_length());
    return s;
}

inline std::vector<seen_frame> read_segment(partition& p, int64_t base, int64_t end) {
    std::vector<seen_frame> out;
    for (auto& f : p.frames(base, end, INT64_MIN, INT64_MAX, SIZE_MAX)) out.push_back(seen(f));
    return out;
}

inline std::vector<seen_frame> old_version(int64_t base, int64_t end) {
    std::vector<seen_frame> out;
    for (int64_t o = base; o < end; ++o)
        out.push_back({o, o + 1, 1, false, {0}, record_payload(o), record_ts(o), record_ts(o)});
    return out;
}

using keep_rule = std::function<bool(int64_t)>;

/// The rewrite of [base, end): `chunk` offsets a frame, the records `keep` accepts.
inline std::vector<seen_frame> new_version(int64_t base, int64_t end, const keep_rule& keep, int64_t chunk) {
    std::vector<seen_frame> out;
    for (int64_t b = base; b < end; b += chunk) {
        int64_t e = std::min(end, b + chunk);
        seen_frame f{b, e, 0, true, {}, {}, INT64_MAX, INT64_MIN};
        for (int64_t o = b; o < e; ++o) {
            if (!keep(o)) continue;
            f.deltas.push_back(static_cast<uint32_t>(o - b));
            auto pay = record_payload(o);
            f.arrow.insert(f.arrow.end(), pay.begin(), pay.end());
            f.min_ts = std::min(f.min_ts, record_ts(o));
            f.max_ts = std::max(f.max_ts, record_ts(o));
        }
        f.records = static_cast<uint32_t>(f.deltas.size());
        if (f.records == 0) f.min_ts = f.max_ts = record_ts(e - 1);
        out.push_back(f);
    }
    return out;
}

/// Writes `planned` through w (not committed).
inline void write_planned(segment_rewriter& w, const std::vector<seen_frame>& planned) {
    for (auto& f : planned) {
        if (f.records == 0) {
            w.append_empty(f.base, f.next - f.base, f.min_ts);
            continue;
        }
        rewrite_frame r;
        r.base_offset = f.base;
        r.span = f.next - f.base;
        r.record_count = f.records;
        r.offset_deltas = f.deltas.data();
        r.min_timestamp = f.min_ts;
        r.max_timestamp = f.max_ts;
        r.schema_id = 1;
        struct iovec piece{const_cast<uint8_t*>(f.arrow.data()), f.arrow.size()};
        r.pieces = &piece;
        r.piece_count = 1;
        w.append(r);
    }
}

/// Makes the recovery checkpoint durable past everything appended so far.
inline void checkpoint_now(partition& p) {
    p.flush();
    p.write_checkpoint();
}

}  // namespace tidelog_test
