"""The byte-record Producer (issue 3): round trips, partitioning (murmur2 and
sticky), batching (linger_ms, batch_bytes, flush), delivery callbacks and
futures, send_many, errors raised at send, acks, and sends from many threads."""
from __future__ import annotations

import datetime
import itertools
import random
import threading
import time

import pyarrow as pa
import pytest

import tidelog
from tidelog import RecordMetadata
from _helpers import KAFKA_MURMUR2_VECTORS, kafka_partition


LONG = 60_000  # a linger that never expires during a test (ms)


def drain(log, topic, expected: int | None = None, timeout: float = 5.0) -> list:
    """Every record of ``topic`` from the beginning: ``expected`` of them (waiting
    up to ``timeout`` for each), or whatever is there now."""
    c = log.consumer(topic, start="earliest")
    out = []
    try:
        while expected is None or len(out) < expected:
            r = c.poll(timeout if expected is not None else 0.05)
            if r is None:
                break
            out.append(r)
        if expected is not None:
            assert c.poll(0) is None, "more records than expected"
    finally:
        c.close()
    return out


def per_partition(records) -> dict[int, list]:
    out: dict[int, list] = {}
    for r in records:
        out.setdefault(r.partition, []).append(r)
    return out


@pytest.fixture
def records3(log):
    """A 3-partition byte-record topic whose appends are visible at once
    (durability="none": under "fsync" the visible end is the durable end)."""
    return log.create_topic("events", partitions=3, durability="none")


# ------------------------------------------------------------------ round trips
UTC = datetime.timezone.utc
DT = datetime.datetime(2021, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
DT_NS = int(DT.timestamp()) * 10**9 + 123456 * 1000

# (send kwargs, expected key, expected value, expected headers, expected timestamp or None = "now")
ROUND_TRIP_CASES = [
    (dict(value=b"v1", key=b"k1"), b"k1", b"v1", [], None),
    (dict(value=b"no key"), None, b"no key", [], None),
    (dict(key=b"null value"), b"null value", None, [], None),
    (dict(), None, None, [], None),
    (dict(value=b"", key=b""), b"", b"", [], None),
    (dict(value=b"rep", headers=[("h", b"1"), ("h", b"2"), ("g", b"x"), ("h", b"1")]), None, b"rep",
     [("h", b"1"), ("h", b"2"), ("g", b"x"), ("h", b"1")], None),
    (dict(value=b"uni", headers=[("ünï-códe ✓", b"\x00\xff"), ("日本語", b""), ("", b"empty name")]), None, b"uni",
     [("ünï-códe ✓", b"\x00\xff"), ("日本語", b""), ("", b"empty name")], None),
    (dict(value=b"nones", headers=[("n", None), ("m", b"x"), ("n", None)]), None, b"nones",
     [("n", None), ("m", b"x"), ("n", None)], None),
    (dict(value=b"dict", headers={"a": b"1", "b": None, "ü": b"2"}), None, b"dict",
     [("a", b"1"), ("b", None), ("ü", b"2")], None),
    (dict(value=b"empty headers", headers=[]), None, b"empty headers", [], None),
    (dict(value=b"ts-int", timestamp=1_600_000_000_123_456_789), None, b"ts-int", [], 1_600_000_000_123_456_789),
    (dict(value=b"ts-zero", timestamp=0), None, b"ts-zero", [], 0),
    (dict(value=b"ts-dt", timestamp=DT), None, b"ts-dt", [], DT_NS),
    (dict(value=b"p2", key=b"k1", partition=2), b"k1", b"p2", [], None),
    (dict(value=b"p0", partition=0, timestamp=5), None, b"p0", [], 5),
    (dict(key="ключ", value="значение ✓"), "ключ".encode(), "значение ✓".encode(), [], None),
    (dict(key=bytearray(b"ba"), value=memoryview(b"--mv--")[2:4]), b"ba", b"mv", [], None),
    (dict(value=bytes(range(256)) * 40, headers=[("bin", bytearray(b"\x00\x01"))]), None, bytes(range(256)) * 40,
     [("bin", b"\x00\x01")], None),
]


@pytest.mark.parametrize("durability", ["fsync", "none"])
@pytest.mark.parametrize("linger_ms", [0, 1])
def test_round_trip_variants(log, linger_ms, durability):
    records3 = log.create_topic("events", partitions=3, durability=durability)
    before = time.time_ns()
    with log.producer(linger_ms=linger_ms, acks="written") as p:
        futures = [p.send("events", **kw) for kw, *_ in ROUND_TRIP_CASES]
        p.flush()
        metas = [f.result(timeout=5) for f in futures]
    after = time.time_ns()
    records = drain(log, "events", expected=len(ROUND_TRIP_CASES))
    by_pos = {(r.partition, r.offset): r for r in records}
    assert len(by_pos) == len(ROUND_TRIP_CASES)
    for (kw, key, value, headers, ts), meta in zip(ROUND_TRIP_CASES, metas):
        assert isinstance(meta, RecordMetadata)
        assert meta.topic == "events"
        r = by_pos[(meta.partition, meta.offset)]
        assert isinstance(r, tidelog.Record)
        assert r.topic == "events"
        assert r.key == key and r.value == value, kw
        assert r.headers == headers, kw
        assert all(type(n) is str for n, _ in r.headers)
        assert r.timestamp == meta.timestamp
        if ts is None:
            assert before <= r.timestamp <= after, kw
        else:
            assert r.timestamp == ts, kw
        if "partition" in kw:
            assert r.partition == kw["partition"]
        elif key is not None:
            assert r.partition == kafka_partition(key, 3)
    # The same records through the Arrow read path.
    table = records3.read()
    assert table.schema.equals(tidelog.RECORD_SCHEMA)
    assert table.num_rows == len(ROUND_TRIP_CASES)
    assert sorted(v for v in table["value"].to_pylist() if v is not None) == sorted(
        c[2] for c in ROUND_TRIP_CASES if c[2] is not None)


@pytest.mark.parametrize("durability", ["fsync", "none"])
def test_round_trip_when_each_future_dies_before_the_next_send(log, durability):
    # linger_ms=0 reuses the builder of a dead one-record batch for the next send:
    # nothing of one record (a null, a header, a timestamp) may reach the next.
    log.create_topic("events", partitions=3, durability=durability)
    cases = ROUND_TRIP_CASES + ROUND_TRIP_CASES[::-1]
    before = time.time_ns()
    with log.producer(linger_ms=0, acks="written") as p:
        metas = [p.send("events", **kw).result(timeout=5) for kw, *_ in cases]
    after = time.time_ns()
    by_pos = {(r.partition, r.offset): r for r in drain(log, "events", expected=len(cases))}
    for (kw, key, value, headers, ts), meta in zip(cases, metas):
        r = by_pos[(meta.partition, meta.offset)]
        assert (r.key, r.value, r.headers) == (key, value, headers), kw
        assert r.timestamp == meta.timestamp
        assert r.timestamp == ts if ts is not None else before <= r.timestamp <= after, kw


def test_record_order_per_partition_equals_send_order(log, records3):
    rng = random.Random(3)
    sent = []
    with log.producer(linger_ms=2, batch_bytes=2000, acks="written") as p:
        futures = []
        for i in range(3000):
            key = None if i % 11 == 0 else b"key-%d" % rng.randrange(10)
            value = b"%06d" % i
            futures.append(p.send("events", value=value, key=key))
            sent.append(value)
        p.flush()
        metas = [f.result(timeout=5) for f in futures]
    expected: dict[int, list] = {}
    for m, v in zip(metas, sent):
        expected.setdefault(m.partition, []).append((m.offset, v))
    records = drain(log, "events", expected=len(sent))
    got = per_partition(records)
    assert set(got) == set(expected)
    for p, recs in got.items():
        assert [r.offset for r in recs] == list(range(len(recs)))  # consecutive, from 0, in order
        assert [r.value for r in recs] == [v for _, v in expected[p]]
        assert [o for o, _ in expected[p]] == list(range(len(recs)))  # futures agree, in send order


# -------------------------------------------------------------- partitioning
@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 16])
def test_keyed_records_go_to_kafka_partition(log, partitions):
    log.create_topic("k", partitions=partitions, durability="none")
    rng = random.Random(partitions)
    keys = [k for k, _ in KAFKA_MURMUR2_VECTORS] + [b""] + [rng.randbytes(rng.randrange(1, 40)) for _ in range(200)]
    with log.producer(linger_ms=1, acks="written") as p:
        futures = [p.send("k", value=b"x", key=k) for k in keys]
        str_keys = ["order-%d" % i for i in range(50)] + ["ключ-%d" % i for i in range(10)]
        str_futures = [p.send("k", value=b"s", key=k) for k in str_keys]
        p.flush()
        for k, f in zip(keys, futures):
            assert f.result().partition == kafka_partition(k, partitions), k
        for k, f in zip(str_keys, str_futures):
            assert f.result().partition == kafka_partition(k.encode(), partitions), k
        # Independently of tidelog's own murmur2: the published vectors.
        for i, (key, h) in enumerate(KAFKA_MURMUR2_VECTORS):
            assert keys[i] == key
            assert futures[i].result().partition == (h & 0x7FFFFFFF) % partitions


def test_explicit_partition_overrides_key(log, records3):
    with log.producer(linger_ms=0, acks="written") as p:
        for k in [b"a", b"b", b"c", None]:
            for part in range(3):
                assert p.send("events", value=b"v", key=k, partition=part).result().partition == part


def test_unkeyed_records_stick_to_one_partition_per_batch(log):
    log.create_topic("s", partitions=3, durability="none")
    with log.producer(linger_ms=LONG, batch_bytes=1 << 20, acks="written") as p:
        first = [p.send("s", value=b"x%d" % i) for i in range(50)]
        p.flush()
        parts = {f.result().partition for f in first}
        assert len(parts) == 1, "an open batch takes every unkeyed record"
        (p0,) = parts
        assert [f.result().offset for f in first] == list(range(50))
        # The batch sealed (flush), so the sticky partition moved on.
        second = [p.send("s", value=b"y%d" % i) for i in range(20)]
        p.flush()
        parts2 = {f.result().partition for f in second}
        assert len(parts2) == 1 and parts2 != {p0}


def test_sticky_partition_moves_on_when_a_batch_seals(log):
    topic = log.create_topic("s", partitions=3, durability="none")
    with log.producer(linger_ms=LONG, batch_bytes=1000, acks="written") as p:
        futures = [p.send("s", value=bytes([i % 256]) * 100) for i in range(60)]
        # batch_bytes reached: batches sealed and appended without flush or linger
        assert sum(topic.end_offsets().values()) > 0
        p.flush()
        parts = [f.result().partition for f in futures]
    runs = [(k, len(list(g))) for k, g in itertools.groupby(parts)]
    assert len(runs) >= 4
    lengths = [n for _, n in runs[:-1]]
    assert len(set(lengths)) == 1, f"every full batch holds as many 100-byte records: {runs}"
    assert 2 <= lengths[0] <= 10, runs
    for (a, _), (b, _) in zip(runs, runs[1:]):
        assert a != b
    assert {k for k, _ in runs} == {0, 1, 2}, "batches rotate over the partitions"


# ------------------------------------------------------------------ send_many
def test_send_many_lists_of_bytes(log):
    log.create_topic("m", partitions=1)
    with log.producer(linger_ms=LONG, acks="written") as p:
        res = p.send_many("m", [b"a", b"", None, b"ccc"])
        assert isinstance(res, tidelog.AppendResult)
        assert res.offsets == {0: (0, 3)}
        res2 = p.send_many("m", [b"d", b"e"], keys=[b"k", None], headers=[[("h", b"1"), ("h", b"2")], None])
        assert res2.offsets == {0: (4, 5)}
    recs = drain(log, "m", expected=6)
    assert [r.value for r in recs] == [b"a", b"", None, b"ccc", b"d", b"e"]
    assert [r.key for r in recs] == [None] * 4 + [b"k", None]
    assert recs[4].headers == [("h", b"1"), ("h", b"2")]
    assert recs[5].headers == []
    assert [r.offset for r in recs] == list(range(6))


def test_send_many_reused_buffers_never_change_what_was_sent(log):
    """send_many converts lists into buffers it keeps for the thread's next call;
    what an earlier call stored must not change when they are refilled, shrunk
    or grown, with and without nulls, in every durability mode."""
    for durability, acks in [("none", "written"), ("interval", "written"), ("fsync", "durable")]:
        name = f"r-{durability}"
        log.create_topic(name, partitions=2, durability=durability)
        sent = []
        with log.producer(acks=acks) as p:
            for round_, n in enumerate([50, 3, 400, 0, 120, 400]):
                values = [None if (i + round_) % 7 == 0 else bytes([round_]) * (i % 13) for i in range(n)]
                keys = [None if i % 5 == 0 else b"k%d" % (i % 3) for i in range(n)] if round_ % 2 else None
                if n:
                    p.send_many(name, values, keys=keys)
                sent += values
        recs = drain(log, name, expected=len(sent))
        assert sorted((r.value is None, r.value or b"") for r in recs) == sorted(
            (v is None, v or b"") for v in sent)


@pytest.mark.parametrize("kind", ["binary", "large_binary", "string", "chunked"])
def test_send_many_arrow_arrays(log, kind):
    log.create_topic("m", partitions=4, durability="none")
    n = 1000
    values = [b"value-%d" % i for i in range(n)]
    keys = [b"key-%d" % (i % 37) for i in range(n)]
    if kind == "binary":
        v, k = pa.array(values, pa.binary()), pa.array(keys, pa.binary())
    elif kind == "large_binary":
        v, k = pa.array(values, pa.large_binary()), pa.array(keys, pa.large_binary())
    elif kind == "string":
        v, k = pa.array([x.decode() for x in values]), pa.array([x.decode() for x in keys])
    else:
        v = pa.chunked_array([pa.array(values[:300], pa.binary()), pa.array(values[300:], pa.binary())])
        k = pa.array(keys, pa.binary())
    with log.producer(acks="written") as p:
        res = p.send_many("m", v, keys=k)
    assert res.rows == n
    assert sum(last - first + 1 for first, last in res.offsets.values()) == n
    recs = drain(log, "m", expected=n)
    assert sorted(r.value for r in recs) == sorted(values)
    for r in recs:
        assert r.partition == kafka_partition(r.key, 4)
        assert r.value == b"value-" + r.value[6:] and r.key == b"key-%d" % (int(r.value[6:]) % 37)
    for part, recs_p in per_partition(recs).items():  # rows keep their order within a partition
        assert [int(r.value[6:]) for r in recs_p] == sorted(int(r.value[6:]) for r in recs_p)
        first, last = res.offsets[part]
        assert [r.offset for r in recs_p] == list(range(first, last + 1))


def test_send_many_headers_variants(log):
    log.create_topic("m", partitions=1, durability="none")
    headers = [{"a": b"1"}, [("r", b"1"), ("r", b"2")], None, [], [("ü", None)], {}]
    with log.producer(acks="written") as p:
        p.send_many("m", [b"%d" % i for i in range(len(headers))], headers=headers)
    recs = drain(log, "m", expected=len(headers))
    assert [r.headers for r in recs] == [[("a", b"1")], [("r", b"1"), ("r", b"2")], [], [], [("ü", None)], []]


def test_send_many_unkeyed_goes_to_one_partition(log):
    log.create_topic("m", partitions=3, durability="none")
    with log.producer(acks="written") as p:
        r1 = p.send_many("m", [b"x"] * 100)
        r2 = p.send_many("m", pa.array([b"y"] * 100))
        r3 = p.send_many("m", [b"z"] * 10, partition=2)
    assert len(r1.offsets) == 1 and len(r2.offsets) == 1
    assert r3.offsets == {2: (r3.offsets[2][0], r3.offsets[2][0] + 9)}


def test_send_many_after_send_keeps_queue_order(log):
    log.create_topic("m", partitions=2, durability="none")
    with log.producer(linger_ms=LONG, acks="written") as p:
        futures = [p.send("m", value=b"queued-%d" % i, partition=0) for i in range(3)]
        other = p.send("m", value=b"queued-other", partition=1)
        res = p.send_many("m", [b"bulk-0", b"bulk-1"], partition=0)
        assert res.offsets == {0: (3, 4)}
        assert [f.result(timeout=5).offset for f in futures] == [0, 1, 2]
        assert other.result(timeout=5) .offset == 0
        later = p.send("m", value=b"after", partition=0)
        p.flush()
        assert later.result().offset == 5
    recs = per_partition(drain(log, "m", expected=7))
    assert [r.value for r in recs[0]] == [b"queued-0", b"queued-1", b"queued-2", b"bulk-0", b"bulk-1", b"after"]


def test_send_many_errors(log, records3):
    with log.producer(acks="written") as p:
        with pytest.raises(ValueError):
            p.send_many("events", [b"a", b"b"], keys=[b"k"])
        with pytest.raises(ValueError):
            p.send_many("events", [b"a", b"b"], headers=[None])
        with pytest.raises(TypeError):
            p.send_many("events", [1, 2])
        with pytest.raises(TypeError):
            p.send_many("events", pa.array([1, 2]))
        with pytest.raises(tidelog.UnknownTopicError):
            p.send_many("nope", [b"a"])
    assert sum(records3.end_offsets().values()) == 0


# ------------------------------------------------------------------ threads
BUG_EMPTY_BATCH = ("Producer: a flush() racing with send() seals an empty batch, and the append of that "
                   "partition fails every batch drained with it (records lost)")


def _send_from_threads(log, concurrent_flush: bool, n_threads: int = 8, n: int = 1500):
    log.create_topic("t", partitions=4, durability="none")
    barrier = threading.Barrier(n_threads + 1)
    results: dict[int, list] = {}
    errors = []
    stop_flusher = threading.Event()

    def worker(tid):
        try:
            out = []
            barrier.wait()
            for i in range(n):
                key = None if i % 7 == 0 else b"k%d-%d" % (tid, i % 5)
                out.append((i, p.send("t", value=b"%d:%d" % (tid, i), key=key)))
            results[tid] = [(i, f.result(timeout=10)) for i, f in out]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def flusher():  # flushes race with sends and linger-sealing
        while not stop_flusher.is_set():
            p.flush()
            time.sleep(0.002)

    with log.producer(linger_ms=1, batch_bytes=4096, acks="written") as p:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        ft = threading.Thread(target=flusher)
        if concurrent_flush:
            ft.start()
        barrier.wait()
        for t in threads:
            t.join(60)
        stop_flusher.set()
        if concurrent_flush:
            ft.join()
    assert not errors, errors[:3]
    total = n_threads * n
    recs = drain(log, "t", expected=total, timeout=10)
    values = [r.value for r in recs]
    assert len(set(values)) == total == len(values), "every record exactly once"
    by_pos = {(r.partition, r.offset): r.value for r in recs}
    for part, rs in per_partition(recs).items():
        assert [r.offset for r in rs] == list(range(len(rs))), "offset order, no gaps"
        last: dict[int, int] = {}
        for r in rs:
            tid, i = map(int, r.value.split(b":"))
            assert last.get(tid, -1) < i, "a thread's records keep their order within a partition"
            last[tid] = i
    for tid, metas in results.items():
        for i, m in metas:
            assert by_pos[(m.partition, m.offset)] == b"%d:%d" % (tid, i)
            if i % 7:
                assert m.partition == kafka_partition(b"k%d-%d" % (tid, i % 5), 4)


def test_send_from_8_threads(log):
    _send_from_threads(log, concurrent_flush=False)


def test_send_from_8_threads_with_concurrent_flush(log):
    _send_from_threads(log, concurrent_flush=True)


# ---------------------------------------------------------- batching, flush
def test_linger_ms_seals_without_flush(log, records3):
    p = log.producer(linger_ms=300, acks="written")
    try:
        t0 = time.monotonic()
        fut = p.send("events", value=b"lingering", partition=1)
        assert not fut.done()
        assert records3.end_offsets()[1] == 0
        meta = fut.result(timeout=10)
        waited = time.monotonic() - t0
        assert meta.partition == 1 and meta.offset == 0
        assert waited >= 0.2, f"delivered after {waited:.3f}s, before linger_ms=300"
        assert records3.end_offsets()[1] == 1
    finally:
        p.close()


BUG_LINGER_ORPHAN = ("Producer: a linger-due empty batch is dropped from the linger list but stays open, so the "
                     "record later added to it is never sent (result() hangs until flush)")


def test_linger_delivers_when_the_gil_switches_inside_new_batch(log):
    """Every record is delivered about linger_ms after its send, without flush(),
    even when the sending thread loses the GIL between installing a fresh batch
    (already on the linger list) and adding its record - forced here by a
    condition whose release sleeps on the sending thread."""
    log.create_topic("g", partitions=2, durability="none")
    sender = threading.current_thread()

    class SlowReleaseCondition(threading.Condition):
        def __exit__(self, *exc):
            out = super().__exit__(*exc)
            if threading.current_thread() is sender:
                time.sleep(0.005)  # > linger_ms: the background thread finds the batch due
            return out

    p = log.producer(linger_ms=1, acks="written")
    p._engine._cond = SlowReleaseCondition()
    try:
        for i in range(5):
            fut = p.send("g", value=b"x%d" % i, partition=0)
            assert fut.result(timeout=2).offset == i
    finally:
        p.close()


def test_linger_zero_appends_at_once(log, records3):
    with log.producer(linger_ms=0, acks="written") as p:
        for i in range(5):
            fut = p.send("events", value=b"now", partition=0)
            assert fut.done()
            assert fut.result(0).offset == i
            assert records3.end_offsets()[0] == i + 1


def test_batch_bytes_seals_a_full_batch(log):
    topic = log.create_topic("b", partitions=1, durability="none")
    with log.producer(linger_ms=LONG, batch_bytes=1000, acks="written") as p:
        futures = []
        while topic.end_offsets()[0] == 0:
            futures.append(p.send("b", value=bytes(100)))
            assert len(futures) <= 10, "1000 bytes of 100-byte records sealed no batch"
        full = len(futures)
        assert all(f.done() for f in futures)
        more = [p.send("b", value=bytes(100)) for _ in range(full - 1)]
        assert not any(f.done() for f in more), "the next batch is not full yet"
        assert topic.end_offsets()[0] == full
        more.append(p.send("b", value=bytes(100)))
        assert topic.end_offsets()[0] == 2 * full
        assert [f.result(0).offset for f in futures + more] == list(range(2 * full))


def test_flush_delivers_everything(log, records3):
    p = log.producer(linger_ms=LONG, acks="written")
    futures = [p.send("events", value=b"%d" % i, key=b"%d" % i) for i in range(30)]
    assert sum(records3.end_offsets().values()) == 0
    assert not any(f.done() for f in futures)
    assert p.flush() == 0  # no delivery callbacks to run
    assert all(f.done() for f in futures)
    assert sum(records3.end_offsets().values()) == 30
    assert p.flush() == 0  # nothing left: a no-op
    p.close()
    p.close()  # idempotent


def test_context_manager_flushes_and_closes(log, records3):
    with log.producer(linger_ms=LONG, acks="written") as p:
        futures = [p.send("events", value=b"cm-%d" % i) for i in range(10)]
        assert sum(records3.end_offsets().values()) == 0
    assert all(f.done() for f in futures)
    assert sorted(r.value for r in drain(log, "events", expected=10)) == sorted(b"cm-%d" % i for i in range(10))
    with pytest.raises(tidelog.LogClosedError):
        p.send("events", value=b"late")
    with pytest.raises(tidelog.LogClosedError):
        p.send_many("events", [b"late"])


def test_context_manager_flushes_on_exception(log, records3):
    with pytest.raises(RuntimeError):
        with log.producer(linger_ms=LONG, acks="written") as p:
            fut = p.send("events", value=b"before the error")
            raise RuntimeError("boom")
    assert fut.done() and fut.result().offset == 0


# ---------------------------------------------------- callbacks and futures
def test_on_delivery_runs_in_poll_on_the_callers_thread(log, records3):
    calls = []

    def cb(err, meta):
        calls.append((threading.get_ident(), err, meta))

    with log.producer(linger_ms=0, acks="written") as p:
        futures = [p.send("events", value=b"%d" % i, partition=i % 3, on_delivery=cb) for i in range(6)]
        assert all(f.done() for f in futures)
        time.sleep(0.05)
        assert calls == [], "callbacks run only in poll()/flush()"
        assert p.poll() == 6
        assert p.poll() == 0
        assert [c[0] for c in calls] == [threading.get_ident()] * 6
        assert all(err is None for _, err, _ in calls)
        metas = [m for _, _, m in calls]
        assert sorted(metas) == sorted(f.result() for f in futures)
        for part in range(3):  # within a partition, callbacks come in offset order (as Kafka's)
            offs = [m.offset for m in metas if m.partition == part]
            assert offs == sorted(offs)
        assert all(isinstance(m, RecordMetadata) for _, _, m in calls)

        # Records sent by another thread: their callbacks still run on the thread calling poll().
        calls.clear()
        t = threading.Thread(target=lambda: [p.send("events", value=b"w", on_delivery=cb) for _ in range(4)])
        t.start()
        t.join()
        assert p.poll(1.0) == 4
        assert {c[0] for c in calls} == {threading.get_ident()}


def test_on_delivery_runs_in_flush(log, records3):
    calls = []
    with log.producer(linger_ms=LONG, acks="written") as p:
        futures = [p.send("events", value=b"f%d" % i, on_delivery=lambda e, m: calls.append((e, m))) for i in range(5)]
        assert p.poll() == 0 and calls == []
        assert p.flush() == 5
        assert calls == [(None, f.result()) for f in futures]


def test_poll_timeout_waits_for_a_delivery(log, records3):
    calls = []
    with log.producer(linger_ms=100, acks="written") as p:
        p.send("events", value=b"x", on_delivery=lambda e, m: calls.append(m))
        t0 = time.monotonic()
        assert p.poll(0) == 0
        assert p.poll(5.0) == 1
        assert time.monotonic() - t0 < 4.0
        assert len(calls) == 1 and calls[0].offset == 0
        t0 = time.monotonic()
        assert p.poll(0.1) == 0  # nothing pending: returns after the timeout
        assert time.monotonic() - t0 >= 0.08


def test_delivery_future_api(log, records3):
    with log.producer(linger_ms=LONG, acks="written") as p:
        fut = p.send("events", value=b"f", key=b"key")
        assert isinstance(fut, tidelog.DeliveryFuture)
        assert not fut.done()
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            fut.result(timeout=0.1)
        assert time.monotonic() - t0 >= 0.08
        seen = []
        fut.add_done_callback(seen.append)
        fut.add_done_callback(seen.append)
        assert seen == []
        p.flush()
        assert fut.done()
        assert seen == [fut, fut]
        meta = fut.result(timeout=0)
        assert meta == RecordMetadata("events", kafka_partition(b"key", 3), 0, meta.timestamp)
        assert fut.exception(0) is None
        late = []
        fut.add_done_callback(late.append)  # already done: called at once
        assert late == [fut]
        assert "events" in repr(fut)


# -------------------------------------------------------------------- errors
def test_record_too_large(log, records3):
    with log.producer(linger_ms=0, acks="written", max_record_bytes=100) as p:
        assert p.send("events", value=bytes(100)).result().offset == 0
        with pytest.raises(tidelog.RecordTooLargeError):
            p.send("events", value=bytes(101))
        with pytest.raises(tidelog.RecordTooLargeError):
            p.send("events", value=bytes(60), key=bytes(41))
        with pytest.raises(tidelog.RecordTooLargeError):
            p.send("events", value=bytes(50), headers=[("h" * 20, bytes(31))])
        with pytest.raises(ValueError):  # RecordTooLargeError is a ValueError too
            p.send("events", value=bytes(1000))
    assert sum(records3.end_offsets().values()) == 1


def test_default_max_record_bytes(log, records3):
    with log.producer(linger_ms=0, acks="written") as p:
        with pytest.raises(tidelog.RecordTooLargeError):
            p.send("events", value=bytes((1 << 20) + 1))
        assert p.send("events", value=bytes(1 << 19)).result().offset == 0


def test_unknown_topic(log, records3):
    with log.producer(acks="written") as p:
        with pytest.raises(tidelog.UnknownTopicError):
            p.send("nope", value=b"x")
        with pytest.raises(KeyError):  # UnknownTopicError is a KeyError too
            p.send("also-missing", value=b"x")


def test_send_after_close(log, records3):
    p = log.producer(acks="written")
    p.send("events", value=b"x")
    p.close()
    with pytest.raises(tidelog.LogClosedError):
        p.send("events", value=b"y")
    with pytest.raises(tidelog.LogClosedError):
        p.send_many("events", [b"y"])
    assert sum(records3.end_offsets().values()) == 1


@pytest.mark.parametrize("partition", [3, -1, 100])
def test_bad_partition(log, records3, partition):
    with log.producer(acks="written") as p:
        with pytest.raises(ValueError):
            p.send("events", value=b"x", partition=partition)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(headers=[("a", 1.5)]),
        dict(headers=[(1, b"x")]),
        dict(headers=[(b"bytes-name", b"x")]),
        dict(headers=[("a", b"x", b"y")]),
        dict(headers=["ab"]),
        dict(headers=[("a", 5)]),
        dict(headers={"a": 1.5}),
        dict(headers=5),
        dict(key=5),
        dict(value=1.5),
        dict(value=object()),
    ],
    ids=lambda kw: repr(kw)[:40],
)
def test_bad_types_raise_type_error(log, records3, kwargs):
    with log.producer(acks="written") as p:
        with pytest.raises(TypeError):
            p.send("events", **({"value": b"v"} | kwargs))
    assert sum(records3.end_offsets().values()) == 0


def test_producer_on_columnar_topic(log, sensors):
    with log.producer(acks="written") as p:
        with pytest.raises(TypeError):
            p.send("sensors", value=b"x")
        with pytest.raises(TypeError):
            p.send_many("sensors", [b"x"])


def test_failed_sends_add_nothing(log):
    log.create_topic("f", partitions=1)
    ba_key, ba_hdr = bytearray(b"key"), bytearray(b"hv")
    with log.producer(linger_ms=LONG, acks="written", max_record_bytes=200) as p:
        a = p.send("f", value=b"A", key=b"ka", headers=[("h", b"1")])
        failures = [
            (TypeError, dict(value=b"bad", key=ba_key, headers=[("ok", ba_hdr), ("bad", 1.5)])),
            (TypeError, dict(value=b"bad", headers=[("ok", b"1"), (2, b"x")])),
            (tidelog.RecordTooLargeError, dict(value=bytes(150), key=ba_key, headers=[("h", bytes(60))])),
            (ValueError, dict(value=b"bad", partition=1, headers=[("ok", ba_hdr)])),
            (ValueError, dict(value=b"bad", timestamp="not a time")),
        ]
        for exc, kw in failures:
            with pytest.raises(exc):
                p.send("f", **kw)
        # Buffers taken from the arguments were released (a resize would fail otherwise).
        ba_key.append(0)
        ba_hdr.append(0)
        b = p.send("f", value=b"B", headers=[("h", b"2"), ("h", None)])
        p.flush()
        assert (a.result().offset, b.result().offset) == (0, 1)
    recs = drain(log, "f", expected=2)
    assert [(r.offset, r.key, r.value, r.headers) for r in recs] == [
        (0, b"ka", b"A", [("h", b"1")]),
        (1, None, b"B", [("h", b"2"), ("h", None)]),
    ]


def test_producer_argument_validation(log):
    for kwargs in [dict(acks="most"), dict(linger_ms=-1), dict(batch_bytes=0), dict(max_record_bytes=0)]:
        with pytest.raises(ValueError):
            log.producer(**kwargs)


def test_read_only_log_has_no_producer(log_dir):
    tidelog.open(log_dir).close()
    ro = tidelog.open(log_dir, read_only=True)
    try:
        with pytest.raises(tidelog.ReadOnlyError):
            ro.producer()
    finally:
        ro.close()


# ---------------------------------------------------------------------- acks
def test_acks_durable_resolves_after_group_commit(log):
    log.create_topic("d", partitions=2, durability="fsync")
    with log.producer(linger_ms=0, acks="durable") as p:
        for i in range(5):
            before = log.stats()["fdatasyncs"]
            meta = p.send("d", value=b"durable", partition=0).result(timeout=10)
            assert meta.offset == i
            assert log.stats()["fdatasyncs"] > before
        # with linger: many records, one flush
        futures = [p.send("d", value=b"%d" % i, key=b"%d" % i) for i in range(200)]
        mid = log.stats()["fdatasyncs"]
        p.flush()
        for f in futures:
            f.result(timeout=10)
        assert log.stats()["fdatasyncs"] > mid
    assert len(drain(log, "d", expected=205)) == 205


BUG_DURABLE_FLUSH = ('Producer(acks="durable").flush() can return before every future resolved and without '
                     'running their on_delivery callbacks')


def test_acks_durable_flush_resolves_everything(log):
    log.create_topic("d", partitions=2, durability="fsync")
    for attempt in range(60):  # a race: ~3% of attempts hit it here
        with log.producer(linger_ms=0, acks="durable") as p:
            calls = []
            futures = [p.send("d", value=b"%d" % i, key=b"%d" % i, on_delivery=lambda e, m: calls.append(m))
                       for i in range(200)]
            ran = p.flush()
            assert all(f.done() for f in futures), f"attempt {attempt}: flush() returned before delivery"
            # Kafka's contract: callbacks in send order within each partition.
            assert ran == 200 and sorted(calls) == sorted(f.result(0) for f in futures)
            for part in (0, 1):
                assert [m for m in calls if m.partition == part] == \
                    [f.result(0) for f in futures if f.result(0).partition == part]


def test_acks_durable_waits_in_result(log):
    log.create_topic("d", partitions=1, durability="fsync")
    with log.producer(linger_ms=1, acks="durable") as p:
        futures = [p.send("d", value=b"%d" % i) for i in range(20)]
        metas = [f.result(timeout=10) for f in futures]  # no flush: linger, then the group commit
        assert [m.offset for m in metas] == list(range(20))
        assert log.stats()["fdatasyncs"] > 0


def test_acks_durable_on_none_topic_flushes(log):
    log.create_topic("n", partitions=1, durability="none")
    before = log.stats()["fdatasyncs"]
    with log.producer(linger_ms=0, acks="durable") as p:
        assert p.send("n", value=b"x").result(timeout=10).offset == 0
    assert log.stats()["fdatasyncs"] > before


def test_acks_written_on_fsync_topic_becomes_visible(log):
    """"written" acks do not wait for the group commit, but the record shows up
    for consumers once the commit (which runs at once for fsync topics) is done."""
    topic = log.create_topic("w", partitions=1, durability="fsync")
    with log.producer(linger_ms=0, acks="written") as p:
        before = log.stats()["fdatasyncs"]
        p.send("w", value=b"x").result(timeout=10)
        c = log.consumer("w")
        r = c.poll(5.0)
        assert r is not None and r.value == b"x"
        # visible only after an fdatasync covered it (the counter is bumped right after publishing)
        deadline = time.monotonic() + 5
        while log.stats()["fdatasyncs"] == before and time.monotonic() < deadline:
            time.sleep(0.001)
        assert log.stats()["fdatasyncs"] > before
        assert topic.end_offsets()[0] == 1


def test_durable_senders_never_stall_under_frequent_thread_switches(log):
    """Regression: a batch settled by one sender's result() while another thread
    was between marking it appended and counting it in flight stayed counted
    forever, and its partition stopped sealing (every later result() hung)."""
    import sys

    log.create_topic("stall", partitions=1, durability="fsync")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    errors = []
    try:
        with log.producer(linger_ms=0, acks="durable") as p:
            def worker():
                try:
                    for i in range(60):
                        p.send("stall", value=b"%d" % i).result(timeout=5)
                except BaseException as e:  # noqa: BLE001 - reported below
                    errors.append(e)

            threads = [threading.Thread(target=worker) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors[:3]
            assert all(v == 0 for v in p._engine._in_flight.values())
    finally:
        sys.setswitchinterval(old)
    assert log.topic("stall").end_offsets()[0] == 8 * 60


def test_linger_zero_durable_direct_path_settles_through_every_door(log):
    """linger_ms=0 appends inside send(); the future settles by result(), done(),
    add_done_callback, on_delivery or flush(), whichever comes first."""
    log.create_topic("d", partitions=1, durability="fsync")
    with log.producer(linger_ms=0, acks="durable") as p:
        appends = log.stats()["appends"]
        kept = [p.send("d", value=b"%d" % i) for i in range(10)]
        for i in range(10):
            p.send("d", value=b"dropped %d" % i)  # futures dropped at once: their announce is withdrawn
        assert log.stats()["appends"] == appends + 20  # appended inside send(), before any wait
        log.flush()
        assert log.topic("d").end_offsets() == {0: 20}
        assert all(f.done() for f in kept)  # durable now: done() sees it without waiting
        assert [f.result(0).offset for f in kept] == list(range(10))
        seen = []
        fut = p.send("d", value=b"cb")
        fut.add_done_callback(lambda f: seen.append(f.result(0).offset))
        calls = []
        p.send("d", value=b"od", on_delivery=lambda err, meta: calls.append((err, meta.offset)))
        p.flush()
        assert seen == [20] and calls == [(None, 21)]


def test_linger_zero_durable_on_interval_topic_waits_for_the_interval_flush(log):
    log.create_topic("i", partitions=1, durability="interval", flush_interval_ms=20)
    with log.producer(linger_ms=0, acks="durable") as p:
        before = log.stats()["fdatasyncs"]
        assert p.send("i", value=b"x").result(timeout=10).offset == 0
        assert log.stats()["fdatasyncs"] > before


def test_linger_zero_send_to_a_deleted_topic_raises_at_send(log):
    log.create_topic("gone", partitions=1)
    with log.producer(linger_ms=0, acks="written") as p:
        p.send("gone", value=b"x").result(1)
        log.delete_topic("gone")
        with pytest.raises((tidelog.errors.LogClosedError, tidelog.errors.UnknownTopicError)):
            p.send("gone", value=b"y")


def test_result_calls_a_metadata_factory_that_is_not_a_plain_namedtuple(log):
    # result() builds RecordMetadata with tuple.__new__; any other factory the engine
    # holds is called as it is.
    class Shouting(RecordMetadata):
        def __new__(cls, topic, partition, offset, timestamp):
            return super().__new__(cls, topic.upper(), partition, offset, timestamp)

    log.create_topic("t")
    with log.producer(linger_ms=0, acks="written") as p:
        first = p.send("t", b"a").result()
        assert type(first) is RecordMetadata and first.topic == "t" and first.offset == 0
        p._engine.metadata = Shouting
        second = p.send("t", b"b").result()
        assert type(second) is Shouting and second[:3] == ("T", 0, 1)
        p._engine.metadata = lambda *fields: ("custom",) + fields
        assert p.send("t", b"c").result()[:4] == ("custom", "t", 0, 2)
        p._engine.metadata = RecordMetadata
        assert type(p.send("t", b"d").result()) is RecordMetadata
