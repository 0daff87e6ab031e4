#pragma once
// The sparse offset and time indexes of one segment: derived data, never
// checksummed, rebuilt from the log whenever in doubt (Kafka does the same).
//
//   <base>.index      entries {u32 relative_offset, u32 position}            8 bytes
//   <base>.timeindex  entries {i64 max_timestamp_so_far, u32 relative_offset,
//                              u32 position}                                 16 bytes
//
// Concurrency: add/truncate/sync are called by the single appender of the
// partition (under its mutex); lookups may run concurrently from any thread.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "file_handle.h"

namespace tidelog {

struct offset_index_entry {
    uint32_t relative_offset;
    uint32_t position;
};
struct time_index_entry {
    int64_t timestamp;
    uint32_t relative_offset;
    uint32_t position;
};
static_assert(sizeof(offset_index_entry) == 8 && sizeof(time_index_entry) == 16, "index entry sizes");

/// Where the index of an active segment stands, shared between the
/// read-write handles of a session (partition_coordination.h).
struct index_cursor {
    uint32_t offset_entries = 0;
    uint32_t time_entries = 0;
    uint64_t bytes_since_entry = 0;
    int64_t max_timestamp = INT64_MIN;
};

class segment_index {
public:
    /// create: a read-write index creates missing files (false: errc::not_found).
    /// suffix: after ".index" / ".timeindex" (a rewrite's ".cleaned" files).
    segment_index(const std::string& base_path, bool read_only, bool create = true, const std::string& suffix = "");
    segment_index(const segment_index&) = delete;
    segment_index& operator=(const segment_index&) = delete;

    /// Called for every appended frame; writes an entry each index_interval_bytes.
    void on_frame(uint32_t relative_offset, uint32_t position, uint32_t frame_length, int64_t max_timestamp);
    /// A walk skipped damaged bytes at `position`: the next intact frame gets an
    /// entry (so readers jump past the damage), and damage at the segment start
    /// gets the first entry {0, 0} that every index begins with.
    void on_damage(uint32_t position);
    /// The last indexed frame at or before relative_offset ({0, 0} if none).
    offset_index_entry entry_for_offset(uint32_t relative_offset) const;
    /// A frame from which walking finds the first frame whose max timestamp >= ts.
    offset_index_entry entry_for_time(int64_t timestamp) const;
    /// The same entry with the running max timestamp it claims for its frame
    /// ({INT64_MIN, 0, 0}: start at the segment's first frame). A reader checks the
    /// claim against the frame's header: a damaged entry must not skip frames.
    time_index_entry time_entry_for(int64_t timestamp) const;
    /// Called when the segment stops taking appends: records the segment's true
    /// max timestamp, so that time retention and time lookups see all of it.
    void seal(uint32_t last_relative_offset, uint32_t last_position, int64_t max_timestamp);
    /// The last entries ({0, 0} / {INT64_MIN, 0, 0} when empty) and entry counts.
    offset_index_entry last_offset_entry() const;
    /// The offset entry before the last ({0, 0} if there are fewer than two).
    offset_index_entry second_last_offset_entry() const;
    time_index_entry last_time_entry() const;
    size_t offset_entries() const;
    size_t time_entries() const;
    /// The largest timestamp indexed so far (INT64_MIN if none).
    int64_t max_timestamp() const;
    /// The last indexed frame position (0 if none).
    uint32_t last_position() const;
    /// After a walk of the frames behind the last entry: how far they reach, so the
    /// next entry lands index_interval_bytes after the previous one.
    void resume(uint64_t bytes_since_entry, int64_t max_timestamp);
    /// Raises the running max timestamp (what the frames before a re-scan reached).
    void raise_max_timestamp(int64_t max_timestamp);
    /// Drops entries at or after position, in memory and on disk.
    void truncate_from(uint32_t position);
    /// Drops everything; the caller re-adds entries by rescanning the log.
    void reset();
    /// Re-reads entries another process appended (read-only handles).
    void refresh();
    /// Re-reads every entry another handle appended, now (a segment another
    /// handle sealed).
    void refresh_now();
    index_cursor cursor() const;
    /// Takes over the cursor another handle left: entries past it are dropped
    /// (in memory), missing ones read from the files. Entries below a cursor
    /// another handle committed never change, so this is exact.
    void adopt(const index_cursor& c);
    /// Cuts the files at the cursor (entries a dead writer left past it).
    void truncate_files_to(const index_cursor& c);
    /// False if a file's size is not a whole number of entries (a torn write).
    bool files_whole() const;
    /// False if entries are not monotone or point at or past valid_bytes.
    bool consistent_with(uint64_t valid_bytes) const;
    void sync();
    const std::string& offset_path() const { return _offset_path; }
    const std::string& time_path() const { return _time_path; }
    void remove_files();
    void close();

private:
    void load();

    std::string _offset_path, _time_path;
    bool _read_only;
    mutable std::mutex _mu;
    file_handle _offset_file, _time_file;
    std::vector<offset_index_entry> _offsets;
    std::vector<time_index_entry> _times;
    uint64_t _bytes_since_entry = 0;
    // Entries stop at the first one out of order (a damaged file): the rest of
    // that file is ignored from then on, and the writer's open check fails.
    bool _offsets_broken = false;
    bool _times_broken = false;
    static constexpr std::chrono::milliseconds refresh_interval{5};
    std::chrono::steady_clock::time_point _last_refresh{};
    int64_t _max_timestamp;
};

}  // namespace tidelog
