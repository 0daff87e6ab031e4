#include "log_session.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "kill_points.h"
#include "linux_syscalls.h"
#include "ofd_lock.h"

namespace tidelog {

namespace {
constexpr uint32_t shm_magic = 0x48534C54u;  // "TLSH"
constexpr uint32_t shm_version = 1;
constexpr uint32_t shm_ready = 2;
constexpr uint64_t dead_man_byte = 1;   // shared by every live handle
constexpr uint64_t transition_byte = 2;  // exclusive while opening or closing
constexpr uint32_t flag_was_clean = 1;
constexpr uint64_t first_slot_byte = 4096;  // slot i's liveness: byte 4096 + i of LOCK

uint32_t abi_tag() { return static_cast<uint32_t>(sizeof(pthread_mutex_t)) | uint32_t(sizeof(void*)) << 8; }

uint64_t random_epoch() {
    uint64_t e = 0;
    while (e == 0) {
        if (linux_syscall::getrandom(&e, sizeof e, 0) != static_cast<ssize_t>(sizeof e)) {
            e = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                (uint64_t(::getpid()) << 32);
        }
    }
    return e;
}

std::string pid_list(const std::vector<int>& pids) {
    std::string s;
    for (int p : pids) s += (s.empty() ? "" : ", ") + std::to_string(p);
    return s.empty() ? "unknown" : s;
}
}  // namespace

std::vector<int> flock_holders(int fd) {
    std::vector<int> pids;
    struct stat st;
    if (::fstat(fd, &st) != 0) return pids;
    std::ifstream in("/proc/locks");
    std::string line;
    while (std::getline(in, line)) {
        if (line.find("->") != std::string::npos || line.find("FLOCK") == std::string::npos) continue;
        std::istringstream fields(line);
        std::string id, type, advisory, mode, pid, where;
        fields >> id >> type >> advisory >> mode >> pid >> where;
        size_t last = where.rfind(':');
        if (last == std::string::npos) continue;
        if (std::strtoull(where.c_str() + last + 1, nullptr, 10) != st.st_ino) continue;
        int p = std::atoi(pid.c_str());
        if (p > 0 && std::find(pids.begin(), pids.end(), p) == pids.end()) pids.push_back(p);
    }
    return pids;
}

void remove_tree(const std::string& path) {
    if (!path_exists(path)) return;
    auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) -> int { return ::remove(p) == 0 || errno == ENOENT ? 0 : -1; };
    if (::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) throw_errno("remove " + path);
}

log_session::log_session(const std::string& path, bool exclusive) : _path(path) {
    _lock = file_handle::open(path + "/LOCK", O_RDWR | O_CREAT);
    if (::flock(_lock.fd(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) throw_errno("flock " + path + "/LOCK");
        std::vector<int> holders = flock_holders(_lock.fd());
        if (holders.empty()) {  // /proc/locks unreadable: the pid an exclusive holder wrote
            char buf[32] = {};
            _lock.pread_some(buf, sizeof buf - 1, 0);
            if (int pid = std::atoi(buf); pid > 0) holders.push_back(pid);
        }
        std::string ids;
        for (int p : holders) ids += (ids.empty() ? "" : ",") + std::to_string(p);
        std::string who = exclusive ? "open read-write by other handles (pids " + pid_list(holders) +
                                          "): an exclusive open needs it alone"
                                    : "open exclusively by pid " + pid_list(holders) +
                                          " (or by an older tidelog writer)";
        // First line: the holders, for tidelog.errors (LogLockedError.pids).
        throw error(errc::locked, "pids=" + ids + "\nthe log " + path + " is " + who);
    }
    ofd_lock(_lock.fd(), transition_byte, ofd_lock_kind::exclusive, true);
    try {
        if (ofd_lock(_lock.fd(), dead_man_byte, ofd_lock_kind::exclusive, false))
            start_session();
        else
            join_session();
        __atomic_add_fetch(&_shm->open_handles, 1, __ATOMIC_SEQ_CST);
        claim_slot();
        if (exclusive) {
            std::string pid = std::to_string(::getpid()) + "\n";
            _lock.truncate(0);
            _lock.pwrite_all(pid.data(), pid.size(), 0);
        }
    } catch (...) {
        if (_shm) ::munmap(_shm, sizeof(log_shm_layout));
        _shm = nullptr;
        _lock.close();  // releases every lock of this description
        throw;
    }
    ofd_lock(_lock.fd(), transition_byte, ofd_lock_kind::unlock, true);
}

void log_session::start_session() {
    // No other handle is live: the shared memory is this session's to define.
    file_handle f = file_handle::open(_path + "/shm", O_RDWR | O_CREAT);
    if (f.size() < sizeof(log_shm_layout)) f.truncate(sizeof(log_shm_layout));
    void* p = ::mmap(nullptr, sizeof(log_shm_layout), PROT_READ | PROT_WRITE, MAP_SHARED, f.fd(), 0);
    if (p == MAP_FAILED) throw_errno("mmap " + _path + "/shm");
    _shm = static_cast<log_shm_layout*>(p);
    __atomic_store_n(&_shm->init_state, 1u, __ATOMIC_RELEASE);
    kill_point("open.epoch");
    std::memset(reinterpret_cast<uint8_t*>(_shm) + 16, 0, sizeof(log_shm_layout) - 16);
    shared_mutex::init(_shm->flush_lock);

    std::string marker = _path + "/clean-shutdown";
    bool fresh = !path_exists(_path + "/topics");
    _was_clean = fresh || path_exists(marker);
    if (path_exists(marker)) remove_file(marker);
    // Topics half created or half deleted by the previous session (Log.create_topic).
    remove_tree(_path + "/trash");
    make_directories(_path + "/topics");
    fsync_directory(_path);

    _shm->magic = shm_magic;
    _shm->version = shm_version;
    _shm->abi_tag = abi_tag();
    _shm->epoch = random_epoch();
    _shm->first_opener_pid = static_cast<int32_t>(::getpid());
    _shm->flags = _was_clean ? flag_was_clean : 0;
    _shm->session_start_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    __atomic_store_n(&_shm->init_state, shm_ready, __ATOMIC_RELEASE);
    ofd_lock(_lock.fd(), dead_man_byte, ofd_lock_kind::shared, true);  // atomic conversion
}

void log_session::join_session() {
    ofd_lock(_lock.fd(), dead_man_byte, ofd_lock_kind::shared, true);
    file_handle f = file_handle::open(_path + "/shm", O_RDWR);
    if (f.size() < sizeof(log_shm_layout))
        throw error(errc::locked, "pids=\nthe log " + _path + " is open by other handles whose shared state is unreadable (pids " +
                                      pid_list(flock_holders(_lock.fd())) + "); close them first");
    void* p = ::mmap(nullptr, sizeof(log_shm_layout), PROT_READ | PROT_WRITE, MAP_SHARED, f.fd(), 0);
    if (p == MAP_FAILED) throw_errno("mmap " + _path + "/shm");
    _shm = static_cast<log_shm_layout*>(p);
    if (_shm->magic != shm_magic || _shm->version != shm_version || _shm->abi_tag != abi_tag() ||
        __atomic_load_n(&_shm->init_state, __ATOMIC_ACQUIRE) != shm_ready)
        throw error(errc::locked, "pids=\nthe log " + _path + " is open by tidelog handles with an incompatible shared state (version " +
                                      std::to_string(_shm->version) + ", ABI " + std::to_string(_shm->abi_tag) +
                                      "; pids " + pid_list(flock_holders(_lock.fd())) + "); close them first");
    _was_clean = (_shm->flags & flag_was_clean) != 0;
}

void log_session::claim_slot() {
    // Under the transition lock: one claimer at a time. A slot is free when
    // unused, or when its liveness byte is unlocked (its handle died).
    for (int i = 0; i < 256; ++i) {
        if (__atomic_load_n(&_shm->slots[i].state, __ATOMIC_ACQUIRE) == 1 &&
            ofd_locked_elsewhere(_lock.fd(), first_slot_byte + i))
            continue;  // alive
        if (!ofd_lock(_lock.fd(), first_slot_byte + i, ofd_lock_kind::exclusive, false)) continue;
        _shm->slots[i].pid = static_cast<int32_t>(::getpid());
        __atomic_store_n(&_shm->slots[i].in_flight, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&_shm->slots[i].state, 1u, __ATOMIC_RELEASE);
        _slot = i;
        return;
    }
}

int log_session::others_in_flight() const {
    int total = 0;
    for (int i = 0; i < 256; ++i) {
        if (i == _slot || __atomic_load_n(&_shm->slots[i].state, __ATOMIC_ACQUIRE) != 1) continue;
        int n = __atomic_load_n(&_shm->slots[i].in_flight, __ATOMIC_RELAXED);
        if (n <= 0) continue;
        // Unlocked: the handle died, its count is void.
        if (ofd_locked_elsewhere(_lock.fd(), first_slot_byte + i)) total += n;
    }
    return total;
}

void log_session::flush_done() {
    __atomic_add_fetch(&_shm->flush_generation, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&_shm->flush_waiters, __ATOMIC_SEQ_CST) != 0)
        ::syscall(SYS_futex, &_shm->flush_generation, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

void log_session::wait_flush(uint32_t seen, int64_t timeout_ns) {
    struct timespec t{static_cast<time_t>(timeout_ns / 1'000'000'000), static_cast<long>(timeout_ns % 1'000'000'000)};
    __atomic_add_fetch(&_shm->flush_waiters, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&_shm->flush_generation, __ATOMIC_SEQ_CST) == seen)
        ::syscall(SYS_futex, &_shm->flush_generation, FUTEX_WAIT, seen, &t, nullptr, 0);
    __atomic_sub_fetch(&_shm->flush_waiters, 1, __ATOMIC_SEQ_CST);
}

void log_session::close(bool clean) {
    if (_closed) return;
    _closed = true;
    ofd_lock(_lock.fd(), transition_byte, ofd_lock_kind::exclusive, true);
    if (_slot >= 0) {
        __atomic_store_n(&_shm->slots[_slot].in_flight, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&_shm->slots[_slot].state, 0u, __ATOMIC_RELEASE);
    }
    int32_t left = clean ? __atomic_sub_fetch(&_shm->open_handles, 1, __ATOMIC_SEQ_CST)
                         : __atomic_load_n(&_shm->open_handles, __ATOMIC_SEQ_CST);
    bool last = ofd_lock(_lock.fd(), dead_man_byte, ofd_lock_kind::exclusive, false);
    auto release = [this] {
        ::munmap(_shm, sizeof(log_shm_layout));
        _shm = nullptr;
        _lock.close();  // releases the flock and the OFD locks
    };
    if (last && clean && left == 0) {
        // Every handle of the session closed cleanly (each partition's last
        // closer trimmed and synced it): the next session may trust the files.
        try {
            file_handle marker = file_handle::open(_path + "/clean-shutdown", O_WRONLY | O_CREAT | O_TRUNC);
            marker.datasync();
            marker.close();
            fsync_directory(_path);
        } catch (const error& e) {
            // The log's folder was deleted while it was open (a temporary
            // directory removed before its log was closed): no session follows
            // to read the marker, and the close itself has succeeded.
            if (e.code() != errc::not_found) {
                release();
                throw;
            }
        } catch (...) {
            release();
            throw;
        }
    }
    release();
}

void log_session::abandon() {
    if (_closed) return;
    _closed = true;
    if (_shm) ::munmap(_shm, sizeof(log_shm_layout));
    _shm = nullptr;
    _lock.close();
}

log_session::~log_session() { abandon(); }

}  // namespace tidelog
