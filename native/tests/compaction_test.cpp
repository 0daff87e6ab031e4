// Compaction's native core: the segment rewriter (tiling rules), the swap,
// other handles taking up the new segment (a second read-write handle, a
// read-only one, a reader holding the old mapping), retention racing a
// rewrite, the cleaner lock, and recovery of a swap's leftovers.
#include <gtest/gtest.h>

#include <thread>

#include "compaction_util.h"
#include "errors.h"
#include "log_core.h"
#include "partition_reader.h"

namespace {

using namespace tidelog;
using namespace tidelog_test;

class CompactionTest : public ::testing::Test {
protected:
    temp_dir tmp;
    std::string log = tmp.sub("log");
    std::string dir = log + "/topics/t/0";
    partition_config cfg = small_config(1024);
    keep_rule keep = [](int64_t o) { return o % 3 == 1 || o % 7 == 0; };

    /// A writer with ~60 records in several segments, checkpointed.
    std::unique_ptr<partition> writer(log_core& core, int64_t records = 60) {
        auto p = core.open_partition(dir, cfg);
        if (p->end_offset() == 0) fill(*p, 0, records);
        checkpoint_now(*p);
        return p;
    }
    std::vector<partition::compaction_segment_info> sealed(compaction_session& s) {
        auto all = s.segments();
        all.pop_back();
        return all;
    }
    void rewrite(compaction_session& s, const partition::compaction_segment_info& seg, int64_t chunk = 4) {
        auto w = s.rewrite(seg.base_offset);
        write_planned(*w, new_version(seg.base_offset, seg.end_offset, keep, chunk));
        auto st = s.commit(*w);
        EXPECT_TRUE(st.swapped);
        EXPECT_EQ(st.bytes_after, file_size(dir + "/" + segment_file_stem(seg.base_offset) + ".log"));
    }
    void expect_no_leftovers() { EXPECT_TRUE(files_with_suffix(dir, ".cleaned").empty()); }
};

TEST_F(CompactionTest, SegmentsListCleanableSealedSegments) {
    log_core core(log, false);
    auto p = writer(core);
    auto s = compaction_session::open(*p, true);
    auto segs = s->segments();
    ASSERT_GE(segs.size(), 4u);
    for (size_t i = 0; i + 1 < segs.size(); ++i) {
        EXPECT_TRUE(segs[i].cleanable) << i;
        EXPECT_FALSE(segs[i].compacted);
        EXPECT_EQ(segs[i].end_offset, segs[i + 1].base_offset);
        EXPECT_GT(segs[i].bytes, 0u);
        EXPECT_EQ(segs[i].max_timestamp, record_ts(segs[i].end_offset - 1));
    }
    EXPECT_FALSE(segs.back().cleanable);
    EXPECT_EQ(segs.back().end_offset, 60);
    EXPECT_THROW(s->rewrite(segs.back().base_offset), error);
    EXPECT_THROW(s->rewrite(segs[0].base_offset + 1), error);
}

TEST_F(CompactionTest, OnlySegmentsBelowTheCheckpointSegmentAreCleanable) {
    log_core core(log, false);
    auto p = core.open_partition(dir, cfg);
    fill(*p, 0, 60);  // no checkpoint past the first segments yet
    auto s = compaction_session::open(*p, true);
    for (auto& seg : s->segments()) EXPECT_FALSE(seg.cleanable) << seg.base_offset;
}

TEST_F(CompactionTest, TilingErrorsSwapNothing) {
    log_core core(log, false);
    auto p = writer(core);
    auto s = compaction_session::open(*p, true);
    auto seg = sealed(*s)[1];
    auto before = read_file_bytes(dir + "/" + segment_file_stem(seg.base_offset) + ".log");
    auto planned = new_version(seg.base_offset, seg.end_offset, keep, 4);
    {
        auto w = s->rewrite(seg.base_offset);
        EXPECT_THROW(w->append_empty(seg.base_offset + 1, 2, 0), error);  // not at the segment's base
        EXPECT_THROW(w->append_empty(seg.base_offset, seg.end_offset - seg.base_offset + 1, 0), error);  // past the end
        w->append_empty(seg.base_offset, 1, 0);
        EXPECT_THROW(w->append_empty(seg.base_offset + 2, 1, 0), error);  // a hole
        rewrite_frame r;
        uint32_t deltas[2] = {1, 1};
        r.base_offset = seg.base_offset + 1;
        r.span = 2;
        r.record_count = 2;
        r.offset_deltas = deltas;
        EXPECT_THROW(w->append(r), error);  // deltas not increasing
        deltas[1] = 2;
        EXPECT_THROW(w->append(r), error);  // a delta past the span
        r.record_count = 3;
        EXPECT_THROW(w->append(r), error);  // more records than offsets
        EXPECT_THROW(s->commit(*w), error);  // short of the segment's end
    }
    expect_no_leftovers();
    EXPECT_EQ(read_file_bytes(dir + "/" + segment_file_stem(seg.base_offset) + ".log"), before);
    EXPECT_EQ(read_segment(*p, seg.base_offset, seg.end_offset), old_version(seg.base_offset, seg.end_offset));
    // Abort removes the files; a later rewrite of the same segment works.
    auto w = s->rewrite(seg.base_offset);
    write_planned(*w, planned);
    EXPECT_FALSE(files_with_suffix(dir, ".cleaned").empty());
    w->abort();
    expect_no_leftovers();
    rewrite(*s, seg);
    EXPECT_EQ(read_segment(*p, seg.base_offset, seg.end_offset), planned);
}

TEST_F(CompactionTest, SwapIsSeenByEveryHandleAndOldMappingsStayValid) {
    log_core a(log, false), b(log, false);
    auto pa = writer(a);
    auto pb = b.open_partition(dir, cfg);
    auto reader = std::make_unique<partition>(nullptr, dir, cfg, true, true);
    int64_t end = pa->end_offset();
    // Frames held before the swap (their mappings), and a cursor in segment 0.
    auto held = pa->frames(0, end, INT64_MIN, INT64_MAX, SIZE_MAX);
    auto held_by_reader = reader->frames(0, end, INT64_MIN, INT64_MAX, SIZE_MAX);
    partition_reader cursor(*reader, 0);
    std::vector<frame_ref> first;
    cursor.read(2, UINT64_MAX, &first);
    ASSERT_EQ(first.size(), 2u);

    std::vector<partition::compaction_segment_info> segs;
    {
        auto s = compaction_session::open(*pa, true);
        segs = sealed(*s);
        for (size_t i = 0; i < 2; ++i) rewrite(*s, segs[i], i == 0 ? 4 : 3);
        auto listed = s->segments();
        EXPECT_TRUE(listed[0].compacted);
        EXPECT_TRUE(listed[1].compacted);
        EXPECT_FALSE(listed[2].compacted);
    }
    expect_no_leftovers();
    auto expected = [&](int64_t base, int64_t e, size_t i) {
        return i < 2 ? new_version(base, e, keep, i == 0 ? 4 : 3) : old_version(base, e);
    };
    for (partition* p : {pa.get(), pb.get(), reader.get()})
        for (size_t i = 0; i < segs.size(); ++i)
            EXPECT_EQ(read_segment(*p, segs[i].base_offset, segs[i].end_offset),
                      expected(segs[i].base_offset, segs[i].end_offset, i))
                << "segment " << i << (p == reader.get() ? " (reader)" : "");
    // Old frames stay whole, byte for byte.
    for (auto* list : {&held, &held_by_reader})
        for (auto& f : *list) {
            ASSERT_FALSE(f.sparse());
            EXPECT_EQ(frame_payload(f), record_payload(f.header.base_offset));
        }
    // The cursor goes on (old data in segment 0 while it holds its mapping), then in order.
    std::vector<frame_ref> rest;
    while (cursor.read(16, UINT64_MAX, &rest) > 0) {}
    int64_t next = 2;
    for (auto& f : rest) {
        EXPECT_EQ(f.header.base_offset, next);
        next = f.header.next_offset();
    }
    EXPECT_EQ(next, end);
    // A new reader cursor sees the new records with their offsets, and skips removed ones.
    partition_reader fresh(*reader, 1);
    std::vector<frame_ref> got;
    while (fresh.read(16, UINT64_MAX, &got) > 0) {}
    ASSERT_FALSE(got.empty());
    EXPECT_TRUE(got.front().sparse());
    // Reopen (clean, then after a crash) reads the new version and rebuilt nothing.
    reader.reset();
    pb.reset();
    pa.reset();
    for (bool clean : {true, false}) {
        committer c;
        partition p(&c, dir, cfg, false, clean);
        for (size_t i = 0; i < segs.size(); ++i)
            EXPECT_EQ(read_segment(p, segs[i].base_offset, segs[i].end_offset),
                      expected(segs[i].base_offset, segs[i].end_offset, i));
        for (auto& ev : p.recovery_events()) EXPECT_NE(ev.kind, "index") << ev.file << ": " << ev.reason;
        // Lookups through the indexes land on the frame holding each offset.
        for (int64_t o = 0; o < end; ++o) {
            auto f = p.frames(o, o + 1, INT64_MIN, INT64_MAX, 1);
            ASSERT_EQ(f.size(), 1u);
            EXPECT_LE(f[0].header.base_offset, o);
            EXPECT_GT(f[0].header.next_offset(), o);
        }
        EXPECT_EQ(p.offset_for_time(record_ts(20)), std::max<int64_t>(0, p.offset_for_time(record_ts(20))));
        p.close();
    }
}

TEST_F(CompactionTest, OneCleanerAtATime) {
    log_core a(log, false), b(log, false);
    auto pa = writer(a);
    auto pb = b.open_partition(dir, cfg);
    auto s = compaction_session::open(*pa, true);
    std::unique_ptr<compaction_session> other;
    std::thread t([&] { other = compaction_session::open(*pb, false); });
    t.join();
    EXPECT_EQ(other, nullptr);
    // A waiting cleaner can be interrupted.
    std::thread u([&] {
        EXPECT_THROW(compaction_session::open(*pb, true, [](void*) { return true; }, nullptr), error);
    });
    u.join();
    s->release();
    std::thread v([&] {
        auto mine = compaction_session::open(*pb, false);
        EXPECT_NE(mine, nullptr);
    });
    v.join();
}

TEST_F(CompactionTest, RetentionDeletingTheSegmentMeanwhileWins) {
    log_core core(log, false);
    auto p = writer(core);
    auto s = compaction_session::open(*p, true);
    auto seg = sealed(*s)[0];
    auto w = s->rewrite(seg.base_offset);
    write_planned(*w, new_version(seg.base_offset, seg.end_offset, keep, 4));
    {
        // A second handle with a retention limit deletes the first segments.
        log_core other(log, false);
        partition_config limited = cfg;
        limited.retention_bytes = 2048;
        auto q = other.open_partition(dir, limited);
        q->enforce_retention();
        EXPECT_GT(q->start_offset(), seg.base_offset);
    }
    auto st = s->commit(*w);
    EXPECT_FALSE(st.swapped);
    EXPECT_FALSE(path_exists(dir + "/" + segment_file_stem(seg.base_offset) + ".log"));
    expect_no_leftovers();
    s->release();
    EXPECT_GT(p->start_offset(), seg.base_offset);
}

TEST_F(CompactionTest, LeftoversAreRecoveredByTheNextCleanerAndByOpen) {
    log_core core(log, false);
    auto p = writer(core);
    partition::compaction_segment_info seg;
    {
        auto s = compaction_session::open(*p, true);
        seg = sealed(*s)[1];
        rewrite(*s, seg);
    }
    std::string stem = dir + "/" + segment_file_stem(seg.base_offset);
    auto planned = new_version(seg.base_offset, seg.end_offset, keep, 4);
    // A dead cleaner's leftovers: stray .cleaned files, a missing index.
    for (const char* name : {".log.cleaned", ".index.cleaned", ".timeindex.cleaned"})
        std::fclose(std::fopen((stem + name).c_str(), "w"));
    remove_file(stem + ".index");
    {
        // A handle joining meanwhile lists the segment all the same (no index: a walk).
        log_core other(log, false);
        auto q = other.open_partition(dir, cfg);
        EXPECT_EQ(read_segment(*q, seg.base_offset, seg.end_offset), planned);
        EXPECT_FALSE(path_exists(stem + ".index"));  // (created by nobody but the cleaner)
    }
    {
        auto s = compaction_session::open(*p, true);
        expect_no_leftovers();
        EXPECT_TRUE(path_exists(stem + ".index"));
    }
    EXPECT_EQ(read_segment(*p, seg.base_offset, seg.end_offset), planned);
    for (const char* name : {".log.cleaned", ".index.cleaned"}) std::fclose(std::fopen((stem + name).c_str(), "w"));
    remove_file(stem + ".timeindex");
    p.reset();
    for (bool clean : {false, true}) {
        committer c;
        partition q(&c, dir, cfg, false, clean);
        expect_no_leftovers();
        EXPECT_TRUE(path_exists(stem + ".timeindex"));
        EXPECT_EQ(read_segment(q, seg.base_offset, seg.end_offset), planned);
        auto r = std::make_unique<partition>(nullptr, dir, cfg, true, true);
        EXPECT_EQ(read_segment(*r, seg.base_offset, seg.end_offset), planned);
        q.close();
    }
}

TEST_F(CompactionTest, ReaderWithoutIndexesReadsASegmentWhoseIndexesAreMissing) {
    log_core core(log, false);
    auto p = writer(core);
    partition::compaction_segment_info seg;
    {
        auto s = compaction_session::open(*p, true);
        seg = sealed(*s)[2];
        rewrite(*s, seg);
    }
    std::string stem = dir + "/" + segment_file_stem(seg.base_offset);
    remove_file(stem + ".index");
    remove_file(stem + ".timeindex");
    auto r = std::make_unique<partition>(nullptr, dir, cfg, true, true);
    EXPECT_EQ(read_segment(*r, seg.base_offset, seg.end_offset), new_version(seg.base_offset, seg.end_offset, keep, 4));
    for (int64_t o = seg.base_offset; o < seg.end_offset; ++o) {
        auto f = r->frames(o, o + 1, INT64_MIN, INT64_MAX, 1);
        ASSERT_EQ(f.size(), 1u);
        EXPECT_LE(f[0].header.base_offset, o);
    }
}

}  // namespace

namespace {

/// A frame read during a pass: old (one record, its payload) or new (the kept
/// records of its offsets, their payloads back to back).
bool frame_is_whole(const frame_ref& f, const keep_rule& keep) {
    seen_frame s = seen(f);
    if (!s.sparse) return s.records == 1 && s.arrow == record_payload(s.base);
    std::vector<uint8_t> expected;
    for (uint32_t d : s.deltas) {
        if (!keep(s.base + d)) return false;
        auto p = record_payload(s.base + d);
        expected.insert(expected.end(), p.begin(), p.end());
    }
    return s.arrow == expected;
}

}  // namespace

TEST_F(CompactionTest, PassesRunAmidAppendsReadsAndRetention) {
    // Two read-write handles and a reader: one appends (checkpointing as it
    // goes), the other compacts every cleanable segment again and again and
    // applies retention, the reader reads everything; all at once.
    log_core a(log, false), b(log, false);
    auto pa = a.open_partition(dir, cfg);
    partition_config limited = cfg;
    limited.retention_bytes = 12 * 1024;
    auto pb = b.open_partition(dir, limited);
    auto reader = std::make_unique<partition>(nullptr, dir, cfg, true, true);
    std::atomic<bool> stop{false};
    std::atomic<int64_t> bad{-1};
    std::atomic<uint64_t> swaps{0}, reads{0};
    std::thread appender([&] {
        for (int64_t o = 0; !stop.load(); ++o) {
            append_payload(*pa, record_payload(o), 1, record_ts(o), record_ts(o));
            if (o % 8 == 0) checkpoint_now(*pa);
        }
    });
    std::thread cleaner([&] {
        while (!stop.load()) {
            auto s = compaction_session::open(*pb, true);
            for (auto& seg : s->segments()) {
                if (!seg.cleanable || seg.compacted) continue;
                std::shared_ptr<segment_rewriter> w;
                try {
                    w = s->rewrite(seg.base_offset);
                } catch (const error&) {
                    continue;  // retention took it since the listing
                }
                write_planned(*w, new_version(seg.base_offset, seg.end_offset, keep, 3));
                if (s->commit(*w).swapped) swaps++;
            }
            s->release();
            pb->enforce_retention();
        }
    });
    std::thread follower([&] {
        partition_reader cursor(*reader, 0);
        while (!stop.load()) {
            std::vector<frame_ref> got;
            cursor.read(64, UINT64_MAX, &got);
            for (auto& f : got)
                if (!frame_is_whole(f, keep)) bad = f.header.base_offset;
            if (got.empty()) cursor.seek(std::max<int64_t>(reader->start_offset(), 0));
            reads += got.size();
        }
    });
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    while (std::chrono::steady_clock::now() < until && bad.load() < 0) {
        for (partition* p : {pa.get(), reader.get()}) {
            int64_t start = p->start_offset(), end = p->end_offset();
            std::vector<damaged_range> skipped;
            auto frames = p->frames(start, end, INT64_MIN, INT64_MAX, SIZE_MAX, &skipped);
            EXPECT_TRUE(skipped.empty()) << skipped.front().reason;
            int64_t next = frames.empty() ? end : frames.front().header.base_offset;
            for (auto& f : frames) {
                if (f.header.base_offset != next || !frame_is_whole(f, keep)) bad = f.header.base_offset;
                next = f.header.next_offset();
            }
        }
    }
    stop = true;
    appender.join();
    cleaner.join();
    follower.join();
    EXPECT_EQ(bad.load(), -1);
    EXPECT_GT(swaps.load(), 0u);
    EXPECT_GT(reads.load(), 0u);
    expect_no_leftovers();
}
