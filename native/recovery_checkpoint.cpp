#include "recovery_checkpoint.h"

#include <fcntl.h>

#include <cstring>

#include "crc32c.h"
#include "errors.h"

namespace tidelog {

namespace {
constexpr uint32_t checkpoint_magic = 0x50434C54u;  // "TLCP"
constexpr uint64_t slot_bytes = 64;

struct slot {
    uint32_t magic;
    uint32_t crc;  // over bytes [8, 64)
    uint64_t sequence;
    int64_t segment_base;
    uint64_t position;
    int64_t next_offset;
    uint8_t reserved[24];
};
static_assert(sizeof(slot) == slot_bytes, "checkpoint slot");

uint32_t slot_crc(const slot& s) { return crc32c(reinterpret_cast<const uint8_t*>(&s) + 8, slot_bytes - 8); }
}  // namespace

recovery_checkpoint::recovery_checkpoint(const std::string& path, bool read_only) {
    if (read_only) return;
    _created = !path_exists(path);
    _file = file_handle::open(path, O_RDWR | O_CREAT);
    slot s[2] = {};
    _file.pread_some(s, sizeof s, 0);
    for (const slot& c : s)  // only a valid slot's sequence counts: never overwrite the newest good one
        if (c.magic == checkpoint_magic && slot_crc(c) == c.crc) _sequence = std::max(_sequence, c.sequence);
}

std::optional<recovery_point> recovery_checkpoint::load() const {
    if (!_file.is_open()) return std::nullopt;
    slot s[2] = {};
    _file.pread_some(s, sizeof s, 0);
    const slot* best = nullptr;
    for (const slot& c : s)
        if (c.magic == checkpoint_magic && slot_crc(c) == c.crc && (!best || c.sequence > best->sequence)) best = &c;
    if (!best) return std::nullopt;
    return recovery_point{best->segment_base, best->position, best->next_offset};
}

uint64_t recovery_checkpoint::reload_sequence() {
    slot s[2] = {};
    _file.pread_some(s, sizeof s, 0);
    _sequence = 0;
    for (const slot& c : s)
        if (c.magic == checkpoint_magic && slot_crc(c) == c.crc) _sequence = std::max(_sequence, c.sequence);
    return _sequence;
}

void recovery_checkpoint::store(const recovery_point& point, uint64_t sequence) {
    _sequence = sequence - 1;
    store(point);
}

void recovery_checkpoint::store(const recovery_point& point) {
    if (_sequence >= (uint64_t{1} << 62)) {
        // A sequence no writer reaches (one store a second for 10^11 years): a
        // forged or damaged slot. Numbering restarts, after both slots are cleared
        // (durably first: a slot left with that sequence would win every load).
        slot zeros[2] = {};
        _file.pwrite_all(zeros, sizeof zeros, 0);
        _file.datasync();
        _sequence = 0;
    }
    slot s = {};
    s.magic = checkpoint_magic;
    s.sequence = ++_sequence;
    s.segment_base = point.segment_base;
    s.position = point.position;
    s.next_offset = point.next_offset;
    s.crc = slot_crc(s);
    _file.pwrite_all(&s, sizeof s, (s.sequence % 2) * slot_bytes);
    _file.datasync();
}

}  // namespace tidelog
