#include "log_core.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <ctime>

#include "errors.h"

namespace tidelog {

log_core::log_core(const std::string& path, bool read_only, bool exclusive) : _path(path), _read_only(read_only) {
    if (read_only) {
        if (!path_exists(path)) throw error(errc::not_found, "no log at " + path);
        _notifier = std::make_unique<shared_state>(path + "/notify", false);
        return;
    }
    make_directories(path);
    _session = std::make_unique<log_session>(path, exclusive);
    _was_clean = _session->was_clean();
    _notifier = std::make_unique<shared_state>(path + "/notify", true);
    _housekeeper = std::make_unique<housekeeper>();
    _committer = std::make_unique<committer>(_housekeeper.get(), _session.get());
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

bool log_core::spin_notify(uint32_t seen, int64_t spin_ns) {
    if (!_notifier->available()) return wait_notify(seen, spin_ns);  // (polls for the file at a coarse pace)
    return _notifier->spin_change(seen, spin_ns);
}

log_core::~log_core() {
    try {
        close();
    } catch (...) {
    }
}

std::unique_ptr<partition> log_core::open_partition(const std::string& dir, const partition_config& config) {
    if (_closed) throw error(errc::closed, "log is closed: " + _path);
    if (_read_only) return std::make_unique<partition>(nullptr, dir, config, nullptr, _notifier.get());
    partition::session_info session{_session->epoch(), _session->was_clean()};
    return std::make_unique<partition>(_committer.get(), dir, config, &session, _notifier.get());
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
        _committer->stop();  // no clean-shutdown marker: the next session recovers
        _housekeeper->stop();
        _session->abandon();
        throw;
    }
    _committer->stop();
    // Partitions closed by now took their tasks with them (each close writes
    // its final checkpoint itself); this only ends the thread.
    _housekeeper->stop();
    _session->close(true);
}

}  // namespace tidelog
