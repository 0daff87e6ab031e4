// libFuzzer target: a partition folder's bytes -> writer open (recovery,
// FORMAT.md §8) -> reads, an append, a clean close and a reopen.
//
// Input: fuzz_common.h's layout (segment 0's .log/.index/.timeindex, an optional
// recovery checkpoint, an optional second segment, the clean-shutdown flag). The
// target writes no `state` file and opens in durability "none", so what vouches
// for data is the clean flag and a readable checkpoint only. The vouched point V:
// a readable checkpoint's next_offset; else everything after a clean close;
// else nothing (a crash without a checkpoint).
//
// Invariants (all checked on every input: no input is stepped around):
//   1. never a crash or a sanitizer report; the writer open always succeeds;
//      reads raise nothing but tidelog::error(corrupt), and that only when
//      something is vouched for (damage below V is kept and reported);
//   2. nothing vouched for: recovery keeps exactly the CRC-valid prefix of a
//      plain walk (segment 0, then the second segment if it continues it), the
//      end is that prefix's end, reads return exactly its frames (no damage is
//      kept or reported);
//   3. something vouched for: every frame a reference walk with resync finds
//      with offsets below V is still there: a read that skips damage returns it
//      (same offsets, CRC, position). The reference walk takes CRC-valid frames
//      that continue the offsets; at a frame that fails, it skips exactly that
//      frame when its header is whole, continues the offsets and its successor
//      lines up (only the payload is damaged), else it resyncs to the first later
//      8-aligned CRC-valid frame holding higher offsets whose successor lines up
//      (or that ends the data);
//   4. reads that skip damage return only CRC-valid frames, offsets strictly
//      increasing, and together with the damaged ranges they list they cover
//      [start, end) exactly (every offset asked for is returned or named); a read
//      that does not skip returns the same frames or raises error(corrupt);
//   5. no offset reuse: the end after recovery is >= every offset a read returns
//      or names as damaged, >= every damaged range recovery reports, and >= the
//      checkpoint's next_offset; an append gets exactly that end and reads back;
//   6. a clean close and reopen: the reopen cuts nothing (no "cut" recovery
//      event), keeps the end, and a read that skips damage returns the same frames
//      (offsets, CRC, position) as just before the close, damage listed or not alike.
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "committer.h"
#include "errors.h"
#include "frame.h"
#include "fuzz_common.h"
#include "partition.h"
#include "recovery_checkpoint.h"
#include "segment.h"

using namespace tidelog;
using tidelog_fuzz::files;

namespace {

committer& the_committer() {
    static committer* c = new committer();  // lives for the process (its thread too)
    return *c;
}

struct ref_frame {
    uint64_t position;
    frame_header h;
};

struct walked {
    std::vector<ref_frame> frames;
    int64_t next_offset;
    frame_check stop;
};

/// The CRC-valid prefix: stops at the first frame that fails its checks or does
/// not continue the offsets.
walked walk_prefix(const std::vector<uint8_t>& log, int64_t base, int64_t bound) {
    walked w{{}, base, frame_check::end_of_data};
    uint64_t pos = 0;
    while (true) {
        uint64_t available = log.size() - pos;
        frame_check c = available == 0 ? frame_check::end_of_data : check_frame(log.data() + pos, available);
        if (c == frame_check::ok) {
            frame_header h = load_header(log.data() + pos);
            if (h.base_offset != w.next_offset || h.next_offset() > bound) c = frame_check::bad_header;
        }
        if (c != frame_check::ok) {
            w.stop = c;
            return w;
        }
        frame_header h = load_header(log.data() + pos);
        w.frames.push_back({pos, h});
        w.next_offset = h.next_offset();
        pos += h.frame_length();
    }
}

/// A frame at `q` is intact for a resync after offset `after`: whole and
/// CRC-valid, higher offsets within the bound, and followed by the end of the
/// data or a frame header continuing its offsets.
bool intact_after(const std::vector<uint8_t>& log, uint64_t q, int64_t after, int64_t bound) {
    if (check_frame(log.data() + q, log.size() - q) != frame_check::ok) return false;
    frame_header h = load_header(log.data() + q);
    if (h.base_offset < after || h.next_offset() > bound) return false;  // `after`: the offset the damage held
    uint64_t next = q + h.frame_length();
    if (next >= log.size()) return true;
    frame_check c = check_header(log.data() + next, log.size() - next);
    return c == frame_check::end_of_data || (c == frame_check::ok && load_header(log.data() + next).base_offset == h.next_offset());
}

/// The reference walk with resync: what a walk that treats every failure as
/// damage and skips to the next intact frame finds.
std::vector<ref_frame> walk_resync(const std::vector<uint8_t>& log, int64_t base, int64_t bound) {
    std::vector<ref_frame> out;
    uint64_t pos = 0;
    int64_t off = base;
    while (pos < log.size()) {
        if (check_frame(log.data() + pos, log.size() - pos) == frame_check::ok) {
            frame_header h = load_header(log.data() + pos);
            if (h.base_offset == off && h.next_offset() <= bound) {
                out.push_back({pos, h});
                off = h.next_offset();
                pos += h.frame_length();
                continue;
            }
        }
        // A frame whose header is whole and continues the offsets, and whose
        // successor lines up: only its payload is damaged; skip exactly it.
        if (pos + frame_header_bytes <= log.size() && check_header(log.data() + pos, log.size() - pos) == frame_check::ok) {
            frame_header h = load_header(log.data() + pos);
            uint64_t next = pos + h.frame_length();
            frame_check c = next < log.size() ? check_header(log.data() + next, log.size() - next) : frame_check::end_of_data;
            if (h.base_offset == off && h.next_offset() <= bound &&
                (c == frame_check::end_of_data ||
                 (c == frame_check::ok && load_header(log.data() + next).base_offset == h.next_offset()))) {
                off = h.next_offset();
                pos = next;
                continue;
            }
        }
        // Else the first later intact frame holding later offsets.
        uint64_t q = pos + frame_alignment;
        while (q + frame_header_bytes <= log.size() && !intact_after(log, q, off, bound)) q += frame_alignment;
        if (q + frame_header_bytes > log.size()) break;
        pos = q;
        off = load_header(log.data() + q).base_offset;
    }
    return out;
}

using walked_frame = std::tuple<int64_t, uint32_t, uint64_t>;  // base offset, crc, position

struct read_result {
    std::vector<walked_frame> frames;
    std::vector<damaged_range> skipped;
    int64_t frames_end = INT64_MIN;  // next offset after the last frame
};

/// A read of [start, end) that skips damage, checked against invariant 4.
read_result read_skipping(partition& p, int64_t start, int64_t end) {
    read_result r;
    std::vector<frame_ref> got = p.frames(start, end, INT64_MIN, INT64_MAX, SIZE_MAX, &r.skipped);
    struct span {
        int64_t from, to;
    };
    std::vector<span> spans;  // frames and damage, each list in its own order
    int64_t last = INT64_MIN;
    for (auto& f : got) {
        FUZZ_CHECK(check_frame(f.region->data() + f.position, f.region->length() - f.position) == frame_check::ok,
                   f.header.base_offset, int64_t(f.position));
        FUZZ_CHECK(f.header.base_offset >= last, f.header.base_offset, last);  // strictly increasing offsets
        last = r.frames_end = f.header.next_offset();
        r.frames.push_back({f.header.base_offset, f.header.crc, f.position});
        spans.push_back({f.header.base_offset, f.header.next_offset()});
    }
    last = INT64_MIN;
    for (auto& d : r.skipped) {
        FUZZ_CHECK(d.start_offset < d.end_offset && d.start_offset >= last, d.start_offset, d.end_offset);
        last = d.end_offset;
        spans.push_back({d.start_offset, d.end_offset});
    }
    std::stable_sort(spans.begin(), spans.end(), [](const span& a, const span& b) { return a.from < b.from; });
    // Together they cover [start, end) without gaps or overlaps: every offset
    // asked for is returned or named.
    int64_t next = start;
    for (size_t i = 0; i < spans.size(); ++i) {
        if (i == 0) FUZZ_CHECK(spans[i].from <= start && spans[i].to > start, spans[i].from, start);
        else FUZZ_CHECK(spans[i].from == next, spans[i].from, next);
        next = spans[i].to;
    }
    FUZZ_CHECK(next >= end, next, end);
    return r;
}

/// A read that does not skip damage: the same frames, or error(corrupt).
void read_strict(partition& p, int64_t start, int64_t end, const read_result& skipping, bool may_be_corrupt) {
    try {
        std::vector<frame_ref> got = p.frames(start, end, INT64_MIN, INT64_MAX, SIZE_MAX);
        FUZZ_CHECK(skipping.skipped.empty(), int64_t(skipping.skipped.size()));
        FUZZ_CHECK(got.size() == skipping.frames.size(), int64_t(got.size()), int64_t(skipping.frames.size()));
        for (size_t i = 0; i < got.size(); ++i)
            FUZZ_CHECK(walked_frame(got[i].header.base_offset, got[i].header.crc, got[i].position) == skipping.frames[i],
                       got[i].header.base_offset, int64_t(i));
    } catch (const error& e) {
        FUZZ_CHECK(e.code() == errc::corrupt && may_be_corrupt && !skipping.skipped.empty(), int(e.code()));
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    tidelog_fuzz::use_sparse_fallocate();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    files in = files::decode(data, size);
    if (in.two_segments && in.second_base == 0) in.two_segments = false;
    std::string dir = tidelog_fuzz::fresh_dir("recovery") + "/0";
    std::filesystem::create_directories(dir);
    std::string stem = dir + "/" + segment_file_stem(0);
    tidelog_fuzz::write_file(stem + ".log", in.log.data(), in.log.size());
    tidelog_fuzz::write_file(stem + ".index", in.index.data(), in.index.size());
    tidelog_fuzz::write_file(stem + ".timeindex", in.timeindex.data(), in.timeindex.size());
    std::optional<recovery_point> cp;
    if (in.has_checkpoint) {
        std::string path = dir + "/recovery-checkpoint";
        tidelog_fuzz::write_file(path, in.checkpoint.data(), in.checkpoint.size());
        recovery_checkpoint reader(path, false);
        cp = reader.load();
        reader.close();
    }
    if (in.two_segments) {
        std::string second = dir + "/" + segment_file_stem(in.second_base) + ".log";
        tidelog_fuzz::write_file(second, in.log2.data(), in.log2.size());
    }

    partition_config config;
    config.segment_bytes = 1 << 20;
    config.durability = durability_mode::none;
    bool vouched = in.clean || cp.has_value();
    int64_t vouched_end = cp ? cp->next_offset : in.clean ? INT64_MAX : INT64_MIN;
    int64_t bound0 = in.two_segments ? int64_t{in.second_base} : INT64_MAX;

    if (tidelog_fuzz::verbose()) {
        std::fprintf(stderr, "input: clean %d checkpoint %d (readable %d: segment %lld position %llu next %lld) "
                     "segments %d (second base %u) log %zu log2 %zu index %zu timeindex %zu\n",
                     in.clean, in.has_checkpoint, cp.has_value(), cp ? (long long)cp->segment_base : -1LL,
                     cp ? (unsigned long long)cp->position : 0ULL, cp ? (long long)cp->next_offset : -1LL,
                     in.two_segments ? 2 : 1, in.second_base, in.log.size(), in.log2.size(), in.index.size(),
                     in.timeindex.size());
        for (auto& f : walk_resync(in.log, 0, bound0))
            std::fprintf(stderr, "  reference seg0 @%llu offsets %lld..%lld\n", (unsigned long long)f.position,
                         (long long)f.h.base_offset, (long long)f.h.next_offset() - 1);
        if (in.two_segments)
            for (auto& f : walk_resync(in.log2, in.second_base, INT64_MAX))
                std::fprintf(stderr, "  reference seg1 @%llu offsets %lld..%lld\n", (unsigned long long)f.position,
                             (long long)f.h.base_offset, (long long)f.h.next_offset() - 1);
    }

    int64_t end;
    read_result before_close;
    {
        partition p(&the_committer(), dir, config, false, in.clean);  // (1) must not throw
        int64_t start = p.start_offset();
        end = p.end_offset();
        FUZZ_CHECK(start <= end, start, end);
        if (tidelog_fuzz::verbose()) {
            std::fprintf(stderr, "open: start %lld end %lld\n", (long long)start, (long long)end);
            for (auto& e : p.recovery_events())
                std::fprintf(stderr, "  event %s %s @%llu dropped %llu damaged %llu offsets %lld..%lld: %s\n",
                             e.kind.c_str(), e.file.c_str(), (unsigned long long)e.position,
                             (unsigned long long)e.bytes_dropped, (unsigned long long)e.bytes_damaged,
                             (long long)e.first_offset_dropped, (long long)e.end_offset, e.reason.c_str());
        }
        read_result got = read_skipping(p, start, end);  // (4)
        if (tidelog_fuzz::verbose()) {
            for (auto& k : got.frames)
                std::fprintf(stderr, "  read @%llu base %lld\n", (unsigned long long)std::get<2>(k),
                             (long long)std::get<0>(k));
            for (auto& d : got.skipped)
                std::fprintf(stderr, "  skipped %s @%llu +%llu offsets %lld..%lld: %s\n", d.segment.c_str(),
                             (unsigned long long)d.position, (unsigned long long)d.bytes, (long long)d.start_offset,
                             (long long)d.end_offset, d.reason.c_str());
        }
        read_strict(p, start, end, got, vouched);

        if (!vouched) {
            // (2) Nothing vouched for: exactly the CRC-valid prefix of a walk.
            FUZZ_CHECK(start == 0, start);
            walked w0 = walk_prefix(in.log, 0, bound0);
            int64_t want = w0.next_offset;
            std::vector<ref_frame> want_frames = w0.frames;
            if (in.two_segments && w0.stop == frame_check::end_of_data && int64_t{in.second_base} == w0.next_offset) {
                walked w1 = walk_prefix(in.log2, in.second_base, INT64_MAX);
                want = w1.next_offset;
                want_frames.insert(want_frames.end(), w1.frames.begin(), w1.frames.end());
            }
            FUZZ_CHECK(end == want, end, want);
            FUZZ_CHECK(got.skipped.empty() && p.damaged_ranges().empty(), int64_t(got.skipped.size()));
            FUZZ_CHECK(got.frames.size() == want_frames.size(), int64_t(got.frames.size()), int64_t(want_frames.size()));
            for (size_t i = 0; i < got.frames.size(); ++i)
                FUZZ_CHECK(got.frames[i] == walked_frame(want_frames[i].h.base_offset, want_frames[i].h.crc,
                                                      want_frames[i].position),
                           std::get<0>(got.frames[i]), want_frames[i].h.base_offset);
        } else {
            // (3) Nothing a reference walk finds intact below the vouched point is lost.
            std::vector<ref_frame> want = walk_resync(in.log, 0, bound0);
            if (in.two_segments) {
                std::vector<ref_frame> w1 = walk_resync(in.log2, in.second_base, INT64_MAX);
                want.insert(want.end(), w1.begin(), w1.end());
            }
            for (auto& f : want) {
                if (f.h.next_offset() > vouched_end) continue;
                walked_frame k(f.h.base_offset, f.h.crc, f.position);
                bool found = false;
                for (auto& g : got.frames) found |= g == k;
                FUZZ_CHECK(found, f.h.base_offset, int64_t(f.position));
            }
        }

        // (5) No offset reuse.
        int64_t floor = cp ? cp->next_offset : start;
        floor = std::max(floor, got.frames_end);
        for (auto& d : got.skipped) floor = std::max(floor, d.end_offset);
        for (auto& d : p.damaged_ranges()) floor = std::max(floor, d.end_offset);
        FUZZ_CHECK(end >= floor, end, floor);

        // The recovered log takes appends at its end, and reads them back.
        uint8_t payload[100];
        for (size_t i = 0; i < sizeof payload; ++i) payload[i] = static_cast<uint8_t>(i * 7 + size);
        struct iovec iov{payload, sizeof payload};
        append_request req;
        req.pieces = &iov;
        req.piece_count = 1;
        req.record_count = 3;
        req.min_timestamp = 5;
        req.max_timestamp = 9;
        append_result r = p.append(req);
        FUZZ_CHECK(r.base_offset == end, r.base_offset, end);
        std::vector<frame_ref> mine = p.frames(end, end + 3, INT64_MIN, INT64_MAX, 10);
        FUZZ_CHECK(mine.size() == 1 && mine[0].header.base_offset == end && mine[0].header.payload_length == 100 &&
                   std::memcmp(mine[0].payload(), payload, 100) == 0);
        FUZZ_CHECK(p.end_offset() == end + 3, p.end_offset(), end + 3);
        before_close = read_skipping(p, p.start_offset(), end + 3);
        p.close();
    }
    {
        // (6) A clean reopen cuts nothing and keeps everything readable.
        partition p(&the_committer(), dir, config, false, true);
        for (auto& e : p.recovery_events())
            FUZZ_CHECK(e.kind != "cut" && e.bytes_dropped == 0, e.first_offset_dropped, int64_t(e.bytes_dropped));
        FUZZ_CHECK(p.end_offset() == end + 3, p.end_offset(), end + 3);
        read_result got = read_skipping(p, p.start_offset(), end + 3);
        read_strict(p, p.start_offset(), end + 3, got, true);
        FUZZ_CHECK(got.frames.size() == before_close.frames.size(), int64_t(got.frames.size()),
                   int64_t(before_close.frames.size()));
        for (size_t i = 0; i < got.frames.size(); ++i)
            FUZZ_CHECK(got.frames[i] == before_close.frames[i], std::get<0>(got.frames[i]),
                       std::get<0>(before_close.frames[i]));
        FUZZ_CHECK(got.skipped.empty() == before_close.skipped.empty(), int64_t(got.skipped.size()),
                   int64_t(before_close.skipped.size()));
        p.close();
    }
    return 0;
}
