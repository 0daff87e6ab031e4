#include "log_core.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <ctime>

#include "errors.h"

namespace tidelog {

log_core::log_core(const std::string& path, bool read_only) : _path(path), _read_only(read_only) {
    if (read_only) {
        if (!path_exists(path)) throw error(errc::not_found, "no log at " + path);
        _notifier = std::make_unique<shared_state>(path + "/notify", false);
        return;
    }
    make_directories(path);
    _lock = file_handle::open(path + "/LOCK", O_RDWR | O_CREAT);
    if (::flock(_lock.fd(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) throw_errno("flock " + path + "/LOCK");
        char buf[32] = {};
        _lock.pread_some(buf, sizeof buf - 1, 0);
        throw error(errc::locked, std::string(buf));
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    _lock.truncate(0);
    _lock.pwrite_all(pid.data(), pid.size(), 0);

    std::string marker = path + "/clean-shutdown";
    bool fresh = !path_exists(path + "/topics");
    _was_clean = fresh || path_exists(marker);
    if (path_exists(marker)) {
        remove_file(marker);
    }
    make_directories(path + "/topics");
    fsync_directory(path);
    _notifier = std::make_unique<shared_state>(path + "/notify", true);
    _housekeeper = std::make_unique<housekeeper>();
    _committer = std::make_unique<committer>(_housekeeper.get());
}

bool log_core::wait_notify(uint32_t seen, int64_t timeout_ns) {
    if (!_notifier->available()) {
        // A reader that opened before any writer: poll for the file at a coarse pace.
        _notifier->retry_open();
        if (!_notifier->available()) {
            struct timespec ts{0, 10'000'000};
            ::nanosleep(&ts, nullptr);
            return false;
        }
        return true;
    }
    return _notifier->wait_change(seen, timeout_ns);
}

log_core::~log_core() {
    try {
        close();
    } catch (...) {
    }
}

std::unique_ptr<partition> log_core::open_partition(const std::string& dir, const partition_config& config) {
    if (_closed) throw error(errc::closed, "log is closed: " + _path);
    return std::make_unique<partition>(_committer.get(), dir, config, _read_only, _was_clean, _notifier.get());
}

void log_core::flush_all() {
    if (_committer) _committer->flush_all();
}

void log_core::close() {
    if (_closed) return;
    _closed = true;
    if (_read_only) return;
    try {
        _committer->flush_all();
    } catch (...) {
        _committer->stop();  // no clean-shutdown marker: the next open recovers
        _housekeeper->stop();
        _lock.close();
        throw;
    }
    _committer->stop();
    // Partitions closed by now took their tasks with them (each close writes
    // its final checkpoint itself); this only ends the thread.
    _housekeeper->stop();
    file_handle marker = file_handle::open(_path + "/clean-shutdown", O_WRONLY | O_CREAT | O_TRUNC);
    marker.datasync();
    marker.close();
    fsync_directory(_path);
    _lock.close();  // releases the flock
}

}  // namespace tidelog
