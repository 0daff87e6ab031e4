#pragma once
// A file opened (created when missing) only to carry OFD byte locks
// (ofd_lock.h), e.g. a members file whose byte n is the liveness lock of
// member slot n. The Python binding's OfdLock. Concurrency: one object is
// not thread-safe; its locks exclude every other open of the file, in this
// process or others, and die with it.
#include <fcntl.h>

#include <cstdint>
#include <string>

#include "file_handle.h"
#include "ofd_lock.h"

namespace tidelog {

class ofd_lock_file {
public:
    explicit ofd_lock_file(const std::string& path) : _file(file_handle::open(path, O_RDWR | O_CREAT)) {}
    /// False only when !wait and another open holds a conflicting lock.
    bool lock(uint64_t byte, bool exclusive, bool wait) {
        return ofd_lock(fd(), byte, exclusive ? ofd_lock_kind::exclusive : ofd_lock_kind::shared, wait);
    }
    void unlock(uint64_t byte) { ofd_lock(fd(), byte, ofd_lock_kind::unlock, false); }
    bool locked_elsewhere(uint64_t byte) { return ofd_locked_elsewhere(fd(), byte); }
    int fd() const { return _file.fd(); }
    bool is_open() const { return _file.is_open(); }
    void close() { _file.close(); }

private:
    file_handle _file;
};

}  // namespace tidelog
