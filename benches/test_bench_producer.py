"""Targets P1, P2, P3 and P5: Producer and Consumer throughput.

All topics are byte-record topics (``create_topic`` without a schema). Every
tidelog figure is measured interleaved, round by round, with its baselines
(benchlib.interleaved); medians over rounds.

P1-P3 run the contenders of ``tidelog bench -w records`` (tidelog.bench.targets.Records,
the ``tidelog interval`` contender and the baselines named below) on the same data.

P1  ``send()`` of 100-byte values, ``acks="written"``, one Python thread, the
    default producer (linger_ms=5, batch_bytes=1 MiB), ``p.flush()`` inside the
    clock, into a fresh 4-partition topic per round with durability="interval"
    (the committer fdatasyncs every 100 ms in the background, as Kafka leaves
    data to the page cache). Unkeyed (sticky partitioner) is the subject; keyed
    (16-byte keys, murmur2) and the baselines run in the same round:
    * ``sqlite OFF`` (stdlib sqlite3, WAL, ``synchronous=OFF`` - nothing synced, the
      same promise as acks="written"): ``executemany`` of the same (key, value)
      rows, prepared as tuples before the clock, in one transaction;
    * ``python call floor``: the same loop calling ``slice(topic, value, key)``
      (a C call of 3 arguments that allocates one object, as send() allocates its
      future) - how much of send()'s cost is the interpreter's.
    Targets: >= 3 M records/s, and >= 5x SQLite.
P2  ``send_many`` of 100-byte values, acks="written", one topic per round:
    from a list of bytes (baseline ``pa.array conversion``: ``pa.array(values, pa.binary())`` alone, the
    conversion any list path pays) and from a ``pa.array`` of binary (baseline
    ``os.write``: one os.write of the same value bytes into a page-cache file, the one copy).
    Target: >= 10 M records/s.
P3  Reading 500 k records written by a default producer (1 MiB frames, ~8 k
    records each), page cache warm: ``for rec in consumer`` (baseline ``sqlite OFF``:
    ``for row in con.execute("select key, value ...")`` over the same rows) and
    ``poll_batch(100_000)`` (baseline: the contender's ``topic.read()``, the zero-copy Arrow
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

import contextlib

import pytest

from benchlib import absolute, collect, comparison, contender_rounds, interleaved, median, record, seconds_of, sized
from tidelog.bench.targets import RecordsData
from tidelog.bench.workloads import Threads


def self_timed(measures: list[dict], times: list[float]) -> list[dict]:
    """The measured rounds' measures (warm-up rounds dropped, as ``interleaved`` drops them)."""
    return measures[len(measures) - len(times):]


# ----------------------------------------------------------------------- P1

SEND_N = sized(200_000, 20_000)
SQLITE_N = sized(50_000, 5_000)
SEND_ROUNDS = sized(12, 3)


def test_send_written(benchmark, bench_dir):
    data = RecordsData.build("send", SEND_N, SQLITE_N, seed=1)
    unkeyed, keyed = [], []
    with contextlib.ExitStack() as stack:
        def rounds_of(name: str):
            return stack.enter_context(contender_rounds(name, "records", {"op": "send"}, data, bench_dir))

        tl = rounds_of("tidelog interval")

        def keyed_round() -> float:
            keyed.append(tl({"keys": True}))
            return keyed[-1]["seconds"]

        times, base = interleaved(benchmark, collect(tl, unkeyed, {"keys": False}),
                                  {"keyed": keyed_round, "sqlite": seconds_of(rounds_of("sqlite OFF")),
                                   "floor": seconds_of(rounds_of("python call floor"))},
                                  rounds=SEND_ROUNDS)
    unkeyed = self_timed(unkeyed, times)
    rate = SEND_N / median([m["seconds"] for m in unkeyed])
    keyed_rate = SEND_N / median(base["keyed"])
    sq = SQLITE_N / median(base["sqlite"])
    floor = SEND_N / median(base["floor"])
    frames = sum(m["frames"] for m in unkeyed)
    record(
        benchmark,
        [
            absolute("P1. send() unkeyed, acks=written, 1 thread (records/s)", value=rate, target=">= 3e6",
                     unit="records/s", baseline=sq, baseline_name="sqlite3 executemany"),
            absolute("P1. send() keyed, acks=written, 1 thread (records/s)", value=keyed_rate, target=">= 3e6",
                     unit="records/s", baseline=sq, baseline_name="sqlite3 executemany"),
            comparison("P1. send() unkeyed vs SQLite executemany (WAL, synchronous=OFF)", tidelog=rate, baseline=sq,
                       unit="records/s", ratio=rate / sq, target=">= 5", passed=rate / sq >= 5,
                       baseline_name="sqlite3 executemany"),
            comparison("P1. send() keyed vs SQLite executemany (WAL, synchronous=OFF)", tidelog=keyed_rate,
                       baseline=sq, unit="records/s", ratio=keyed_rate / sq, target=">= 5",
                       passed=keyed_rate / sq >= 5, baseline_name="sqlite3 executemany"),
            comparison("P1. send() unkeyed vs the Python call floor", tidelog=rate, baseline=floor,
                       unit="records/s", ratio=rate / floor, target=None, passed=None,
                       baseline_name="slice(t, v, k) loop", note="context: interpreter cost of the loop and call"),
        ],
        records_per_round=SEND_N,
        sqlite_rows_per_round=SQLITE_N,
        unkeyed_records_per_frame=sum(m["records"] for m in unkeyed) / frames if frames else None,
        durability="interval",
        per_round_unkeyed_s=[m["seconds"] for m in unkeyed],
    )


# ----------------------------------------------------------------------- P2

MANY_N = sized(500_000, 50_000)
MANY_ROUNDS = sized(10, 3)


@pytest.mark.parametrize("form", ["list", "arrow"])
def test_send_many(benchmark, bench_dir, form):
    data = RecordsData.build("send_many", MANY_N, MANY_N, seed=2, form=form)
    params = {"op": "send_many", "form": form}
    floor_name = "pa.array conversion" if form == "list" else "os.write"
    measures: list[dict] = []
    with contender_rounds("tidelog interval", "records", params, data, bench_dir) as tl, \
            contender_rounds(floor_name, "records", params, data, bench_dir) as floor_round:
        times, base = interleaved(benchmark, collect(tl, measures), {"floor": seconds_of(floor_round)},
                                  rounds=MANY_ROUNDS)
    measures = self_timed(measures, times)
    rate = MANY_N / median([m["seconds"] for m in measures])
    floor = MANY_N / median(base["floor"])
    record(
        benchmark,
        [absolute(f"P2. send_many, {'list of bytes' if form == 'list' else 'pa.array binary'}, acks=written "
                  "(records/s)", value=rate, target=">= 1e7", unit="records/s", baseline=floor,
                  baseline_name="pa.array(list of bytes)" if form == "list" else "os.write of the value bytes")],
        records_per_round=MANY_N,
        durability="interval",
        per_round_s=[m["seconds"] for m in measures],
    )


# ----------------------------------------------------------------------- P3

READ_N = sized(500_000, 50_000)
SQLITE_READ_N = sized(100_000, 10_000)
READ_ROUNDS = sized(10, 3)


@pytest.fixture(scope="module")
def read_data():
    """READ_N keyed 100-byte records: the ``tidelog interval`` contender writes them with a
    default producer into a 1-partition topic; ``sqlite OFF`` loads the first SQLITE_READ_N."""
    return RecordsData.build("consume", READ_N, SQLITE_READ_N, seed=3)


def test_consume_iterate(benchmark, bench_dir, read_data):
    measures: list[dict] = []
    with contender_rounds("tidelog interval", "records", {"op": "consume"}, read_data, bench_dir) as tl, \
            contender_rounds("sqlite OFF", "records", {"op": "consume"}, read_data, bench_dir) as sqlite:
        times, base = interleaved(benchmark, collect(tl, measures, {"how": "iterate"}),
                                  {"sqlite": lambda: sqlite({"how": "iterate"})["seconds"]}, rounds=READ_ROUNDS)
        frames = tl.contender.records_frames()
    measures = self_timed(measures, times)
    rate = READ_N / median([m["seconds"] for m in measures])
    sq = SQLITE_READ_N / median(base["sqlite"])
    record(
        benchmark,
        [absolute("P3. consumer: for rec in consumer (records/s)", value=rate, target=">= 2e6", unit="records/s",
                  baseline=sq, baseline_name="sqlite3 select iteration")],
        records_per_round=READ_N,
        frames=frames,
        per_round_s=[m["seconds"] for m in measures],
    )


def test_consume_poll_batch(benchmark, bench_dir, read_data):
    measures: list[dict] = []
    with contender_rounds("tidelog interval", "records", {"op": "consume"}, read_data, bench_dir) as tl:
        times, base = interleaved(benchmark, collect(tl, measures, {"how": "poll_batch"}),
                                  {"read": lambda: tl({"how": "read"})["seconds"]}, rounds=READ_ROUNDS)
    measures = self_timed(measures, times)
    rate = READ_N / median([m["seconds"] for m in measures])
    rd = READ_N / median(base["read"])
    record(
        benchmark,
        [absolute("P3. consumer: poll_batch(100_000) (records/s)", value=rate, target=">= 2e7", unit="records/s",
                  baseline=rd, baseline_name="topic.read() (Arrow)")],
        records_per_round=READ_N,
        per_round_s=[m["seconds"] for m in measures],
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
