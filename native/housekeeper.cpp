#include "housekeeper.h"

#include <time.h>

#include <algorithm>
#include <chrono>

#include "units.h"

namespace tidelog {

namespace {
/// A task due within this much of a wake-up runs in it: partitions opened
/// together share their wake-ups instead of each waking the thread.
constexpr int64_t coalesce_ns = 20'000'000;
/// _planned_wake_ns while the thread is awake: it looks at every task again
/// before it sleeps, so trigger() and add_task() need not wake it.
constexpr int64_t awake = INT64_MIN;
}  // namespace


housekeeper::~housekeeper() { stop(); }

housekeeper::task_id housekeeper::add_task(housekeeping_task task) {
    std::lock_guard<std::mutex> g(_mu);
    if (_stop) return no_task;
    task_id id = ++_last_id;
    int64_t first = monotonic_ns() + task.interval_ns;
    _tasks.emplace(id, entry{std::move(task), first});
    if (!_thread.joinable())
        _thread = std::thread([this] { run_thread(); });
    else if (first < _planned_wake_ns)
        _wake.notify_one();
    return id;
}

void housekeeper::remove_task(task_id id) {
    if (id == no_task) return;  // (_running is no_task while nothing runs)
    std::unique_lock<std::mutex> lk(_mu);
    auto it = _tasks.find(id);
    if (it == _tasks.end()) return;
    // Picked no more from now on: a task due again at once would otherwise be
    // taken again before this wakes.
    it->second.removed = true;
    _idle.wait(lk, [&] { return _running != id; });
    _tasks.erase(id);
}

void housekeeper::trigger(const task_id* ids, size_t count) {
    bool wake = false;
    {
        std::lock_guard<std::mutex> g(_mu);
        for (size_t i = 0; i < count; ++i) {
            auto it = _tasks.find(ids[i]);
            if (it == _tasks.end() || it->second.task.when != housekeeping_task::schedule::when_triggered) continue;
            it->second.dirty = true;
            wake = wake || it->second.next_ns < _planned_wake_ns;
        }
    }
    if (wake) _wake.notify_one();
}

void housekeeper::stop() {
    {
        std::lock_guard<std::mutex> g(_mu);
        _stop = true;
    }
    _wake.notify_all();
    if (_thread.joinable() && _thread.get_id() != std::this_thread::get_id()) _thread.join();
}

uint64_t housekeeper::runs() const {
    std::lock_guard<std::mutex> g(_mu);
    return _runs;
}

bool housekeeper::due(const entry& e, int64_t now) const {
    if (e.removed || (e.task.when == housekeeping_task::schedule::when_triggered && !e.dirty)) return false;
    return e.next_ns <= now + coalesce_ns;
}

void housekeeper::run_thread() {
    std::unique_lock<std::mutex> lk(_mu);
    while (!_stop) {
        int64_t now = monotonic_ns();
        entry* pick = nullptr;
        task_id pick_id = no_task;
        int64_t next = INT64_MAX;
        for (auto& [id, e] : _tasks) {
            if (due(e, now)) {
                pick = &e;
                pick_id = id;
                break;
            }
            if (!e.removed && (e.task.when == housekeeping_task::schedule::periodic || e.dirty))
                next = std::min(next, e.next_ns);
        }
        if (!pick) {
            _planned_wake_ns = next;
            if (next == INT64_MAX)
                _wake.wait(lk);
            else
                _wake.wait_for(lk, std::chrono::nanoseconds(next - now));
            _planned_wake_ns = awake;
            continue;
        }
        // A trigger from here on asks for another run, one interval later.
        pick->dirty = false;
        pick->next_ns = now + pick->task.interval_ns;
        _running = pick_id;
        lk.unlock();
        bool ok = true;
        try {
            // The entry stays put: remove_task waits for _running, and std::map
            // insertions move no element.
            pick->task.run();
        } catch (...) {
            ok = false;
        }
        lk.lock();
        _running = no_task;
        if (ok) ++_runs;
        _idle.notify_all();
    }
    _planned_wake_ns = awake;
}

}  // namespace tidelog
