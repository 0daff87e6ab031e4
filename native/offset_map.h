#pragma once
// The log cleaner's dedupe map (Kafka's SkimpyOffsetMap): key hash -> the
// latest offset seen for it, in a fixed budget of memory. A pass of the
// cleaner fills it from the dirty part of a partition until it is full, then
// rewrites the segments below that point against it; a key set larger than the
// budget takes several passes (python/tidelog/compaction/_cleaner.py).
//
// Open addressing with linear probing over 24-byte slots (128-bit hash,
// offset); the slot index is the hash's low word scaled to the slot count
// (multiply-shift), so any budget is usable, not only powers of two. The map
// is "full" at max_load of its slots (probe chains stay short below it).
//
// The table starts small and doubles (rehashing) up to the budget, so a pass
// over few keys neither fills 64 MiB nor probes a table far larger than its
// keys (cache misses): the budget bounds memory, the keys decide it.
//
// Concurrency: none; one cleaner thread owns a map.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "key_hash.h"

namespace tidelog {

class offset_map {
public:
    static constexpr size_t slot_bytes = 24;
    /// budget_bytes: the memory the slots may take (at least one slot);
    /// max_load in (0, 1]: the fraction of slots that may be used.
    explicit offset_map(uint64_t budget_bytes, double max_load = 0.8,
                        uint64_t initial_slots = uint64_t{1} << 16);
    offset_map(const offset_map&) = delete;
    offset_map& operator=(const offset_map&) = delete;

    uint64_t slots() const { return _slots; }                // now (grows up to max_slots())
    uint64_t max_slots() const { return _max_slots; }        // the budget's
    uint64_t capacity() const { return _max_capacity; }      // keys it holds, at most, before full()
    uint64_t size() const { return _size; }
    bool full() const { return _size >= _max_capacity; }
    uint64_t memory_bytes() const { return _slots * slot_bytes; }

    /// Records `offset` as the latest for `key` (the larger one wins when the
    /// key is there); false, changing nothing, when a new key finds the map full.
    bool put(const key_hash& key, int64_t offset);
    /// Empties the map; the table shrinks back to its initial size.
    /// The latest offset recorded for `key`, or -1.
    int64_t latest(const key_hash& key) const;
    /// put() for keys[0..n) in order, skipping rows whose skip[i] is non-zero
    /// (skip may be null); stops before the first key that does not fit.
    /// Returns the rows consumed (n when all fit).
    size_t put_many(const key_hash* keys, const int64_t* offsets, const uint8_t* skip, size_t n);
    void latest_many(const key_hash* keys, size_t n, int64_t* out) const;
    void clear();
    /// The same as clear(), but keeps the current table (no reallocation).
    void reset();

private:
    struct slot {
        uint64_t lo;
        uint64_t hi;
        int64_t offset;  // -1: empty
    };
    static_assert(sizeof(slot) == slot_bytes, "offset_map slot layout");
    uint64_t home(const key_hash& k) const {
        return static_cast<uint64_t>((static_cast<unsigned __int128>(k.lo) * _slots) >> 64);
    }
    void allocate(uint64_t slots);
    void grow();
    uint64_t capacity_of(uint64_t slots) const;

    double _max_load;
    uint64_t _max_slots;
    uint64_t _max_capacity;
    uint64_t _initial_slots;
    uint64_t _slots = 0;
    uint64_t _capacity = 0;  // of the current table
    uint64_t _size = 0;
    std::unique_ptr<slot[]> _table;
};

}  // namespace tidelog
