#pragma once
// The native core's file-system *mutations*, behind one narrow, syscall-shaped
// interface (same arguments, same -1/errno convention as the system calls).
//
// Every call in the core that changes files or names on disk goes through
// tidelog::io (only file_handle.cpp calls it): open (O_CREAT/O_TRUNC), pwritev,
// fdatasync, fsync (directories), fallocate, ftruncate, mkdir, unlink, rename.
// Reads (pread, mmap, fstat, stat, readdir) and flock are not part of it: they
// observe the live state (the page cache), which is the real file.
//
// Production builds: each function is an inline forward to the system call, so
// the interface costs nothing. Builds with TIDELOG_IO_HOOKS defined (the native
// test suite: CMake option TIDELOG_IO_HOOKS, ON with TIDELOG_BUILD_TESTS) check a
// global table of function pointers first; a test installs one to simulate power
// loss (native/testing/sim_file_io.h) or inject I/O errors. With no table installed the
// hooked build behaves exactly as the production one.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>

#ifdef TIDELOG_IO_HOOKS
#include <atomic>
#endif

namespace tidelog {
namespace io {

/// A replacement for the system calls below; every member must be set.
struct hooks {
    int (*open)(const char* path, int flags, mode_t mode);
    ssize_t (*pwritev)(int fd, const struct iovec* iov, int count, off_t position);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*fallocate)(int fd, int mode, off_t position, off_t length);
    int (*ftruncate)(int fd, off_t length);
    int (*mkdir)(const char* path, mode_t mode);
    int (*unlink)(const char* path);
    int (*rename)(const char* from, const char* to);
};

#ifdef TIDELOG_IO_HOOKS
/// The installed table (null: the real system calls). Defined in file_handle.cpp.
extern std::atomic<const hooks*> installed_hooks;
/// Installs h (null restores the system calls); returns the previous table.
/// Install before the core opens any file, uninstall after it closed them all.
const hooks* install_hooks(const hooks* h);
#define TIDELOG_IO_FORWARD(name, ...)                                              \
    do {                                                                           \
        if (const hooks* h_ = installed_hooks.load(std::memory_order_acquire))     \
            return h_->name(__VA_ARGS__);                                          \
    } while (0)
#else
#define TIDELOG_IO_FORWARD(name, ...) \
    do {                              \
    } while (0)
#endif

inline int open(const char* path, int flags, mode_t mode) {
    TIDELOG_IO_FORWARD(open, path, flags, mode);
    return ::open(path, flags, mode);
}
inline ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t position) {
    TIDELOG_IO_FORWARD(pwritev, fd, iov, count, position);
    return ::pwritev(fd, iov, count, position);
}
inline int fdatasync(int fd) {
    TIDELOG_IO_FORWARD(fdatasync, fd);
    return ::fdatasync(fd);
}
inline int fsync(int fd) {
    TIDELOG_IO_FORWARD(fsync, fd);
    return ::fsync(fd);
}
inline int fallocate(int fd, int mode, off_t position, off_t length) {
    TIDELOG_IO_FORWARD(fallocate, fd, mode, position, length);
    return ::fallocate(fd, mode, position, length);
}
inline int ftruncate(int fd, off_t length) {
    TIDELOG_IO_FORWARD(ftruncate, fd, length);
    return ::ftruncate(fd, length);
}
inline int mkdir(const char* path, mode_t mode) {
    TIDELOG_IO_FORWARD(mkdir, path, mode);
    return ::mkdir(path, mode);
}
inline int unlink(const char* path) {
    TIDELOG_IO_FORWARD(unlink, path);
    return ::unlink(path);
}
inline int rename(const char* from, const char* to) {
    TIDELOG_IO_FORWARD(rename, from, to);
    return ::rename(from, to);
}

#undef TIDELOG_IO_FORWARD

}  // namespace io
}  // namespace tidelog
