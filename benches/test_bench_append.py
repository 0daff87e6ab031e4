"""Target 1: durable columnar append.

64 Ki-row batches of (int64 ts, int32 sensor_id, float64 value), 1.25 MiB each,
appended to a topic with durability="fsync" (each append returns once
fdatasync'd; the ``tidelog`` contender), against the contenders of ``tidelog bench -w ingest`` (64Ki-row
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
from benchlib import (
    BATCH_ROWS, collect, comparison, contender_rounds, interleaved, make_batches, median, record, seconds_of, sized,
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
    measures: list[dict] = []
    with contextlib.ExitStack() as stack:
        def rounds_of(name: str, durable: bool = True):
            params = {"batch_rows": BATCH_ROWS, "durable": durable}
            return stack.enter_context(contender_rounds(name, "ingest", params, data, bench_dir))

        times, base = interleaved(
            benchmark,
            collect(rounds_of("tidelog"), measures),
            {"raw": seconds_of(rounds_of("append+fdatasync")), "sqlite_full": seconds_of(rounds_of("sqlite FULL")),
             "sqlite_normal": seconds_of(rounds_of("sqlite NORMAL", durable=False))},
            rounds=ROUNDS,
        )

    rows = BATCHES_PER_ROUND * BATCH_ROWS
    tl_rate = rows / median([m["seconds"] for m in measures[len(measures) - len(times):]])
    raw_rate = rows / median(base["raw"])
    full_rate = BATCH_ROWS / median(base["sqlite_full"])
    normal_rate = BATCH_ROWS / median(base["sqlite_normal"])
    appends = sum(m["appends"] for m in measures)
    syncs = sum(m["fdatasyncs"] for m in measures)
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
    """The same batches into 4 partitions keyed by sensor_id (the ingest workload's
    4-partition case): each batch is split by murmur2(key) into 4 frames, one per
    partition, all made durable together."""
    data = ingest_data(make_batches(BATCHES_PER_ROUND, seed=100))
    params = {"batch_rows": BATCH_ROWS, "durable": True, "partitions": 4}
    measures: list[dict] = []
    with contender_rounds("tidelog", "ingest", params, data, bench_dir) as tl, \
            contender_rounds("append+fdatasync", "ingest", params, data, bench_dir) as raw:
        times, base = interleaved(benchmark, collect(tl, measures), {"raw": seconds_of(raw)}, rounds=ROUNDS)
    rows = BATCHES_PER_ROUND * BATCH_ROWS
    tl_rate = rows / median([m["seconds"] for m in measures[len(measures) - len(times):]])
    raw_rate = rows / median(base["raw"])
    appends = sum(m["appends"] for m in measures)
    record(
        benchmark,
        [
            comparison("1b. durable append, 4 partitions keyed by sensor_id vs raw", tidelog=tl_rate,
                       baseline=raw_rate, unit="rows/s", ratio=tl_rate / raw_rate, target=None, passed=None,
                       baseline_name="os.write+os.fdatasync (1 file)", note="reported, no target"),
        ],
        fdatasyncs_per_append=sum(m["fdatasyncs"] for m in measures) / appends,
        frames_per_append=sum(m["frames"] for m in measures) / appends,
    )
