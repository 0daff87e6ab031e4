// Concurrency stress of the committer, appenders and readers: run by the ASan
// suite and, for data races, by the ThreadSanitizer build (.ci/tsan).
//
// Several appender threads append to two partitions (one "fsync", one
// "interval"), announcing themselves and waiting for durability most of the
// time; reader threads walk the frames of the writer's partitions and of a
// read-only view (as another process would), waiting on the shared futex; a
// side thread flushes and sometimes applies retention itself while small
// segments roll and the log's housekeeper writes checkpoints and applies
// retention on its own thread.
// Every payload carries its writer, sequence and a pattern, so a torn or mixed
// read is caught; after a clean close and reopen, every durable append is present
// unless retention deleted its segment.
//
// TIDELOG_STRESS_SECONDS sets the duration (default 3).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crc32c.h"
#include "log_core.h"
#include "test_util.h"

namespace {

using namespace tidelog;
using tidelog_test::temp_dir;

struct stamp {
    uint32_t writer;
    uint32_t size;
    uint64_t sequence;
};

std::vector<uint8_t> make(uint32_t writer, uint64_t sequence, uint32_t size) {
    size = std::max<uint32_t>(size, sizeof(stamp));
    std::vector<uint8_t> out(size);
    stamp s{writer, size, sequence};
    std::memcpy(out.data(), &s, sizeof s);
    for (uint32_t i = sizeof s; i < size; ++i) out[i] = static_cast<uint8_t>(writer * 131 + sequence * 7 + i);
    return out;
}

/// True if the payload is one that make() produced (whole, not torn or mixed).
bool well_formed(const uint8_t* p, uint64_t length) {
    if (length < sizeof(stamp)) return false;
    stamp s;
    std::memcpy(&s, p, sizeof s);
    if (s.size != length) return false;
    for (uint32_t i = sizeof s; i < s.size; ++i)
        if (p[i] != static_cast<uint8_t>(s.writer * 131 + s.sequence * 7 + i)) return false;
    return true;
}

TEST(Stress, AppendersReadersCommitterRollAndRetention) {
    const char* env = std::getenv("TIDELOG_STRESS_SECONDS");
    double seconds = env ? std::atof(env) : 3.0;
    temp_dir dir;
    std::string log_path = dir.sub("log");
    constexpr int partitions = 2, appenders = 4, readers = 2;
    std::vector<partition_config> configs(partitions);
    configs[0].durability = durability_mode::fsync;
    configs[1].durability = durability_mode::interval;
    configs[1].flush_interval_ms = 2;
    for (auto& c : configs) {
        c.segment_bytes = 16 * 1024;
        c.retention_bytes = 128 * 1024;
    }
    auto part_dir = [&](int p) { return log_path + "/topics/t/" + std::to_string(p); };

    struct durable_append {
        int partition;
        int64_t base;
        uint32_t writer;
        uint64_t sequence;
        uint32_t size;
    };
    std::mutex acked_mu;
    std::vector<durable_append> acked;
    std::atomic<uint64_t> appends{0}, frames_read{0}, reader_errors{0}, waits{0};
    committer_stats housekeeping{};  // the log's counters at close
    std::atomic<bool> stop{false};
    std::string first_error;
    std::mutex error_mu;
    auto report = [&](const std::string& e) {
        std::lock_guard<std::mutex> g(error_mu);
        if (first_error.empty()) first_error = e;
        reader_errors++;
    };

    {
        log_core core(log_path, false);
        make_directories(log_path + "/topics/t");
        std::vector<std::unique_ptr<partition>> parts;
        for (int p = 0; p < partitions; ++p) parts.push_back(core.open_partition(part_dir(p), configs[p]));
        log_core reader_core(log_path, true);
        std::vector<std::unique_ptr<partition>> views;
        for (int p = 0; p < partitions; ++p) views.push_back(reader_core.open_partition(part_dir(p), configs[p]));

        std::vector<std::thread> threads;
        for (int w = 0; w < appenders; ++w)
            threads.emplace_back([&, w] {
                std::mt19937_64 rng(1000 + w);
                uint64_t sequence = 0;
                while (!stop.load(std::memory_order_relaxed)) {
                    int p = static_cast<int>(rng() % partitions);
                    int n = 1 + static_cast<int>(rng() % 3);
                    std::vector<std::vector<uint8_t>> payloads;
                    std::vector<struct iovec> iov(n);
                    std::vector<append_request> reqs(n);
                    for (int k = 0; k < n; ++k) {
                        payloads.push_back(make(w, sequence + k, static_cast<uint32_t>(rng() % 3000)));
                        iov[k] = {payloads[k].data(), payloads[k].size()};
                        reqs[k].pieces = &iov[k];
                        reqs[k].piece_count = 1;
                        reqs[k].record_count = 1;
                        reqs[k].min_timestamp = reqs[k].max_timestamp = static_cast<int64_t>(sequence + k);
                    }
                    bool wait = rng() % 4 != 0;
                    try {
                        if (wait) core.announce();
                        std::vector<append_result> r;
                        try {
                            r = parts[p]->append(reqs.data(), reqs.size());
                        } catch (...) {
                            if (wait) core.retract();
                            throw;
                        }
                        appends++;
                        if (wait) {
                            core.wait_durable(r.back().ticket, true);
                            std::lock_guard<std::mutex> g(acked_mu);
                            for (int k = 0; k < n; ++k)
                                acked.push_back({p, r[k].base_offset, static_cast<uint32_t>(w), sequence + k,
                                                 static_cast<uint32_t>(payloads[k].size())});
                        }
                    } catch (const std::exception& e) {
                        report(std::string("append: ") + e.what());
                    }
                    sequence += n;
                }
            });
        for (int r = 0; r < readers; ++r)
            threads.emplace_back([&, r] {
                std::mt19937_64 rng(2000 + r);
                while (!stop.load(std::memory_order_relaxed)) {
                    int p = static_cast<int>(rng() % partitions);
                    partition& part = (r == 0) ? *parts[p] : *views[p];
                    try {
                        int64_t start = part.start_offset(), end = part.end_offset();
                        if (rng() % 8 == 0) {
                            waits++;
                            part.wait_for_data(end, 2'000'000);  // 2 ms
                            continue;
                        }
                        int64_t from = start + (end > start ? static_cast<int64_t>(rng() % (end - start)) : 0);
                        auto got = part.frames(from, end, INT64_MIN, INT64_MAX, 64);
                        int64_t next = -1;
                        for (auto& f : got) {
                            if (next >= 0 && f.header.base_offset != next)
                                report("frames not dense at " + std::to_string(f.header.base_offset));
                            next = f.header.next_offset();
                            if (!well_formed(f.payload(), f.header.payload_length))
                                report("torn payload at offset " + std::to_string(f.header.base_offset));
                            frames_read++;
                        }
                    } catch (const error& e) {
                        // Retention may delete the segment a reader was about to
                        // list; a read that starts below the new start is fine to retry.
                        if (e.code() != errc::not_found) report(std::string("read: ") + e.what());
                    }
                }
            });
        threads.emplace_back([&] {
            std::mt19937_64 rng(3000);
            while (!stop.load(std::memory_order_relaxed)) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 20));
                try {
                    int pick = static_cast<int>(rng() % 8);
                    if (pick == 0) parts[rng() % partitions]->enforce_retention();  // as Topic.enforce_retention()
                    else if (pick % 2) core.flush_all();
                    else parts[rng() % partitions]->flush();
                } catch (const std::exception& e) {
                    report(std::string("flush: ") + e.what());
                }
            }
        });
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        stop = true;
        for (auto& t : threads) t.join();
        EXPECT_EQ(reader_errors.load(), 0u) << first_error;
        for (auto& v : views) v.reset();
        for (auto& p : parts) p->close();
        housekeeping = core.stats();
        core.close();
    }

    // Reopen: every durable append is there, byte for byte, unless retention took its segment.
    log_core core(log_path, false);
    uint64_t checked = 0, retained_away = 0;
    for (int p = 0; p < partitions; ++p) {
        auto part = core.open_partition(part_dir(p), configs[p]);
        int64_t start = part->start_offset();
        auto all = part->frames(start, part->end_offset(), INT64_MIN, INT64_MAX, SIZE_MAX);
        std::vector<const frame_ref*> by_offset;
        for (auto& a : acked) {
            if (a.partition != p) continue;
            if (a.base < start) {
                ++retained_away;
                continue;
            }
            auto it = std::lower_bound(all.begin(), all.end(), a.base,
                                       [](const frame_ref& f, int64_t v) { return f.header.base_offset < v; });
            ASSERT_TRUE(it != all.end() && it->header.base_offset == a.base) << "offset " << a.base << " missing";
            std::vector<uint8_t> want = make(a.writer, a.sequence, a.size);
            ASSERT_EQ(it->header.payload_length, want.size());
            ASSERT_EQ(std::memcmp(it->payload(), want.data(), want.size()), 0) << "offset " << a.base;
            ++checked;
        }
        part->close();
    }
    core.close();
    std::printf("[ stress ] %.1f s: %llu appends, %llu durable frames checked after reopen (%llu deleted by retention), "
                "%llu frames read concurrently, %llu futex waits, %llu checkpoints, %llu segments deleted\n",
                seconds, (unsigned long long)appends.load(), (unsigned long long)checked,
                (unsigned long long)retained_away, (unsigned long long)frames_read.load(),
                (unsigned long long)waits.load(), (unsigned long long)housekeeping.checkpoints,
                (unsigned long long)housekeeping.segments_deleted);
    EXPECT_GT(checked + retained_away, 0u);
}

}  // namespace
