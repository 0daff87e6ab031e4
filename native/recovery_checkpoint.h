#pragma once
// The per-partition recovery checkpoint: the last point known durable (segment,
// position, next offset), so that recovery after a crash only validates what
// came after it. Two 64-byte slots written alternately, each with its own
// CRC32C and a sequence number; a torn slot is ignored and the other one used.
// Concurrency: one writer at a time (the partition's checkpoint lock, across
// the handles of a session).
#include <cstdint>
#include <optional>
#include <string>

#include "file_handle.h"

namespace tidelog {

struct recovery_point {
    int64_t segment_base;
    uint64_t position;
    int64_t next_offset;
};

class recovery_checkpoint {
public:
    recovery_checkpoint(const std::string& path, bool read_only);
    /// The file did not exist before this open created it: its folder must be
    /// fsynced before a checkpoint in it counts.
    bool created() const { return _created; }
    std::optional<recovery_point> load() const;
    /// Writes and fdatasyncs the next slot.
    void store(const recovery_point& point);
    /// The same, numbered `sequence` (the read-write handles of a session share
    /// one numbering: partition_coordination.h); it picks the slot.
    void store(const recovery_point& point, uint64_t sequence);
    /// The newest valid slot's sequence (0: none).
    uint64_t sequence() const { return _sequence; }
    /// Reads the file again for the newest valid slot's sequence (after a
    /// writer died mid-store), and returns it.
    uint64_t reload_sequence();
    void close() { _file.close(); }

private:
    file_handle _file;
    uint64_t _sequence = 0;
    bool _created = false;
};

}  // namespace tidelog
