#pragma once
// Wake-ups a thread owes, held back until it can let the woken run.
//
// A publish bumps a futex word and wakes the readers sleeping on it. The
// producer's latency path (linger_ms=0) publishes while it holds Python's GIL:
// a consumer thread woken there only blocks again on the GIL, and on a small
// machine a consumer process is often queued on the publisher's own core,
// where it waits until the publisher sleeps (measured on a 2-vCPU KVM guest:
// the blocked consumer got its record 16 us after send(), 10 us with the wake
// deferred and the CPU yielded). So that path defers: its bumps record the
// futex words, and once the GIL is released wake_deferred() wakes them and, if
// it woke anyone, yields the CPU so that a consumer queued here runs first.
//
// Concurrency: per thread (thread_local state); no locks. A futex word whose
// mapping went away before the wake (a log closed meanwhile) only makes the
// wake fail with EFAULT.
#include <cstdint>

namespace tidelog {

/// From now until wake_deferred(), this thread's wake_or_defer() calls record
/// their futex words instead of waking (nesting is not supported: a second
/// call keeps the words already recorded).
void defer_wakes() noexcept;

/// Wakes every waiter of the recorded words and stops deferring; if anyone
/// was woken and `yield_if_woken`, yields the CPU once (sched_yield). Returns
/// how many waiters were woken.
int wake_deferred(bool yield_if_woken) noexcept;

/// Whether this thread defers its wake-ups now (between defer_wakes() and
/// wake_deferred()).
bool deferring_wakes() noexcept;

/// Whether this thread recorded any futex word since defer_wakes() (when
/// not, wake_deferred() only stops deferring: no need to release a lock first).
bool wakes_pending() noexcept;

/// FUTEX_WAKE of every waiter of `word` (a shared mapping), or, while this
/// thread defers, a note to do it in wake_deferred(). Returns the waiters
/// woken now (0 when deferred).
int wake_or_defer(uint32_t* word) noexcept;

}  // namespace tidelog
