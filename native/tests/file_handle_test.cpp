// file_handle::pwritev_all: whatever a pwritev writes short, or is interrupted
// before writing anything, the bytes land whole and in order.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "errors.h"
#include "file_handle.h"
#include "file_io.h"
#include "test_util.h"

using namespace tidelog;
using namespace tidelog_test;

namespace {
// Each hooked pwritev writes at most `write_cap` bytes; with `eintr_every` set, the
// first call and every `eintr_every`-th after it fail with EINTR before writing
// anything; every call is counted.
std::atomic<size_t> write_cap{SIZE_MAX};
std::atomic<int> eintr_every{0};
std::atomic<int> calls{0};
std::atomic<int> fail_with{0};

ssize_t short_pwritev(int fd, const struct iovec* iov, int count, off_t position) {
    int n = ++calls;
    if (int e = fail_with.load()) {
        errno = e;
        return -1;
    }
    if (int every = eintr_every.load(); every && (n - 1) % every == 0) {
        errno = EINTR;
        return -1;
    }
    // Write the first write_cap bytes of the pieces, as a short pwritev does.
    std::vector<struct iovec> cut;
    size_t left = write_cap.load();
    for (int i = 0; i < count && left; ++i) {
        size_t take = std::min(left, iov[i].iov_len);
        cut.push_back({iov[i].iov_base, take});
        left -= take;
    }
    if (cut.empty()) return 0;
    return ::pwritev(fd, cut.data(), static_cast<int>(cut.size()), position);
}
const io::hooks short_write_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.pwritev = short_pwritev;
    return h;
}();

// After one (short) call, every call fails with EIO.
ssize_t fails_after_the_first(int fd, const struct iovec* iov, int count, off_t position) {
    if (calls.load() >= 1) {
        ++calls;
        errno = EIO;
        return -1;
    }
    return short_pwritev(fd, iov, count, position);
}
const io::hooks fails_after_the_first_hooks = [] {
    io::hooks h = passthrough_io_hooks();
    h.pwritev = fails_after_the_first;
    return h;
}();

class FileHandleTest : public ::testing::Test {
protected:
    void SetUp() override {
        write_cap = SIZE_MAX;
        eintr_every = 0;
        calls = 0;
        fail_with = 0;
        previous_ = io::install_hooks(&short_write_hooks);
    }
    void TearDown() override { io::install_hooks(previous_); }

    std::string contents(const std::string& path) {
        std::string out(1 << 16, '\0');
        int fd = ::open(path.c_str(), O_RDONLY);
        ssize_t n = ::pread(fd, out.data(), out.size(), 0);
        ::close(fd);
        out.resize(n < 0 ? 0 : static_cast<size_t>(n));
        return out;
    }

    temp_dir dir;
    const io::hooks* previous_ = nullptr;
};

// Pieces of 0..40 bytes, some empty, 4,000 bytes in all, written at `position`.
std::vector<std::string> pieces() {
    std::vector<std::string> out;
    size_t total = 0;
    for (int i = 0; total < 4000; ++i) {
        std::string p(static_cast<size_t>(i * 7 % 41), static_cast<char>('a' + i % 26));
        if (total + p.size() > 4000) p.resize(4000 - total);
        total += p.size();
        out.push_back(std::move(p));
    }
    return out;
}
}  // namespace

TEST_F(FileHandleTest, ShortAndInterruptedWritesLandWholeAndInOrder) {
    auto parts = pieces();
    std::vector<struct iovec> iov;
    std::string expected(100, '\0');  // written at 100: the hole before it reads as zeros
    for (auto& p : parts) {
        iov.push_back({p.data(), p.size()});
        expected += p;
    }
    for (size_t cap : {SIZE_MAX, size_t(4000), size_t(1), size_t(7), size_t(40), size_t(999), size_t(3999)}) {
        for (int every : {0, 2, 3}) {
            std::string path = dir.path() + "/f" + std::to_string(cap % 100000) + "_" + std::to_string(every);
            auto f = tidelog::file_handle::open(path, O_RDWR | O_CREAT | O_TRUNC);
            write_cap = cap;
            eintr_every = every;
            calls = 0;
            f.pwritev_all(iov.data(), static_cast<int>(iov.size()), 100);
            EXPECT_EQ(contents(path), expected) << "cap " << cap << ", EINTR every " << every;
            if (cap == SIZE_MAX && every == 0) EXPECT_EQ(calls.load(), 1) << "one call when nothing is short";
        }
    }
}

TEST_F(FileHandleTest, OnePieceAndNoPieceWrites) {
    std::string path = dir.path() + "/one";
    auto f = tidelog::file_handle::open(path, O_RDWR | O_CREAT | O_TRUNC);
    std::string data = "the whole frame";
    f.pwrite_all(data.data(), data.size(), 0);
    write_cap = 4;  // then the same bytes again, four at a time, after them
    f.pwrite_all(data.data(), data.size(), data.size());
    f.pwritev_all(nullptr, 0, 0);  // nothing to write: no error, nothing changes
    EXPECT_EQ(contents(path), data + data);
}

TEST_F(FileHandleTest, AFailedWriteThrowsWithThePath) {
    std::string path = dir.path() + "/failing";
    auto f = tidelog::file_handle::open(path, O_RDWR | O_CREAT | O_TRUNC);
    std::string data(64, 'x');
    fail_with = ENOSPC;
    try {
        f.pwrite_all(data.data(), data.size(), 0);
        FAIL() << "no error";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    // A failure after a short write also throws (the first call wrote 10 bytes).
    fail_with = 0;
    write_cap = 10;
    calls = 0;
    io::install_hooks(&fails_after_the_first_hooks);
    EXPECT_THROW(f.pwrite_all(data.data(), data.size(), 0), error);
    EXPECT_EQ(calls.load(), 2);
    io::install_hooks(&short_write_hooks);
}
