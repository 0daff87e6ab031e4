// segment: file naming, preallocation, append (incl. many iovecs), scan,
// truncate, seal, mappings that outlive unlink.
#include <gtest/gtest.h>

#include <climits>

#include "segment.h"
#include "test_util.h"
#include "units.h"

using namespace tidelog;
using namespace tidelog_test;

namespace {

class SegmentTest : public ::testing::Test {
protected:
    temp_dir tmp;

    // Appends `count` frames of 1..~600 bytes starting at offset seg.next_offset().
    std::vector<std::vector<uint8_t>> append_frames(segment& seg, int count, uint32_t records = 1,
                                                    int64_t ts0 = 1000) {
        std::vector<std::vector<uint8_t>> payloads;
        for (int i = 0; i < count; ++i) {
            auto payload = make_payload(1 + (i * 37) % 600, seg.next_offset());
            int64_t ts = ts0 + seg.next_offset();
            frame_header h = header_for(payload, seg.next_offset(), records, ts, ts + 1);
            struct iovec iov{payload.data(), payload.size()};
            seg.append(h, &iov, 1);
            payloads.push_back(std::move(payload));
        }
        return payloads;
    }

    // Walks the frames in the mapping and checks them against payloads.
    void expect_frames(segment& seg, const std::vector<std::vector<uint8_t>>& payloads, uint32_t records = 1) {
        auto region = seg.mapping(seg.size());
        uint64_t pos = 0;
        int64_t offset = seg.base_offset();
        for (size_t i = 0; i < payloads.size(); ++i) {
            ASSERT_LT(pos, seg.size());
            ASSERT_EQ(check_frame(region->data() + pos, seg.size() - pos), frame_check::ok) << "frame " << i;
            frame_header h = load_header(region->data() + pos);
            EXPECT_EQ(h.base_offset, offset);
            EXPECT_EQ(h.record_count, records);
            ASSERT_EQ(h.payload_length, payloads[i].size());
            EXPECT_EQ(std::memcmp(region->data() + pos + h.payload_offset, payloads[i].data(), payloads[i].size()), 0);
            EXPECT_EQ(pos % frame_alignment, 0u);
            pos += h.frame_length();
            offset = h.next_offset();
        }
        EXPECT_EQ(pos, seg.size());
        EXPECT_EQ(offset, seg.next_offset());
    }
};

}  // namespace

TEST(SegmentName, TwentyDigitStem) {
    EXPECT_EQ(segment_file_stem(0), "00000000000000000000");
    EXPECT_EQ(segment_file_stem(12345), "00000000000000012345");
    EXPECT_EQ(segment_file_stem(INT64_MAX), "09223372036854775807");
}

TEST_F(SegmentTest, CreateAllocatesNothingUntilTheFirstAppend) {
    auto seg = segment::create(tmp.path(), 100);
    EXPECT_EQ(seg->base_offset(), 100);
    EXPECT_EQ(seg->next_offset(), 100);
    EXPECT_EQ(seg->size(), 0u);
    EXPECT_EQ(seg->max_timestamp(), INT64_MIN);
    EXPECT_EQ(seg->log_path(), tmp.sub("00000000000000000100.log"));
    EXPECT_TRUE(fs::exists(tmp.sub("00000000000000000100.index")));
    EXPECT_TRUE(fs::exists(tmp.sub("00000000000000000100.timeindex")));
    EXPECT_EQ(file_size(seg->log_path()), 0u);  // allocated at the first append
    try {
        segment::create(tmp.path(), 100);
        FAIL() << "second create succeeded";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::already_exists);
    }
}

TEST_F(SegmentTest, AppendAndReadBack) {
    auto seg = segment::create(tmp.path(), 50);
    auto payloads = append_frames(*seg, 40, 3);
    EXPECT_EQ(seg->next_offset(), 50 + 40 * 3);
    EXPECT_EQ(seg->max_timestamp(), 1000 + 50 + 39 * 3 + 1);
    expect_frames(*seg, payloads, 3);
    // The rest of the preallocated file is zeros: a scan ends there cleanly.
    scan_result r = seg->scan(0, 50, 0, false);
    EXPECT_EQ(r.stop, frame_check::end_of_data);
    EXPECT_EQ(r.frames, 40u);
    EXPECT_EQ(r.valid_bytes, seg->size());
    EXPECT_EQ(r.next_offset, seg->next_offset());
    EXPECT_EQ(r.max_timestamp, seg->max_timestamp());
    EXPECT_EQ(r.file_bytes, first_preallocation_bytes);
}

TEST_F(SegmentTest, ManyPiecesAndEmptyPieces) {
    auto seg = segment::create(tmp.path(), 0);
    // 2500 pieces: more than the 64 on-stack iovecs and more than IOV_MAX (1024).
    auto payload = make_payload(2500 * 3, 9);
    std::vector<struct iovec> iov;
    for (size_t i = 0; i < 2500; ++i) {
        iov.push_back({payload.data() + 3 * i, 3});
        if (i % 7 == 0) iov.push_back({payload.data(), 0});  // empty pieces are skipped
    }
    frame_header h = header_for(payload, 0, 2500);
    seg->append(h, iov.data(), static_cast<int>(iov.size()));
    expect_frames(*seg, {payload}, 2500);
}

TEST_F(SegmentTest, PayloadOffsetPaddingIsZeros) {
    auto seg = segment::create(tmp.path(), 0);
    auto payload = make_payload(13, 1);
    frame_header h = header_for(payload, 0, 1, 0, 0, 128);
    struct iovec iov{payload.data(), payload.size()};
    seg->append(h, &iov, 1);
    ASSERT_EQ(seg->size(), align_up(128 + 13, 8));
    auto region = seg->mapping(seg->size());
    for (uint64_t i = 64; i < 128; ++i) EXPECT_EQ(region->data()[i], 0) << i;
    for (uint64_t i = 128 + 13; i < seg->size(); ++i) EXPECT_EQ(region->data()[i], 0) << i;
    EXPECT_EQ(check_frame(region->data(), seg->size()), frame_check::ok);
}

TEST_F(SegmentTest, SealTrimsThePreallocation) {
    auto seg = segment::create(tmp.path(), 0);
    append_frames(*seg, 20);
    uint64_t end = seg->size();
    seg->seal();
    EXPECT_EQ(file_size(seg->log_path()), end);
    EXPECT_EQ(seg->index().max_timestamp(), seg->max_timestamp());
    // The sealed segment's time index reaches its last frame.
    EXPECT_EQ(seg->index().last_time_entry().relative_offset, 19u);

    auto empty = segment::create(tmp.path(), 20);
    empty->seal();
    EXPECT_EQ(file_size(empty->log_path()), 0u);
}

TEST_F(SegmentTest, ReopenAndScan) {
    std::vector<std::vector<uint8_t>> payloads;
    {
        auto seg = segment::create(tmp.path(), 7);
        payloads = append_frames(*seg, 25);
        seg->close();
    }
    auto seg = segment::open(tmp.path(), 7, false);
    EXPECT_EQ(seg->size(), 0u);  // unknown until scanned
    seg->index().reset();        // as recovery does before re-adding entries
    scan_result r = seg->scan(0, 7, 0, true);
    EXPECT_EQ(r.frames, 25u);
    EXPECT_EQ(r.stop, frame_check::end_of_data);
    seg->set_end(r.valid_bytes, r.next_offset, r.max_timestamp);
    expect_frames(*seg, payloads);
    // Appends continue after the scanned end.
    auto more = append_frames(*seg, 5);
    payloads.insert(payloads.end(), more.begin(), more.end());
    expect_frames(*seg, payloads);

    auto ro = segment::open(tmp.path(), 7, true);
    try {
        append_frames(*ro, 1);
        FAIL() << "append through a read-only segment";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::read_only);
    }
}

TEST_F(SegmentTest, ScanFromAnIndexEntryWithoutVerification) {
    auto seg = segment::create(tmp.path(), 0);
    append_frames(*seg, 30);
    uint64_t end = seg->size();
    // Scan from the second frame: offsets continue from 1.
    auto region = seg->mapping(end);
    uint64_t second = load_header(region->data()).frame_length();
    scan_result r = seg->scan(second, 1, UINT64_MAX, false);
    EXPECT_EQ(r.frames, 29u);
    EXPECT_EQ(r.valid_bytes, end);
    EXPECT_EQ(r.next_offset, 30);
    // Starting with the wrong offset: the first frame is rejected.
    r = seg->scan(second, 2, UINT64_MAX, false);
    EXPECT_EQ(r.frames, 0u);
    EXPECT_EQ(r.stop, frame_check::bad_header);
}

TEST_F(SegmentTest, ScanStopsAtCorruption) {
    auto seg = segment::create(tmp.path(), 0);
    append_frames(*seg, 10);
    auto region = seg->mapping(seg->size());
    std::vector<uint64_t> starts;
    for (uint64_t pos = 0; pos < seg->size(); pos += load_header(region->data() + pos).frame_length())
        starts.push_back(pos);
    ASSERT_EQ(starts.size(), 10u);
    uint64_t end = seg->size();
    seg->close();

    // Garble a payload byte of frame 6.
    auto bytes = read_file_bytes(tmp.sub("00000000000000000000.log"));
    frame_header h6 = load_header(bytes.data() + starts[6]);
    overwrite(tmp.sub("00000000000000000000.log"), starts[6] + h6.payload_offset, {uint8_t(bytes[starts[6] + h6.payload_offset] ^ 1)});
    auto s = segment::open(tmp.path(), 0, false);
    s->index().reset();
    scan_result r = s->scan(0, 0, 0, true);
    EXPECT_EQ(r.stop, frame_check::bad_crc);
    EXPECT_EQ(r.frames, 6u);
    EXPECT_EQ(r.valid_bytes, starts[6]);
    EXPECT_EQ(r.next_offset, 6);
    // Past verify_from only: the payload is not checked.
    scan_result trusting = s->scan(0, 0, end, false);
    EXPECT_EQ(trusting.frames, 10u);

    s->truncate_to(r.valid_bytes);
    EXPECT_EQ(file_size(s->log_path()), starts[6]);
    EXPECT_EQ(s->size(), starts[6]);
    EXPECT_TRUE(s->index().consistent_with(starts[6]));
}

TEST_F(SegmentTest, MappingGrowsAndRejectsShortFiles) {
    auto seg = segment::create(tmp.path(), 0);
    auto m1 = seg->mapping(0);
    append_frames(*seg, 3);
    auto m2 = seg->mapping(seg->size());
    EXPECT_GE(m2->length(), seg->size());
    EXPECT_EQ(seg->mapping(10).get(), m2.get());  // covered: the same mapping
    try {
        seg->mapping(preallocation_step + 1);
        FAIL() << "mapping past the end of the file";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::corrupt);
    }
}

TEST_F(SegmentTest, MappingOutlivesRemoval) {
    auto seg = segment::create(tmp.path(), 0);
    auto payloads = append_frames(*seg, 5);
    uint64_t end = seg->size();
    auto region = seg->mapping(end);
    seg->seal();
    seg->close();
    seg->remove_files();
    EXPECT_FALSE(fs::exists(tmp.sub("00000000000000000000.log")));
    EXPECT_FALSE(fs::exists(tmp.sub("00000000000000000000.index")));
    seg.reset();
    // The unlinked inode stays mapped and readable.
    ASSERT_EQ(check_frame(region->data(), end), frame_check::ok);
    frame_header h = load_header(region->data());
    EXPECT_EQ(std::memcmp(region->data() + h.payload_offset, payloads[0].data(), payloads[0].size()), 0);
}

TEST_F(SegmentTest, AllocationDoublesFromTheFirstStepToTheLargest) {
    auto seg = segment::create(tmp.path(), 0);
    std::vector<uint64_t> sizes;
    std::vector<uint8_t> payload(100 * 1024, 7);
    for (int i = 0; i < 700; ++i) {  // ~70 MiB of frames
        struct iovec iov{payload.data(), payload.size()};
        frame_header h{};
        h.magic = frame_magic;
        h.version = frame_version;
        h.header_length = frame_header_bytes;
        h.base_offset = seg->next_offset();
        h.record_count = 1;
        h.last_offset_delta = 0;
        h.payload_length = payload.size();
        h.payload_offset = frame_header_bytes;
        h.crc = frame_crc(h, payload.data());
        seg->append(h, &iov, 1);
        uint64_t size = file_size(seg->log_path());
        if (sizes.empty() || sizes.back() != size) sizes.push_back(size);
    }
    ASSERT_GE(sizes.size(), 7u);
    EXPECT_EQ(sizes[0], first_preallocation_bytes);
    for (size_t i = 1; i < sizes.size(); ++i)
        EXPECT_EQ(sizes[i] - sizes[i - 1], std::min(sizes[i - 1], preallocation_step)) << i;
}
