"""``tidelog demo``: a simulated IoT feed, ingested durably, then queried.

10 million readings from 1,000 sensors (ts, sensor_id, value) are appended in
64 Ki-row batches to a 4-partition topic keyed by sensor_id, with
durability="fsync" (every append acknowledged only once it is on disk,
concurrent appends sharing fdatasyncs). A one-minute window is then read back
through the time index, zero-copy, and averaged per sensor with pyarrow
compute. A consumer group of two members (threads here; processes work the
same) then shares the partitions, builds a per-sensor read model from Arrow
batches and commits its offsets durably. The same ingest into SQLite (WAL, one transaction per batch) is timed
on a slice of the data as a comparison line.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc

import tidelog
from tidelog._sensors import TICK_NS, TICK_SCHEMA, ticks


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


def sqlite_ingest(path: str, batches: list[pa.RecordBatch]) -> float:
    con = sqlite3.connect(path)
    con.execute("pragma journal_mode=wal")
    con.execute("pragma synchronous=full")
    con.execute("create table readings (ts integer, sensor_id integer, value real)")
    start = time.perf_counter()
    for b in batches:
        rows = zip(b.column(0).cast(pa.int64()).to_pylist(), b.column(1).to_pylist(), b.column(2).to_pylist())
        with con:
            con.executemany("insert into readings values (?, ?, ?)", rows)
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def consume_in_a_group(log, topic: str, group: str, members: int = 2) -> tuple[float, int, int]:
    """``members`` consumers of ``group`` (one thread each) share the topic's
    partitions; each sums values per sensor from ``poll_batch`` and commits
    after every batch. Returns (seconds, members, commits)."""
    commits = [0] * members
    errors: list[BaseException] = []
    ready = threading.Barrier(members)

    def member(i: int) -> None:
        try:
            c = log.consumer([topic], group=group, enable_auto_commit=False)
            ready.wait()
            model: dict[int, float] = {}
            while True:
                batch = c.poll_batch(65_536, timeout=0.2)
                if batch is None:
                    if not any(c.lag().values()) and c.assignment():
                        break
                    continue
                sums = pa.table(batch).group_by("sensor_id").aggregate([("value", "sum")])
                for sensor, total in zip(sums.column(0).to_pylist(), sums.column(1).to_pylist()):
                    model[sensor] = model.get(sensor, 0.0) + total
                c.commit()
                commits[i] += 1
            c.close()
        except BaseException as e:  # reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=member, args=(i,)) for i in range(members)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0, members, sum(commits)


def run_demo(rows: int, sensors: int, batch_rows: int, directory: str | None, sqlite_rows: int) -> int:
    owned = directory is None
    root = tempfile.mkdtemp(prefix="tidelog-demo-") if owned else directory
    try:
        start_ns = time.time_ns() - (rows // sensors) * TICK_NS
        batches = list(ticks(rows, sensors, batch_rows, start_ns))
        raw_bytes = sum(b.nbytes for b in batches)
        print(f"tidelog demo: {rows:,} readings from {sensors:,} sensors, {len(batches)} batches "
              f"of ~{batch_rows:,} rows, {raw_bytes / 1e6:,.0f} MB of Arrow data")

        log_dir = os.path.join(root, "log")
        with tidelog.open(log_dir) as log:
            topic = log.create_topic("sensors", schema=TICK_SCHEMA, partitions=4, key="sensor_id", timestamp="ts",
                                     durability="fsync")
            t0 = time.perf_counter()
            for b in batches:
                topic.append(b)
            ingest_s = time.perf_counter() - t0
            stats = log.stats()
            print(f"  ingest (durable, fsync mode): {ingest_s:6.2f} s  {rows / ingest_s:>13,.0f} rows/s  "
                  f"{raw_bytes / ingest_s / 1e6:7,.0f} MB/s  {stats['fdatasyncs']:,} fdatasyncs "
                  f"for {stats['appends']:,} partition appends")

            window_start = start_ns + (rows // sensors // 2) * TICK_NS
            window_end = window_start + 60 * 1_000_000_000
            t0 = time.perf_counter()
            window = topic.read(start_time=window_start, end_time=window_end, columns=["sensor_id", "value"])
            means = window.group_by("sensor_id").aggregate([("value", "mean")]).sort_by("sensor_id")
            query_s = time.perf_counter() - t0
            print(f"  one-minute window: {window.num_rows:,} rows, per-sensor means of {means.num_rows:,} sensors "
                  f"in {query_s * 1000:.1f} ms (zero-copy read through the time index)")
            first = means.slice(0, 3).to_pylist()
            print("    " + ", ".join(f"sensor {r['sensor_id']}: {r['value_mean']:.2f}" for r in first) + ", ...")

            t0 = time.perf_counter()
            total = pc.sum(topic.read(columns=["value"]).column("value")).as_py()
            scan_s = time.perf_counter() - t0
            print(f"  full scan + sum over {rows:,} rows: {scan_s * 1000:.0f} ms "
                  f"({rows / scan_s / 1e6:,.0f} M rows/s), sum={total:,.1f}")

            group_s, members, commits = consume_in_a_group(log, "sensors", "dashboard")
            d = log.describe_group("dashboard")
            print(f"  consumer group 'dashboard', {members} members: {rows:,} rows in {group_s:6.2f} s  "
                  f"{rows / group_s:>13,.0f} rows/s, per-sensor read model from Arrow batches, {commits} durable "
                  f"commits; lag {sum(v or 0 for v in d.lag.values())}")

        print(f"  on disk after close: {dir_bytes(log_dir) / 1e6:,.0f} MB "
              f"(segments are preallocated in 32 MiB steps while open, trimmed at close)")

        sqlite_batches = []
        taken = 0
        for b in batches:
            if taken >= sqlite_rows:
                break
            sqlite_batches.append(b.slice(0, sqlite_rows - taken))
            taken += sqlite_batches[-1].num_rows
        sqlite_s = sqlite_ingest(os.path.join(root, "readings.sqlite"), sqlite_batches)
        sqlite_rate = taken / sqlite_s
        print(f"  SQLite (WAL, synchronous=FULL, executemany, one transaction per batch) on {taken:,} rows: "
              f"{sqlite_s:6.2f} s  {sqlite_rate:>13,.0f} rows/s")
        print(f"  tidelog/SQLite durable ingest: {rows / ingest_s / sqlite_rate:.1f}x")
        return 0
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
