"""Targets P1, P2, P3 and P5: Producer and Consumer throughput.

All topics are byte-record topics (``create_topic`` without a schema). Every
tidelog figure is measured interleaved, round by round, with its baselines
(benchlib.interleaved); medians over rounds.

P1  ``send()`` of 100-byte values, ``acks="written"``, one Python thread, the
    default producer (linger_ms=5, batch_bytes=1 MiB), ``p.flush()`` inside the
    clock, into a fresh 4-partition topic per round with durability="interval"
    (the committer fdatasyncs every 100 ms in the background, as Kafka leaves
    data to the page cache). Unkeyed (sticky partitioner) is the subject; keyed
    (16-byte keys, murmur2) and the baselines run in the same round:
    * SQLite (stdlib sqlite3, WAL, ``synchronous=OFF`` - nothing synced, the
      same promise as acks="written"): ``executemany`` of the same (key, value)
      rows, prepared as tuples before the clock, in one transaction;
    * the Python call floor: the same loop calling ``slice(topic, value, key)``
      (a C call of 3 arguments that allocates one object, as send() allocates its
      future) - how much of send()'s cost is the interpreter's.
    Targets: >= 3 M records/s, and >= 5x SQLite.
P2  ``send_many`` of 100-byte values, acks="written", one topic per round:
    from a list of bytes (baseline: ``pa.array(values, pa.binary())`` alone, the
    conversion any list path pays) and from a ``pa.array`` of binary (baseline:
    ``os.write`` of the same value bytes into a page-cache file, the one copy).
    Target: >= 10 M records/s.
P3  Reading 500 k records written by a default producer (1 MiB frames, ~8 k
    records each), page cache warm: ``for rec in consumer`` (baseline: SQLite
    ``for row in con.execute("select key, value ...")`` over the same rows) and
    ``poll_batch(100_000)`` (baseline: ``topic.read()``, the zero-copy Arrow
    read of the same records). Targets: >= 2 M and >= 20 M records/s.
P5  16 threads share one producer (acks="durable", linger_ms=0) and each loops
    ``p.send(...).result()`` on a 1-partition durability="fsync" topic, against
    one thread doing the same. linger_ms=0 is the single thread's best setting
    (a linger would only delay its one record); the speed-up then comes from
    the group commit sharing fdatasyncs. Records per fdatasync from
    ``log.stats()`` deltas over the 16-thread rounds: the ``tidelog producer``
    contender of ``tidelog bench -w threads`` at 16 threads and at 1 thread.
    Target: >= 8x.
"""
from __future__ import annotations

import os
import sqlite3
import time

import pyarrow as pa
import pytest

import tidelog
from benchlib import (
    VALUE_BYTES, absolute, comparison, contender_rounds, interleaved, make_keys, make_values, median, record,
    seconds_of, sized,
)
from tidelog.bench.workloads import Threads

# ----------------------------------------------------------------------- P1

SEND_N = sized(200_000, 20_000)
SQLITE_N = sized(50_000, 5_000)
SEND_ROUNDS = sized(12, 3)


class SqliteInserter:
    """WAL, synchronous=OFF, executemany of (key, value) rows in one transaction."""

    def __init__(self, path: str, rows: list[tuple[bytes, bytes]]):
        self.rows = rows
        self.con = sqlite3.connect(path, isolation_level=None)
        mode = self.con.execute("pragma journal_mode=WAL").fetchone()[0]
        assert mode.lower() == "wal", mode
        self.con.execute("pragma synchronous=OFF")
        self.con.execute("create table records (key blob, value blob)")

    def round(self) -> float:
        con = self.con
        t0 = time.perf_counter()
        con.execute("begin")
        con.executemany("insert into records values (?, ?)", self.rows)
        con.execute("commit")
        return time.perf_counter() - t0

    def close(self):
        self.con.close()


def test_send_written(benchmark, bench_dir):
    values = make_values(SEND_N, VALUE_BYTES, seed=1)
    keys = make_keys(SEND_N)
    sqlite = SqliteInserter(os.path.join(bench_dir, "baseline.db"), list(zip(keys[:SQLITE_N], values[:SQLITE_N])))
    log = tidelog.open(os.path.join(bench_dir, "log"))
    p = log.producer(linger_ms=5, batch_bytes=1 << 20, acks="written")
    n = {"round": 0, "frames": 0, "records": 0}

    def topic(prefix: str) -> str:
        name = f"{prefix}{n['round']}"
        log.create_topic(name, partitions=4, durability="interval")
        return name

    def unkeyed(name: str) -> None:
        send = p.send
        for v in values:
            send(name, v)
        p.flush()

    def keyed_round() -> float:
        name = topic("keyed")
        send = p.send
        t0 = time.perf_counter()
        for k, v in zip(keys, values):
            send(name, v, k)
        p.flush()
        elapsed = time.perf_counter() - t0
        log.delete_topic(name)
        return elapsed

    def floor_round() -> float:
        call = slice
        t0 = time.perf_counter()
        for k, v in zip(keys, values):
            call("events", v, k)
        return time.perf_counter() - t0

    state = {}

    def before():
        state["name"] = topic("unkeyed")
        state["stats"] = log.stats()

    def after():
        s = log.stats()
        n["frames"] += s["frames"] - state["stats"]["frames"]
        n["records"] += sum(pp["end_offset"] for pp in log.topic(state["name"]).describe()["partitions"])
        log.delete_topic(state["name"])
        n["round"] += 1

    try:
        times, base = interleaved(benchmark, lambda: unkeyed(state["name"]),
                                  {"keyed": keyed_round, "sqlite": sqlite.round, "floor": floor_round},
                                  rounds=SEND_ROUNDS, before_subject=before, after_subject=after)
    finally:
        p.close()
        log.close()
        sqlite.close()
    rate = SEND_N / median(times)
    keyed = SEND_N / median(base["keyed"])
    sq = SQLITE_N / median(base["sqlite"])
    floor = SEND_N / median(base["floor"])
    assert n["records"] == SEND_N * n["round"], n  # every round (fewer with --benchmark-disable)
    record(
        benchmark,
        [
            absolute("P1. send() unkeyed, acks=written, 1 thread (records/s)", value=rate, target=">= 3e6",
                     unit="records/s", baseline=sq, baseline_name="sqlite3 executemany"),
            absolute("P1. send() keyed, acks=written, 1 thread (records/s)", value=keyed, target=">= 3e6",
                     unit="records/s", baseline=sq, baseline_name="sqlite3 executemany"),
            comparison("P1. send() unkeyed vs SQLite executemany (WAL, synchronous=OFF)", tidelog=rate, baseline=sq,
                       unit="records/s", ratio=rate / sq, target=">= 5", passed=rate / sq >= 5,
                       baseline_name="sqlite3 executemany"),
            comparison("P1. send() keyed vs SQLite executemany (WAL, synchronous=OFF)", tidelog=keyed, baseline=sq,
                       unit="records/s", ratio=keyed / sq, target=">= 5", passed=keyed / sq >= 5,
                       baseline_name="sqlite3 executemany"),
            comparison("P1. send() unkeyed vs the Python call floor", tidelog=rate, baseline=floor,
                       unit="records/s", ratio=rate / floor, target=None, passed=None,
                       baseline_name="slice(t, v, k) loop", note="context: interpreter cost of the loop and call"),
        ],
        records_per_round=SEND_N,
        sqlite_rows_per_round=SQLITE_N,
        unkeyed_records_per_frame=n["records"] / n["frames"] if n["frames"] else None,
        durability="interval",
        per_round_unkeyed_s=times,
    )


# ----------------------------------------------------------------------- P2

MANY_N = sized(500_000, 50_000)
MANY_ROUNDS = sized(10, 3)


@pytest.mark.parametrize("form", ["list", "arrow"])
def test_send_many(benchmark, bench_dir, form):
    values = make_values(MANY_N, VALUE_BYTES, seed=2)
    arr = pa.array(values, pa.binary())
    data = arr.buffers()[2].to_pybytes()
    log = tidelog.open(os.path.join(bench_dir, "log"))
    p = log.producer(acks="written")
    raw_path = os.path.join(bench_dir, "raw.bin")
    state = {"round": 0}

    def convert_round() -> float:
        t0 = time.perf_counter()
        pa.array(values, pa.binary())
        return time.perf_counter() - t0

    def write_round() -> float:
        fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            t0 = time.perf_counter()
            os.write(fd, data)
            return time.perf_counter() - t0
        finally:
            os.close(fd)

    payload = values if form == "list" else arr

    def subject():
        p.send_many(state["name"], payload)
        p.flush()

    def before():
        state["name"] = f"many{state['round']}"
        log.create_topic(state["name"], partitions=1, durability="interval")

    def after():
        end = log.topic(state["name"]).describe()["partitions"][0]["end_offset"]
        assert end == MANY_N, end
        log.delete_topic(state["name"])
        state["round"] += 1

    baselines = {"floor": convert_round if form == "list" else write_round}
    try:
        times, base = interleaved(benchmark, subject, baselines, rounds=MANY_ROUNDS, before_subject=before,
                                  after_subject=after)
    finally:
        p.close()
        log.close()
    rate = MANY_N / median(times)
    floor = MANY_N / median(base["floor"])
    floor_name = "pa.array(list of bytes)" if form == "list" else "os.write of the value bytes"
    record(
        benchmark,
        [absolute(f"P2. send_many, {'list of bytes' if form == 'list' else 'pa.array binary'}, acks=written "
                  "(records/s)", value=rate, target=">= 1e7", unit="records/s", baseline=floor,
                  baseline_name=floor_name)],
        records_per_round=MANY_N,
        durability="interval",
        per_round_s=times,
    )


# ----------------------------------------------------------------------- P3

READ_N = sized(500_000, 50_000)
SQLITE_READ_N = sized(100_000, 10_000)
READ_ROUNDS = sized(10, 3)


@pytest.fixture(scope="module")
def filled(module_bench_dir):
    """A 1-partition byte-record topic holding READ_N keyed 100-byte records
    written by a default producer, and a SQLite table of the same rows."""
    values = make_values(READ_N, VALUE_BYTES, seed=3)
    keys = make_keys(READ_N)
    log = tidelog.open(os.path.join(module_bench_dir, "log"))
    topic = log.create_topic("events", partitions=1, durability="interval")
    with log.producer(acks="written") as p:
        for k, v in zip(keys, values):
            p.send("events", v, k)
    log.flush()
    con = sqlite3.connect(os.path.join(module_bench_dir, "read.db"), isolation_level=None)
    con.execute("pragma journal_mode=WAL")
    con.execute("create table records (key blob, value blob)")
    con.execute("begin")
    con.executemany("insert into records values (?, ?)", zip(keys[:SQLITE_READ_N], values[:SQLITE_READ_N]))
    con.execute("commit")
    topic.read()  # warm the page cache and the mapping
    try:
        yield log, topic, con
    finally:
        con.close()
        log.close()


def sqlite_select(con) -> float:
    n = 0
    t0 = time.perf_counter()
    for row in con.execute("select key, value from records"):
        n += 1
    elapsed = time.perf_counter() - t0
    assert n == SQLITE_READ_N
    return elapsed


def test_consume_iterate(benchmark, filled):
    log, topic, con = filled
    c = log.consumer("events", start="earliest")

    def subject():
        n = 0
        for rec in c:
            n += 1
            if n == READ_N:
                break

    try:
        times, base = interleaved(benchmark, subject, {"sqlite": lambda: sqlite_select(con)}, rounds=READ_ROUNDS,
                                  before_subject=c.seek_to_beginning)
        assert c.position("events", 0) == READ_N
    finally:
        c.close()
    frames = len(topic._partitions[0].frames(0, READ_N, -(2**63), 2**63 - 1, 1 << 30))
    rate = READ_N / median(times)
    sq = SQLITE_READ_N / median(base["sqlite"])
    record(
        benchmark,
        [absolute("P3. consumer: for rec in consumer (records/s)", value=rate, target=">= 2e6", unit="records/s",
                  baseline=sq, baseline_name="sqlite3 select iteration")],
        records_per_round=READ_N,
        frames=frames,
        per_round_s=times,
    )


def test_consume_poll_batch(benchmark, filled):
    log, topic, con = filled
    c = log.consumer("events", start="earliest")
    sizes = []

    def subject():
        n = 0
        while n < READ_N:
            b = c.poll_batch(100_000)
            n += b.num_rows
        sizes.append(n)

    def read_round() -> float:
        t0 = time.perf_counter()
        t = topic.read()
        elapsed = time.perf_counter() - t0
        assert t.num_rows == READ_N
        return elapsed

    try:
        times, base = interleaved(benchmark, subject, {"read": read_round}, rounds=READ_ROUNDS,
                                  before_subject=c.seek_to_beginning)
    finally:
        c.close()
    assert all(s == READ_N for s in sizes), sizes
    rate = READ_N / median(times)
    rd = READ_N / median(base["read"])
    record(
        benchmark,
        [absolute("P3. consumer: poll_batch(100_000) (records/s)", value=rate, target=">= 2e7", unit="records/s",
                  baseline=rd, baseline_name="topic.read() (Arrow)")],
        records_per_round=READ_N,
        per_round_s=times,
    )


# ----------------------------------------------------------------------- P5

THREADS = 16
SENDS_PER_THREAD = sized(40, 10)
SINGLE_SENDS = sized(150, 30)
DURABLE_ROUNDS = sized(10, 3)


def test_durable_16_threads(benchmark, bench_dir):
    multi_measures: list[dict] = []
    with contender_rounds("tidelog producer", "threads", {"threads": THREADS},
                          Threads.data_for(THREADS, SENDS_PER_THREAD), bench_dir) as multi, \
            contender_rounds("tidelog producer", "threads", {"threads": 1}, Threads.data_for(1, SINGLE_SENDS),
                             bench_dir + "/one") as single:
        single_measures: list[dict] = []

        def one_thread() -> float:
            single_measures.append(single())
            return single_measures[-1]["seconds"]

        times, base = interleaved(benchmark, lambda: multi_measures.append(multi()), {"one_thread": one_thread},
                                  rounds=DURABLE_ROUNDS)
    measured = multi_measures[-len(times):]
    records = sum(m["acks"] for m in measured)
    syncs = sum(m["fdatasyncs"] for m in measured)
    single_records = sum(m["acks"] for m in single_measures)
    single_syncs = sum(m["fdatasyncs"] for m in single_measures)
    total = THREADS * SENDS_PER_THREAD
    multi_rate = total / median(times)
    one = SINGLE_SENDS / median(base["one_thread"])
    per_sync = records / syncs if syncs else float("inf")
    record(
        benchmark,
        [
            comparison(f"P5. {THREADS} threads x send().result(), acks=durable, fsync topic vs 1 thread",
                       tidelog=multi_rate, baseline=one, unit="records/s", ratio=multi_rate / one, target=">= 8",
                       passed=multi_rate / one >= 8, baseline_name="1 thread"),
            comparison(f"P5. records per fdatasync, {THREADS} threads (log.stats() deltas)", tidelog=per_sync,
                       baseline=1.0, unit="records/fdatasync", ratio=per_sync, target=None, passed=None,
                       baseline_name="1 per fdatasync", note="reported, no target"),
        ],
        records_16_threads=records,
        fdatasyncs_16_threads=syncs,
        single_thread_records_per_fdatasync=single_records / single_syncs if single_syncs > 0 else None,
        single_thread_ms_per_record=1e3 * median(base["one_thread"]) / SINGLE_SENDS,
    )
