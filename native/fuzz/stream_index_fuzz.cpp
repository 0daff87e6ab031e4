// libFuzzer target: the event store's stream-index snapshot parser
// (stream_index.h). Any bytes parse as "refused" (leaving the index empty) or
// as an index that serializes back to exactly the bytes given, whose
// positions grow within each stream (-1: a lost version) and stay below `through`.
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "stream_index.h"

using namespace tidelog;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint64_t identity = 0;
    if (size >= 16) std::memcpy(&identity, data + 8, 8);  // the snapshot's own identity field
    stream_index idx;
    bool ok = idx.parse(data, size, identity);
    if (!ok) {
        FUZZ_CHECK(idx.through() == 0 && idx.stream_count() == 0 && idx.event_count() == 0);
        return 0;
    }
    uint64_t events = 0;
    idx.for_each([&](const std::string&, const stream_entry& e) {
        FUZZ_CHECK(e.positions.size() == e.id_hashes.size());
        int64_t previous = -1;
        for (size_t i = 0; i < e.positions.size(); ++i) {
            if (e.positions[i] == -1) continue;  // a version lost to damage
            FUZZ_CHECK(e.positions[i] >= 0 && e.positions[i] < idx.through() && e.positions[i] > previous);
            previous = e.positions[i];
        }
        events += e.positions.size();
    });
    FUZZ_CHECK(events == idx.event_count());
    // Serialization is canonical (streams in id order): the same bytes back
    // when the input had its streams in that order, the same size always.
    std::string again = idx.serialize(identity);
    stream_index back;
    FUZZ_CHECK(back.parse(reinterpret_cast<const uint8_t*>(again.data()), again.size(), identity));
    FUZZ_CHECK(back.serialize(identity) == again && again.size() == size);
    // An append after the snapshot's end still works.
    idx.add("fuzz", idx.through(), 1, idx.last_version("fuzz") + 1);
    return 0;
}
