#pragma once
// RAII file descriptor with the few system calls the log needs, each turning a
// failure into tidelog::error. Every call that changes the file system goes
// through tidelog::io (file_io.h), so test builds can simulate power loss. Not thread-safe by itself except for pread/pwrite
// at distinct positions and datasync, which the kernel serializes.
#include <sys/uio.h>

#include <cstdint>
#include <string>

namespace tidelog {

class file_handle {
public:
    file_handle() = default;
    file_handle(int fd, std::string path) : _fd(fd), _path(std::move(path)) {}
    ~file_handle();
    file_handle(const file_handle&) = delete;
    file_handle& operator=(const file_handle&) = delete;
    file_handle(file_handle&& o) noexcept : _fd(o._fd), _path(std::move(o._path)) { o._fd = -1; }
    file_handle& operator=(file_handle&& o) noexcept;

    /// flags as for open(2); throws errc::not_found for ENOENT.
    static file_handle open(const std::string& path, int flags, int mode = 0644);

    int fd() const { return _fd; }
    const std::string& path() const { return _path; }
    bool is_open() const { return _fd >= 0; }

    void pwritev_all(const struct iovec* iov, int count, uint64_t position);
    void pwrite_all(const void* data, uint64_t length, uint64_t position);
    /// Reads up to length bytes; returns how many (short only at end of file).
    uint64_t pread_some(void* data, uint64_t length, uint64_t position) const;
    void datasync();
    /// Reserves [position, position+length) on disk and extends the file size over it.
    void allocate(uint64_t position, uint64_t length);
    void truncate(uint64_t length);
    uint64_t size() const;
    void close();

private:
    int _fd = -1;
    std::string _path;
};

/// fsync on a directory, so that created, renamed and deleted names are durable.
void fsync_directory(const std::string& path);
/// mkdir -p.
void make_directories(const std::string& path);
bool path_exists(const std::string& path);
void remove_file(const std::string& path);
/// rename(2); the caller fsyncs the folder(s) when the new name must be durable.
void rename_file(const std::string& from, const std::string& to);

}  // namespace tidelog
