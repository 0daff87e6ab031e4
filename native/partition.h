#pragma once
// A partition: an ordered list of segments with dense offsets from 0.
//
// Any number of read-write handles, in any processes of the machine, may have
// one partition open at once (log_session.h); they coordinate through the
// partition's `state` file (partition_coordination.h). Each handle keeps its own
// segment objects (descriptors, mappings, in-memory indexes): a cache of the
// shared truth, brought up to date ("adopted") whenever another handle changed it.
//
// Concurrency: append() is thread-safe (threads of one handle queue on the
// partition mutex, then the handles on the shared append lock; the payload CRC
// is computed before either). frames(), start_offset(), end_offset() and
// wait_for_data() may run concurrently with appends from any thread or process;
// they see only published (in "fsync" mode: durable) frames.
// enforce_retention() is thread-safe: passes run one at a time across handles,
// each removing its segments oldest first, every removal durable before the
// next. close() must not race with this handle's appends.
// Compaction (compaction_session.h) rewrites sealed segments under the cleaner
// lock; the swap takes _retention_mu and retention_lock, then _mu to replace the
// segment object. Every handle reopens a swapped segment when the shared swap
// count moves (readers holding the old mapping keep reading the old file).
// Lock order: cleaner_lock → _retention_mu → retention_lock → _mu → append_lock; the log's
// flush lock → _mu; checkpoint_lock is a leaf (nothing is taken while it is held).
#include <sys/uio.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "committer.h"
#include "shared_mutex.h"
#include "recovery_checkpoint.h"
#include "segment.h"
#include "shared_state.h"

namespace tidelog {

enum class durability_mode : uint8_t { none = 0, interval = 1, fsync = 2 };

struct partition_config {
    uint64_t segment_bytes = 256ull << 20;
    int64_t segment_ms = -1;       // roll by age; <0: never
    int64_t retention_bytes = -1;  // <0: unlimited
    int64_t retention_ms = -1;     // <0: unlimited; judged by a segment's max timestamp
    durability_mode durability = durability_mode::fsync;
    int64_t flush_interval_ms = 100;  // "interval" mode
};

struct append_request {
    const struct iovec* pieces = nullptr;
    int piece_count = 0;
    uint32_t record_count = 0;
    int64_t min_timestamp = 0;
    int64_t max_timestamp = 0;
    uint16_t codec = 0;
    uint16_t flags = 0;
    uint32_t schema_id = 0;
    /// Bytes from the payload start to the first Arrow body buffer, which the
    /// frame layout places on a 64-byte boundary; <0 when it does not apply.
    int64_t body_offset = -1;
};

struct append_result {
    int64_t base_offset;
    uint64_t ticket;  // 0 when nothing needs waiting for
    uint32_t crc = 0; // the frame's CRC32C: with base_offset, the frame's identity (frame_key)
};

/// A frame a reader names without reading it: its base offset and the CRC32C
/// of its header. Derived data (zone maps) name frames this way, so that a stale
/// entry (a frame since lost to a power cut, its offsets written again) matches
/// no frame.
struct frame_key {
    int64_t base_offset;
    uint32_t crc;
    bool operator<(const frame_key& o) const {
        return base_offset != o.base_offset ? base_offset < o.base_offset : crc < o.crc;
    }
};

/// Something recovery cut off, found damaged or rebuilt, for the log's recovery report.
struct recovery_event {
    std::string file;
    uint64_t position;
    uint64_t bytes_dropped;       // bytes cut off the file (0 for damage kept in place)
    int64_t first_offset_dropped; // first offset cut, damaged or lost (-1: none)
    std::string reason;
    /// "cut" (a torn tail beyond the durable point), "damaged" (kept in place,
    /// its offsets a gap), "lost" (offsets that were handed out and whose data is
    /// gone: never reused), "index" (an index rebuilt).
    std::string kind = "cut";
    uint64_t bytes_damaged = 0;   // damaged bytes left in place
    int64_t end_offset = -1;      // exclusive end of the damaged or lost offsets
};

/// Offsets whose data a reader cannot have: damaged bytes kept in place, or
/// offsets that were handed out and lost. Reads that cover them raise
/// CorruptionError unless they skip damage.
struct damaged_range {
    std::string segment;  // .log path
    uint64_t position;
    uint64_t bytes;
    int64_t start_offset;
    int64_t end_offset;   // exclusive
    std::string reason;
};

class partition {
public:
    /// notifier (may be null): the log-wide sequence bumped on every publish,
    /// so one reader can sleep on many partitions at once.
    /// The read-write session the handle belongs to (log_session.h).
    struct session_info {
        uint64_t epoch;   // the partition is recovered once per epoch
        bool was_clean;   // the previous session closed cleanly
    };
    /// session: null for a read-only handle.
    partition(committer* c, const std::string& dir, const partition_config& config, const session_info* session,
              shared_state* notifier);
    /// A handle that is a session of its own (a new random epoch: it recovers
    /// the partition), for tools and tests.
    partition(committer* c, const std::string& dir, const partition_config& config, bool read_only,
              bool clean_shutdown, shared_state* notifier = nullptr);
    ~partition();
    partition(const partition&) = delete;
    partition& operator=(const partition&) = delete;

    append_result append(const append_request& request);
    /// Appends several frames with consecutive offsets (one lock, one ticket).
    std::vector<append_result> append(const append_request* requests, size_t count);
    /// Frames holding offsets in [start_offset, end_offset) whose time span meets
    /// [min_timestamp, max_timestamp); at most max_frames of them.
    /// Damage met on the way raises error(corrupt) naming it; with `skipped`
    /// non-null it is skipped instead and appended there.
    /// `excluded` (sorted; may be null): frames the caller does not want, walked
    /// past on their header alone (payload not read, CRC not checked), as frames
    /// outside the time span are; a key that matches no frame excludes nothing.
    std::vector<frame_ref> frames(int64_t start_offset, int64_t end_offset, int64_t min_timestamp,
                                  int64_t max_timestamp, size_t max_frames,
                                  std::vector<damaged_range>* skipped = nullptr,
                                  const std::vector<frame_key>* excluded = nullptr);
    /// Damage known to this process: found by recovery or by reads. Thread-safe.
    std::vector<damaged_range> damaged_ranges();
    /// The first offset whose frame's max timestamp is >= timestamp (end_offset() if none).
    int64_t offset_for_time(int64_t timestamp);
    int64_t start_offset();
    int64_t end_offset();  // visible end
    /// start_offset() and end_offset() as the shared state publishes them: two
    /// atomic loads, no lock, no system call. False when this handle has no
    /// shared state open (a read-only handle before the writer made it): then
    /// ask start_offset() and end_offset(), which may lock and do I/O.
    bool published_offsets(int64_t* start, int64_t* end) const noexcept;
    /// Read-write handles: one past the last offset any handle has written
    /// (every pwritev returned), durable or not: the committed point. Readers
    /// see frames up to end_offset() only; a caller that must know every offset
    /// taken (the event store's version check) waits for end_offset() to reach it.
    int64_t written_end();
    /// written_end() without waiting: -1 when a dead writer's half commit needs
    /// the append lock's repair first (then call written_end()).
    int64_t written_end_nowait();
    uint64_t size_bytes();
    size_t segment_count();
    /// Blocks until end_offset() > known_end or timeout (ns, <0 forever). GIL-free.
    bool wait_for_data(int64_t known_end, int64_t timeout_ns);

    /// Called by the committer's flusher once point is durable: records it (and
    /// in "fsync" mode publishes up to it). No file work: the checkpoint that
    /// stores it is the housekeeper's (write_checkpoint).
    void on_durable(const recovery_point& point);
    /// The flusher's plan for a pending point, under the log's flush lock: true
    /// when another handle's flush already made it durable; otherwise the point
    /// to flush to (what every handle committed, when it lies in a segment this
    /// handle knows) and the segments to fdatasync to get there (from the
    /// durable point on).
    bool plan_flush(const recovery_point& pending, recovery_point* target,
                    std::vector<std::shared_ptr<segment>>* to_sync);
    /// Whether every handle's flushes made `point` durable already (lock-free).
    bool durable_covers(const recovery_point& point) const;
    /// Takes the shared durable point as this handle's (for its checkpoints), lock-free.
    void adopt_durable();
    /// A deleted topic's partition refuses appends from every handle.
    void mark_deleted();
    /// Stores the durable point as the recovery checkpoint, after syncing the
    /// indexes below it; false if it has not moved. One caller at a time (the
    /// housekeeper, or close() once the housekeeper let go of the partition).
    bool write_checkpoint();
    /// Whether this writer has a retention limit (enforce_retention may delete).
    bool has_retention() const {
        return !_read_only && (_retention_bytes.load(std::memory_order_relaxed) >= 0 ||
                               _retention_ms.load(std::memory_order_relaxed) >= 0);
    }
    /// Changes the retention limits (<0: none) for the next passes (a topic's
    /// configuration was altered). Thread-safe.
    void set_retention(int64_t retention_bytes, int64_t retention_ms) {
        _retention_bytes.store(retention_bytes, std::memory_order_relaxed);
        _retention_ms.store(retention_ms, std::memory_order_relaxed);
    }
    /// Deletes the oldest segments past the retention limits, oldest first, the
    /// folder fsynced after each; concurrent calls wait for the pass in progress.
    void enforce_retention();
    void flush();
    /// Clean close: trims the active segment, syncs everything, writes the checkpoint.
    void close();
    /// Removes every file of the partition (after close).
    void remove_files();
    /// What recovery found at open, and repairs of dead writers' leftovers since. Thread-safe.
    std::vector<recovery_event> recovery_events();
    const std::string& dir() const { return _dir; }
    bool read_only() const { return _read_only; }
    /// The segment whose offsets include `offset` (the last one starting at or
    /// before it), null if none; *next_base (if given) gets the next segment's
    /// base, INT64_MAX when it is the last. For partition_reader, after a frames() call.
    std::shared_ptr<segment> segment_holding(int64_t offset, int64_t* next_base = nullptr);

    // --- Compaction (compaction_session.h; FORMAT.md §2.7): read-write handles,
    // the cleaner lock held by the caller. ---
    struct compaction_segment_info {
        int64_t base_offset;
        int64_t end_offset;     // the next segment's base; the active one: its next offset
        uint64_t bytes;
        int64_t max_timestamp;
        bool cleanable;         // sealed and wholly below the recovery checkpoint's segment
        bool compacted;         // its frames were written by a rewrite
    };
    std::vector<compaction_segment_info> compaction_segments();
    /// Removes every *.cleaned file and rebuilds missing or broken indexes of
    /// sealed segments (what a dead cleaner may leave).
    void recover_compaction_leftovers();
    /// Steps 2-4 of the swap for a finished rewrite (under the retention
    /// locks); false, with the rewrite's files removed, if retention deleted
    /// the segment meanwhile. *bytes_before: the old segment's size.
    bool swap_in(class segment_rewriter& w, uint64_t* bytes_before);
    /// The cleaner lock's bytes in the coordination block.
    void* cleaner_lock_memory();

private:
    /// Holds the shared append lock (after the partition mutex): repairs what a
    /// dead holder left, refuses a deleted partition, adopts other handles' changes.
    class append_guard {
    public:
        explicit append_guard(partition& p);

    private:
        shared_mutex_guard _lock;
    };
    /// Holds the checkpoint lock; after a dead holder, numbering goes on from
    /// the file's newest valid slot.
    shared_mutex_guard checkpoint_guard();
    /// Stores `point` as the recovery checkpoint if it lies past the stored one
    /// (checkpoint lock held); false if it does not.
    bool store_checkpoint_locked(const recovery_point& point);
    void open_writer();
    void initialize_shared(bool clean_shutdown);
    void join_shared();
    /// Brings the local segment list and the active segment up to `c` (_mu held).
    void adopt_view_locked(const committed_point& c, bool relist);
    /// Adopts the shared view if another handle changed it since (_mu held, no append lock).
    void catch_up_locked();
    /// The same with the append lock held (the committed point cannot be mid-write).
    void catch_up_under_append_lock();
    /// Publishes the active segment's state as the committed point (append lock held).
    void commit_locked();
    void repair_append_locked();
    void finish_retention_locked();
    void open_reader();
    bool refresh_segments_locked();
    /// After a compaction swap (the shared swap count moved): reopens every
    /// segment whose log name now leads to another file (_mu held).
    void revalidate_swapped_locked();
    void roll_locked();
    void publish_locked(int64_t visible_end);
    std::vector<std::shared_ptr<segment>> snapshot(int64_t* visible_end);
    /// Validates segments from first_segment on; returns the last segment's
    /// damaged tail, if it has one (the caller decides where its offsets end).
    std::optional<damaged_bytes> recover(size_t first_segment, uint64_t trusted_end, bool clean_shutdown,
                                         int64_t keep_below, const std::optional<recovery_point>& checkpoint);
    void check_sealed_segment(size_t i, bool report_damage);
    void start_new_segment_at(int64_t base);
    void note_damage(const damaged_range& d);
    void report_damage(const segment& s, const damaged_bytes& d, int64_t end_offset);
    /// One damaged spot met by a read: its offsets and where reading resumes.
    /// The offsets never reach past segment_end_offset (the next segment's base):
    /// the next segment's frames are judged by its own walk.
    damaged_range locate_damage(segment& s, const std::shared_ptr<mapped_region>& region, uint64_t pos,
                                int64_t offset, frame_check why, int64_t segment_end_offset, int64_t visible,
                                uint64_t* resume_position, int64_t* resume_offset);

    committer* _committer;
    const std::string _dir;
    const partition_config _config;
    std::atomic<int64_t> _retention_bytes, _retention_ms;  // _config's, changed by set_retention()
    const bool _read_only;
    std::mutex _mu;  // appends, segment list changes
    std::mutex _retention_mu;  // one enforce_retention pass at a time in this handle; taken before _mu
    std::vector<std::shared_ptr<segment>> _segments;
    std::mutex _durable_mu;
    recovery_point _durable{0, 0, 0};
    recovery_point _checkpointed{-1, 0, -1};
    recovery_checkpoint _checkpoint;
    shared_state _shared;
    shared_state* _notifier;
    std::vector<recovery_event> _events;
    std::mutex _damage_mu;  // _damage, and _events after the open
    std::vector<damaged_range> _damage;
    bool _closed = false;
    uint64_t _sealed_bytes = 0;       // bytes of every segment but the active one
    int64_t _listed_at_start = -1;
    // Read-write handles: the session, the shared coordination block and its locks.
    session_info _session{0, true};
    partition_coordination* _coord = nullptr;
    std::optional<shared_mutex> _append_lock, _retention_lock, _checkpoint_lock;
    uint64_t _seen_commit_seq = UINT64_MAX;  // the coordination's commit_seq this view matches (_mu)
    uint64_t _seen_generation = UINT64_MAX;
    uint32_t _seen_swaps = UINT32_MAX;       // the shared swap count this view matches (_mu); MAX: check
    int64_t _active_created_ns = 0;          // CLOCK_REALTIME, the active segment's (segment_ms)
};

}  // namespace tidelog
