#pragma once
// Writes the new version of one sealed segment for compaction: its frames to
// <base>.log.cleaned and its indexes to <base>.index.cleaned and
// <base>.timeindex.cleaned (step 1 of the swap, FORMAT.md §2.7). Every frame
// it writes is sparse (FORMAT.md §2.6); the frames must tile the segment's
// offsets [base_offset, end_offset) exactly, which append() and finish()
// check (errc::invalid_argument, nothing swapped). The swap itself is the
// partition's (compaction_session.h).
//
// Concurrency: one thread at a time (the compaction session's). The files it
// writes are the cleaner's alone: no reader opens a *.cleaned name.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "file_handle.h"
#include "segment_index.h"

namespace tidelog {

/// One frame of a rewritten segment (the Arrow part as pieces; the writer adds
/// the offset block and FLAG_SPARSE).
struct rewrite_frame {
    int64_t base_offset = 0;
    int64_t span = 0;              // offsets the frame covers (>= 1)
    uint32_t record_count = 0;     // rows of the Arrow part (1..span)
    const uint32_t* offset_deltas = nullptr;  // record_count of them
    int64_t delete_horizon_ns = 0;
    int64_t min_timestamp = 0;
    int64_t max_timestamp = 0;
    uint16_t codec = 0;
    uint16_t flags = 0;            // bit 0 (IPC stream) as for a dense frame
    uint32_t schema_id = 0;
    const struct iovec* pieces = nullptr;
    int piece_count = 0;
    /// Bytes from the Arrow part's start to its first body buffer (<0: none),
    /// placed on a 64-byte file position as appends do.
    int64_t body_offset = -1;
};

class segment_rewriter {
public:
    /// Creates (truncating leftovers) the three .cleaned files of the segment
    /// [base_offset, end_offset) in dir.
    segment_rewriter(const std::string& dir, int64_t base_offset, int64_t end_offset);
    ~segment_rewriter();
    segment_rewriter(const segment_rewriter&) = delete;
    segment_rewriter& operator=(const segment_rewriter&) = delete;

    void append(const rewrite_frame& f);
    /// An empty sparse frame: `span` offsets, no record, its payload the 8-byte block.
    void append_empty(int64_t base_offset, int64_t span, int64_t timestamp);
    /// Step 1 of the swap: the tiling is complete; seals the time index,
    /// fdatasyncs the three files and fsyncs the folder.
    void finish();
    /// Removes the .cleaned files (idempotent).
    void abort();

    int64_t base_offset() const { return _base; }
    int64_t end_offset() const { return _end; }
    int64_t next_offset() const { return _next; }
    uint64_t bytes() const { return _position; }
    bool finished() const { return _finished; }
    const std::string& log_path() const { return _log_path; }

    /// The names of the swap (FORMAT.md §2.7).
    static std::string cleaned_suffix() { return ".cleaned"; }

private:
    void write(const struct frame_header& h, const struct iovec* pieces, int count);
    void check_open() const;

    const std::string _dir;
    const int64_t _base, _end;
    const std::string _log_path;
    file_handle _log;
    std::unique_ptr<segment_index> _index;
    int64_t _next;
    uint64_t _position = 0;
    uint64_t _last_frame_position = 0;
    int64_t _last_frame_base = -1;
    int64_t _max_timestamp = INT64_MIN;
    bool _finished = false;
    bool _aborted = false;
};

/// Writes the indexes of a whole sealed log (a header walk of `data[0, bytes)`,
/// whose frames hold [base_offset, ...)) under the given suffix; synced.
/// Returns false (and writes what it walked) if the walk met damage.
bool write_indexes_for_log(const std::string& dir, int64_t base_offset, const uint8_t* data, uint64_t bytes,
                           const std::string& suffix);

}  // namespace tidelog
