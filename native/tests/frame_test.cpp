// Frame validation: check_header / check_frame on good, empty, truncated and
// corrupted frames, plus a fuzz loop (run under ASan to catch out-of-bounds reads).
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <random>
#include <vector>

#include "frame.h"
#include "test_util.h"

using namespace tidelog;
using tidelog_test::build_frame;
using tidelog_test::build_sparse_frame;
using tidelog_test::make_payload;

namespace {

// An exactly-sized heap copy, so that ASan flags any read past `available`.
struct exact_buffer {
    explicit exact_buffer(const uint8_t* p, size_t n) : size(n), data(new uint8_t[n ? n : 1]) {
        if (n) std::memcpy(data.get(), p, n);
    }
    size_t size;
    std::unique_ptr<uint8_t[]> data;
};

frame_check header_of(const std::vector<uint8_t>& f, size_t available) {
    exact_buffer b(f.data(), available);
    return check_header(b.data.get(), available);
}
frame_check frame_of(const std::vector<uint8_t>& f, size_t available) {
    exact_buffer b(f.data(), available);
    return check_frame(b.data.get(), available);
}

template <typename T>
void poke(std::vector<uint8_t>& f, size_t at, T v) {
    std::memcpy(f.data() + at, &v, sizeof v);
}

}  // namespace

TEST(Frame, HeaderLayout) {
    EXPECT_EQ(sizeof(frame_header), 64u);
    EXPECT_EQ(offsetof(frame_header, crc), 4u);
    EXPECT_EQ(offsetof(frame_header, version), 8u);
    EXPECT_EQ(offsetof(frame_header, base_offset), 16u);
    EXPECT_EQ(offsetof(frame_header, record_count), 24u);
    EXPECT_EQ(offsetof(frame_header, min_timestamp), 32u);
    EXPECT_EQ(offsetof(frame_header, payload_length), 48u);
    EXPECT_EQ(offsetof(frame_header, payload_offset), 56u);
    const uint8_t magic[4] = {'T', 'L', 'F', '1'};
    uint32_t m;
    std::memcpy(&m, magic, 4);
    EXPECT_EQ(m, frame_magic);
}

TEST(Frame, GoodFramesPass) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{63}, size_t{64}, size_t{1000},
                     size_t{4096}}) {
        for (uint32_t payload_offset : {64u, 72u, 128u}) {
            std::vector<uint8_t> f;
            frame_header h = build_frame(f, make_payload(n, n), 12345, 3, -5, 99, payload_offset);
            ASSERT_EQ(f.size() % frame_alignment, 0u);
            EXPECT_EQ(h.frame_length(), f.size());
            EXPECT_EQ(h.next_offset(), 12348);
            EXPECT_EQ(header_of(f, f.size()), frame_check::ok) << n << "/" << payload_offset;
            EXPECT_EQ(frame_of(f, f.size()), frame_check::ok) << n << "/" << payload_offset;
            // More bytes behind the frame do not matter.
            std::vector<uint8_t> longer = f;
            longer.resize(f.size() + 100, 0xCC);
            EXPECT_EQ(frame_of(longer, longer.size()), frame_check::ok);
            frame_header back = load_header(f.data());
            EXPECT_EQ(std::memcmp(&back, &h, sizeof h), 0);
        }
    }
}

TEST(Frame, FrameCrcWithPayloadCrcMatchesFrameCrc) {
    auto payload = make_payload(333, 1);
    std::vector<uint8_t> f;
    frame_header h = build_frame(f, payload, 0);
    EXPECT_EQ(frame_crc_with_payload_crc(h, crc32c(payload.data(), payload.size())), h.crc);
    EXPECT_EQ(frame_crc(h, payload.data()), h.crc);
}

TEST(Frame, ZerosAreEndOfData) {
    std::vector<uint8_t> zeros(300, 0);
    for (size_t n = 0; n <= zeros.size(); ++n) {
        EXPECT_EQ(header_of(zeros, n), frame_check::end_of_data) << n;
        EXPECT_EQ(frame_of(zeros, n), frame_check::end_of_data) << n;
    }
    EXPECT_EQ(check_header(nullptr, 0), frame_check::end_of_data);
    EXPECT_EQ(check_frame(nullptr, 0), frame_check::end_of_data);
}

TEST(Frame, TruncatedFrames) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(200, 2), 0);
    // Any strict prefix of a frame, from one header byte to one byte short.
    for (size_t n = 1; n < f.size(); ++n) {
        EXPECT_EQ(header_of(f, n), frame_check::truncated) << n;
        EXPECT_EQ(frame_of(f, n), frame_check::truncated) << n;
    }
    // A short non-zero tail that is not a header at all.
    std::vector<uint8_t> junk(10, 0);
    junk[9] = 1;
    EXPECT_EQ(header_of(junk, junk.size()), frame_check::truncated);
}

TEST(Frame, BadMagic) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(16, 3), 0);
    auto g = f;
    g[0] = 'X';
    EXPECT_EQ(frame_of(g, g.size()), frame_check::bad_magic);
    // Zero magic but a non-zero rest is not "end of data".
    g = f;
    poke<uint32_t>(g, 0, 0);
    EXPECT_EQ(frame_of(g, g.size()), frame_check::bad_magic);
    // A zeroed header with a single non-zero byte anywhere in it.
    for (size_t i = 0; i < frame_header_bytes; ++i) {
        std::vector<uint8_t> z(frame_header_bytes, 0);
        z[i] = 1;
        EXPECT_EQ(frame_of(z, z.size()), frame_check::bad_magic) << i;
    }
}

TEST(Frame, BadHeaderFields) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(40, 4), 10, 1, 5, 6);
    auto expect_bad = [&](const char* what, auto&& mutate) {
        auto g = f;
        mutate(g);
        EXPECT_EQ(header_of(g, g.size()), frame_check::bad_header) << what;
        EXPECT_EQ(frame_of(g, g.size()), frame_check::bad_header) << what;
    };
    expect_bad("version 0", [](auto& g) { poke<uint16_t>(g, 8, 0); });
    expect_bad("version 3", [](auto& g) { poke<uint16_t>(g, 8, 3); });
    expect_bad("record_count 2 over a span of 1", [](auto& g) { poke<uint32_t>(g, 24, 2); });
    expect_bad("header_length 63", [](auto& g) { poke<uint16_t>(g, 10, 63); });
    expect_bad("header_length 128", [](auto& g) { poke<uint16_t>(g, 10, 128); });
    expect_bad("codec 2", [](auto& g) { poke<uint16_t>(g, 12, 2); });
    expect_bad("negative base_offset", [](auto& g) { poke<int64_t>(g, 16, -1); });
    expect_bad("min > max timestamp", [](auto& g) { poke<int64_t>(g, 32, 7); });
    expect_bad("payload_length > 2 GiB", [](auto& g) { poke<uint64_t>(g, 48, max_frame_bytes + 1); });
    expect_bad("payload_length huge", [](auto& g) { poke<uint64_t>(g, 48, UINT64_MAX); });
    expect_bad("payload_offset 0", [](auto& g) { poke<uint32_t>(g, 56, 0); });
    expect_bad("payload_offset 56", [](auto& g) { poke<uint32_t>(g, 56, 56); });
    expect_bad("payload_offset 68", [](auto& g) { poke<uint32_t>(g, 56, 68); });
}

TEST(Frame, EmptyFramesNeedTheSparseFlag) {
    // FORMAT.md §2.6: record_count 0 only with FLAG_SPARSE (an empty frame of a
    // compacted segment: its payload is the 8-byte offset block).
    std::vector<uint8_t> f;
    build_frame(f, std::vector<uint8_t>(8, 0), 10, 1, 5, 6);
    auto with = [&](uint16_t flags) {
        auto g = f;
        poke<uint32_t>(g, 24, 0);       // record_count
        poke<uint32_t>(g, 60, 9);       // a span of 10 offsets
        poke<uint16_t>(g, 14, flags);
        frame_header h = load_header(g.data());
        h.crc = frame_crc(h, g.data() + h.payload_offset);
        poke<uint32_t>(g, 4, h.crc);
        return g;
    };
    auto sparse = with(frame_flag_sparse);
    EXPECT_EQ(frame_of(sparse, sparse.size()), frame_check::ok);
    EXPECT_EQ(load_header(sparse.data()).next_offset(), 20);
    auto dense = with(0);
    EXPECT_EQ(header_of(dense, dense.size()), frame_check::bad_header);
}

TEST(Frame, HugeLengthsAreTruncatedNotOverflowed) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(8, 5), 0);
    auto g = f;
    poke<uint64_t>(g, 48, max_frame_bytes);  // legal length, far past the buffer
    EXPECT_EQ(frame_of(g, g.size()), frame_check::truncated);
    g = f;
    poke<uint32_t>(g, 56, 0xFFFFFFF8u);  // legal alignment, far past the buffer
    EXPECT_EQ(frame_of(g, g.size()), frame_check::truncated);
}

TEST(Frame, EveryByteFlipIsDetected) {
    // A small frame without padding: every byte is header or payload, all covered.
    std::vector<uint8_t> f;
    build_frame(f, make_payload(48, 6), 77, 2, 100, 200);
    ASSERT_EQ(f.size(), 64u + 48u);
    ASSERT_EQ(frame_of(f, f.size()), frame_check::ok);
    for (size_t i = 0; i < f.size(); ++i)
        for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}, uint8_t{0x5A}}) {
            auto g = f;
            g[i] ^= mask;
            EXPECT_NE(frame_of(g, g.size()), frame_check::ok) << "byte " << i << " mask " << int(mask);
        }
}

TEST(Frame, EveryHeaderAndPayloadByteFlipIsDetectedWithPadding) {
    // payload_offset 128 and a 13-byte payload: head and tail padding exist. The
    // CRC covers header and payload; the padding is zeros that nothing reads.
    std::vector<uint8_t> f;
    frame_header h = build_frame(f, make_payload(13, 7), 5, 1, 0, 0, 128);
    ASSERT_EQ(frame_of(f, f.size()), frame_check::ok);
    for (size_t i = 0; i < f.size(); ++i) {
        bool covered = i < frame_header_bytes || (i >= h.payload_offset && i < h.payload_offset + h.payload_length);
        if (!covered) continue;
        auto g = f;
        g[i] ^= 0x10;
        EXPECT_NE(frame_of(g, g.size()), frame_check::ok) << "byte " << i;
    }
}

TEST(Frame, CrcFlipsAreBadCrc) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(48, 8), 0);
    // 24: record_count 1 -> 0 and 25: 1 -> 257 (more records than the span of 1) are bad headers,
    // and so is 60: a wider span with fewer records, without the sparse flag.
    for (size_t i : {4, 5, 6, 7, 14, 28, 64, 100}) {
        auto g = f;
        g[i] ^= 1;
        EXPECT_EQ(frame_of(g, g.size()), frame_check::bad_crc) << "byte " << i;
        EXPECT_EQ(header_of(g, g.size()), frame_check::ok) << "byte " << i;  // structure still fine
    }
}

TEST(Frame, FuzzRandomBuffersNeverCrash) {
    std::mt19937_64 rng(20240601);
    std::vector<uint8_t> good;
    build_frame(good, make_payload(100, 9), 3, 1, 0, 0, 72);
    size_t ok = 0, seen[6] = {};
    for (int iter = 0; iter < 100000; ++iter) {
        size_t len = rng() % 300;
        std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
        switch (iter % 4) {
            case 0:  // pure noise
                for (size_t i = 0; i < len; ++i) buf[i] = static_cast<uint8_t>(rng());
                break;
            case 1: {  // a plausible header with random lengths
                for (size_t i = 0; i < len; ++i) buf[i] = static_cast<uint8_t>(rng());
                if (len >= 64) {
                    frame_header h = load_header(buf.get());
                    h.magic = frame_magic;
                    h.version = frame_version;
                    h.header_length = frame_header_bytes;
                    h.codec = static_cast<uint16_t>(rng() % 2);
                    h.base_offset = static_cast<int64_t>(rng() >> 1);
                    h.min_timestamp = h.max_timestamp - static_cast<int64_t>(rng() % 3);
                    if (h.min_timestamp > h.max_timestamp) h.min_timestamp = h.max_timestamp;
                    h.payload_offset = static_cast<uint32_t>(64 + 8 * (rng() % 40));
                    h.payload_length = rng() % 320;
                    // Sometimes a correct CRC, when the payload fits, so that "ok" is reachable.
                    if (rng() % 2 && h.payload_offset + h.payload_length <= len)
                        h.crc = frame_crc(h, buf.get() + h.payload_offset);
                    std::memcpy(buf.get(), &h, sizeof h);
                }
                break;
            }
            case 2: {  // a good frame, mutated and cut at a random length
                len = std::min(len, good.size());
                buf.reset(new uint8_t[len ? len : 1]);
                std::memcpy(buf.get(), good.data(), len);
                int flips = static_cast<int>(rng() % 4);
                for (int k = 0; k < flips && len; ++k) buf[rng() % len] ^= static_cast<uint8_t>(1u << (rng() % 8));
                break;
            }
            case 3: {  // zeros with a few random bytes
                std::memset(buf.get(), 0, len ? len : 1);
                if (len && rng() % 2) buf[rng() % len] = static_cast<uint8_t>(rng());
                break;
            }
        }
        frame_check hc = check_header(buf.get(), len);
        frame_check fc = check_frame(buf.get(), len);
        seen[static_cast<int>(fc)]++;
        if (hc != frame_check::ok) {
            ASSERT_EQ(fc, hc) << "iteration " << iter;
        } else {
            ASSERT_LE(load_header(buf.get()).frame_length(), len) << "iteration " << iter;
        }
        if (fc == frame_check::ok) ++ok;
    }
    // The fuzz reached every verdict.
    EXPECT_GT(ok, 0u);
    for (int c = 0; c < 6; ++c) EXPECT_GT(seen[c], 0u) << describe(static_cast<frame_check>(c));
}

TEST(Frame, DescribeCoversEveryVerdict) {
    for (int c = 0; c < 6; ++c) {
        const char* s = describe(static_cast<frame_check>(c));
        ASSERT_NE(s, nullptr);
        EXPECT_STRNE(s, "?");
    }
}

namespace {
// Rewrites the header of frame `f` (with a fresh CRC) after `edit`.
template <typename Edit>
frame_header rewrite_header(std::vector<uint8_t>& f, Edit edit) {
    frame_header h = load_header(f.data());
    edit(h);
    h.crc = frame_crc(h, f.data() + h.payload_offset);
    std::memcpy(f.data(), &h, sizeof h);
    return h;
}
}  // namespace

TEST(Frame, WritersWriteVersion2WithTheSpanOfADenseFrame) {
    std::vector<uint8_t> f;
    frame_header h = build_frame(f, make_payload(40, 1), 100, 5);
    EXPECT_EQ(h.version, 2);
    EXPECT_EQ(h.last_offset_delta, 4u);
    EXPECT_EQ(h.offset_span(), 4);
    EXPECT_EQ(h.last_offset(), 104);
    EXPECT_EQ(h.next_offset(), 105);
    EXPECT_TRUE(h.dense());
    EXPECT_EQ(offsetof(frame_header, last_offset_delta), 60u);
}

TEST(Frame, Version1FramesReadWithTheSpanOfTheirCount) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(40, 2), 100, 5);
    frame_header h = rewrite_header(f, [](frame_header& x) {
        x.version = 1;
        x.last_offset_delta = 0;  // "reserved" in version 1
    });
    EXPECT_EQ(frame_of(f, f.size()), frame_check::ok);
    EXPECT_EQ(h.offset_span(), 4);
    EXPECT_EQ(h.next_offset(), 105);
    EXPECT_TRUE(h.dense());
}

TEST(Frame, FewerRecordsThanOffsetsWithoutTheSparseFlagIsABadHeader) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(40, 3), 100, 5);
    rewrite_header(f, [](frame_header& x) { x.last_offset_delta = 9; });
    EXPECT_EQ(header_of(f, f.size()), frame_check::bad_header);
    rewrite_header(f, [](frame_header& x) {
        x.last_offset_delta = 0;
        x.record_count = 0;
    });
    EXPECT_EQ(header_of(f, f.size()), frame_check::bad_header);  // empty without the flag
}

TEST(Frame, SparseFramesPass) {
    std::vector<uint8_t> f;
    frame_header h = build_sparse_frame(f, make_payload(40, 3), 100, 10, {1, 4, 9}, 12345, 5, 6);
    EXPECT_EQ(frame_of(f, f.size()), frame_check::ok);
    EXPECT_TRUE(h.sparse());
    EXPECT_FALSE(h.dense());
    EXPECT_EQ(h.next_offset(), 110);
    EXPECT_EQ(h.block_length(), 24u);  // 8 + 3 * 4 = 20, padded to 24
    // Every record of its offsets: still sparse (the flag decides), not dense.
    h = build_sparse_frame(f, make_payload(8, 3), 7, 3, {0, 1, 2});
    EXPECT_EQ(frame_of(f, f.size()), frame_check::ok);
    EXPECT_FALSE(h.dense());
    // Empty: exactly the 8-byte block.
    h = build_sparse_frame(f, {}, 50, 4, {}, 0, 9, 9);
    EXPECT_EQ(h.payload_length, 8u);
    EXPECT_EQ(frame_of(f, f.size()), frame_check::ok);
    EXPECT_EQ(h.next_offset(), 54);
}

TEST(Frame, BrokenOffsetBlocksAreBadHeaders) {
    auto verdict = [](uint32_t span, std::vector<uint32_t> deltas, uint64_t arrow = 16) {
        std::vector<uint8_t> f;
        build_sparse_frame(f, make_payload(arrow, 1), 0, span, deltas);
        return frame_of(f, f.size());
    };
    EXPECT_EQ(verdict(10, {0, 9}), frame_check::ok);
    EXPECT_EQ(verdict(10, {0, 10}), frame_check::bad_header);  // past the span
    EXPECT_EQ(verdict(10, {3, 3}), frame_check::bad_header);   // not strictly increasing
    EXPECT_EQ(verdict(10, {5, 2}), frame_check::bad_header);
    EXPECT_EQ(verdict(2, {0, 1, 2}), frame_check::bad_header);  // more records than offsets (header)
    EXPECT_EQ(verdict(4, {}, 8), frame_check::bad_header);      // empty with an Arrow part
    // Nonzero block padding.
    std::vector<uint8_t> f;
    build_sparse_frame(f, make_payload(16, 1), 0, 10, {1});
    f[frame_header_bytes + 12] = 1;
    rewrite_header(f, [](frame_header&) {});
    EXPECT_EQ(frame_of(f, f.size()), frame_check::bad_header);
    // A block longer than the payload.
    build_sparse_frame(f, {}, 0, 10, {1});
    rewrite_header(f, [](frame_header& x) { x.record_count = 5; });
    EXPECT_EQ(header_of(f, f.size()), frame_check::bad_header);
    // Version 1 never carries the flag.
    build_sparse_frame(f, make_payload(16, 1), 0, 1, {0});
    rewrite_header(f, [](frame_header& x) {
        x.version = 1;
        x.last_offset_delta = 0;
    });
    EXPECT_EQ(header_of(f, f.size()), frame_check::bad_header);
}

TEST(Frame, BadSpansAndVersionsAreBadHeaders) {
    std::vector<uint8_t> f;
    build_frame(f, make_payload(40, 4), 100, 5);
    auto bad = [&](auto edit) {
        std::vector<uint8_t> g = f;
        rewrite_header(g, edit);
        return header_of(g, g.size());
    };
    EXPECT_EQ(bad([](frame_header& x) { x.last_offset_delta = 3; }), frame_check::bad_header);  // 5 records, 4 offsets
    EXPECT_EQ(bad([](frame_header& x) { x.last_offset_delta = 0; }), frame_check::bad_header);
    EXPECT_EQ(bad([](frame_header& x) { x.version = 0; }), frame_check::bad_header);
    EXPECT_EQ(bad([](frame_header& x) { x.version = 3; }), frame_check::bad_header);
    // The last offset must fit an i64 (next_offset() one past it too).
    EXPECT_EQ(bad([](frame_header& x) {
                  x.base_offset = INT64_MAX - 10;
                  x.last_offset_delta = 10;
              }),
              frame_check::bad_header);
    EXPECT_EQ(bad([](frame_header& x) {
                  x.base_offset = INT64_MAX - 11;
                  x.last_offset_delta = 10;
                  x.record_count = 11;  // (the payload's contents do not matter here)
              }),
              frame_check::ok);
    EXPECT_EQ(bad([](frame_header& x) {
                  x.version = 1;
                  x.base_offset = INT64_MAX - 4;
              }),
              frame_check::bad_header);
    EXPECT_EQ(bad([](frame_header& x) {
                  x.version = 1;
                  x.base_offset = INT64_MAX - 5;
              }),
              frame_check::ok);
}
