// libFuzzer target: the recovery checkpoint parser (recovery_checkpoint.h).
// Any file content must load as "no checkpoint" or as one of its CRC-valid
// slots; a store after that must load back exactly, and must not destroy the
// newest valid slot that was there before (the one a torn store falls back to).
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "crc32c.h"
#include "fuzz_common.h"
#include "recovery_checkpoint.h"

using namespace tidelog;

namespace {
struct slot {
    uint32_t magic, crc;
    uint64_t sequence;
    int64_t segment_base;
    uint64_t position;
    int64_t next_offset;
    uint8_t reserved[24];
};
static_assert(sizeof(slot) == 64, "slot");

bool valid(const slot& s) {
    return s.magic == 0x50434C54u && crc32c(reinterpret_cast<const uint8_t*>(&s) + 8, 56) == s.crc;
}

bool same(const recovery_point& a, const recovery_point& b) {
    return a.segment_base == b.segment_base && a.position == b.position && a.next_offset == b.next_offset;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string dir = tidelog_fuzz::fresh_dir("checkpoint");
    std::string path = dir + "/recovery-checkpoint";
    tidelog_fuzz::write_file(path, data, size);

    slot s[2] = {};
    std::memcpy(s, data, std::min<size_t>(size, sizeof s));
    const slot* best = nullptr;
    for (const slot& c : s)
        if (valid(c) && (!best || c.sequence > best->sequence)) best = &c;

    recovery_checkpoint cp(path, false);
    std::optional<recovery_point> got = cp.load();
    FUZZ_CHECK(got.has_value() == (best != nullptr));
    if (best) FUZZ_CHECK(same(*got, {best->segment_base, best->position, best->next_offset}));

    // Two stores: each loads back, and the first store keeps the previous newest slot.
    recovery_point a{12, 3456, 789}, b{13, 64, 790};
    cp.store(a);
    std::optional<recovery_point> after_a = cp.load();
    FUZZ_CHECK(after_a && same(*after_a, a));
    // The writer puts sequence n in slot n % 2; a valid slot elsewhere (a file
    // edited by hand) may be overwritten by the next store.
    // A sequence at or past 2^62 is no writer's (one store a second for 10^11
    // years): the store restarts numbering and clears both slots first.
    if (best && best->sequence < (uint64_t{1} << 62) && best->sequence % 2 == static_cast<uint64_t>(best - s)) {
        slot now[2] = {};
        int fd = ::open(path.c_str(), O_RDONLY);
        FUZZ_CHECK(fd >= 0);
        FUZZ_CHECK(::pread(fd, now, sizeof now, 0) >= 0);  // short when only slot 0 exists
        ::close(fd);
        bool kept = false;
        for (const slot& c : now) kept |= valid(c) && std::memcmp(&c, best, sizeof c) == 0;
        FUZZ_CHECK(kept);  // a torn write of the new slot could still fall back to it
    }
    cp.store(b);
    std::optional<recovery_point> after_b = cp.load();
    FUZZ_CHECK(after_b && same(*after_b, b));
    cp.close();
    // A fresh load of the file agrees.
    recovery_checkpoint again(path, false);
    std::optional<recovery_point> reread = again.load();
    FUZZ_CHECK(reread && same(*reread, b));
    return 0;
}
