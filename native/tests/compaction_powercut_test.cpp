// Power-loss torture of compaction's swap (FORMAT.md §2.7) through the
// simulated file layer (native/testing/sim_file_io.h). From one template
// partition (several sealed segments of one-record frames, the first already
// compacted once), each iteration: open, compact three segments (the first a
// second time, the next two for the first time; records dropped by a fixed
// rule, grouped into sparse frames, empty frames where nothing survives),
// close; power is cut at one mutation of that run, cycling through all of
// them (open, each swap's steps, close). Then, in half the iterations, a
// second cut lands in the recovery (the open, and the next cleaner's own
// recovery of leftovers). A last open must find:
//   - every compacted segment wholly the old or wholly the new version, and
//     the new one for every rewrite whose commit() returned;
//   - every other segment, and the offsets of the partition, unchanged;
//   - no *.cleaned file left; both index files of every sealed segment, and
//     lookups of every offset landing on the frame that holds it;
//   - a read-only handle reading the same.
// Environment: TIDELOG_COMPACTION_POWERCUT_CUTS (default 1500), _SEED (default 1),
// _VERBOSE=1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "compaction_util.h"
#include "errors.h"
#include "testing/sim_file_io.h"

namespace {

namespace fs = std::filesystem;
using namespace tidelog;
using namespace tidelog_test;

uint64_t env_u64(const char* name, uint64_t fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string scratch(const char* what) {
    std::string base = fs::is_directory("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
    std::string tmpl = base + "/tidelog-" + what + ".XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp under " + base);
    return buf.data();
}

const int64_t records = 90;
const partition_config cfg = small_config(1024);
bool keep_first(int64_t o) { return o % 3 != 0; }
bool keep_second(int64_t o) { return keep_first(o) && o % 4 != 1; }
bool keep_new(int64_t o) { return o % 5 == 2 || o % 11 == 0; }

struct planned_segment {
    int64_t base, end;
    std::vector<seen_frame> before, after;
};

class CompactionPowerCut : public ::testing::Test {
protected:
    void SetUp() override {
        _template = scratch("compaction-powercut-template");
        std::string dir = _template + "/p";
        committer c;
        partition p(&c, dir, cfg, false, true);
        fill(p, 0, records);
        checkpoint_now(p);
        auto s = compaction_session::open(p, true);
        auto segs = s->segments();
        ASSERT_GE(segs.size(), 6u);
        for (size_t i = 0; i + 1 < segs.size(); ++i) _bounds.push_back({segs[i].base_offset, segs[i].end_offset});
        // Segment 0 compacted once already: the iterations compact it again.
        auto w = s->rewrite(segs[0].base_offset);
        write_planned(*w, new_version(segs[0].base_offset, segs[0].end_offset, keep_first, 4));
        ASSERT_TRUE(s->commit(*w).swapped);
        s->release();
        p.close();
        auto seg = [&](size_t i, std::vector<seen_frame> before, std::vector<seen_frame> after) {
            return planned_segment{_bounds[i].first, _bounds[i].second, std::move(before), std::move(after)};
        };
        int64_t b0 = _bounds[0].first, e0 = _bounds[0].second;
        _plan.push_back(seg(0, new_version(b0, e0, keep_first, 4), new_version(b0, e0, keep_second, 3)));
        for (size_t i : {size_t{1}, size_t{2}}) {
            int64_t b = _bounds[i].first, e = _bounds[i].second;
            _plan.push_back(seg(i, old_version(b, e), new_version(b, e, keep_new, i == 1 ? 4 : 2)));
        }
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(_template, ec);
    }

    /// The run that gets cut: open, three rewrites, close. committed[i]: commit i returned.
    void run(const std::string& dir, std::vector<bool>& committed, bool& closed) {
        committer c;
        partition p(&c, dir, cfg, false, true);
        auto s = compaction_session::open(p, true);
        for (size_t i = 0; i < _plan.size(); ++i) {
            auto w = s->rewrite(_plan[i].base);
            write_planned(*w, _plan[i].after);
            if (s->commit(*w).swapped) committed[i] = true;
        }
        s->release();
        p.close();
        closed = true;
    }

    /// A recovery that may be cut: the open, then a cleaner's start.
    void recover(const std::string& dir, bool clean) {
        committer c;
        partition p(&c, dir, cfg, false, clean);
        compaction_session::open(p, true)->release();
        p.close();
    }

    std::string check(const std::string& dir, const std::vector<bool>& committed) {
        committer c;
        partition p(&c, dir, cfg, false, false);
        if (!files_with_suffix(dir, ".cleaned").empty()) return "a .cleaned file is left after the open";
        if (p.end_offset() != records) return "end offset " + std::to_string(p.end_offset());
        for (size_t i = 0; i < _bounds.size(); ++i) {
            int64_t b = _bounds[i].first, e = _bounds[i].second;
            auto got = read_segment(p, b, e);
            const planned_segment* plan = nullptr;
            for (size_t k = 0; k < _plan.size(); ++k)
                if (_plan[k].base == b) {
                    plan = &_plan[k];
                    if (committed[k] && got != plan->after) return "segment " + std::to_string(i) + ": committed, not new";
                }
            if (plan ? got != plan->before && got != plan->after : got != old_version(b, e))
                return "segment " + std::to_string(i) + " is neither the old nor the new version";
            std::string stem = dir + "/" + segment_file_stem(b);
            if (!path_exists(stem + ".index") || !path_exists(stem + ".timeindex"))
                return "segment " + std::to_string(i) + " lacks an index file";
            for (int64_t o = b; o < e; ++o) {
                auto f = p.frames(o, o + 1, INT64_MIN, INT64_MAX, 1);
                if (f.size() != 1 || f[0].header.base_offset > o || f[0].header.next_offset() <= o)
                    return "the lookup of offset " + std::to_string(o) + " misses";
            }
            partition reader(nullptr, dir, cfg, true, true);
            if (read_segment(reader, b, e) != got) return "a reader sees other frames in segment " + std::to_string(i);
        }
        p.close();
        return "";
    }

    std::string _template;
    std::vector<std::pair<int64_t, int64_t>> _bounds;
    std::vector<planned_segment> _plan;
};

TEST_F(CompactionPowerCut, EverySegmentIsWhollyOldOrNewAndCommittedRewritesStay) {
    uint64_t cuts = env_u64("TIDELOG_COMPACTION_POWERCUT_CUTS", 1500);
    uint64_t seed = env_u64("TIDELOG_COMPACTION_POWERCUT_SEED", 1);
    bool verbose = std::getenv("TIDELOG_COMPACTION_POWERCUT_VERBOSE") != nullptr;
    // How many mutations the whole run makes (the cut cycles through them).
    uint64_t run_ops = 0, recovery_ops = 0;
    {
        std::string root = scratch("compaction-powercut");
        fs::copy(_template, root, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        sim::file_system sim(root);
        sim.install();
        std::vector<bool> committed(_plan.size(), false);
        bool closed = false;
        run(root + "/p", committed, closed);
        run_ops = sim.operations();
        recover(root + "/p", false);
        recovery_ops = sim.operations() - run_ops;
        sim.uninstall();
        EXPECT_EQ(check(root + "/p", committed), "");
        fs::remove_all(root);
    }
    ASSERT_GT(run_ops, 20u);
    uint64_t new_seen = 0, old_seen = 0;
    for (uint64_t k = 0; k < cuts; ++k) {
        std::mt19937_64 rng(seed * 1000003 + k);
        std::uniform_real_distribution<double> u(0, 1);
        auto options = [&] {
            sim::cut_options o;
            double shape = u(rng);
            o.keep_everything = shape < 0.1;
            o.keep_nothing = shape >= 0.1 && shape < 0.2;
            o.keep_sector = u(rng);
            o.garbage = u(rng) < 0.3 ? u(rng) : 0.0;
            o.ordered_metadata = u(rng) < 0.75;
            return o;
        };
        std::string root = scratch("compaction-powercut");
        fs::copy(_template, root, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        std::string dir = root + "/p";
        std::vector<bool> committed(_plan.size(), false);
        bool closed = false;
        std::string where;
        {
            sim::file_system sim(root);
            sim.install();
            sim.arm(1 + k % run_ops, rng(), options());
            try {
                run(dir, committed, closed);
            } catch (const error&) {
            }
            if (!sim.cut()) sim.cut_now(rng(), options());
            where = sim.describe_last_cut();
            sim.reboot();
            if (u(rng) < 0.5) {
                sim.arm(1 + rng() % (recovery_ops + 4), rng(), options());
                try {
                    recover(dir, closed);
                } catch (const error&) {
                }
                if (!sim.cut()) sim.cut_now(rng(), options());
                where += "; then in recovery: " + sim.describe_last_cut();
                sim.reboot();
            }
            sim.uninstall();
        }
        std::string verdict;
        try {
            verdict = check(dir, committed);
        } catch (const std::exception& e) {
            verdict = std::string("the last open failed: ") + e.what();
        }
        if (verbose) std::printf("cut %llu at op %llu: %s\n", (unsigned long long)k,
                                 (unsigned long long)(1 + k % run_ops), where.c_str());
        if (!verdict.empty()) {
            ADD_FAILURE() << "cut " << k << " (mutation " << 1 + k % run_ops << " of " << run_ops << "): " << verdict
                          << "\n  " << where << "\n  files left in " << root;
            return;
        }
        {
            partition p(nullptr, dir, cfg, true, true);
            (read_segment(p, _plan[1].base, _plan[1].end) == _plan[1].after ? new_seen : old_seen)++;
        }
        fs::remove_all(root);
    }
    std::printf("compaction power cuts: %llu (run of %llu mutations, recovery %llu); segment 1 new after %llu, old after %llu\n",
                (unsigned long long)cuts, (unsigned long long)run_ops, (unsigned long long)recovery_ops,
                (unsigned long long)new_seen, (unsigned long long)old_seen);
    EXPECT_GT(new_seen, 0u);
    EXPECT_GT(old_seen, 0u);
}

}  // namespace
