// libFuzzer target: a partition folder's bytes -> writer open (recovery and
// truncation, FORMAT.md §8) -> reads, an append, a clean close and a reopen.
//
// Input: fuzz_common.h's layout (segment 0's .log/.index/.timeindex, an optional
// recovery checkpoint, an optional second segment, the clean-shutdown flag).
// Invariants:
//   - never a crash, a sanitizer report, or an exception other than
//     tidelog::error(corrupt) from reading frames a clean marker or a checkpoint
//     vouched for (the open itself must succeed);
//   - with nothing vouched for (no clean marker, no checkpoint), recovery keeps
//     exactly the CRC-valid prefix a plain walk finds, and reads return exactly it;
//   - recovered frames are dense; an append after recovery reads back; a clean
//     close and a reopen keep everything.
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "committer.h"
#include "errors.h"
#include "frame.h"
#include "fuzz_common.h"
#include "partition.h"
#include "segment.h"

using namespace tidelog;
using tidelog_fuzz::files;

namespace {

committer& the_committer() {
    static committer* c = new committer();  // lives for the process (its thread too)
    return *c;
}

struct walked {
    std::vector<std::pair<uint64_t, frame_header>> frames;  // position, header
    int64_t next_offset;
    frame_check stop;
};

walked walk(const std::vector<uint8_t>& log, int64_t base) {
    walked w{{}, base, frame_check::end_of_data};
    uint64_t pos = 0;
    while (true) {
        uint64_t available = log.size() - pos;
        frame_check c = available == 0 ? frame_check::end_of_data : check_frame(log.data() + pos, available);
        if (c == frame_check::ok && load_header(log.data() + pos).base_offset != w.next_offset) c = frame_check::bad_header;
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

std::vector<frame_ref> read_all(partition& p, bool may_be_corrupt, bool* corrupt) {
    *corrupt = false;
    try {
        return p.frames(p.start_offset(), p.end_offset(), INT64_MIN, INT64_MAX, SIZE_MAX);
    } catch (const error& e) {
        if (e.code() != errc::corrupt || !may_be_corrupt) throw;
        *corrupt = true;
        return {};
    }
}

void check_dense(const std::vector<frame_ref>& got, int64_t start, int64_t end) {
    int64_t next = start;
    for (auto& f : got) {
        FUZZ_CHECK(f.header.base_offset == next, f.header.base_offset, next);
        next = f.header.next_offset();
    }
    FUZZ_CHECK(next == end, next, end);
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
    if (in.has_checkpoint)
        tidelog_fuzz::write_file(dir + "/recovery-checkpoint", in.checkpoint.data(), in.checkpoint.size());
    if (in.two_segments) {
        std::string second = dir + "/" + segment_file_stem(in.second_base) + ".log";
        tidelog_fuzz::write_file(second, in.log2.data(), in.log2.size());
    }

    if (!tidelog_fuzz::strict()) {
        // Open bug (bugs.md, "0-record frame"): check_header accepts record_count 0;
        // recovery keeps such a frame, and after an append and a clean close the
        // reopen drops the partition. Step around inputs whose first segment holds one.
        for (uint64_t pos = 0; pos + frame_header_bytes <= in.log.size();) {
            if (check_header(in.log.data() + pos, in.log.size() - pos) != frame_check::ok) break;
            frame_header h = load_header(in.log.data() + pos);
            if (h.record_count == 0) return 0;
            pos += h.frame_length();
        }
    }

    partition_config config;
    config.segment_bytes = 1 << 20;
    config.durability = durability_mode::none;
    bool vouched = in.clean || in.has_checkpoint;

    int64_t end;
    bool first_corrupt = false;
    std::vector<std::pair<int64_t, uint32_t>> kept;  // base offset, crc of every frame read
    {
        partition p(&the_committer(), dir, config, false, in.clean);
        int64_t start = p.start_offset();
        end = p.end_offset();
        FUZZ_CHECK(start <= end, start, end);
        bool corrupt;
        if (!tidelog_fuzz::strict() && vouched) {
            // Open bug (bugs.md, "SIGBUS"): a vouched-for frame header whose claimed
            // length crosses the end recovery truncated the file to is read through
            // the segment's stale, longer mapping: the CRC check faults (SIGBUS).
            // Step around it: walk the headers as the reader does, against the
            // input's length, and skip the reads if one crosses the new file end.
            uint64_t now = std::filesystem::file_size(stem + ".log");
            uint64_t pos = 0;
            int64_t next = 0;
            bool crosses = false;
            while (pos + frame_header_bytes <= in.log.size() && next < end) {
                if (check_header(in.log.data() + pos, in.log.size() - pos) != frame_check::ok) break;
                frame_header h = load_header(in.log.data() + pos);
                if (pos + h.frame_length() > now) crosses = true;
                next = h.next_offset();
                pos += h.frame_length();
            }
            if (crosses) {
                p.close();
                return 0;
            }
        }
        std::vector<frame_ref> got = read_all(p, vouched, &corrupt);
        first_corrupt = corrupt;
        if (!corrupt) check_dense(got, start, end);
        for (auto& f : got) kept.push_back({f.header.base_offset, f.header.crc});
        if (!vouched) {
            // Nothing vouched for: exactly the CRC-valid prefix of a walk.
            FUZZ_CHECK(start == 0, start);
            walked w0 = walk(in.log, 0);
            int64_t want = w0.next_offset;
            size_t want_frames = w0.frames.size();
            if (in.two_segments && w0.stop == frame_check::end_of_data && int64_t{in.second_base} == w0.next_offset) {
                walked w1 = walk(in.log2, in.second_base);
                want = w1.next_offset;
                want_frames += w1.frames.size();
            }
            FUZZ_CHECK(end == want, end, want);
            FUZZ_CHECK(got.size() == want_frames, int64_t(got.size()), int64_t(want_frames));
            for (size_t i = 0; i < got.size() && i < w0.frames.size(); ++i)
                FUZZ_CHECK(got[i].position == w0.frames[i].first && got[i].header.crc == w0.frames[i].second.crc,
                           int64_t(got[i].position), int64_t(w0.frames[i].first));
        }
        for (auto& f : got)
            FUZZ_CHECK(check_frame(f.region->data() + f.position, f.region->length() - f.position) == frame_check::ok ||
                           vouched,
                       f.header.base_offset);

        // The recovered log takes appends, and reads them back.
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
        p.close();
    }
    {
        // A clean reopen keeps everything, including the append.
        partition p(&the_committer(), dir, config, false, true);
        // Damage below the trusted point (reads raised CorruptionError) can make
        // the clean reopen cut the partition: an open bug (bugs.md, "damage below
        // the trusted point"); checked only in strict mode until it is fixed.
        if (first_corrupt && !tidelog_fuzz::strict()) {
            p.close();
            return 0;
        }
        FUZZ_CHECK(p.end_offset() == end + 3, p.end_offset(), end + 3);
        bool corrupt;
        std::vector<frame_ref> got = read_all(p, vouched, &corrupt);
        if (!corrupt) {
            check_dense(got, p.start_offset(), end + 3);
            if (!first_corrupt) FUZZ_CHECK(got.size() == kept.size() + 1, int64_t(got.size()), int64_t(kept.size()));
            for (size_t i = 0; i < kept.size() && i < got.size(); ++i)
                FUZZ_CHECK(got[i].header.base_offset == kept[i].first && got[i].header.crc == kept[i].second,
                           got[i].header.base_offset, kept[i].first);
        }
        p.close();
    }
    return 0;
}
