"""Target 3: group commit.

16 threads each append 1-row batches to one 1-partition topic with
durability="fsync" (every append returns only once it is durable); the
baseline is one thread doing the same. One thread can do at most one append
per fdatasync; 16 threads only go faster if concurrent appends share
fdatasyncs, which ``log.stats()`` shows: appends and fdatasyncs deltas over
the 16-thread rounds.

Targets: 16 threads >= 4x the appends/s of 1 thread, and >= 8 appends per
fdatasync on average.
"""
from __future__ import annotations

import os
import threading
import time

import pyarrow as pa

import tidelog
from benchlib import SCHEMA, comparison, median, record, interleaved

THREADS = 16
APPENDS_PER_THREAD = 100
SINGLE_APPENDS = 200
ROUNDS = 12


def one_row(i: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array([i], pa.int64()), pa.array([i % 1000], pa.int32()), pa.array([float(i)])],
                           schema=SCHEMA)


def test_group_commit_16_threads(benchmark, bench_dir):
    log = tidelog.open(os.path.join(bench_dir, "log"))
    topic = log.create_topic("events", schema=SCHEMA, partitions=1, timestamp="ts", durability="fsync")
    rows = [one_row(i) for i in range(THREADS * APPENDS_PER_THREAD)]
    counters = {"appends": 0, "fdatasyncs": 0}

    def single() -> float:
        t0 = time.perf_counter()
        for i in range(SINGLE_APPENDS):
            topic.append(rows[i])
        return time.perf_counter() - t0

    def worker(k: int, barrier: threading.Barrier):
        mine = rows[k * APPENDS_PER_THREAD:(k + 1) * APPENDS_PER_THREAD]
        barrier.wait()
        for b in mine:
            topic.append(b)

    def subject():
        barrier = threading.Barrier(THREADS)
        threads = [threading.Thread(target=worker, args=(k, barrier)) for k in range(THREADS)]
        before = log.stats()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = log.stats()
        counters["appends"] += after["appends"] - before["appends"]
        counters["fdatasyncs"] += after["fdatasyncs"] - before["fdatasyncs"]

    single_stats0 = log.stats()
    try:
        times, base = interleaved(benchmark, subject, {"one_thread": single}, rounds=ROUNDS)
        n_rows = sum(p["end_offset"] for p in topic.describe()["partitions"])
    finally:
        log.close()
    total = THREADS * APPENDS_PER_THREAD
    multi_rate = total / median(times)
    single_rate = SINGLE_APPENDS / median(base["one_thread"])
    per_sync = counters["appends"] / counters["fdatasyncs"] if counters["fdatasyncs"] else float("inf")
    expected_rows = (ROUNDS + 1) * (total + SINGLE_APPENDS)
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
        appends_16_threads=counters["appends"],
        fdatasyncs_16_threads=counters["fdatasyncs"],
        rows_in_topic=n_rows,
        rows_expected=expected_rows,
        single_thread_fdatasync_ms=1e3 * median(base["one_thread"]) / SINGLE_APPENDS,
    )
