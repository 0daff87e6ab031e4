#include "ofd_lock.h"

#include <fcntl.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace tidelog {

bool ofd_lock(int fd, uint64_t byte, ofd_lock_kind kind, bool wait) {
    struct flock fl = {};
    fl.l_type = kind == ofd_lock_kind::shared ? F_RDLCK : kind == ofd_lock_kind::exclusive ? F_WRLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(byte);
    fl.l_len = 1;
    while (::fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0) {
        if (errno == EINTR) continue;
        if (!wait && (errno == EAGAIN || errno == EACCES)) return false;
        throw_errno("fcntl(F_OFD_SETLK" + std::string(wait ? "W" : "") + ")");
    }
    return true;
}

bool ofd_locked_elsewhere(int fd, uint64_t byte) {
    struct flock probe = {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = static_cast<off_t>(byte);
    probe.l_len = 1;
    return ::fcntl(fd, F_OFD_GETLK, &probe) != 0 || probe.l_type != F_UNLCK;
}

}  // namespace tidelog
