#include "offset_map.h"

#include <algorithm>

#include "errors.h"

namespace tidelog {

offset_map::offset_map(uint64_t budget_bytes, double max_load, uint64_t initial_slots) : _max_load(max_load) {
    if (budget_bytes < slot_bytes) throw error(errc::invalid_argument, "offset map: the budget is below one slot");
    if (!(max_load > 0.0 && max_load <= 1.0)) throw error(errc::invalid_argument, "offset map: max_load must be in (0, 1]");
    _max_slots = budget_bytes / slot_bytes;
    _max_capacity = capacity_of(_max_slots);
    if (_max_capacity == 0) throw error(errc::invalid_argument, "offset map: the budget holds no key");
    _initial_slots = std::max<uint64_t>(2, std::min(initial_slots, _max_slots));
    allocate(_initial_slots);
}

uint64_t offset_map::capacity_of(uint64_t slots) const {
    // One slot always stays empty, so a probe for a missing key ends.
    return std::min<uint64_t>(slots - 1, static_cast<uint64_t>(static_cast<double>(slots) * _max_load));
}

void offset_map::allocate(uint64_t slots) {
    _table.reset(new slot[slots]);
    _slots = slots;
    _capacity = capacity_of(slots);
    std::fill(_table.get(), _table.get() + _slots, slot{0, 0, -1});
    _size = 0;
}

void offset_map::grow() {
    std::unique_ptr<slot[]> old = std::move(_table);
    uint64_t old_slots = _slots;
    allocate(std::min(_max_slots, old_slots * 2));
    for (uint64_t i = 0; i < old_slots; ++i)
        if (old[i].offset >= 0) put(key_hash{old[i].lo, old[i].hi}, old[i].offset);
}

void offset_map::clear() {
    if (_slots != _initial_slots) {
        allocate(_initial_slots);
    } else {
        reset();
    }
}

void offset_map::reset() {
    std::fill(_table.get(), _table.get() + _slots, slot{0, 0, -1});
    _size = 0;
}

bool offset_map::put(const key_hash& key, int64_t offset) {
    uint64_t i = home(key);
    for (;;) {
        slot& s = _table[i];
        if (s.offset < 0) {
            if (_size >= _capacity) {
                if (_slots >= _max_slots || _size >= _max_capacity) return false;
                grow();
                return put(key, offset);
            }
            s = slot{key.lo, key.hi, offset};
            ++_size;
            return true;
        }
        if (s.lo == key.lo && s.hi == key.hi) {
            if (offset > s.offset) s.offset = offset;
            return true;
        }
        if (++i == _slots) i = 0;
    }
}

int64_t offset_map::latest(const key_hash& key) const {
    uint64_t i = home(key);
    for (;;) {
        const slot& s = _table[i];
        if (s.offset < 0) return -1;
        if (s.lo == key.lo && s.hi == key.hi) return s.offset;
        if (++i == _slots) i = 0;
    }
}

size_t offset_map::put_many(const key_hash* keys, const int64_t* offsets, const uint8_t* skip, size_t n) {
    for (size_t r = 0; r < n; ++r) {
        if (skip && skip[r]) continue;
        if (!put(keys[r], offsets[r])) return r;
    }
    return n;
}

void offset_map::latest_many(const key_hash* keys, size_t n, int64_t* out) const {
    for (size_t r = 0; r < n; ++r) out[r] = latest(keys[r]);
}

}  // namespace tidelog
