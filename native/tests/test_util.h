#pragma once
// Shared helpers for the native GoogleTest suite: temp directories, payloads,
// hand-built frames, appends through partition::append, and a "crash" helper
// that runs a writer in a forked child that exits without any clean-up.
#include <fcntl.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "committer.h"
#include "crc32c.h"
#include "errors.h"
#include "file_io.h"
#include "frame.h"
#include "partition.h"
#include "segment.h"

namespace tidelog_test {

namespace fs = std::filesystem;
using namespace tidelog;

/// The system calls themselves as an io::hooks table (file_io.h): a test that
/// intercepts a few of them takes this table and replaces those.
inline io::hooks passthrough_io_hooks() {
    io::hooks h;
    h.open = [](const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); };
    h.pwritev = [](int fd, const struct iovec* iov, int count, off_t position) {
        return ::pwritev(fd, iov, count, position);
    };
    h.fdatasync = [](int fd) { return ::fdatasync(fd); };
    h.fsync = [](int fd) { return ::fsync(fd); };
    h.fallocate = [](int fd, int mode, off_t position, off_t length) { return ::fallocate(fd, mode, position, length); };
    h.ftruncate = [](int fd, off_t length) { return ::ftruncate(fd, length); };
    h.mkdir = [](const char* path, mode_t mode) { return ::mkdir(path, mode); };
    h.unlink = [](const char* path) { return ::unlink(path); };
    h.rename = [](const char* from, const char* to) { return ::rename(from, to); };
    return h;
}

/// A fresh directory under /tmp, removed (recursively) on destruction.
class temp_dir {
public:
    temp_dir() {
        char tmpl[] = "/tmp/tidelog-native-test.XXXXXX";
        char* p = ::mkdtemp(tmpl);
        if (!p) throw std::runtime_error("mkdtemp failed");
        _path = p;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(_path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::string& path() const { return _path; }
    std::string sub(const std::string& name) const { return _path + "/" + name; }

private:
    std::string _path;
};

/// Deterministic pseudo-random bytes; byte 0..7 carry `tag` so frames are tellable apart.
inline std::vector<uint8_t> make_payload(size_t size, uint64_t tag) {
    std::vector<uint8_t> out(size);
    std::mt19937_64 rng(tag * 0x9E3779B97F4A7C15ull + size);
    for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(rng());
    for (size_t i = 0; i < size && i < 8; ++i) out[i] = static_cast<uint8_t>(tag >> (8 * i));
    return out;
}

/// Builds a valid frame in `out` (cleared first); returns its header.
inline frame_header build_frame(std::vector<uint8_t>& out, const std::vector<uint8_t>& payload, int64_t base_offset,
                                uint32_t record_count = 1, int64_t min_ts = 0, int64_t max_ts = 0,
                                uint32_t payload_offset = frame_header_bytes) {
    frame_header h{};
    h.magic = frame_magic;
    h.version = frame_version;
    h.header_length = frame_header_bytes;
    h.codec = 0;
    h.flags = 0;
    h.base_offset = base_offset;
    h.record_count = record_count;
    h.last_offset_delta = record_count - 1;
    h.schema_id = 7;
    h.min_timestamp = min_ts;
    h.max_timestamp = max_ts;
    h.payload_length = payload.size();
    h.payload_offset = payload_offset;
    h.crc = frame_crc(h, payload.data());
    out.assign(h.frame_length(), 0);
    std::memcpy(out.data(), &h, sizeof h);
    if (!payload.empty()) std::memcpy(out.data() + payload_offset, payload.data(), payload.size());
    return h;
}

/// A sparse frame (FORMAT.md §2.6): records at base_offset + deltas[i] within
/// `span` offsets; its payload is the offset block, then `arrow`.
inline frame_header build_sparse_frame(std::vector<uint8_t>& out, const std::vector<uint8_t>& arrow,
                                       int64_t base_offset, uint32_t span, const std::vector<uint32_t>& deltas,
                                       int64_t delete_horizon_ns = 0, int64_t min_ts = 0, int64_t max_ts = 0) {
    uint64_t block = sparse_block_bytes(deltas.size());
    std::vector<uint8_t> payload(block + arrow.size(), 0);
    std::memcpy(payload.data(), &delete_horizon_ns, 8);
    if (!deltas.empty()) std::memcpy(payload.data() + 8, deltas.data(), 4 * deltas.size());
    if (!arrow.empty()) std::memcpy(payload.data() + block, arrow.data(), arrow.size());
    frame_header h{};
    h.magic = frame_magic;
    h.version = frame_version;
    h.header_length = frame_header_bytes;
    h.flags = frame_flag_sparse;
    h.base_offset = base_offset;
    h.record_count = static_cast<uint32_t>(deltas.size());
    h.last_offset_delta = span - 1;
    h.schema_id = 7;
    h.min_timestamp = min_ts;
    h.max_timestamp = max_ts;
    h.payload_length = payload.size();
    h.payload_offset = frame_header_bytes;
    h.crc = frame_crc(h, payload.data());
    out.assign(h.frame_length(), 0);
    std::memcpy(out.data(), &h, sizeof h);
    std::memcpy(out.data() + frame_header_bytes, payload.data(), payload.size());
    return h;
}

/// A header for segment::append: payload_offset, crc and base_offset set.
inline frame_header header_for(const std::vector<uint8_t>& payload, int64_t base_offset, uint32_t record_count = 1,
                               int64_t min_ts = 0, int64_t max_ts = 0, uint32_t payload_offset = frame_header_bytes) {
    std::vector<uint8_t> scratch;
    return build_frame(scratch, payload, base_offset, record_count, min_ts, max_ts, payload_offset);
}

/// Appends one payload as one frame through partition::append.
inline append_result append_payload(partition& p, const std::vector<uint8_t>& payload, uint32_t records = 1,
                                    int64_t min_ts = 0, int64_t max_ts = 0, int64_t body_offset = -1) {
    struct iovec iov{const_cast<uint8_t*>(payload.data()), payload.size()};
    append_request req;
    req.pieces = &iov;
    req.piece_count = 1;
    req.record_count = records;
    req.min_timestamp = min_ts;
    req.max_timestamp = max_ts;
    req.schema_id = 1;
    req.body_offset = body_offset;
    return p.append(req);
}

inline std::vector<uint8_t> frame_payload(const frame_ref& f) {
    return std::vector<uint8_t>(f.payload(), f.payload() + f.header.payload_length);
}

inline std::vector<frame_ref> all_frames(partition& p) {
    return p.frames(0, INT64_MAX, INT64_MIN, INT64_MAX, SIZE_MAX);
}

inline partition_config small_config(uint64_t segment_bytes = 64 * 1024,
                                     durability_mode mode = durability_mode::none) {
    partition_config c;
    c.segment_bytes = segment_bytes;
    c.durability = mode;
    return c;
}

/// Files in dir whose name ends with suffix, sorted.
inline std::vector<std::string> files_with_suffix(const std::string& dir, const std::string& suffix) {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir)) {
        std::string n = e.path().filename().string();
        if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

inline uint64_t file_size(const std::string& path) { return fs::file_size(path); }

inline void truncate_file(const std::string& path, uint64_t size) { fs::resize_file(path, size); }

inline void overwrite(const std::string& path, uint64_t position, const std::vector<uint8_t>& bytes) {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(position)),
              static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
    std::vector<uint8_t> out(file_size(path));
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return {};
    ssize_t n = ::pread(fd, out.data(), out.size(), 0);
    ::close(fd);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
}

/// Runs `body` in a forked child that then _exit(0)s: no clean-up, no close(),
/// no clean-shutdown marker: what a killed writer leaves behind. Objects whose
/// destructors would clean up must be heap-allocated and leaked by `body`
/// (locals of `body` are destroyed when it returns). Returns the child's exit
/// status (0 when body returned normally).
inline int run_in_crashing_child(const std::function<void()>& body) {
    fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int rc = 0;
        try {
            body();
        } catch (const std::exception& e) {
            fprintf(stderr, "crashing child: %s\n", e.what());
            rc = 3;
        }
        ::_exit(rc);
    }
    // A child stuck in a hang must fail the test, not stall the suite.
    int status = 0;
    for (int waited_ms = 0;; waited_ms += 10) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0) return -1;
        if (waited_ms >= 60'000) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            ADD_FAILURE() << "crashing child hung for 60 s and was killed";
            return -2;
        }
        ::usleep(10'000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// xfail(strict=False) for a bug filed in /work/notes/bugs.md: runs `body`; if it
/// fails (or throws), the test is skipped with the bug's title instead of failing;
/// if it passes, the test passes (the bug is fixed: remove the wrapper).
template <typename Body>
void known_bug(const char* title, Body&& body) {
    ::testing::TestPartResultArray results;
    std::string thrown;
    {
        ::testing::ScopedFakeTestPartResultReporter reporter(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        try {
            body();
        } catch (const std::exception& e) {
            thrown = e.what();
        }
    }
    for (int i = 0; i < results.size(); ++i) {
        const auto& r = results.GetTestPartResult(i);
        if (r.failed())
            GTEST_SKIP() << "known bug: " << title << "\n  first failure: "
                         << (r.file_name() ? r.file_name() : "?") << ":" << r.line_number() << ": " << r.summary();
    }
    if (!thrown.empty()) GTEST_SKIP() << "known bug: " << title << "\n  exception: " << thrown;
}

}  // namespace tidelog_test
