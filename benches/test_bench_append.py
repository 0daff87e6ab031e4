"""Target 1: durable columnar append.

64 Ki-row batches of (int64 ts, int32 sensor_id, float64 value), 1.25 MiB each,
appended to a topic with durability="fsync" (each append returns once
fdatasync'd), against the contenders of ``tidelog bench -w ingest`` (64Ki-row
batches, durable), on the same batches:

* raw, ``append+fdatasync``: the same bytes (``batch.serialize()``, the batch's
  Arrow IPC message, serialized before the clock starts) written with
  ``os.write`` + ``os.fdatasync`` per batch to a plain file opened once
  (growing, no preallocation) - the cost floor of "durable per batch";
* ``sqlite FULL`` / ``sqlite NORMAL`` (stdlib sqlite3, WAL, ``executemany`` of
  the rows, one transaction per batch, rows converted to Python tuples before
  the clock starts): FULL is durable per commit (the comparison the target
  uses); NORMAL is WAL's usual setting, where a commit is *not* durable until
  the next checkpoint, so it is reported for context.

Targets: tidelog rows/s >= 0.7x raw and >= 30x SQLite(FULL).
"""
from __future__ import annotations

import contextlib
import os

import tidelog
from benchlib import (
    BATCH_ROWS, SCHEMA, comparison, contender_rounds, interleaved, make_batches, median, record, seconds_of, sized,
)
from tidelog.bench.workloads import IngestData

BATCHES_PER_ROUND = sized(8, 4)
ROUNDS = sized(20, 3)


def ingest_data(batches, durable: bool = True) -> IngestData:
    """The batches as the ingest workload's data; slow contenders (SQLite) take one batch a round."""
    return IngestData(batches, BATCH_ROWS, durable, slow_rows=BATCH_ROWS)


def test_durable_append_1p(benchmark, bench_dir):
    batches = make_batches(BATCHES_PER_ROUND)
    data = ingest_data(batches)
    log = tidelog.open(os.path.join(bench_dir, "log"))
    topic = log.create_topic("readings", schema=SCHEMA, partitions=1, timestamp="ts", durability="fsync")
    stats0 = log.stats()

    def subject():
        for b in batches:
            topic.append(b)

    try:
        with contextlib.ExitStack() as stack:
            def baseline(name: str, durable: bool = True):
                params = {"batch_rows": BATCH_ROWS, "durable": durable}
                return seconds_of(stack.enter_context(contender_rounds(name, "ingest", params, data, bench_dir)))

            times, base = interleaved(
                benchmark,
                subject,
                {"raw": baseline("append+fdatasync"), "sqlite_full": baseline("sqlite FULL"),
                 "sqlite_normal": baseline("sqlite NORMAL", durable=False)},
                rounds=ROUNDS,
            )
        stats1 = log.stats()
    finally:
        log.close()

    rows = BATCHES_PER_ROUND * BATCH_ROWS
    tl_rate = rows / median(times)
    raw_rate = rows / median(base["raw"])
    full_rate = BATCH_ROWS / median(base["sqlite_full"])
    normal_rate = BATCH_ROWS / median(base["sqlite_normal"])
    appends = stats1["appends"] - stats0["appends"]
    syncs = stats1["fdatasyncs"] - stats0["fdatasyncs"]
    record(
        benchmark,
        [
            comparison("1. durable append, 1 partition vs raw write+fdatasync", tidelog=tl_rate, baseline=raw_rate,
                       unit="rows/s", ratio=tl_rate / raw_rate, target=">= 0.7", passed=tl_rate / raw_rate >= 0.7,
                       baseline_name="os.write+os.fdatasync"),
            comparison("1. durable append, 1 partition vs SQLite WAL synchronous=FULL", tidelog=tl_rate,
                       baseline=full_rate, unit="rows/s", ratio=tl_rate / full_rate, target=">= 30",
                       passed=tl_rate / full_rate >= 30, baseline_name="sqlite3 WAL FULL"),
            comparison("1. durable append, 1 partition vs SQLite WAL synchronous=NORMAL", tidelog=tl_rate,
                       baseline=normal_rate, unit="rows/s", ratio=tl_rate / normal_rate, target=None, passed=None,
                       baseline_name="sqlite3 WAL NORMAL", note="NORMAL is not durable per commit; context only"),
        ],
        batch_bytes=batches[0].serialize().size,
        fdatasyncs_per_append=syncs / appends if appends else None,
        rows_per_round=rows,
    )


def test_durable_append_4p_keyed(benchmark, bench_dir):
    """The same batches into 4 partitions keyed by sensor_id: each batch is split
    by murmur2(key) into 4 frames, one per partition, all made durable together."""
    batches = make_batches(BATCHES_PER_ROUND, seed=100)
    log = tidelog.open(os.path.join(bench_dir, "log"))
    topic = log.create_topic("readings", schema=SCHEMA, partitions=4, key="sensor_id", timestamp="ts",
                             durability="fsync")
    stats0 = log.stats()

    def subject():
        for b in batches:
            topic.append(b)

    try:
        with contender_rounds("append+fdatasync", "ingest", {"batch_rows": BATCH_ROWS, "durable": True},
                              ingest_data(batches), bench_dir) as raw:
            times, base = interleaved(benchmark, subject, {"raw": seconds_of(raw)}, rounds=ROUNDS)
        stats1 = log.stats()
    finally:
        log.close()
    rows = BATCHES_PER_ROUND * BATCH_ROWS
    tl_rate = rows / median(times)
    raw_rate = rows / median(base["raw"])
    appends = (ROUNDS + 1) * BATCHES_PER_ROUND
    record(
        benchmark,
        [
            comparison("1b. durable append, 4 partitions keyed by sensor_id vs raw", tidelog=tl_rate,
                       baseline=raw_rate, unit="rows/s", ratio=tl_rate / raw_rate, target=None, passed=None,
                       baseline_name="os.write+os.fdatasync (1 file)", note="reported, no target"),
        ],
        fdatasyncs_per_append=(stats1["fdatasyncs"] - stats0["fdatasyncs"]) / appends,
        frames_per_append=(stats1["frames"] - stats0["frames"]) / appends,
    )
