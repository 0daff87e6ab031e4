#pragma once
// Housekeeping: the file work of a log that no acknowledgement waits for, on a
// thread of its own, so a slow retention delete or checkpoint write never
// delays a durable ack (the committer's flusher only fdatasyncs and releases
// waiters). Today's tasks are each partition's recovery checkpoint and its
// retention (see committer::register_partition); a compactor or a cleaner
// joins the same way, with add_task.
//
// A task has a name, an interval and a run function:
//   periodic        runs every interval (the first run one interval after add_task);
//   when_triggered  runs only after trigger(), at most once per interval (the
//                   first run no earlier than one interval after add_task): a
//                   stream of triggers costs one run per interval, and an idle
//                   log wakes nobody.
// Tasks due within 20 ms of each other run in the same wake-up.
//
// Concurrency: every public method is thread-safe. Tasks run one at a time on
// the housekeeper's thread, never while its mutex is held: a run function may
// take any lock and call trigger() or add_task(). remove_task() waits for a
// run of that task in progress, so it must not be called from that run
// function, nor while holding a lock the run function takes. trigger() and
// add_task() never wait for a run; stop() waits for one (so not from a run
// function either). An exception from a run function is
// swallowed: the task runs again at its next due time (appends report real
// I/O errors themselves).
// Fork: like the committer, the thread is not recreated in a forked child; it
// starts with the first add_task, so a process that forks before it opens a
// partition forks with no housekeeping thread.
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace tidelog {

struct housekeeping_task {
    enum class schedule : uint8_t { periodic, when_triggered };
    std::string name;
    int64_t interval_ns = 1'000'000'000;
    schedule when = schedule::periodic;
    std::function<void()> run;
};

class housekeeper {
public:
    using task_id = uint64_t;  // never reused; 0 is no task
    static constexpr task_id no_task = 0;

    housekeeper() = default;
    ~housekeeper();
    housekeeper(const housekeeper&) = delete;
    housekeeper& operator=(const housekeeper&) = delete;

    /// Schedules task (see the schedules above). After stop(): returns no_task
    /// and never runs it.
    task_id add_task(housekeeping_task task);
    /// Returns once the task is not running and never will again. Unknown ids
    /// (no_task, already removed) are ignored.
    void remove_task(task_id id);
    /// Marks "when_triggered" tasks dirty (periodic ones ignore it); cheap: one
    /// lock, and a wake-up only when one of them is due before the thread's
    /// next planned wake-up. Unknown ids are ignored.
    void trigger(const task_id* ids, size_t count);
    void trigger(task_id id) { trigger(&id, 1); }
    /// Runs no task again and joins the thread (waits for a run in progress).
    void stop();

    /// Runs of every task so far that returned without throwing.
    uint64_t runs() const;

private:
    struct entry {
        housekeeping_task task;
        int64_t next_ns;     // earliest next run
        bool dirty = false;    // when_triggered: trigger() since the last run began
        bool removed = false;  // remove_task waits for its run to end
    };
    void run_thread();
    bool due(const entry& e, int64_t now) const;

    mutable std::mutex _mu;
    std::condition_variable _wake;  // wakes the thread
    std::condition_variable _idle;  // wakes remove_task when a run ends
    std::map<task_id, entry> _tasks;
    task_id _last_id = 0;
    task_id _running = no_task;  // the task whose run function runs now
    int64_t _planned_wake_ns = INT64_MAX;  // when the sleeping thread wakes by itself
    uint64_t _runs = 0;
    bool _stop = false;
    std::thread _thread;
};

}  // namespace tidelog
