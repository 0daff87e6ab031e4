// libFuzzer target: a durable table's journal parser (durable_table.h,
// table_journal.h) on arbitrary journal bytes.
//
// Input: byte 0 bit 0 set: the rest is the whole journal file; clear: the rest
// follows a valid header (first_sequence 1). Invariants, against a reference
// walk written here independently of table_journal.cpp:
//   - a bad file header: the open raises errc::corrupt;
//   - a bad record with a later CRC-valid record vouching past it: the open
//     raises errc::corrupt naming the bad record's position, and the file is
//     not changed;
//   - otherwise the open succeeds with exactly the reference state of the good
//     records, journal_bytes() is their end, and the file keeps its size: only
//     zeros after the good records are the journal's (preallocated) end, left
//     as they are; other bytes after them (a torn tail) are zeroed;
//   - then a put + sync, a fresh handle, and a rewrite + fresh handle all see
//     that state plus the put.
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "crc32c.h"
#include "durable_table.h"
#include "errors.h"
#include "fuzz_common.h"

using namespace tidelog;

namespace {

template <class T>
T at(const std::vector<uint8_t>& b, size_t p) {
    T v;
    std::memcpy(&v, b.data() + p, sizeof v);
    return v;
}

struct reference {
    bool bad_header = false;
    bool corrupt = false;
    uint64_t bad_position = 0;
    uint64_t good_end = 0;
    std::map<std::string, std::string> state;
};

/// Header, length, vouched and CRC checks of a record at p (not sequence, not payload).
bool frame_ok(const std::vector<uint8_t>& b, size_t p) {
    if (p + 32 > b.size() || at<uint32_t>(b, p) != 0x52544C54u) return false;
    uint64_t len = at<uint32_t>(b, p + 8);
    if (len + 32 > (uint64_t{64} << 20) || p + 32 + len > b.size()) return false;
    if (at<uint64_t>(b, p + 24) > p) return false;
    return crc32c(b.data() + p + 8, 24 + len) == at<uint32_t>(b, p + 4);
}

reference walk(const std::vector<uint8_t>& b) {
    reference r;
    if (b.size() < 16 || at<uint32_t>(b, 0) != 0x4A544C54u || at<uint32_t>(b, 4) != 1) {
        r.bad_header = true;
        return r;
    }
    uint64_t sequence = at<uint64_t>(b, 8);
    size_t p = 16;
    while (p < b.size()) {
        bool ok = frame_ok(b, p) && at<uint64_t>(b, p + 16) == sequence;
        std::vector<std::pair<std::string, std::optional<std::string>>> changes;
        if (ok) {
            uint64_t len = at<uint32_t>(b, p + 8);
            uint32_t count = at<uint32_t>(b, p + 12);
            size_t q = p + 32, end = p + 32 + len;
            for (uint32_t i = 0; ok && i < count; ++i) {
                if (q + 8 > end) { ok = false; break; }
                uint32_t kl = at<uint32_t>(b, q), vl = at<uint32_t>(b, q + 4);
                q += 8;
                uint64_t vbytes = vl == 0xFFFFFFFFu ? 0 : vl;
                if (kl == 0 || kl > 4096 || (vl != 0xFFFFFFFFu && vl > (16u << 20)) || q + kl + vbytes > end) {
                    ok = false;
                    break;
                }
                std::string k(reinterpret_cast<const char*>(b.data() + q), kl);
                q += kl;
                if (vl == 0xFFFFFFFFu) changes.push_back({k, std::nullopt});
                else changes.push_back({k, std::string(reinterpret_cast<const char*>(b.data() + q), vl)});
                q += vbytes;
            }
            ok = ok && q == end;
        }
        if (!ok) {
            r.bad_position = p;
            for (size_t q = p + 1; q + 32 <= b.size(); ++q)
                if (frame_ok(b, q) && at<uint64_t>(b, q + 24) > p) r.corrupt = true;
            break;
        }
        for (auto& c : changes) {
            if (c.second) r.state[c.first] = *c.second;
            else r.state.erase(c.first);
        }
        ++sequence;
        p += 32 + at<uint32_t>(b, p + 8);
    }
    r.good_end = r.corrupt ? b.size() : p;
    return r;
}

std::map<std::string, std::string> view(const durable_table& t) {
    std::map<std::string, std::string> s;
    t.for_each("", [&](const std::string& k, const std::string& v) { s[k] = v; });
    return s;
}

std::vector<uint8_t> contents(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

uint64_t size_of(const std::string& path) {
    struct stat st;
    FUZZ_CHECK(::stat(path.c_str(), &st) == 0);
    return static_cast<uint64_t>(st.st_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::vector<uint8_t> journal;
    if (!(data[0] & 1)) {
        std::string h = table_journal::encode_file_header(1);
        journal.assign(h.begin(), h.end());
    }
    journal.insert(journal.end(), data + 1, data + size);
    std::string dir = tidelog_fuzz::fresh_dir("table");
    std::string path = dir + "/journal";
    tidelog_fuzz::write_file(path, journal.data(), journal.size());
    reference ref = walk(journal);

    std::optional<durable_table> t;
    try {
        t.emplace(dir, false);
    } catch (const error& e) {
        FUZZ_CHECK(e.code() == errc::corrupt);
        FUZZ_CHECK(ref.bad_header || ref.corrupt);
        if (!ref.bad_header) {
            FUZZ_CHECK(e.place() && e.place()->position == ref.bad_position, (long long)ref.bad_position);
            FUZZ_CHECK(size_of(path) == journal.size());  // nothing cut
        }
        return 0;
    }
    FUZZ_CHECK(!ref.bad_header && !ref.corrupt);
    FUZZ_CHECK(view(*t) == ref.state);
    FUZZ_CHECK(t->journal_bytes() == ref.good_end, (long long)t->journal_bytes(), (long long)ref.good_end);
    std::vector<uint8_t> now = contents(path);
    FUZZ_CHECK(now.size() == journal.size(), (long long)now.size(), (long long)journal.size());
    FUZZ_CHECK(std::equal(now.begin(), now.begin() + ref.good_end, journal.begin()));
    FUZZ_CHECK(std::all_of(now.begin() + ref.good_end, now.end(), [](uint8_t b) { return b == 0; }));

    auto expected = ref.state;
    expected["fuzz"] = "put after recovery";
    t->lock();
    table_sync_token token = t->put(std::vector<durable_table::change>{{"fuzz", std::string("put after recovery")}});
    t->unlock();
    t->sync(token);
    FUZZ_CHECK(view(*t) == expected);
    {
        durable_table fresh(dir, false);
        FUZZ_CHECK(view(fresh) == expected);
    }
    t->lock();
    t->rewrite();
    t->unlock();
    t.reset();
    durable_table after(dir, false);
    FUZZ_CHECK(view(after) == expected);
    return 0;
}
