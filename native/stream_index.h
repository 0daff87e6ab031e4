#pragma once
// The event store's stream index (docs/FORMAT.md §14): stream id -> the global
// positions (log offsets) of its events in version order, and per event a
// 64-bit hash of its event id, so that an idempotent retry finds its earlier
// append without reading the log. Reading one stream costs its own events,
// never a scan: the same for a store of 1,000 events as of 10 M.
//
// Derived data. Each process builds it from the store's topic and keeps it in
// memory; a snapshot file (save/parse) spares an open the replay of everything
// before the snapshot's `through` position. A snapshot is trusted only when its
// store identity matches and its `through` is not past the log's durable end
// (the caller checks; anything else is rebuilt from the log).
//
// Concurrency contract: not thread-safe. The event store serializes every
// call on one index (its index mutex); parse() and save() touch only their
// arguments and this object.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tidelog {

struct stream_entry {
    std::vector<int64_t> positions;   // version v is positions[v]; -1: lost (damaged bytes)
    std::vector<uint64_t> id_hashes;  // parallel to positions
    int64_t truncate_before = 0;      // versions below were soft-deleted
    bool tombstoned = false;          // hard-deleted: no more appends
};

class stream_index {
public:
    static constexpr uint32_t snapshot_magic = 0x49534C54u;  // "TLSI"
    static constexpr uint32_t snapshot_version = 1;
    static constexpr size_t snapshot_header_bytes = 48;

    /// Records the event at `position` as version `version` of `stream`.
    /// Versions missing below it (rows lost to damage) get position -1, so
    /// that versions stay aligned and are never handed out again; a version
    /// already recorded is ignored (the first row keeps it). Positions must
    /// grow: errc::invalid_argument for one below through().
    void add(std::string_view stream, int64_t position, uint64_t id_hash, int64_t version);
    /// Soft delete: versions below truncate_before are hidden from reads.
    void soft_delete(std::string_view stream, int64_t truncate_before, int64_t position);
    /// Hard delete (tombstone).
    void tombstone(std::string_view stream, int64_t position);
    /// Positions up to `position` (exclusive) are indexed (markers and rows of
    /// other kinds included): where the next catch-up starts.
    void advance(int64_t position);

    const stream_entry* find(std::string_view stream) const;
    /// The last version, whether hidden or not; -1 for an unknown stream.
    int64_t last_version(std::string_view stream) const;
    int64_t through() const { return _through; }
    uint64_t event_count() const { return _events; }
    size_t stream_count() const { return _streams.size(); }
    /// visit(stream_id, entry) for every stream (unordered).
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (const auto& [id, entry] : _streams) visit(id, entry);
    }
    /// The streams whose id starts with prefix and that hold events not
    /// deleted, sorted; system streams (ids starting with '$') only when asked.
    std::vector<std::string> live_streams(std::string_view prefix, bool include_system) const;
    /// First version v >= from with id_hashes[v] == id_hash, or -1.
    int64_t find_event(std::string_view stream, uint64_t id_hash, int64_t from) const;

    /// The snapshot's bytes: a 48-byte header (magic, version, identity,
    /// through, stream count, event count, CRC32C of every other byte,
    /// reserved), then each stream. FORMAT.md §14.
    std::string serialize(uint64_t identity) const;
    /// Replaces this index by a serialized one. False (and this index left
    /// empty) when the bytes are not a whole, intact snapshot of `identity`.
    bool parse(const uint8_t* data, size_t size, uint64_t identity);
    /// Writes serialize() to `path` through a temporary file and a rename (not
    /// fsynced: derived data, checked by its CRC when loaded).
    void save(const std::string& path, uint64_t identity) const;
    /// parse() of the file at `path`; false when missing or invalid.
    bool load(const std::string& path, uint64_t identity);
    void clear();

private:
    stream_entry& entry_for(std::string_view stream);
    std::unordered_map<std::string, stream_entry> _streams;
    int64_t _through = 0;
    uint64_t _events = 0;
};

}  // namespace tidelog
