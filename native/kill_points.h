#pragma once
// Test hooks: named places inside the locked sections of the read-write path
// where a test can make the process die (SIGKILL itself), to check that the
// other handles repair what it leaves and carry on. Armed only by the
// environment of a process at its start:
//   TIDELOG_TEST_KILL_AT=<name>[:<n>]   die the n-th time (default 1) <name> is passed
// Unarmed (always, outside tests), a kill point costs one predictable branch on
// a flag read once at load. The names are listed in docs/ARCHITECTURE.md
// ("Kill points") and exercised by tests/test_kill_points.py.
#include <sys/uio.h>

#include <cstdint>

namespace tidelog {

extern const bool kill_points_armed;
/// Dies here (SIGKILL) if armed for `name` and its count is reached.
void kill_point_slow(const char* name);
inline void kill_point(const char* name) {
    if (__builtin_expect(kill_points_armed, false)) kill_point_slow(name);
}
/// Whether a kill point would die here (the caller then does part of its work
/// first, e.g. half a write, and calls kill_now()).
bool kill_point_due(const char* name);
[[noreturn]] void kill_now();

}  // namespace tidelog
