// System calls whose glibc wrappers are newer than the oldest glibc the wheels
// support (manylinux_2_17: glibc 2.17). getrandom() came in glibc 2.25 and
// gettid() in 2.30; calling them through syscall(2) keeps the same kernel
// feature on every glibc instead of raising the wheel's glibc floor.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

namespace tidelog::linux_syscall {

/// The calling thread's kernel thread id (what robust futex words hold).
inline pid_t gettid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

/// getrandom(2): bytes written, or -1 with errno (ENOSYS on kernels before 3.17).
inline ssize_t getrandom(void* buffer, size_t length, unsigned int flags) {
    return static_cast<ssize_t>(::syscall(SYS_getrandom, buffer, length, flags));
}

}  // namespace tidelog::linux_syscall
