// libFuzzer target: index files (.index/.timeindex) with arbitrary bytes next
// to a segment -> index loading, the writer's sanity check, and lookups through
// a reader partition (FORMAT.md §4, §8: indexes are hints, never trusted blindly).
//
// Input: fuzz_common.h's layout; only segment 0's three files are used. The
// published end is what a full CRC walk of the .log finds (what a writer would
// have published).
// Invariants:
//   - loading never crashes; lookups return an entry of the index or {0, 0},
//     at or below what was asked;
//   - reads by offset return exactly the frames a plain walk finds, whatever the
//     indexes say (a misleading entry, one past the end of the .log included,
//     makes the reader walk from the segment start; it never hangs);
//   - reads by time return only frames of the walk, in order, that meet the bounds
//     (completeness under a damaged time index is a known bug: bugs.md).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "frame.h"
#include "fuzz_common.h"
#include "partition.h"
#include "segment.h"
#include "segment_index.h"
#include "shared_state.h"

using namespace tidelog;
using tidelog_fuzz::files;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    tidelog_fuzz::use_sparse_fallocate();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    files in = files::decode(data, size);
    std::string dir = tidelog_fuzz::fresh_dir("index") + "/0";
    std::filesystem::create_directories(dir);
    std::string stem = dir + "/" + segment_file_stem(0);
    tidelog_fuzz::write_file(stem + ".log", in.log.data(), in.log.size());
    tidelog_fuzz::write_file(stem + ".index", in.index.data(), in.index.size());
    tidelog_fuzz::write_file(stem + ".timeindex", in.timeindex.data(), in.timeindex.size());

    // Ground truth: the CRC-valid frames from position 0.
    struct truth {
        uint64_t position;
        frame_header h;
    };
    std::vector<truth> walk;
    int64_t end = 0;
    uint64_t pos = 0, valid_bytes = 0;
    while (pos < in.log.size()) {
        frame_check c = check_frame(in.log.data() + pos, in.log.size() - pos);
        if (c != frame_check::ok || load_header(in.log.data() + pos).base_offset != end) break;
        frame_header h = load_header(in.log.data() + pos);
        walk.push_back({pos, h});
        end = h.next_offset();
        pos += h.frame_length();
        valid_bytes = pos;
    }

    {
        // Direct index use: load, sanity check, lookups.
        segment_index idx(stem, true);
        FUZZ_CHECK(idx.offset_entries() <= in.index.size() / 8);
        FUZZ_CHECK(idx.time_entries() <= in.timeindex.size() / 16);
        (void)idx.files_whole();
        (void)idx.consistent_with(valid_bytes);
        uint32_t probes[] = {0, 1, 2, 7, 100, UINT32_MAX};
        for (uint32_t r : probes) {
            offset_index_entry e = idx.entry_for_offset(r);
            FUZZ_CHECK(e.relative_offset <= r || (e.relative_offset == 0 && e.position == 0), e.relative_offset, r);
        }
        for (auto& t : walk) {
            offset_index_entry e = idx.entry_for_time(t.h.max_timestamp);
            (void)e;
        }
        auto s = segment::open(dir, 0, false);
        (void)s->index_matches_log(valid_bytes);
        s->close();
    }

    // A reader partition, with the walk's end published as a writer would.
    {
        shared_state state(dir + "/state", true);
        state.claim(end, 0, valid_bytes);
    }
    partition_config config;
    partition reader(nullptr, dir, config, true, true);
    FUZZ_CHECK(reader.end_offset() == end, reader.end_offset(), end);
    std::vector<frame_ref> all = reader.frames(0, end, INT64_MIN, INT64_MAX, SIZE_MAX);
    FUZZ_CHECK(all.size() == walk.size(), int64_t(all.size()), int64_t(walk.size()));
    for (size_t i = 0; i < all.size(); ++i)
        FUZZ_CHECK(all[i].position == walk[i].position && all[i].header.crc == walk[i].h.crc, int64_t(i));
    // From every frame start and from inside frames: the frame holding the offset first.
    for (size_t i = 0; i < walk.size(); ++i) {
        int64_t base = walk[i].h.base_offset;
        for (int64_t k : {base, walk[i].h.last_offset()}) {
            if (k < base) continue;
            std::vector<frame_ref> got = reader.frames(k, end, INT64_MIN, INT64_MAX, 2);
            FUZZ_CHECK(!got.empty() && got[0].position == walk[i].position, k, int64_t(walk[i].position));
            if (i + 1 < walk.size()) FUZZ_CHECK(got.size() == 2 && got[1].position == walk[i + 1].position, k);
        }
    }
    // By time: only frames of the walk that meet the bounds, in order.
    for (size_t i = 0; i < walk.size() && i < 16; ++i) {
        int64_t t = walk[i].h.max_timestamp;
        std::vector<frame_ref> got = reader.frames(0, end, t, INT64_MAX, SIZE_MAX);
        size_t j = 0;
        for (auto& f : got) {
            while (j < walk.size() && walk[j].position != f.position) ++j;
            FUZZ_CHECK(j < walk.size(), int64_t(f.position));
            FUZZ_CHECK(f.header.max_timestamp >= t, f.header.max_timestamp, t);
            ++j;
        }
        (void)reader.offset_for_time(t);
    }
    return 0;
}
