#pragma once
// Shared pieces of the libFuzzer targets (native/fuzz/*_fuzz.cpp).
//
// Inputs that hold several files use one layout (see `files` below), so one
// seed generator (make_seeds.cpp) serves every target:
//
//   0  u8  flags     bit 0: clean shutdown; bit 1: a recovery checkpoint follows;
//                    bit 2: a second segment (the rest of the input)
//   1  u8  reserved
//   2  u16 index_bytes      of segment 0's .index
//   4  u16 timeindex_bytes  of segment 0's .timeindex
//   6  u16 reserved
//   8  u32 log_bytes        of segment 0's .log (bit 2 clear: the rest of the input)
//  12  u32 second_base      base offset of the second segment
//  16  [128 bytes recovery-checkpoint if bit 1] [.index] [.timeindex] [.log] [second .log]
//
// Every length is clipped to what the input holds.
#include <dirent.h>
#include <signal.h>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "file_io.h"

namespace tidelog_fuzz {

[[noreturn]] inline void fail(const char* what, long long a = 0, long long b = 0) {
    std::fprintf(stderr, "fuzz invariant violated: %s (%lld, %lld)\n", what, a, b);
    std::abort();
}
#define FUZZ_CHECK(cond, ...) \
    do {                      \
        if (!(cond)) ::tidelog_fuzz::fail(#cond, ##__VA_ARGS__); \
    } while (0)

/// TIDELOG_FUZZ_VERBOSE=1: a target that supports it prints what it compares
/// (for replaying one input).
inline bool verbose() {
    static const bool on = [] {
        const char* v = std::getenv("TIDELOG_FUZZ_VERBOSE");
        return v && *v && *v != '0';
    }();
    return on;
}

/// Segments preallocate 32 MiB with fallocate, which tmpfs backs with zeroed
/// pages: most of a target's time. These hooks (file_io.h) extend the file
/// sparsely instead (the same bytes for every reader) and pass everything else
/// to the system. Install once, before the first input.
inline void use_sparse_fallocate() {
    static const tidelog::io::hooks h = {
        [](const char* p, int f, mode_t m) { return ::open(p, f, m); },
        [](int fd, const struct iovec* v, int n, off_t pos) { return ::pwritev(fd, v, n, pos); },
        [](int fd) { return ::fdatasync(fd); },
        [](int fd) { return ::fsync(fd); },
        [](int fd, int mode, off_t pos, off_t len) -> int {
            if (mode != 0) return ::fallocate(fd, mode, pos, len);
            struct stat st;
            if (::fstat(fd, &st) != 0) return -1;
            return st.st_size < pos + len ? ::ftruncate(fd, pos + len) : 0;
        },
        [](int fd, off_t len) { return ::ftruncate(fd, len); },
        [](const char* p, mode_t m) { return ::mkdir(p, m); },
        [](const char* p) { return ::unlink(p); },
        [](const char* a, const char* b) { return ::rename(a, b); },
    };
    tidelog::io::install_hooks(&h);
}

/// A per-process scratch folder on tmpfs when there is one.
inline const std::string& scratch() {
    // Leaked on purpose: the atexit clean-up runs after static destructors.
    static const std::string* dir = [] {
        std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
        // Folders of earlier runs that crashed (no atexit clean-up) and are gone.
        std::error_code ec;
        for (auto& e : std::filesystem::directory_iterator(base, ec)) {
            std::string name = e.path().filename().string();
            if (name.rfind("tidelog-fuzz-", 0) != 0) continue;
            long pid = std::strtol(name.c_str() + 13, nullptr, 10);
            if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
                std::filesystem::remove_all(e.path(), ec);
        }
        auto* d = new std::string(base + "/tidelog-fuzz-" + std::to_string(::getpid()));
        std::filesystem::remove_all(*d);
        std::filesystem::create_directories(*d);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratch(), ec);
        });
        return d;
    }();
    return *dir;
}

/// A fresh, empty folder below scratch().
inline std::string fresh_dir(const char* name) {
    std::string d = scratch() + "/" + name;
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
    std::filesystem::create_directories(d);
    return d;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot create a scratch file");
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) fail("cannot write a scratch file");
        done += static_cast<size_t>(n);
    }
    ::close(fd);
}

struct files {
    bool clean = false;
    bool has_checkpoint = false;
    bool two_segments = false;
    uint32_t second_base = 0;
    std::vector<uint8_t> checkpoint, index, timeindex, log, log2;

    static files decode(const uint8_t* data, size_t size) {
        files f;
        if (size < 16) {
            f.log.assign(data, data + size);
            return f;
        }
        uint16_t ib, tb;
        uint32_t lb;
        std::memcpy(&ib, data + 2, 2);
        std::memcpy(&tb, data + 4, 2);
        std::memcpy(&lb, data + 8, 4);
        std::memcpy(&f.second_base, data + 12, 4);
        f.clean = data[0] & 1;
        f.has_checkpoint = data[0] & 2;
        f.two_segments = data[0] & 4;
        size_t pos = 16;
        auto take = [&](std::vector<uint8_t>& out, size_t n) {
            n = std::min(n, size - pos);
            out.assign(data + pos, data + pos + n);
            pos += n;
        };
        if (f.has_checkpoint) take(f.checkpoint, 128);
        take(f.index, ib);
        take(f.timeindex, tb);
        take(f.log, f.two_segments ? lb : size);
        if (f.two_segments) take(f.log2, size);
        return f;
    }

    std::vector<uint8_t> encode() const {
        std::vector<uint8_t> out(16, 0);
        out[0] = static_cast<uint8_t>((clean ? 1 : 0) | (has_checkpoint ? 2 : 0) | (two_segments ? 4 : 0));
        uint16_t ib = static_cast<uint16_t>(index.size()), tb = static_cast<uint16_t>(timeindex.size());
        uint32_t lb = static_cast<uint32_t>(log.size());
        std::memcpy(out.data() + 2, &ib, 2);
        std::memcpy(out.data() + 4, &tb, 2);
        std::memcpy(out.data() + 8, &lb, 4);
        std::memcpy(out.data() + 12, &second_base, 4);
        if (has_checkpoint) {
            std::vector<uint8_t> cp = checkpoint;
            cp.resize(128, 0);
            out.insert(out.end(), cp.begin(), cp.end());
        }
        out.insert(out.end(), index.begin(), index.end());
        out.insert(out.end(), timeindex.begin(), timeindex.end());
        out.insert(out.end(), log.begin(), log.end());
        if (two_segments) out.insert(out.end(), log2.begin(), log2.end());
        return out;
    }
};

}  // namespace tidelog_fuzz
