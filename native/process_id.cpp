#include "process_id.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace tidelog {
namespace {

std::atomic<pid_t> cached_pid{0};
std::once_flag fork_handler_registered;

void refresh_after_fork() { cached_pid.store(::getpid(), std::memory_order_relaxed); }

}  // namespace

pid_t current_pid() {
    pid_t pid = cached_pid.load(std::memory_order_relaxed);
    if (pid != 0) return pid;
    // Registered before the first store: from then on every fork's child
    // overwrites the value it inherited.
    std::call_once(fork_handler_registered, [] { ::pthread_atfork(nullptr, nullptr, refresh_after_fork); });
    pid = ::getpid();
    cached_pid.store(pid, std::memory_order_relaxed);
    return pid;
}

}  // namespace tidelog
