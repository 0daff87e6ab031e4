#pragma once
// One segment: <base>.log holding frames, plus its sparse indexes.
//
// Concurrency: append, truncate_to, seal and allocate are called only by the
// partition's single appender (under the partition mutex). size(), next_offset(),
// mapping() and index lookups may be called from any thread at any time.
#include <sys/uio.h>

#include <atomic>
#include <cstring>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "file_handle.h"
#include "frame.h"
#include "mapped_region.h"
#include "partition_coordination.h"
#include "segment_index.h"

namespace tidelog {

/// 20-digit zero-padded base offset, as Kafka names segments.
std::string segment_file_stem(int64_t base_offset);

/// A frame as seen by readers: the mapping that holds it and where.
struct frame_ref {
    std::shared_ptr<mapped_region> region;
    uint64_t position;
    frame_header header;
    /// The stored payload (a sparse frame's offset block included).
    const uint8_t* payload() const { return region->data() + position + header.payload_offset; }
    bool sparse() const { return header.sparse(); }
    /// A sparse frame's offset block (FORMAT.md §2.6); null for a dense frame.
    const uint8_t* offset_block() const { return sparse() ? payload() : nullptr; }
    uint64_t block_length() const { return header.block_length(); }
    /// 0 for a dense frame.
    int64_t delete_horizon_ns() const {
        int64_t v = 0;
        if (sparse()) std::memcpy(&v, payload(), sizeof v);
        return v;
    }
    /// Record i's offset delta from base_offset (i < record_count).
    uint32_t offset_delta(uint32_t i) const {
        if (!sparse()) return i;
        uint32_t d;
        std::memcpy(&d, payload() + 8 + 4 * uint64_t{i}, sizeof d);
        return d;
    }
    /// The Arrow part of the payload (after the offset block).
    const uint8_t* arrow_payload() const { return payload() + block_length(); }
    uint64_t arrow_payload_length() const { return header.payload_length - block_length(); }
};

/// Bytes a walk could not use, and the offsets they held (FORMAT.md §8).
struct damaged_bytes {
    uint64_t position = 0;
    uint64_t bytes = 0;          // damaged bytes left in the file (0: the data is gone)
    int64_t start_offset = 0;
    int64_t end_offset = -1;     // exclusive; -1: only the caller knows (a damaged tail)
    frame_check why = frame_check::bad_header;
};

/// How a walk treats what it meets (see segment::scan).
struct walk_policy {
    uint64_t verify_from = UINT64_MAX;  // CRC-check frames at or after this position
    bool rebuild_index = false;         // re-add index entries as frames are walked
    /// Damage at offsets below keep_below is durable data: the walk reports it,
    /// skips to the next intact frame and goes on. At or above it (a torn tail
    /// after a crash, never acknowledged) the walk stops and the caller cuts.
    int64_t keep_below = 0;
    /// The offset the frames should reach (the next segment's base, what a
    /// checkpoint vouches for); zeros before it are lost data, not the end.
    int64_t expected_end = INT64_MIN;
    /// No frame holds offsets at or past this (the next segment's base).
    int64_t offset_bound = INT64_MAX;
    /// Zeros may be a lost sector with frames behind them even past
    /// expected_end (a file trimmed at a clean close has no zero tail): look
    /// for an intact frame after them; only zeros to the end are the end.
    bool zeros_may_hide_frames = false;
    /// The recovery checkpoint's point in this segment (a frame boundary): a
    /// frame starting before trusted_position ends at or before it, and the one
    /// ending there ends at trusted_offset. A header that says otherwise is
    /// damaged, whatever else it passes.
    uint64_t trusted_position = UINT64_MAX;
    int64_t trusted_offset = INT64_MAX;
};

/// What a walk over a segment's frames found.
struct scan_result {
    uint64_t valid_bytes = 0;      // end of the last good frame
    int64_t next_offset = 0;       // offset after the last good frame
    int64_t max_timestamp = INT64_MIN;
    uint64_t frames = 0;
    frame_check stop = frame_check::end_of_data;  // why the walk stopped
    uint64_t file_bytes = 0;       // file size when walked
    std::vector<damaged_bytes> damage;  // skipped over (kept in the file)
    bool damaged_tail = false;     // the last damage runs to the end of the data
    uint64_t data_end = 0;         // end of the bytes to keep: valid_bytes, or the damaged tail's end
};

class segment {
public:
    static std::shared_ptr<segment> create(const std::string& dir, int64_t base_offset);
    static std::shared_ptr<segment> open(const std::string& dir, int64_t base_offset, bool read_only);
    /// Read-write, creating nothing: errc::not_found if a file is gone (another
    /// handle's retention unlinked the segment after it was listed).
    static std::shared_ptr<segment> open_existing(const std::string& dir, int64_t base_offset);
    /// A sealed segment that ends at next_base, opened read-only (its log and
    /// whichever indexes exist: none is created). How every handle takes up a
    /// segment compaction swapped in (FORMAT.md §2.7).
    static std::shared_ptr<segment> open_sealed(const std::string& dir, int64_t base_offset, int64_t next_base);
    segment(const segment&) = delete;
    segment& operator=(const segment&) = delete;
    ~segment();

    int64_t base_offset() const { return _base_offset; }
    uint64_t size() const { return _size.load(std::memory_order_acquire); }
    int64_t next_offset() const { return _next_offset.load(std::memory_order_acquire); }
    int64_t max_timestamp() const { return _max_timestamp.load(std::memory_order_acquire); }
    int64_t created_ns() const { return _created_ns; }
    const std::string& log_path() const { return _log_path; }
    segment_index& index() { return _index; }
    file_handle& log_file() { return _log; }

    /// Writes one frame (header, alignment padding, payload pieces, tail padding)
    /// with a single pwritev at the current end. The header's payload_offset,
    /// crc and base_offset must be set by the caller.
    void append(const frame_header& header, const struct iovec* payload, int pieces);
    /// The active segment's state for the other read-write handles of the session.
    committed_point cursor(int64_t active_created_ns) const;
    /// Takes over the state another handle committed (it appended to this
    /// segment). Under the partition's append lock, or for reading (the
    /// committed point only grows within a segment).
    void adopt(const committed_point& c);
    /// Another handle sealed this segment (its file is trimmed to its frames):
    /// takes over its end.
    void adopt_sealed(int64_t next_base);
    /// A dead writer's frame at [position, position + length): whether it is
    /// whole (header, CRC and base offset as expected); its header in *out.
    bool frame_whole_at(uint64_t position, uint64_t length, int64_t base_offset, frame_header* out);
    /// The bookkeeping of append() after its write (index entries, ends), for a
    /// whole frame a dead writer wrote at the end.
    void note_appended(const frame_header& header, uint64_t position);
    /// Overwrites [position, position + length) with zeros (a dead writer's torn
    /// frame), within the file.
    void zero_range(uint64_t position, uint64_t length);
    /// Walks frames from `position` (whose frame holds offset `offset`) as
    /// `policy` says: damage below policy.keep_below is skipped (resync) and
    /// reported; the walk stops at the end of the data or at the first damage
    /// at or above it.
    scan_result scan(uint64_t position, int64_t offset, const walk_policy& policy);
    /// A plain walk that stops at the first bad frame.
    scan_result scan(uint64_t position, int64_t offset, uint64_t verify_from, bool rebuild_index) {
        walk_policy policy;
        policy.verify_from = verify_from;
        policy.rebuild_index = rebuild_index;
        return scan(position, offset, policy);
    }
    /// A cheap sanity check of the indexes against the first valid_bytes of the
    /// log: monotone, in range, present when the log is not empty, and the last
    /// entry of each points at a frame header holding the offset it claims.
    bool index_matches_log(uint64_t valid_bytes);
    /// After a scan: adopt its result as the segment's end.
    void set_end(uint64_t valid_bytes, int64_t next_offset, int64_t max_timestamp);
    /// Cuts the file at valid_bytes (dropping a torn tail) and the index with it.
    void truncate_to(uint64_t valid_bytes);
    /// The segment takes no more appends: final time index entry, file trimmed
    /// to its frames (dropping the preallocated tail).
    void seal();
    /// A mapping that covers at least [0, end), remapping if the file grew.
    std::shared_ptr<mapped_region> mapping(uint64_t end);
    /// Readers check a frame's CRC the first time this process reads it; these
    /// remember one contiguous range of byte positions already checked, so a
    /// sequential re-scan costs no CRC work. Thread-safe.
    bool verified(uint64_t position, uint64_t end) const;
    void mark_verified(uint64_t position, uint64_t end);
    void datasync() { _log.datasync(); }
    void remove_files();
    /// True once remove_files() ran in this process (retention): a reader
    /// positioned in it goes back to the partition's start.
    bool removed() const { return _removed.load(std::memory_order_acquire); }
    /// Whether the log's name still leads to the file this object holds (false
    /// once compaction renamed a new log over it; true if the name is gone).
    bool log_is_current() const;
    /// The first frame's flags say it was written by a rewrite (compaction).
    bool compacted() const;
    void close();

private:
    segment(const std::string& dir, int64_t base_offset, bool read_only, bool create = true);
    void ensure_allocated(uint64_t end);

    const int64_t _base_offset;
    const bool _read_only;
    const std::string _log_path;
    const int64_t _created_ns;
    file_handle _log;
    segment_index _index;
    std::atomic<uint64_t> _size{0};
    std::atomic<int64_t> _next_offset;
    std::atomic<int64_t> _max_timestamp{INT64_MIN};
    std::atomic<bool> _removed{false};
    uint64_t _allocated = 0;
    uint32_t _last_frame_position = 0;
    std::mutex _map_mu;
    std::shared_ptr<mapped_region> _mapping;
    mutable std::mutex _verified_mu;
    uint64_t _verified_begin = 0;  // [begin, end): frames whose CRC a reader checked
    uint64_t _verified_end = 0;
};

}  // namespace tidelog
