// The calling process's id without a system call per use.
//
// glibc stopped caching getpid() in 2.25, and every append stamps the writer's
// pid into its append intent: a system call there cost ~0.15 us, about 5 % of a
// one-record send. The cached id is refreshed in the child of every fork() by a
// pthread_atfork handler, registered before the first id is cached, so a forked
// child (os.fork, multiprocessing's "fork" start method) never reports its
// parent's id. Thread-safe: a relaxed atomic load on the hot path.
#pragma once

#include <sys/types.h>

namespace tidelog {

/// getpid(), cached; correct after fork().
pid_t current_pid();

}  // namespace tidelog
