"""Target 1: durable columnar append.

64 Ki-row batches of (int64 ts, int32 sensor_id, float64 value), 1.25 MiB each,
appended to a topic with durability="fsync" (each append returns once
fdatasync'd), against

* raw: the same bytes (``batch.serialize()``, the batch's Arrow IPC message,
  serialized before the clock starts) written with ``os.write`` +
  ``os.fdatasync`` per batch to a plain file opened once (O_APPEND-style
  growth, no preallocation) - the cost floor of "durable per batch";
* SQLite (stdlib sqlite3, WAL, ``executemany`` of the rows, one transaction
  per batch, rows converted to Python tuples before the clock starts), with
  ``synchronous=FULL`` (durable per commit: the comparison the target uses)
  and ``synchronous=NORMAL`` (WAL's usual setting; a commit is *not* durable
  until the next checkpoint, so it is reported for context).

Targets: tidelog rows/s >= 0.7x raw and >= 30x SQLite(FULL).
"""
from __future__ import annotations

import os
import sqlite3
import time

import tidelog
from benchlib import BATCH_ROWS, SCHEMA, comparison, make_batches, median, record, interleaved

BATCHES_PER_ROUND = 8
ROUNDS = 20


class RawWriter:
    """os.write + os.fdatasync per batch into one plain file."""

    def __init__(self, path: str, batches):
        self.payloads = [b.serialize() for b in batches]
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def round(self, count: int) -> float:
        payloads, fd = self.payloads, self.fd
        t0 = time.perf_counter()
        for i in range(count):
            os.write(fd, payloads[i % len(payloads)])
            os.fdatasync(fd)
        return time.perf_counter() - t0

    def close(self):
        os.close(self.fd)


class SqliteWriter:
    """WAL, executemany, one transaction per batch."""

    def __init__(self, path: str, batches, synchronous: str):
        self.rows = [
            list(zip(b.column(0).to_pylist(), b.column(1).to_pylist(), b.column(2).to_pylist())) for b in batches
        ]
        self.con = sqlite3.connect(path, isolation_level=None)
        mode = self.con.execute("pragma journal_mode=WAL").fetchone()[0]
        assert mode.lower() == "wal", mode
        self.con.execute(f"pragma synchronous={synchronous}")
        self.con.execute("create table readings (ts integer, sensor_id integer, value real)")
        self.n = 0

    def round(self, count: int) -> float:
        con = self.con
        t0 = time.perf_counter()
        for _ in range(count):
            con.execute("begin")
            con.executemany("insert into readings values (?, ?, ?)", self.rows[self.n % len(self.rows)])
            con.execute("commit")
            self.n += 1
        return time.perf_counter() - t0

    def close(self):
        self.con.close()


def test_durable_append_1p(benchmark, bench_dir):
    batches = make_batches(BATCHES_PER_ROUND)
    raw = RawWriter(os.path.join(bench_dir, "raw.bin"), batches)
    full = SqliteWriter(os.path.join(bench_dir, "full.db"), batches[:2], "FULL")
    normal = SqliteWriter(os.path.join(bench_dir, "normal.db"), batches[:2], "NORMAL")
    log = tidelog.open(os.path.join(bench_dir, "log"))
    topic = log.create_topic("readings", schema=SCHEMA, partitions=1, timestamp="ts", durability="fsync")
    stats0 = log.stats()

    def subject():
        for b in batches:
            topic.append(b)

    try:
        times, base = interleaved(
            benchmark,
            subject,
            {
                "raw": lambda: raw.round(BATCHES_PER_ROUND),
                "sqlite_full": lambda: full.round(1),
                "sqlite_normal": lambda: normal.round(1),
            },
            rounds=ROUNDS,
        )
        stats1 = log.stats()
    finally:
        log.close()
        raw.close()
        full.close()
        normal.close()

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
    raw = RawWriter(os.path.join(bench_dir, "raw.bin"), batches)
    log = tidelog.open(os.path.join(bench_dir, "log"))
    topic = log.create_topic("readings", schema=SCHEMA, partitions=4, key="sensor_id", timestamp="ts",
                             durability="fsync")
    stats0 = log.stats()

    def subject():
        for b in batches:
            topic.append(b)

    try:
        times, base = interleaved(benchmark, subject, {"raw": lambda: raw.round(BATCHES_PER_ROUND)}, rounds=ROUNDS)
        stats1 = log.stats()
    finally:
        log.close()
        raw.close()
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
