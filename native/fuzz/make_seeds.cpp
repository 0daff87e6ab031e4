// Writes the committed seed corpus of the fuzz targets (native/fuzz/corpus/<target>/)
// from real partitions written by the core: run it from the repository root as
//   <fuzz build>/tidelog_fuzz_seeds native/fuzz/corpus
// The files are small (a few KiB) and deterministic.
#include <sys/uio.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "committer.h"
#include "compaction_session.h"
#include "durable_table.h"
#include "frame.h"
#include "fuzz_common.h"
#include "partition.h"
#include "recovery_checkpoint.h"
#include "segment.h"
#include "stream_index.h"

using namespace tidelog;
using tidelog_fuzz::files;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // Segments are preallocated: drop the zeros after the frames (keep 64 of them).
    size_t end = out.size();
    while (end > 0 && out[end - 1] == 0) --end;
    end = std::min(out.size(), (end + 7) / 8 * 8 + 64);
    out.resize(end);
    return out;
}

void put(const std::string& corpus, const std::string& target, const std::string& name,
         const std::vector<uint8_t>& bytes) {
    fs::create_directories(corpus + "/" + target);
    std::ofstream f(corpus + "/" + target + "/" + name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// A partition with `frames` frames of sizes cycling through `sizes`, rolled at segment_bytes.
std::string make_partition(const std::string& root, const char* name, int frames, std::vector<size_t> sizes,
                           uint64_t segment_bytes, bool close) {
    static committer c;
    std::string dir = root + "/" + name;
    fs::remove_all(dir);
    partition_config config;
    config.segment_bytes = segment_bytes;
    config.durability = durability_mode::none;
    auto* p = new partition(&c, dir, config, false, true);
    for (int i = 0; i < frames; ++i) {
        std::vector<uint8_t> payload(sizes[i % sizes.size()]);
        for (size_t j = 0; j < payload.size(); ++j) payload[j] = static_cast<uint8_t>(i * 31 + j);
        struct iovec iov{payload.data(), payload.size()};
        append_request req;
        req.pieces = &iov;
        req.piece_count = 1;
        req.record_count = 1 + i % 3;
        req.min_timestamp = 1000 + 10 * i;
        req.max_timestamp = 1000 + 10 * i + (i % 4 == 3 ? -20 : 5) + 20;  // some late data
        req.body_offset = (i % 2) ? 8 : -1;
        p->append(req);
    }
    p->flush();
    if (!p->write_checkpoint()) {}
    if (close) p->close();
    delete p;  // closes if not closed
    return dir;
}

/// A partition (as make_partition) whose first segment a compaction rewrote:
/// sparse frames keeping each frame's last record, every third frame empty.
std::string make_compacted_partition(const std::string& root) {
    std::string dir = make_partition(root, "compacted", 24, {40, 200}, 2048, true);
    static committer c;
    partition_config config;
    config.segment_bytes = 2048;
    config.durability = durability_mode::none;
    auto* p = new partition(&c, dir, config, false, true);
    {
        auto session = compaction_session::open(*p, true);
        auto segs = session->segments();
        auto w = session->rewrite(segs[0].base_offset);
        int i = 0;
        for (auto& f : p->frames(segs[0].base_offset, segs[0].end_offset, INT64_MIN, INT64_MAX, SIZE_MAX)) {
            int64_t span = f.header.next_offset() - f.header.base_offset;
            if (i++ % 3 == 2) {
                w->append_empty(f.header.base_offset, span, f.header.max_timestamp);
                continue;
            }
            uint32_t delta = static_cast<uint32_t>(span - 1);
            struct iovec piece{const_cast<uint8_t*>(f.payload()), f.header.payload_length};
            rewrite_frame r;
            r.base_offset = f.header.base_offset;
            r.span = span;
            r.record_count = 1;
            r.offset_deltas = &delta;
            r.delete_horizon_ns = i % 2 ? 0 : 1'700'000'000'000'000'000;
            r.min_timestamp = f.header.min_timestamp;
            r.max_timestamp = f.header.max_timestamp;
            r.pieces = &piece;
            r.piece_count = 1;
            r.body_offset = i % 2 ? 8 : -1;
            w->append(r);
        }
        session->commit(*w);
    }
    p->close();
    delete p;
    return dir;
}

/// table_fuzz inputs: flag byte 1 (the whole journal follows), then a journal
/// written by durable_table.
void table_seeds(const std::string& root, const std::string& corpus) {
    std::string dir = root + "/table";
    fs::remove_all(dir);
    using change = durable_table::change;
    auto seed = [&](const char* name, std::vector<uint8_t> journal) {
        journal.insert(journal.begin(), 1);
        put(corpus, "table_fuzz", name, journal);
    };
    auto journal = [&] {
        std::ifstream f(dir + "/journal", std::ios::binary);
        return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    };
    durable_table t(dir, true);
    t.lock();
    t.sync(t.put(std::vector<change>{{"offsets/orders/0", std::string("17")}, {"offsets/orders/1", std::string("4")}}));
    t.put(std::vector<change>{{"state", std::string(300, 's')}, {"offsets/orders/1", std::nullopt}});
    t.sync(t.put(std::vector<change>{{"offsets/orders/0", std::string("18")}}));
    t.put(std::vector<change>{{"k", std::string("")}});  // vouches for the synced records before it
    std::vector<uint8_t> puts = journal();
    seed("puts", puts);
    std::vector<uint8_t> torn = puts;
    torn.resize(torn.size() - 7);
    seed("torn-tail", torn);
    std::vector<uint8_t> damaged = puts;
    damaged[16 + 40] ^= 0x20;  // inside the first record, which the last one vouches for
    seed("damaged-vouched", damaged);
    t.rewrite();
    t.put(std::vector<change>{{"after", std::string("rewrite")}});
    seed("rewritten", journal());
    t.unlock();
    t.close();
    seed("header-only", std::vector<uint8_t>(puts.begin(), puts.begin() + 16));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    std::string corpus = argv[1];
    std::string root = tidelog_fuzz::fresh_dir("seeds");

    // One segment, small frames (several index entries), clean.
    std::string one = make_partition(root, "one", 40, {0, 37, 300, 700, 1500}, 1 << 20, true);
    std::string s0 = one + "/" + segment_file_stem(0);
    files a;
    a.log = slurp(s0 + ".log");
    a.index = slurp(s0 + ".index");
    a.timeindex = slurp(s0 + ".timeindex");
    a.index.resize(fs::file_size(s0 + ".index"));
    a.timeindex.resize(fs::file_size(s0 + ".timeindex"));
    std::vector<uint8_t> cp = slurp(one + "/recovery-checkpoint");
    cp.resize(128, 0);

    put(corpus, "frame_fuzz", "segment", a.log);
    put(corpus, "frame_fuzz", "first-frame", std::vector<uint8_t>(a.log.begin(), a.log.begin() + std::min<size_t>(a.log.size(), 200)));
    put(corpus, "frame_fuzz", "torn", std::vector<uint8_t>(a.log.begin(), a.log.begin() + a.log.size() / 2));
    put(corpus, "frame_fuzz", "zeros", std::vector<uint8_t>(64, 0));

    put(corpus, "checkpoint_fuzz", "two-slots", cp);
    put(corpus, "checkpoint_fuzz", "one-slot", std::vector<uint8_t>(cp.begin(), cp.begin() + 64));
    put(corpus, "checkpoint_fuzz", "empty", {});
    std::vector<uint8_t> torn_cp = cp;
    for (size_t i = 70; i < 100; ++i) torn_cp[i] ^= 0x5a;
    put(corpus, "checkpoint_fuzz", "torn-slot", torn_cp);

    files clean = a;
    clean.clean = true;
    put(corpus, "segment_recovery_fuzz", "clean", clean.encode());
    files unclean = a;
    put(corpus, "segment_recovery_fuzz", "unclean", unclean.encode());
    files with_cp = a;
    with_cp.has_checkpoint = true;
    with_cp.checkpoint = cp;
    put(corpus, "segment_recovery_fuzz", "checkpoint", with_cp.encode());
    files torn = a;
    torn.log.resize(torn.log.size() * 2 / 3);
    torn.has_checkpoint = true;
    torn.checkpoint = cp;
    put(corpus, "segment_recovery_fuzz", "torn-tail", torn.encode());
    files garbled = a;
    if (garbled.log.size() > 900) garbled.log[900] ^= 0x10;
    put(corpus, "segment_recovery_fuzz", "garbled", garbled.encode());

    // Two segments: a partition that rolled.
    std::string rolled = make_partition(root, "rolled", 12, {200, 900}, 4096, true);
    std::vector<int64_t> bases;
    for (auto& e : fs::directory_iterator(rolled)) {
        std::string n = e.path().filename().string();
        if (n.size() == 24 && n.compare(20, 4, ".log") == 0) bases.push_back(std::stoll(n.substr(0, 20)));
    }
    std::sort(bases.begin(), bases.end());
    if (bases.size() >= 2) {
        files two;
        std::string r0 = rolled + "/" + segment_file_stem(bases[0]);
        two.log = slurp(r0 + ".log");
        two.index = slurp(r0 + ".index");
        two.index.resize(fs::file_size(r0 + ".index"));
        two.timeindex.resize(fs::file_size(r0 + ".timeindex"));
        two.timeindex = slurp(r0 + ".timeindex");
        two.timeindex.resize(fs::file_size(r0 + ".timeindex"));
        two.two_segments = true;
        two.second_base = static_cast<uint32_t>(bases[1]);
        two.log2 = slurp(rolled + "/" + segment_file_stem(bases[1]) + ".log");
        put(corpus, "segment_recovery_fuzz", "two-segments", two.encode());
        two.clean = true;
        put(corpus, "segment_recovery_fuzz", "two-segments-clean", two.encode());
    }

    // Index targets: the same segment with its indexes, and with damaged ones.
    put(corpus, "index_fuzz", "good", a.encode());
    files no_index = a;
    no_index.index.clear();
    no_index.timeindex.clear();
    put(corpus, "index_fuzz", "no-index", no_index.encode());
    files bad_index = a;
    if (bad_index.index.size() >= 16) bad_index.index[12] ^= 0x08;  // a position off by 8
    if (bad_index.timeindex.size() >= 32) bad_index.timeindex[17] ^= 0x01;
    put(corpus, "index_fuzz", "bad-index", bad_index.encode());
    files partial = a;
    if (partial.index.size() >= 4) partial.index.resize(partial.index.size() - 3);
    put(corpus, "index_fuzz", "partial-entry", partial.encode());
    // A compacted segment (sparse and empty frames, FORMAT.md §2.6) and the one after it.
    std::string compacted = make_compacted_partition(root);
    std::vector<int64_t> cbases;
    for (auto& e : fs::directory_iterator(compacted)) {
        std::string n = e.path().filename().string();
        if (n.size() == 24 && n.compare(20, 4, ".log") == 0) cbases.push_back(std::stoll(n.substr(0, 20)));
    }
    std::sort(cbases.begin(), cbases.end());
    if (cbases.size() >= 2) {
        std::string c0 = compacted + "/" + segment_file_stem(cbases[0]);
        files sparse;
        sparse.log = slurp(c0 + ".log");
        sparse.index = slurp(c0 + ".index");
        sparse.index.resize(fs::file_size(c0 + ".index"));
        sparse.timeindex = slurp(c0 + ".timeindex");
        sparse.timeindex.resize(fs::file_size(c0 + ".timeindex"));
        put(corpus, "frame_fuzz", "sparse-segment", sparse.log);
        put(corpus, "index_fuzz", "sparse", sparse.encode());
        sparse.two_segments = true;
        sparse.second_base = static_cast<uint32_t>(cbases[1]);
        sparse.log2 = slurp(compacted + "/" + segment_file_stem(cbases[1]) + ".log");
        put(corpus, "segment_recovery_fuzz", "two-segments-sparse", sparse.encode());
        sparse.clean = true;
        put(corpus, "segment_recovery_fuzz", "two-segments-sparse-clean", sparse.encode());
    }
    table_seeds(root, corpus);
    {
        stream_index idx;
        idx.add("order-1", 0, 10, 0);
        idx.add("order-2", 1, 11, 0);
        idx.add("order-1", 2, 12, 1);
        idx.soft_delete("order-2", 1, 3);
        idx.tombstone("user-9", 4);
        std::string snap = idx.serialize(77);
        put(corpus, "stream_index_fuzz", "three-streams", std::vector<uint8_t>(snap.begin(), snap.end()));
        std::string empty = stream_index().serialize(5);
        put(corpus, "stream_index_fuzz", "empty", std::vector<uint8_t>(empty.begin(), empty.end()));
    }
    std::printf("seeds written to %s\n", corpus.c_str());
    return 0;
}
