#include "file_handle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <vector>

#include "errors.h"
#include "file_io.h"

namespace tidelog {

#ifdef TIDELOG_IO_HOOKS
namespace io {
std::atomic<const hooks*> installed_hooks{nullptr};
const hooks* install_hooks(const hooks* h) { return installed_hooks.exchange(h, std::memory_order_acq_rel); }
}  // namespace io
#endif

file_handle::~file_handle() {
    if (_fd >= 0) ::close(_fd);
}

file_handle& file_handle::operator=(file_handle&& o) noexcept {
    if (this != &o) {
        if (_fd >= 0) ::close(_fd);
        _fd = o._fd;
        _path = std::move(o._path);
        o._fd = -1;
    }
    return *this;
}

file_handle file_handle::open(const std::string& path, int flags, int mode) {
    int fd = io::open(path.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT) throw error(errc::not_found, "no such file: " + path);
        throw_errno("open " + path, err);
    }
    return file_handle(fd, path);
}

void file_handle::pwritev_all(const struct iovec* iov, int count, uint64_t position) {
    // pwritev may write short (signals, huge vectors): continue from where it stopped.
    // The first call writes straight from the caller's pieces; only what is left after a
    // short write is copied (every append's one-piece write allocated that copy before).
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    size_t done = 0;
    if (count <= IOV_MAX) {
        ssize_t n = io::pwritev(_fd, iov, count, static_cast<off_t>(position));
        if (n < 0 && errno != EINTR) throw_errno("pwritev " + _path);
        if (n > 0) done = static_cast<size_t>(n);
    }
    if (done == total) return;
    std::vector<struct iovec> rest(iov, iov + count);
    size_t first = 0;
    while (true) {
        // Step past the `done` bytes just written, then write what is left.
        position += done;
        while (first < rest.size() && done >= rest[first].iov_len) done -= rest[first++].iov_len;
        if (first == rest.size()) return;
        rest[first].iov_base = static_cast<char*>(rest[first].iov_base) + done;
        rest[first].iov_len -= done;
        int batch = static_cast<int>(std::min<size_t>(rest.size() - first, IOV_MAX));
        ssize_t n = io::pwritev(_fd, rest.data() + first, batch, static_cast<off_t>(position));
        if (n < 0 && errno != EINTR) throw_errno("pwritev " + _path);
        done = n > 0 ? static_cast<size_t>(n) : 0;
    }
}

void file_handle::pwrite_all(const void* data, uint64_t length, uint64_t position) {
    struct iovec v{const_cast<void*>(data), length};
    pwritev_all(&v, 1, position);
}

uint64_t file_handle::pread_some(void* data, uint64_t length, uint64_t position) const {
    uint64_t got = 0;
    while (got < length) {
        ssize_t n = ::pread(_fd, static_cast<char*>(data) + got, length - got, static_cast<off_t>(position + got));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("pread " + _path);
        }
        if (n == 0) break;
        got += static_cast<uint64_t>(n);
    }
    return got;
}

void file_handle::datasync() {
    if (io::fdatasync(_fd) != 0) throw_errno("fdatasync " + _path);
}

void file_handle::allocate(uint64_t position, uint64_t length) {
    int rc = io::fallocate(_fd, 0, static_cast<off_t>(position), static_cast<off_t>(length));
    if (rc == 0) return;
    int err = errno;
    if (err != EOPNOTSUPP && err != ENOSYS) throw_errno("fallocate " + _path, err);
    // File systems without fallocate: at least make the size stable for mappings.
    if (size() < position + length) truncate(position + length);
}

void file_handle::truncate(uint64_t length) {
    if (io::ftruncate(_fd, static_cast<off_t>(length)) != 0) throw_errno("ftruncate " + _path);
}

uint64_t file_handle::size() const {
    struct stat st;
    if (::fstat(_fd, &st) != 0) throw_errno("fstat " + _path);
    return static_cast<uint64_t>(st.st_size);
}

void file_handle::close() {
    if (_fd >= 0) {
        int fd = _fd;
        _fd = -1;
        if (::close(fd) != 0 && errno != EINTR) throw_errno("close " + _path);
    }
}

void fsync_directory(const std::string& path) {
    file_handle dir = file_handle::open(path, O_RDONLY | O_DIRECTORY);
    if (io::fsync(dir.fd()) != 0) throw_errno("fsync directory " + path);
}

void make_directories(const std::string& path) {
    std::string partial;
    size_t i = 0;
    while (i <= path.size()) {
        size_t slash = path.find('/', i);
        if (slash == std::string::npos) slash = path.size();
        partial = path.substr(0, slash);
        if (!partial.empty() && io::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
            throw_errno("mkdir " + partial);
        i = slash + 1;
    }
}

bool path_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

void remove_file(const std::string& path) {
    if (io::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink " + path);
}

void rename_file(const std::string& from, const std::string& to) {
    if (io::rename(from.c_str(), to.c_str()) != 0) throw_errno("rename " + from + " to " + to);
}

}  // namespace tidelog
