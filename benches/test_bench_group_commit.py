"""Target 3: group commit.

16 threads each append 1-row batches to one 1-partition topic with
durability="fsync" (every append returns only once it is durable); the
baseline is one thread doing the same. One thread can do at most one append
per fdatasync; 16 threads only go faster if concurrent appends share
fdatasyncs, which ``log.stats()`` shows: appends and fdatasyncs deltas over
the 16-thread rounds. Both sides are the ``tidelog`` contender of
``tidelog bench -w threads`` (at 16 threads and at 1 thread), each on its own log.

Targets: 16 threads >= 4x the appends/s of 1 thread, and >= 8 appends per
fdatasync on average.
"""
from __future__ import annotations

from benchlib import comparison, contender_rounds, interleaved, median, record, seconds_of, sized
from tidelog.bench.workloads import Threads

THREADS = 16
APPENDS_PER_THREAD = sized(100, 20)
SINGLE_APPENDS = sized(200, 40)
ROUNDS = sized(12, 3)


def threads_data(threads: int, per_thread: int):
    """The threads workload's data: one 1-row sensor batch per append."""
    return Threads().data_for(threads, per_thread)


def test_group_commit_16_threads(benchmark, bench_dir):
    multi_measures: list[dict] = []
    with contender_rounds("tidelog", "threads", {"threads": THREADS}, threads_data(THREADS, APPENDS_PER_THREAD),
                          bench_dir) as multi, \
            contender_rounds("tidelog", "threads", {"threads": 1}, threads_data(1, SINGLE_APPENDS),
                             bench_dir + "/one") as single:
        times, base = interleaved(benchmark, lambda: multi_measures.append(multi()),
                                  {"one_thread": seconds_of(single)}, rounds=ROUNDS)
    measured = multi_measures[-len(times):]
    appends = sum(m["acks"] for m in measured)
    syncs = sum(m["fdatasyncs"] for m in measured)
    total = THREADS * APPENDS_PER_THREAD
    multi_rate = total / median(times)
    single_rate = SINGLE_APPENDS / median(base["one_thread"])
    per_sync = appends / syncs if syncs else float("inf")
    record(
        benchmark,
        [
            comparison(f"3. {THREADS} threads x 1-row fsync appends vs 1 thread", tidelog=multi_rate,
                       baseline=single_rate, unit="appends/s", ratio=multi_rate / single_rate, target=">= 4",
                       passed=multi_rate / single_rate >= 4, baseline_name="1 thread"),
            comparison(f"3. appends per fdatasync, {THREADS} threads (log.stats() deltas)", tidelog=per_sync,
                       baseline=1.0, unit="appends/fdatasync", ratio=per_sync, target=">= 8", passed=per_sync >= 8,
                       baseline_name="1 per fdatasync"),
        ],
        appends_16_threads=appends,
        fdatasyncs_16_threads=syncs,
        single_thread_fdatasync_ms=1e3 * median(base["one_thread"]) / SINGLE_APPENDS,
    )
