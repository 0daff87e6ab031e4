#include "wake_deferral.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

namespace tidelog {

namespace {

// A direct append publishes one partition: its state word and the log-wide
// notifier. More than this many distinct words are woken at once instead.
constexpr int max_deferred_words = 8;

struct deferred_words {
    bool deferring = false;
    int count = 0;
    uint32_t* words[max_deferred_words];
};

thread_local deferred_words deferred;

int futex_wake_all(uint32_t* word) noexcept {
    long woken = ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
    return woken > 0 ? static_cast<int>(woken) : 0;
}

}  // namespace

void defer_wakes() noexcept { deferred.deferring = true; }

bool deferring_wakes() noexcept { return deferred.deferring; }

bool wakes_pending() noexcept { return deferred.count > 0; }

int wake_or_defer(uint32_t* word) noexcept {
    deferred_words& d = deferred;
    if (d.deferring) {
        for (int i = 0; i < d.count; ++i)
            if (d.words[i] == word) return 0;
        if (d.count < max_deferred_words) {
            d.words[d.count++] = word;
            return 0;
        }
    }
    return futex_wake_all(word);
}

int wake_deferred(bool yield_if_woken) noexcept {
    deferred_words& d = deferred;
    int woken = 0;
    for (int i = 0; i < d.count; ++i) woken += futex_wake_all(d.words[i]);
    d.count = 0;
    d.deferring = false;
    if (woken > 0 && yield_if_woken) ::sched_yield();
    return woken;
}

}  // namespace tidelog
