#include "shared_state.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "errors.h"
#include "file_handle.h"
#include "seqlock.h"  // cpu_relax
#include "wake_deferral.h"

namespace tidelog {

namespace {
constexpr uint32_t state_magic = 0x53464C54u;  // "TLFS"
constexpr uint32_t state_version = 2;  // 1: no coordination block (read the same)
constexpr uint64_t state_file_bytes = 4096;
}  // namespace

shared_state::shared_state(const std::string& path, bool writer) : _path(path) {
    if (!writer) {
        open_reader();
        return;
    }
    _file = file_handle::open(path, O_RDWR | O_CREAT);
    if (_file.size() < state_file_bytes) _file.truncate(state_file_bytes);
    void* p = ::mmap(nullptr, state_file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, _file.fd(), 0);
    if (p == MAP_FAILED) throw_errno("mmap " + path);
    _state = static_cast<shared_state_layout*>(p);
    uint32_t version = _state->version;
    if (_state->magic == state_magic && (version == 1 || version == state_version) && _state->visible_end >= 0 &&
        _state->start_offset >= 0 && _state->start_offset <= _state->visible_end) {
        _inherited_end = _state->visible_end;
        _inherited_start = _state->start_offset;
    }
}

void shared_state::claim(int64_t visible_end, int64_t start_offset, uint64_t visible_bytes) {
    _state->magic = state_magic;
    _state->version = state_version;
    _state->writer_pid = static_cast<int32_t>(::getpid());
    __atomic_store_n(&_state->start_offset, start_offset, __ATOMIC_RELEASE);
    __atomic_store_n(&_state->visible_bytes, visible_bytes, __ATOMIC_RELEASE);
    __atomic_store_n(&_state->visible_end, visible_end, __ATOMIC_RELEASE);
    bump();
}

void shared_state::open_reader() {
    try {
        file_handle f = file_handle::open(_path, O_RDWR);
        if (f.size() < state_file_bytes) return;
        void* p = ::mmap(nullptr, state_file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd(), 0);
        if (p == MAP_FAILED) throw_errno("mmap " + _path);
        _state = static_cast<shared_state_layout*>(p);
    } catch (const error& e) {
        if (e.code() != errc::not_found) throw;
    }
}

void shared_state::retry_open() {
    if (!_state) open_reader();
}

shared_state::~shared_state() {
    if (_state) ::munmap(_state, state_file_bytes);
}

int64_t shared_state::visible_end() const {
    return _state ? __atomic_load_n(&_state->visible_end, __ATOMIC_ACQUIRE) : 0;
}
int64_t shared_state::start_offset() const {
    return _state ? __atomic_load_n(&_state->start_offset, __ATOMIC_ACQUIRE) : 0;
}
uint32_t shared_state::sequence() const { return _state ? __atomic_load_n(&_state->sequence, __ATOMIC_ACQUIRE) : 0; }

uint64_t shared_state::visible_bytes() const {
    return _state ? __atomic_load_n(&_state->visible_bytes, __ATOMIC_ACQUIRE) : 0;
}

uint32_t shared_state::swap_count() const {
    return _state ? __atomic_load_n(&_state->swap_count, __ATOMIC_ACQUIRE) : 0;
}

void shared_state::note_swap() {
    if (!_state) return;
    __atomic_add_fetch(&_state->swap_count, 1, __ATOMIC_SEQ_CST);
    bump();
}

bool shared_state::publish(int64_t visible_end, uint64_t visible_bytes) {
    int64_t seen = __atomic_load_n(&_state->visible_end, __ATOMIC_ACQUIRE);
    do {
        if (visible_end <= seen) return false;
    } while (!__atomic_compare_exchange_n(&_state->visible_end, &seen, visible_end, true, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    __atomic_store_n(&_state->visible_bytes, visible_bytes, __ATOMIC_RELEASE);
    bump();
    return true;
}

void shared_state::publish_start(int64_t start_offset) {
    __atomic_store_n(&_state->start_offset, start_offset, __ATOMIC_RELEASE);
    bump();
}

void shared_state::bump() {
    if (!_state) return;
    __atomic_add_fetch(&_state->sequence, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&_state->waiters, __ATOMIC_SEQ_CST) != 0) wake_or_defer(&_state->sequence);
}

namespace {
int64_t monotonic_now_ns() {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}
}  // namespace

bool shared_state::spin_change(uint32_t seen, int64_t spin_ns) const {
    if (!_state) return false;
    const int64_t end = monotonic_now_ns() + spin_ns;
    while (true) {
        // The clock (a vDSO call, ~20 ns) only every 64 loads: a load is ~1 ns.
        for (int i = 0; i < 64; ++i) {
            if (__atomic_load_n(&_state->sequence, __ATOMIC_ACQUIRE) != seen) return true;
            cpu_relax();
        }
        if (monotonic_now_ns() >= end) return false;
    }
}

bool shared_state::wait_change(uint32_t seen, int64_t timeout_ns) const {
    if (!_state) return false;
    struct timespec deadline_ts, rel;
    struct timespec* timeout = nullptr;
    if (timeout_ns >= 0) {
        ::clock_gettime(CLOCK_MONOTONIC, &deadline_ts);
        int64_t end = deadline_ts.tv_sec * 1'000'000'000LL + deadline_ts.tv_nsec + timeout_ns;
        deadline_ts.tv_sec = end / 1'000'000'000LL;
        deadline_ts.tv_nsec = end % 1'000'000'000LL;
    }
    __atomic_add_fetch(&_state->waiters, 1, __ATOMIC_SEQ_CST);
    bool changed = true;
    while (__atomic_load_n(&_state->sequence, __ATOMIC_SEQ_CST) == seen) {
        if (timeout_ns >= 0) {
            struct timespec now;
            ::clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t left = (deadline_ts.tv_sec - now.tv_sec) * 1'000'000'000LL + (deadline_ts.tv_nsec - now.tv_nsec);
            if (left <= 0) {
                changed = false;
                break;
            }
            rel.tv_sec = left / 1'000'000'000LL;
            rel.tv_nsec = left % 1'000'000'000LL;
            timeout = &rel;
        }
        long rc = ::syscall(SYS_futex, &_state->sequence, FUTEX_WAIT, seen, timeout, nullptr, 0);
        if (rc != 0 && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) break;
    }
    __atomic_sub_fetch(&_state->waiters, 1, __ATOMIC_SEQ_CST);
    return changed;
}

}  // namespace tidelog
