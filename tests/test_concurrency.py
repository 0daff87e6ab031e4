"""Many threads appending at once; durability modes; the committer's counters."""
from __future__ import annotations

import threading
import time
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

import tidelog

SCHEMA = pa.schema([("writer", pa.int32()), ("seq", pa.int64()), ("payload", pa.string())])


def batch_for(writer: int, seq0: int, n: int) -> pa.RecordBatch:
    seq = np.arange(seq0, seq0 + n, dtype=np.int64)
    return pa.RecordBatch.from_arrays(
        [pa.array(np.full(n, writer, np.int32)), pa.array(seq), pa.array([f"w{writer}-{s}" for s in seq])],
        schema=SCHEMA,
    )


def run_threads(n_threads: int, target) -> list:
    """Runs target(i) in n threads started together; returns their results, re-raising errors."""
    results: list = [None] * n_threads
    errors: list = []
    barrier = threading.Barrier(n_threads)

    def body(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "an appender thread hung"
    if errors:
        raise errors[0]
    return results


def check_dense(ranges_by_partition: dict[int, list[tuple[int, int]]], ends: dict[int, int]) -> None:
    for p, ranges in ranges_by_partition.items():
        ranges = sorted(ranges)
        expect = 0
        for first, last in ranges:
            assert first == expect, f"partition {p}: gap or overlap at {first} (expected {expect})"
            assert last >= first
            expect = last + 1
        assert expect == ends[p], f"partition {p}: end {ends[p]} != {expect}"


@pytest.mark.parametrize("durability,partitions,keyed", [
    ("fsync", 1, False),
    ("fsync", 3, False),
    ("fsync", 4, True),
    ("interval", 2, False),
    ("none", 2, True),
])
def test_eight_threads_append(log, durability, partitions, keyed):
    topic = log.create_topic("c", SCHEMA, partitions=partitions, key="writer" if keyed else None,
                             durability=durability, flush_interval_ms=5)
    per_thread, rows = 40, 37

    def work(w):
        out = []
        for i in range(per_thread):
            b = batch_for(w, i * rows, rows)
            res = topic.append(b)
            assert sum(last - first + 1 for first, last in res.offsets.values()) == rows
            out.append((b, res.offsets))
        return out

    results = run_threads(8, work)
    ends = topic.end_offsets()
    assert sum(ends.values()) == 8 * per_thread * rows
    ranges = defaultdict(list)
    for per in results:
        for _, offsets in per:
            for p, r in offsets.items():
                ranges[p].append(r)
    check_dense(ranges, ends)
    # every row exactly once
    table = topic.read()
    assert table.num_rows == 8 * per_thread * rows
    pairs = set(zip(table["writer"].to_pylist(), table["seq"].to_pylist()))
    assert len(pairs) == table.num_rows
    assert pairs == {(w, s) for w in range(8) for s in range(per_thread * rows)}
    # each acknowledged batch is found at the offsets it was given, unchanged
    for per in results[:2]:
        for b, offsets in per[::7]:
            got = pa.concat_tables(
                [topic.read(first, last + 1, partitions=p) for p, (first, last) in sorted(offsets.items())]
            )
            assert sorted(got["seq"].to_pylist()) == b["seq"].to_pylist()
            assert set(got["writer"].to_pylist()) == {b["writer"][0].as_py()}
    # within a writer, a partition's rows appear in append order
    for p in range(partitions):
        part = topic.read(partitions=p)
        for w in range(8):
            seqs = [s for ww, s in zip(part["writer"].to_pylist(), part["seq"].to_pylist()) if ww == w]
            assert seqs == sorted(seqs)
    if keyed:
        for p in range(partitions):
            assert len(set(topic.read(partitions=p)["writer"].to_pylist())) <= 8


def test_threads_appending_to_different_topics(log):
    topics = [log.create_topic(f"t{i}", SCHEMA, partitions=2) for i in range(4)]

    def work(w):
        t = topics[w % 4]
        for i in range(25):
            t.append(batch_for(w, i * 10, 10))

    run_threads(8, work)
    for i, t in enumerate(topics):
        tab = t.read()
        assert tab.num_rows == 2 * 25 * 10
        assert set(tab["writer"].to_pylist()) == {i, i + 4}


def test_readers_during_appends(log):
    topic = log.create_topic("rw", SCHEMA, partitions=2)
    stop = threading.Event()

    def writer(w):
        for i in range(60):
            topic.append(batch_for(w, i * 20, 20))

    def reader():
        seen = 0
        while not stop.is_set():
            t = topic.read()
            assert t.num_rows >= seen
            seen = t.num_rows
            # a read never contains a torn or duplicated row
            pairs = list(zip(t["writer"].to_pylist(), t["seq"].to_pylist()))
            assert len(set(pairs)) == len(pairs)
        return seen

    r_exc = []

    def guarded():
        try:
            reader()
        except BaseException as e:  # noqa: BLE001
            r_exc.append(e)

    r = threading.Thread(target=guarded)
    r.start()
    try:
        run_threads(4, writer)
    finally:
        stop.set()
        r.join(timeout=60)
    if r_exc:
        raise r_exc[0]
    assert topic.read().num_rows == 4 * 60 * 20


@pytest.mark.parametrize("durability", ["interval", "none"])
def test_durability_modes_work(log_dir, durability):
    with tidelog.open(log_dir) as lg:
        t = lg.create_topic("d", SCHEMA, partitions=2, durability=durability, flush_interval_ms=10)
        assert t.describe()["config"]["durability"] == durability
        for i in range(20):
            t.append(batch_for(0, i * 5, 5))
        assert t.read().num_rows == 100  # visible after the write, without waiting
        t.flush()
        assert lg.stats()["appends"] >= 20
        t.append(batch_for(0, 100, 5))
    with tidelog.open(log_dir) as lg:
        assert lg.clean_shutdown
        assert sorted(lg.topic("d").read()["seq"].to_pylist()) == list(range(105))


@pytest.mark.parametrize("durability", ["fsync", "interval", "none"])
@pytest.mark.parametrize("via", ["topic", "log"])
def test_flush_syncs_in_every_mode(log, durability, via):
    """flush() is documented to make every append so far durable, whatever the mode."""
    t = log.create_topic("f", SCHEMA, durability=durability, flush_interval_ms=60_000)
    t.append(batch_for(0, 0, 5))
    before = log.stats()["fdatasyncs"]
    t.append(batch_for(0, 5, 5))
    (t if via == "topic" else log).flush()
    assert log.stats()["fdatasyncs"] > before


def test_interval_mode_flushes_in_background(log):
    t = log.create_topic("iv", SCHEMA, durability="interval", flush_interval_ms=20)
    before = log.stats()["fdatasyncs"]
    t.append(batch_for(0, 0, 10))
    deadline = time.monotonic() + 10
    while log.stats()["fdatasyncs"] == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.stats()["fdatasyncs"] > before, "no background flush within 10 s"


def test_none_mode_does_not_sync_per_append(log):
    t = log.create_topic("n", SCHEMA, durability="none")
    before = log.stats()
    for i in range(50):
        t.append(batch_for(0, i, 1))
    after = log.stats()
    assert after["appends"] - before["appends"] == 50
    assert after["fdatasyncs"] - before["fdatasyncs"] < 50


def test_stats_counters_move(log):
    t = log.create_topic("s", SCHEMA, partitions=2)
    s0 = log.stats()
    for key in ("appends", "frames", "bytes", "fdatasyncs"):
        assert key in s0 and isinstance(s0[key], int)
    t.append(batch_for(0, 0, 100))
    t.append(batch_for(1, 0, 100))
    s1 = log.stats()
    assert s1["appends"] - s0["appends"] == 2
    assert s1["frames"] - s0["frames"] == 2
    assert s1["bytes"] - s0["bytes"] > 2 * 100 * 8
    assert s1["fdatasyncs"] > s0["fdatasyncs"]
    assert s1["bytes"] - s0["bytes"] <= t.describe()["bytes"]


@pytest.mark.slow
def test_group_commit_sixteen_threads(log):
    t = log.create_topic("g", SCHEMA, durability="fsync")
    per_thread = 40
    s0 = log.stats()
    run_threads(16, lambda w: [t.append(batch_for(w, i, 1)) for i in range(per_thread)])
    s1 = log.stats()
    appends = s1["appends"] - s0["appends"]
    syncs = s1["fdatasyncs"] - s0["fdatasyncs"]
    assert appends == 16 * per_thread
    assert 0 < syncs < appends, f"{syncs} fdatasyncs for {appends} appends: no group commit"
    assert t.end_offsets() == {0: 16 * per_thread}
    tab = t.read()
    assert len(set(zip(tab["writer"].to_pylist(), tab["seq"].to_pylist()))) == 16 * per_thread


def test_split_append_range_holds_only_its_rows(log):
    """An append bigger than one frame is cut into several frames; the (first, last)
    range it returns must still hold exactly its own rows."""
    schema = pa.schema([("w", pa.int32()), ("v", pa.int64())])
    t = log.create_topic("split", schema, segment_bytes=1 << 20, durability="none")
    n = 400_000  # ~4.8 MB: several 1 MiB frames
    big = pa.RecordBatch.from_arrays([pa.array(np.zeros(n, np.int32)), pa.array(np.arange(n))], schema=schema)
    small = pa.RecordBatch.from_arrays([pa.array(np.ones(10, np.int32)), pa.array(np.arange(10))], schema=schema)
    for _ in range(3):
        out = run_threads(2, lambda i: t.append(big) if i == 0 else [t.append(small) for _ in range(200)])
        first, last = out[0].offsets[0]
        assert out[0].rows == n
        got = t.read(first, last + 1)
        assert last - first + 1 == n, f"range of {last - first + 1} offsets for a {n}-row append"
        assert set(got["w"].to_pylist()) == {0}
