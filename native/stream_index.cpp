#include "stream_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <random>

#include "crc32c.h"
#include "errors.h"
#include "file_handle.h"

namespace tidelog {

namespace {

template <class T>
void put(std::string& out, T value) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

/// A bounds-checked reader over the snapshot bytes.
struct cursor {
    const uint8_t* p;
    size_t left;
    template <class T>
    bool get(T* out) {
        if (left < sizeof(T)) return false;
        std::memcpy(out, p, sizeof(T));
        p += sizeof(T);
        left -= sizeof(T);
        return true;
    }
    bool skip(size_t n, const uint8_t** at) {
        if (left < n) return false;
        *at = p;
        p += n;
        left -= n;
        return true;
    }
};

/// CRC32C of the whole snapshot except its CRC field (bytes 40..43).
uint32_t snapshot_crc(const uint8_t* data, size_t size) {
    uint32_t crc = crc32c(data, 40);
    return crc32c_extend(crc, data + 44, size - 44);
}

}  // namespace

stream_entry& stream_index::entry_for(std::string_view stream) {
    auto it = _streams.find(std::string(stream));
    if (it == _streams.end()) it = _streams.emplace(std::string(stream), stream_entry{}).first;
    return it->second;
}

void stream_index::add(std::string_view stream, int64_t position, uint64_t id_hash, int64_t version) {
    if (position < _through)
        throw error(errc::invalid_argument, "stream index: position " + std::to_string(position) +
                                                " is below the indexed end " + std::to_string(_through));
    if (version < 0) throw error(errc::invalid_argument, "stream index: negative version");
    _through = position + 1;
    stream_entry& e = entry_for(stream);
    if (static_cast<uint64_t>(version) < e.positions.size()) return;
    while (e.positions.size() < static_cast<uint64_t>(version)) {
        e.positions.push_back(-1);
        e.id_hashes.push_back(0);
        ++_events;
    }
    e.positions.push_back(position);
    e.id_hashes.push_back(id_hash);
    ++_events;
}

void stream_index::soft_delete(std::string_view stream, int64_t truncate_before, int64_t position) {
    if (position < _through) throw error(errc::invalid_argument, "stream index: marker below the indexed end");
    stream_entry& e = entry_for(stream);
    if (truncate_before > e.truncate_before) e.truncate_before = truncate_before;
    _through = position + 1;
}

void stream_index::tombstone(std::string_view stream, int64_t position) {
    if (position < _through) throw error(errc::invalid_argument, "stream index: marker below the indexed end");
    stream_entry& e = entry_for(stream);
    e.tombstoned = true;
    e.truncate_before = static_cast<int64_t>(e.positions.size());
    _through = position + 1;
}

void stream_index::advance(int64_t position) {
    if (position > _through) _through = position;
}

const stream_entry* stream_index::find(std::string_view stream) const {
    auto it = _streams.find(std::string(stream));
    return it == _streams.end() ? nullptr : &it->second;
}

int64_t stream_index::last_version(std::string_view stream) const {
    const stream_entry* e = find(stream);
    return e == nullptr ? -1 : static_cast<int64_t>(e->positions.size()) - 1;
}

std::vector<std::string> stream_index::live_streams(std::string_view prefix, bool include_system) const {
    std::vector<std::string> out;
    for (const auto& [id, e] : _streams) {
        if (e.tombstoned || e.truncate_before >= static_cast<int64_t>(e.positions.size())) continue;
        if (!include_system && !id.empty() && id[0] == '$') continue;
        if (std::string_view(id).substr(0, prefix.size()) != prefix) continue;
        out.push_back(id);
    }
    std::sort(out.begin(), out.end());
    return out;
}

int64_t stream_index::find_event(std::string_view stream, uint64_t id_hash, int64_t from) const {
    const stream_entry* e = find(stream);
    if (e == nullptr) return -1;
    for (size_t v = from < 0 ? 0 : static_cast<size_t>(from); v < e->id_hashes.size(); ++v)
        if (e->id_hashes[v] == id_hash) return static_cast<int64_t>(v);
    return -1;
}

void stream_index::clear() {
    _streams.clear();
    _through = 0;
    _events = 0;
}

std::string stream_index::serialize(uint64_t identity) const {
    // In id order, so that one index always gives the same bytes.
    std::vector<const std::pair<const std::string, stream_entry>*> order;
    order.reserve(_streams.size());
    for (const auto& kv : _streams) order.push_back(&kv);
    std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
    std::string body;
    for (const auto* kv : order) {
        const std::string& id = kv->first;
        const stream_entry& e = kv->second;
        put<uint32_t>(body, static_cast<uint32_t>(id.size()));
        body.append(id);
        put<int64_t>(body, e.truncate_before);
        put<uint8_t>(body, e.tombstoned ? 1 : 0);
        put<uint64_t>(body, e.positions.size());
        body.append(reinterpret_cast<const char*>(e.positions.data()), e.positions.size() * 8);
        body.append(reinterpret_cast<const char*>(e.id_hashes.data()), e.id_hashes.size() * 8);
    }
    std::string out;
    out.reserve(snapshot_header_bytes + body.size());
    put<uint32_t>(out, snapshot_magic);
    put<uint32_t>(out, snapshot_version);
    put<uint64_t>(out, identity);
    put<int64_t>(out, _through);
    put<uint64_t>(out, _streams.size());
    put<uint64_t>(out, _events);
    put<uint32_t>(out, 0);  // the CRC, below
    put<uint32_t>(out, 0);  // reserved
    out.append(body);
    uint32_t crc = snapshot_crc(reinterpret_cast<const uint8_t*>(out.data()), out.size());
    std::memcpy(&out[40], &crc, 4);
    return out;
}

bool stream_index::parse(const uint8_t* data, size_t size, uint64_t identity) {
    clear();
    cursor c{data, size};
    uint32_t magic = 0, version = 0, crc = 0, reserved = 0;
    uint64_t id = 0, streams = 0, events = 0;
    int64_t through = 0;
    if (!c.get(&magic) || !c.get(&version) || !c.get(&id) || !c.get(&through) || !c.get(&streams) ||
        !c.get(&events) || !c.get(&crc) || !c.get(&reserved))
        return false;
    if (magic != snapshot_magic || version != snapshot_version || id != identity || through < 0) return false;
    if (snapshot_crc(data, size) != crc) return false;
    uint64_t seen_events = 0;
    for (uint64_t s = 0; s < streams; ++s) {
        uint32_t id_len = 0;
        const uint8_t* id_bytes = nullptr;
        int64_t truncate_before = 0;
        uint8_t tombstoned = 0;
        uint64_t count = 0;
        const uint8_t *positions = nullptr, *hashes = nullptr;
        if (!c.get(&id_len) || !c.skip(id_len, &id_bytes) || !c.get(&truncate_before) || !c.get(&tombstoned) ||
            !c.get(&count) || count > c.left / 16 || !c.skip(count * 8, &positions) || !c.skip(count * 8, &hashes) ||
            tombstoned > 1 || truncate_before < 0) {
            clear();
            return false;
        }
        std::string key(reinterpret_cast<const char*>(id_bytes), id_len);
        stream_entry e;
        e.truncate_before = truncate_before;
        e.tombstoned = tombstoned != 0;
        e.positions.resize(count);
        e.id_hashes.resize(count);
        if (count) {
            std::memcpy(e.positions.data(), positions, count * 8);
            std::memcpy(e.id_hashes.data(), hashes, count * 8);
        }
        int64_t previous = -1;
        for (uint64_t i = 0; i < count; ++i) {
            // Positions grow within a stream and stay below through; -1 marks a lost version.
            int64_t p = e.positions[i];
            if (p == -1) continue;
            if (p < 0 || p >= through || p <= previous) {
                clear();
                return false;
            }
            previous = p;
        }
        seen_events += count;
        if (!_streams.emplace(std::move(key), std::move(e)).second) {  // a stream twice
            clear();
            return false;
        }
    }
    if (c.left != 0 || seen_events != events) {
        clear();
        return false;
    }
    _through = through;
    _events = events;
    return true;
}

void stream_index::save(const std::string& path, uint64_t identity) const {
    std::string bytes = serialize(identity);
    std::random_device rd;
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".tmp-%08x%08x", rd(), rd());
    std::string tmp = path + suffix;
    {
        file_handle f = file_handle::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
        f.pwrite_all(bytes.data(), bytes.size(), 0);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw_errno("rename " + tmp, err);
    }
}

bool stream_index::load(const std::string& path, uint64_t identity) {
    clear();
    file_handle f;
    try {
        f = file_handle::open(path, O_RDONLY | O_CLOEXEC);
    } catch (const error& e) {
        if (e.code() == errc::not_found) return false;
        throw;
    }
    std::string bytes;
    uint64_t at = 0;
    char buf[1 << 16];
    for (;;) {
        uint64_t n = f.pread_some(buf, sizeof buf, at);
        if (n == 0) break;
        bytes.append(buf, n);
        at += n;
    }
    return parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), identity);
}

}  // namespace tidelog
