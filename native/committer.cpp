#include "committer.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <optional>

#include "errors.h"
#include "kill_points.h"
#include "partition.h"
#include "segment.h"
#include "units.h"

namespace tidelog {

namespace {
/// How often a partition's recovery checkpoint may be rewritten (FORMAT.md §8:
/// recovery re-checks only what lies past it) and its retention applied.
constexpr int64_t housekeeping_interval_ns = 1'000'000'000;
/// Default upper bound on how long a flush waits for announced appenders to join
/// it (TIDELOG_GATHER_US overrides it, for tuning; see docs/contributing/performance-notes.md).
constexpr int64_t default_max_gather_ns = 1'000'000;

int64_t configured_max_gather_ns() {
    const char* us = std::getenv("TIDELOG_GATHER_US");
    if (!us || !*us) return default_max_gather_ns;
    char* end = nullptr;
    long long v = std::strtoll(us, &end, 10);
    return (*end || v < 0 || v > 100'000) ? default_max_gather_ns : v * 1000;
}
/// How often a flush that waits for other processes' appenders looks at their
/// counts (their appends do not wake this process's flusher).
constexpr int64_t cross_process_poll_ns = 20'000;
/// At most this many fdatasyncs run at once in one flush.
constexpr size_t max_parallel_syncs = 8;
}


committer::committer(housekeeper* h, log_session* session)
    : _housekeeper(h), _session(session), _max_gather_ns(configured_max_gather_ns()) {
    _thread = std::thread([this] { run(); });
}

committer::~committer() { stop(); }

void committer::stop() {
    {
        std::lock_guard<std::mutex> g(_mu);
        if (_stop) {
            if (!_thread.joinable()) return;
        }
        _stop = true;
    }
    _flusher_cv.notify_all();
    if (_thread.joinable()) _thread.join();
}

void committer::register_partition(partition* p) {
    partition_tasks tasks;
    if (_housekeeper) {
        // The checkpoint: only after a flush moved the durable point, at most
        // once an interval (write_checkpoint syncs indexes and stores a file).
        tasks.checkpoint = _housekeeper->add_task(
            {"checkpoint " + p->dir(), housekeeping_interval_ns, housekeeping_task::schedule::when_triggered, [this, p] {
                 if (p->write_checkpoint()) _checkpoints.fetch_add(1, std::memory_order_relaxed);
             }});
        // Retention by time needs the clock, not a trigger. Every writer gets
        // the task: set_retention() may give a partition limits later (a
        // pass without limits returns at once).
        if (!p->read_only())
            tasks.retention = _housekeeper->add_task({"retention " + p->dir(), housekeeping_interval_ns,
                                                      housekeeping_task::schedule::periodic,
                                                      [p] { p->enforce_retention(); }});
    }
    std::lock_guard<std::mutex> g(_mu);
    _partitions[p] = tasks;
}

void committer::unregister_partition(partition* p) {
    partition_tasks tasks;
    {
        std::unique_lock<std::mutex> lk(_mu);
        _waiters_cv.wait(lk, [&] { return !_busy; });
        auto it = _partitions.find(p);
        if (it != _partitions.end()) {
            tasks = it->second;
            _partitions.erase(it);
        }
        _pending.erase(p);
    }
    // Outside _mu: removing waits for a run in progress, which may take p's
    // mutexes (and p's appenders may hold one while calling note_written).
    if (_housekeeper) {
        _housekeeper->remove_task(tasks.checkpoint);
        _housekeeper->remove_task(tasks.retention);
    }
}

uint64_t committer::note_written(partition* p, std::shared_ptr<segment> seg, const recovery_point& point,
                                 int64_t deadline_ns) {
    std::lock_guard<std::mutex> g(_mu);
    if (!_failure.empty()) throw error(errc::io_error, "log unusable after a failed fdatasync: " + _failure);
    if (_stop) throw error(errc::closed, "the log is closed");
    if (deadline_ns != no_deadline && !_deadline_pending) {
        _oldest_pending_ns = monotonic_ns();
        _deadline_pending = true;
    }
    auto [it, fresh] = _pending.try_emplace(p);
    pending_flush& e = it->second;
    if (e.segments.empty() || e.segments.back() != seg) e.segments.push_back(std::move(seg));
    e.point = point;
    int64_t earlier = fresh ? INT64_MAX : e.deadline_ns;
    e.deadline_ns = std::min(earlier, deadline_ns);
    uint64_t ticket = ++_written;
    // Wake the flusher only when this moves a deadline earlier: a "none" append
    // (no deadline) or a later interval deadline changes nothing for it.
    if (deadline_ns < earlier && !_busy) _flusher_cv.notify_one();
    return ticket;
}

void committer::retract() {
    _in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (_session) _session->add_in_flight(-1);
    std::lock_guard<std::mutex> g(_mu);
    _flusher_cv.notify_one();
}

void committer::wait_durable(uint64_t ticket, bool announced, bool (*interrupted)(void*), void* interrupted_arg) {
    std::unique_lock<std::mutex> lk(_mu);
    if (announced) {
        _in_flight.fetch_sub(1, std::memory_order_relaxed);
        if (_session) _session->add_in_flight(-1);
    }
    _durable_waits.fetch_add(1, std::memory_order_relaxed);
    if (_durable >= ticket) {
        if (announced) _flusher_cv.notify_one();
        return;
    }
    if (!_failure.empty()) throw error(errc::io_error, "fdatasync failed; the append is not durable: " + _failure);
    ++_sync_waiters;  // the flusher takes it back when it releases this waiter
    // Wake the flusher only if this waiter changes its decision: while it
    // flushes it looks again afterwards anyway, and while it gathers it waits
    // for the last of the appenders it counted (each wake-up is a context
    // switch on a machine whose cores the appenders need).
    if (!_busy && (_gather_target < 0 || _sync_waiters >= _gather_target)) _flusher_cv.notify_one();
    // Each waiter sleeps on its own futex word and is woken only by the flush
    // that covers it: no thundering herd of uncovered waiters per flush, and no
    // queue for _mu on the way out.
    durable_waiter self{ticket};
    _durable_waiters.push_back(&self);
    lk.unlock();
    uint32_t state;
    struct timespec slice{0, 50'000'000};
    while ((state = self.state.load(std::memory_order_acquire)) == durable_waiter::waiting) {
        ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&self.state), FUTEX_WAIT_PRIVATE, durable_waiter::waiting,
                  interrupted ? &slice : nullptr, nullptr, 0);
        if (!interrupted || self.state.load(std::memory_order_acquire) != durable_waiter::waiting ||
            !interrupted(interrupted_arg))
            continue;
        // Leave only while the flusher has not taken this waiter: once it has,
        // it releases it (outside _mu) in a moment, and the waiter lives on this stack.
        lk.lock();
        auto it = std::find(_durable_waiters.begin(), _durable_waiters.end(), &self);
        if (it != _durable_waiters.end()) {
            _durable_waiters.erase(it);
            --_sync_waiters;
            throw error(errc::interrupted, "interrupted while waiting for durability");
        }
        lk.unlock();
    }
    if (state == durable_waiter::failed) {
        lk.lock();
        throw error(errc::io_error, "fdatasync failed; the append is not durable: " + _failure);
    }
}

void committer::release(durable_waiter* w, uint32_t outcome) {
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word");
    uint32_t* word = reinterpret_cast<uint32_t*>(&w->state);
    w->state.store(outcome, std::memory_order_release);
    // w may be gone from here on (its thread saw the store): only its address is used.
    ::syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void committer::flush_all() {
    std::unique_lock<std::mutex> lk(_mu);
    if (_stop) return;
    uint64_t want = _full_started + 1;
    _full_wanted = std::max(_full_wanted, want);
    _flusher_cv.notify_one();
    _waiters_cv.wait(lk, [&] { return _full_done >= want || !_failure.empty() || _stop; });
    if (!_failure.empty()) throw error(errc::io_error, "fdatasync failed: " + _failure);
}

void committer::count_append(uint64_t frames, uint64_t bytes) {
    _appends.fetch_add(1, std::memory_order_relaxed);
    _frames.fetch_add(frames, std::memory_order_relaxed);
    _bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void committer::count_segment_deleted() { _segments_deleted.fetch_add(1, std::memory_order_relaxed); }

committer_stats committer::stats() const {
    committer_stats s;
    s.appends = _appends.load();
    s.frames = _frames.load();
    s.bytes = _bytes.load();
    s.fdatasyncs = _fdatasyncs.load();
    s.flushes = _flushes.load();
    s.durable_waits = _durable_waits.load();
    s.checkpoints = _checkpoints.load();
    s.segments_deleted = _segments_deleted.load();
    return s;
}

void committer::run() {
    std::unique_lock<std::mutex> lk(_mu);
    while (true) {
        int64_t now = monotonic_ns();
        if (_failure.empty() && (_full_wanted > _full_started || (_stop && !_pending.empty()))) {
            flush_locked(lk, true);
            continue;
        }
        int64_t next_deadline = INT64_MAX;
        for (auto& [p, e] : _pending) next_deadline = std::min(next_deadline, e.deadline_ns);
        if (_failure.empty() && next_deadline != INT64_MAX && (_sync_waiters > 0 || next_deadline <= now)) {
            // Appenders announced when this flush became due are still writing:
            // give them a moment to join it. Later arrivals wait for the next one,
            // or a steady stream of appenders would hold every flush for the window.
            if (_gather_target < 0) _gather_target = _sync_waiters + _in_flight.load(std::memory_order_relaxed);
            int64_t gather_until = _oldest_pending_ns + _max_gather_ns;
            bool local = _sync_waiters < _gather_target;
            // Other processes' appenders on their way: this flush covers their
            // frames too (it flushes to every handle's committed point), so it
            // waits for them within the same window, polling (their appends do
            // not wake this thread). A dead handle's count is ignored, and a
            // lone appender anywhere is never held. (Measured, 4 processes x 4
            // threads: 7.2 -> 7.9 acks per fdatasync, 5.3x -> 4.7x the acks/s
            // of one thread; docs/BENCHMARKS.md.)
            int64_t others_until = gather_until;
            bool others = !local && _session && now < others_until && _session->others_in_flight() > 0;
            bool gathering = (local || others) && now < gather_until && !_stop;
            if (!gathering) {
                flush_locked(lk, false);
                continue;
            }
            int64_t step = local ? gather_until - now : std::min<int64_t>(others_until - now, cross_process_poll_ns);
            _flusher_cv.wait_for(lk, std::chrono::nanoseconds(step));
            continue;
        }
        if (_stop) break;
        if (next_deadline == INT64_MAX)
            _flusher_cv.wait(lk);
        else
            _flusher_cv.wait_for(lk, std::chrono::nanoseconds(std::max<int64_t>(next_deadline - now, 0)));
    }
    _waiters_cv.notify_all();
}

void committer::flush_locked(std::unique_lock<std::mutex>& lk, bool everything) {
    // A full flush takes every pending partition; otherwise those without a
    // deadline ("none" mode) stay pending.
    uint64_t target = _written;
    uint64_t full = 0;
    if (everything) full = ++_full_started;
    std::unordered_map<partition*, pending_flush> batch;
    _to_trigger.clear();
    for (auto it = _pending.begin(); it != _pending.end();) {
        if (everything || it->second.deadline_ns != no_deadline) {
            auto tasks = _partitions.find(it->first);
            if (tasks != _partitions.end() && tasks->second.checkpoint != housekeeper::no_task)
                _to_trigger.push_back(tasks->second.checkpoint);
            batch.emplace(it->first, std::move(it->second));
            it = _pending.erase(it);
        } else {
            ++it;
        }
    }
    _deadline_pending = false;  // every entry with a deadline was taken
    _gather_target = -1;
    _busy = true;
    lk.unlock();
    std::string failure;
    uint64_t syncs = 0;
    // One flush at a time across the handles of the session: each sees what
    // the previous one made durable (plan_flush), and a flush that another
    // process's covered already costs no fdatasync.
    struct flush_leader {
        std::optional<shared_mutex> lock;
        bool covered = false;  // another handle's flush made the batch durable meanwhile: no flush
        flush_leader(log_session* session, const std::unordered_map<partition*, pending_flush>& batch) {
            if (!session) return;
            shared_mutex m = session->flush_lock();
            // While another leader flushes, sleep on the log-wide flush
            // generation rather than in the lock's queue: every waiting
            // flusher wakes when it is done (the lock would wake one), and
            // each releases its waiters if that flush covered them.
            while (true) {
                uint32_t seen = session->flush_generation();
                shared_mutex::lock_result r = m.try_lock();
                if (r.acquired) {
                    // Nothing to repair after a dead leader: durable points only grow, and
                    // a half-written one is rewritten whole by the next (plan_flush).
                    if (r.acquired_after_owner_died) m.mark_consistent();
                    lock.emplace(m);
                    return;
                }
                session->wait_flush(seen, 2'000'000);  // (a dead leader: the try_lock above takes over)
                bool all = !batch.empty();
                for (auto& [p, e] : batch) all = all && p->durable_covers(e.point);
                if (all) {
                    covered = true;
                    return;
                }
            }
        }
        void release() {
            if (lock) lock->unlock();
            lock.reset();
        }
        ~flush_leader() { release(); }
    } leader(_session, batch);
    kill_point("flush.locked");
    std::vector<std::pair<partition*, recovery_point>> advance;
    std::vector<std::shared_ptr<segment>> dirty;
    for (auto& [p, e] : batch) {
        recovery_point target = e.point;
        std::vector<std::shared_ptr<segment>> sealed_since;
        if (leader.covered) break;
        try {
            if (_session && p->plan_flush(e.point, &target, &sealed_since)) continue;  // already durable
        } catch (const std::exception& ex) {
            failure = ex.what();
            break;
        }
        for (auto* list : {&e.segments, &sealed_since})
            for (auto& seg : *list)
                if (std::find(dirty.begin(), dirty.end(), seg) == dirty.end()) dirty.push_back(seg);
        advance.emplace_back(p, target);
    }
    // Several files: fdatasync them concurrently, so the file system can commit
    // them in one journal transaction (Iggy measured ~2x from doing this).
    std::vector<std::string> errors(dirty.size());
    auto sync_one = [&](size_t i) {
        try {
            dirty[i]->datasync();
        } catch (const std::exception& ex) {
            errors[i] = ex.what();
        }
    };
    std::vector<std::thread> helpers;
    for (size_t i = 1; i < dirty.size() && failure.empty(); ++i) {
        if (helpers.size() + 1 >= max_parallel_syncs) {
            sync_one(i);
            continue;
        }
        helpers.emplace_back(sync_one, i);
    }
    if (!dirty.empty() && failure.empty()) sync_one(0);
    for (auto& t : helpers) t.join();
    syncs = dirty.size();
    for (auto& err : errors)
        if (!err.empty()) {
            // Never retry a failed fsync: the kernel may have dropped the dirty
            // pages already (the PostgreSQL "fsyncgate" lesson).
            failure = err;
            break;
        }
    kill_point("flush.synced");
    if (failure.empty())
        for (auto& [p, point] : advance) p->on_durable(point);
    if (failure.empty() && leader.covered)
        for (auto& [p, e] : batch) p->adopt_durable();  // (the recovery checkpoint's point)
    if (_session && !leader.covered) {
        _session->count_flush(syncs);
        if (!advance.empty()) _session->flush_done();
    }
    leader.release();
    _fdatasyncs.fetch_add(syncs, std::memory_order_relaxed);
    _flushes.fetch_add(1, std::memory_order_relaxed);
    lk.lock();
    _busy = false;
    if (failure.empty()) {
        // Tickets of "none"-mode appends left pending are never waited on
        // (appenders of that mode do not wait), so the watermark may pass them.
        _durable = std::max(_durable, target);
        if (full) _full_done = std::max(_full_done, full);
    } else {
        _failure = failure;
    }
    // Wake the waiters this flush covered (all of them on failure), outside _mu.
    size_t kept = 0;
    std::vector<durable_waiter*> covered;
    for (durable_waiter* w : _durable_waiters) {
        if (w->ticket <= _durable || !_failure.empty())
            covered.push_back(w);
        else
            _durable_waiters[kept++] = w;
    }
    _durable_waiters.resize(kept);
    _sync_waiters -= static_cast<int>(covered.size());
    uint32_t outcome = _failure.empty() ? durable_waiter::durable : durable_waiter::failed;
    _waiters_cv.notify_all();
    lk.unlock();
    for (durable_waiter* w : covered) release(w, outcome);
    // After the acks: the checkpoints of the partitions this flush made
    // durable further are due (the housekeeper writes them, at most once a second).
    if (_housekeeper && failure.empty() && !_to_trigger.empty())
        _housekeeper->trigger(_to_trigger.data(), _to_trigger.size());
    lk.lock();
}

}  // namespace tidelog
