// Concurrency stress of several read-write handles on one log folder: run by the
// ASan suite and, for data races, by the ThreadSanitizer build (.ci/tsan).
//
// Three log_core handles (as three processes: each its own LOCK descriptor,
// committer, housekeeper, segment objects and mapping of every state file)
// share two partitions (one "fsync", one "interval") with small segments and a
// retention limit. Per handle: two appender threads (multi-frame appends,
// durable waits most of the time), a reader thread following both partitions
// with a partition_reader cursor, and a side thread applying retention and
// flushing; the housekeepers write checkpoints and apply retention on their own.
// (Each handle maps the shared state at its own address, so ThreadSanitizer
// sees the races of each handle's threads, not those across handles.)
// Checked: per partition, the offsets handed out tile [0, end) across the
// handles; each thread's appends got increasing offsets; readers see dense,
// whole frames and each writer's frames in its order; every frame appended is
// read back byte for byte (unless retention took it) through every handle and
// after a clean close and reopen.
//
// TIDELOG_STRESS_SECONDS sets the duration (default 3; .ci/tsan: 10).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "log_core.h"
#include "partition_reader.h"
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

/// The payload's stamp if make() produced it whole (not torn or mixed).
bool well_formed(const uint8_t* p, uint64_t length, stamp* out) {
    if (length < sizeof(stamp)) return false;
    stamp s;
    std::memcpy(&s, p, sizeof s);
    if (s.size != length) return false;
    for (uint32_t i = sizeof s; i < s.size; ++i)
        if (p[i] != static_cast<uint8_t>(s.writer * 131 + s.sequence * 7 + i)) return false;
    *out = s;
    return true;
}

struct appended {
    int64_t base;
    uint32_t writer;
    uint64_t sequence;
    uint32_t size;
    bool acked;
};

TEST(MultiHandle, ThreeHandlesAppendReadRollAndRetainTheSamePartitions) {
    const char* env = std::getenv("TIDELOG_STRESS_SECONDS");
    double seconds = env ? std::atof(env) : 3.0;
    temp_dir dir;
    std::string log_path = dir.sub("log");
    constexpr int handles = 3, appenders_per_handle = 2, partitions = 2;
    std::vector<partition_config> configs(partitions);
    configs[0].durability = durability_mode::fsync;
    configs[1].durability = durability_mode::interval;
    configs[1].flush_interval_ms = 2;
    for (auto& c : configs) {
        c.segment_bytes = 16 * 1024;
        c.retention_bytes = 128 * 1024;
    }
    auto part_dir = [&](int p) { return log_path + "/topics/t/" + std::to_string(p); };

    // Per appender thread, per partition: its appends in program order.
    std::vector<std::vector<std::vector<appended>>> log_of(handles * appenders_per_handle,
                                                           std::vector<std::vector<appended>>(partitions));
    std::atomic<uint64_t> appends{0}, frames_read{0}, retention_passes{0}, reader_jumps{0};
    std::atomic<bool> stop{false};
    std::string first_error;
    std::mutex error_mu;
    std::atomic<uint64_t> errors{0};
    auto report = [&](const std::string& e) {
        std::lock_guard<std::mutex> g(error_mu);
        if (first_error.empty()) first_error = e;
        errors++;
    };
    uint64_t checkpoints = 0, segments_deleted = 0;

    {
        std::vector<std::unique_ptr<log_core>> cores;
        std::vector<std::vector<std::unique_ptr<partition>>> parts(handles);
        make_directories(log_path + "/topics/t");
        for (int h = 0; h < handles; ++h) {
            cores.push_back(std::make_unique<log_core>(log_path, false));
            for (int p = 0; p < partitions; ++p) parts[h].push_back(cores[h]->open_partition(part_dir(p), configs[p]));
        }

        std::vector<std::thread> threads;
        for (int h = 0; h < handles; ++h) {
            for (int t = 0; t < appenders_per_handle; ++t) {
                uint32_t w = static_cast<uint32_t>(h * appenders_per_handle + t);
                threads.emplace_back([&, h, w] {
                    std::mt19937_64 rng(1000 + w);
                    log_core& core = *cores[h];
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
                        bool wait = rng() % 3 != 0;
                        try {
                            if (wait) core.announce();
                            std::vector<append_result> r;
                            try {
                                r = parts[h][p]->append(reqs.data(), reqs.size());
                            } catch (...) {
                                if (wait) core.retract();
                                throw;
                            }
                            appends++;
                            if (wait) core.wait_durable(r.back().ticket, true);
                            for (int k = 0; k < n; ++k)
                                log_of[w][p].push_back({r[k].base_offset, w, sequence + k,
                                                        static_cast<uint32_t>(payloads[k].size()), wait});
                        } catch (const std::exception& e) {
                            report(std::string("append: ") + e.what());
                        }
                        sequence += n;
                    }
                });
            }
            // The reader: a cursor per partition, following the tail.
            threads.emplace_back([&, h] {
                std::vector<std::unique_ptr<partition_reader>> cursors;
                std::vector<std::map<uint32_t, uint64_t>> last_seq(partitions);
                for (int p = 0; p < partitions; ++p)
                    cursors.push_back(std::make_unique<partition_reader>(*parts[h][p], parts[h][p]->start_offset()));
                std::vector<frame_ref> got;
                while (!stop.load(std::memory_order_relaxed)) {
                    bool any = false;
                    for (int p = 0; p < partitions; ++p) {
                        partition_reader& c = *cursors[p];
                        got.clear();
                        int64_t expect = c.position();
                        try {
                            c.read(64, 1 << 20, &got);
                        } catch (const error& e) {
                            // Retention removed the segment under the cursor: on from the start.
                            if (e.code() != errc::not_found) report(std::string("read: ") + e.what());
                            c.seek(parts[h][p]->start_offset());
                            continue;
                        }
                        for (auto& f : got) {
                            if (f.header.base_offset != expect) {
                                // Only retention may move the cursor on (to the start, past `expect`).
                                if (f.header.base_offset < expect || parts[h][p]->start_offset() < f.header.base_offset)
                                    report("reader " + std::to_string(h) + ": frame at offset " +
                                           std::to_string(f.header.base_offset) + ", expected " + std::to_string(expect));
                                reader_jumps++;
                            }
                            expect = f.header.next_offset();
                            stamp s;
                            if (!well_formed(f.payload(), f.header.payload_length, &s)) {
                                report("torn payload at offset " + std::to_string(f.header.base_offset));
                                continue;
                            }
                            auto it = last_seq[p].find(s.writer);
                            if (it != last_seq[p].end() && s.sequence <= it->second)
                                report("writer " + std::to_string(s.writer) + "'s frames out of order at offset " +
                                       std::to_string(f.header.base_offset));
                            last_seq[p][s.writer] = s.sequence;
                            frames_read++;
                            any = true;
                        }
                    }
                    if (!any) std::this_thread::sleep_for(std::chrono::microseconds(200));
                }
            });
            // Retention and flushes on this handle (the housekeeper checkpoints).
            threads.emplace_back([&, h] {
                std::mt19937_64 rng(3000 + h);
                while (!stop.load(std::memory_order_relaxed)) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(3 + rng() % 15));
                    try {
                        int pick = static_cast<int>(rng() % 4);
                        if (pick == 0) {
                            parts[h][rng() % partitions]->enforce_retention();
                            retention_passes++;
                        } else if (pick == 1) {
                            cores[h]->flush_all();
                        } else {
                            parts[h][rng() % partitions]->flush();
                        }
                    } catch (const std::exception& e) {
                        report(std::string("side: ") + e.what());
                    }
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        stop = true;
        for (auto& t : threads) t.join();
        EXPECT_EQ(errors.load(), 0u) << first_error;
        for (auto& c : cores) c->flush_all();

        // Offsets tile [0, end) across the handles; each thread's increase.
        for (int p = 0; p < partitions; ++p) {
            std::vector<appended> all;
            for (auto& w : log_of) {
                for (size_t i = 1; i < w[p].size(); ++i)
                    EXPECT_GT(w[p][i].base, w[p][i - 1].base) << "a thread's appends went back in partition " << p;
                all.insert(all.end(), w[p].begin(), w[p].end());
            }
            std::sort(all.begin(), all.end(), [](const appended& a, const appended& b) { return a.base < b.base; });
            for (size_t i = 0; i < all.size(); ++i)
                ASSERT_EQ(all[i].base, static_cast<int64_t>(i)) << "partition " << p << ": offsets not dense";
            // Every handle reads every frame (from the start retention left) byte for byte.
            for (int h = 0; h < handles; ++h) {
                partition& part = *parts[h][p];
                EXPECT_EQ(part.end_offset(), static_cast<int64_t>(all.size()));
                // (The housekeepers' retention may move the start meanwhile: read again.)
                std::vector<frame_ref> frames;
                for (int attempt = 0; attempt < 5; ++attempt) {
                    try {
                        frames = part.frames(part.start_offset(), part.end_offset(), INT64_MIN, INT64_MAX, SIZE_MAX);
                        break;
                    } catch (const error& e) {
                        if (e.code() != errc::not_found || attempt == 4) throw;
                    }
                }
                ASSERT_FALSE(frames.empty());
                ASSERT_EQ(frames.size(), all.size() - static_cast<size_t>(frames.front().header.base_offset))
                    << "handle " << h;
                for (auto& f : frames) {
                    const appended& a = all[static_cast<size_t>(f.header.base_offset)];
                    std::vector<uint8_t> want = make(a.writer, a.sequence, a.size);
                    ASSERT_EQ(f.header.payload_length, want.size());
                    ASSERT_EQ(std::memcmp(f.payload(), want.data(), want.size()), 0)
                        << "handle " << h << " partition " << p << " offset " << f.header.base_offset;
                }
            }
        }
        for (int h = 0; h < handles; ++h) {
            for (auto& p : parts[h]) p->close();
            auto st = cores[h]->stats();
            checkpoints += st.checkpoints;
            segments_deleted += st.segments_deleted;
            cores[h]->close();
        }
    }

    // Reopen (the last closer marked the shutdown clean): every durable frame is
    // there, byte for byte, unless retention took its segment.
    log_core core(log_path, false);
    EXPECT_TRUE(core.was_clean());
    uint64_t checked = 0, retained_away = 0;
    for (int p = 0; p < partitions; ++p) {
        auto part = core.open_partition(part_dir(p), configs[p]);
        for (auto& ev : part->recovery_events()) ADD_FAILURE() << "recovery after a clean close: " << ev.reason;
        int64_t start = part->start_offset();
        auto all = part->frames(start, part->end_offset(), INT64_MIN, INT64_MAX, SIZE_MAX);
        for (auto& w : log_of)
            for (auto& a : w[p]) {
                if (!a.acked) continue;
                if (a.base < start) {
                    ++retained_away;
                    continue;
                }
                ASSERT_LT(static_cast<size_t>(a.base - start), all.size());
                const frame_ref& f = all[static_cast<size_t>(a.base - start)];
                ASSERT_EQ(f.header.base_offset, a.base);
                std::vector<uint8_t> want = make(a.writer, a.sequence, a.size);
                ASSERT_EQ(f.header.payload_length, want.size());
                ASSERT_EQ(std::memcmp(f.payload(), want.data(), want.size()), 0) << "offset " << a.base;
                ++checked;
            }
        part->close();
    }
    core.close();
    std::printf("[ multihandle ] %.1f s, %d handles x %d appenders: %llu appends, %llu frames read by cursors "
                "(%llu jumps past retention), %llu retention passes by the side threads, %llu checkpoints, %llu "
                "segments deleted; after reopen %llu durable frames checked (%llu deleted by retention)\n",
                seconds, handles, appenders_per_handle, (unsigned long long)appends.load(),
                (unsigned long long)frames_read.load(), (unsigned long long)reader_jumps.load(),
                (unsigned long long)retention_passes.load(), (unsigned long long)checkpoints,
                (unsigned long long)segments_deleted, (unsigned long long)checked, (unsigned long long)retained_away);
    EXPECT_GT(checked + retained_away, 0u);
}

}  // namespace
