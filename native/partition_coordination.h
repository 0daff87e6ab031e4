#pragma once
// The part of a partition's `state` file (FORMAT.md §7) that coordinates the
// read-write handles of one session, in any processes: bytes 128..1023 of the
// 4096-byte file (bytes 0..71 stay the readers' view, shared_state.h). Never
// fsynced; initialized by the session's first handle to open the partition
// (partition.cpp: init under an OFD lock on the file's byte 0) and trusted
// only while its epoch equals the session's.
//
// Locks (robust, process-shared: shared_mutex.h), and what each protects:
//   append_lock     appends, rolls, the segment list, index files, the
//                   committed point, the append intent, start_offset
//   retention_lock  one retention pass at a time, its intent
//   checkpoint_lock the recovery-checkpoint file and the checkpointed point
//   cleaner_lock    one compaction at a time (held for a whole pass; a
//                   sealed segment's files change only under it)
// and the log-wide flush lock (log_session.h) protects the durable point.
// Lock order: cleaner_lock → retention_lock → partition::_mu → append_lock; the log's flush
// lock may be held when taking _mu (and so append_lock), never the other way
// round; checkpoint_lock is a leaf (nothing is taken while it is held).
#include <cstddef>
#include <cstdint>

#include "seqlock.h"

namespace tidelog {

/// Where the appends of a partition stand: everything before it is written
/// (every pwritev returned), in offset order. Only append_lock's holder writes it.
struct committed_point {
    int64_t segment_base;      // the active segment
    uint64_t position;         // its bytes of frames
    int64_t next_offset;
    int64_t max_timestamp;     // of the active segment's frames (INT64_MIN: none)
    uint64_t allocated;        // bytes preallocated in the active segment's file
    uint32_t offset_entries;   // the active segment's index cursor: entries written
    uint32_t time_entries;
    uint64_t bytes_since_entry;
    int64_t index_max_timestamp;
    uint32_t last_frame_position;
    uint32_t reserved;
    int64_t active_created_ns; // CLOCK_REALTIME when the active segment was created (segment_ms)
};

/// A durable point: everything before it is on disk. Written under the log's flush lock.
struct durable_point {
    int64_t segment_base;
    uint64_t position;
    int64_t next_offset;
};

/// What append_lock's holder is in the middle of, so that the next holder can
/// finish or undo it if the holder dies (partition::repair_append_locked).
struct append_intent {
    static constexpr uint32_t idle = 0, frame = 1, roll = 2;
    uint32_t kind;
    int32_t pid;
    committed_point before;    // the committed point when the step began
    int64_t segment_base;      // frame: where it is written; roll: the sealed segment
    uint64_t position;
    uint64_t length;
    int64_t base_offset;
    int64_t next_offset;       // frame: after it; roll: the new segment's base
};

struct partition_coordination {
    uint64_t epoch;            // 128: the session that initialized this partition
    uint32_t init_state;       // 136: 2 = ready (stored last)
    uint32_t flags;            // 140: bit 0 deleted
    uint64_t generation;       // 144: +1 on every change of the segment list
    uint64_t commit_seq;       // 152: +1 on every change of the committed point or the list
    int32_t handles;           // 160: read-write handles of this session with the partition open
    uint32_t reserved0;
    uint64_t reserved1[3];
    alignas(64) uint8_t append_lock[64];       // 192
    alignas(64) uint8_t retention_lock[64];    // 256
    alignas(64) uint8_t checkpoint_lock[64];   // 320
    alignas(64) seqlocked<committed_point> committed;  // 384
    alignas(64) seqlocked<durable_point> durable;      // 512
    alignas(64) durable_point checkpointed;            // 576 (checkpoint_lock)
    uint64_t checkpoint_sequence;                      // slot sequence of the checkpoint file
    alignas(64) append_intent intent;                  // 640
    alignas(64) uint32_t retention_phase;              // 768: 1 = unlinking segments below retention_start
    uint32_t reserved2;
    int64_t retention_start;
    alignas(64) uint8_t cleaner_lock[64];              // 832: one compaction at a time (compaction_session.h)
};

static constexpr uint32_t partition_flag_deleted = 1;
static constexpr uint64_t partition_coordination_position = 128;
static_assert(sizeof(partition_coordination) <= 1024 - 128, "partition coordination layout");
// The positions FORMAT.md §7.2 gives (in the file: + 128).
static_assert(offsetof(partition_coordination, append_lock) + 128 == 192 &&
                  offsetof(partition_coordination, committed) + 128 == 384 &&
                  offsetof(partition_coordination, durable) + 128 == 512 &&
                  offsetof(partition_coordination, intent) + 128 == 640 &&
                  offsetof(partition_coordination, retention_phase) + 128 == 768 &&
                  offsetof(partition_coordination, cleaner_lock) + 128 == 832,
              "partition coordination positions (FORMAT.md §7.2)");

}  // namespace tidelog
