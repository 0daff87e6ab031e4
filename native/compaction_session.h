#pragma once
// One compaction pass over a partition (the cleaner's, FORMAT.md §2.7): holds
// the partition's cross-process cleaner lock from open to release, recovers
// what a dead cleaner left (removes every *.cleaned file, rebuilds missing or
// broken indexes of sealed segments), lists the segments and rewrites
// cleanable ones, one at a time, each through a segment_rewriter and the
// crash-safe swap (partition::swap_in).
//
// Concurrency: appends, reads, checkpoints and retention go on during a pass;
// the swap takes the retention locks for its renames only (a few folder
// fsyncs), and never brings back a segment retention deleted. The cleaner
// lock belongs to the THREAD that opened the session (a robust pthread mutex):
// release() and the destructor must run on that thread. Lock order:
// cleaner_lock → partition::_retention_mu → retention_lock → _mu → append_lock.
#include <cstdint>
#include <memory>
#include <vector>

#include "partition.h"
#include "segment_rewriter.h"
#include "shared_mutex.h"

namespace tidelog {

class compaction_session {
public:
    /// Takes the cleaner lock of p (a read-write handle). wait=false: returns
    /// null when another cleaner (any process) holds it. While waiting,
    /// `interrupted` (may be null) is called about every 50 ms; when it returns
    /// true the wait ends with error(errc::interrupted).
    static std::unique_ptr<compaction_session> open(partition& p, bool wait, bool (*interrupted)(void*) = nullptr,
                                                    void* interrupted_arg = nullptr);
    ~compaction_session();
    compaction_session(const compaction_session&) = delete;
    compaction_session& operator=(const compaction_session&) = delete;

    /// The partition's segments in offset order (compaction_segment_info).
    std::vector<partition::compaction_segment_info> segments();
    /// Starts the rewrite of the cleanable segment at base_offset (one at a
    /// time: an unfinished earlier one is aborted). errc::invalid_argument if
    /// there is no such cleanable segment.
    std::shared_ptr<segment_rewriter> rewrite(int64_t base_offset);
    struct swap_stats {
        uint64_t bytes_before = 0;
        uint64_t bytes_after = 0;
        bool swapped = false;  // false: retention deleted the segment meanwhile (nothing swapped)
    };
    /// Finishes w (tiling checked, files synced) and swaps it in.
    swap_stats commit(segment_rewriter& w);
    /// Aborts the rewrite in progress (if any) and releases the cleaner lock. Idempotent.
    void release();
    bool held() const { return _held; }

private:
    explicit compaction_session(partition& p);

    partition& _p;
    shared_mutex _lock;
    bool _held = false;
    std::shared_ptr<segment_rewriter> _current;
};

}  // namespace tidelog
