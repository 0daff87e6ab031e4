"""Log compaction end to end: what the cleaner keeps and drops, on byte-record
and columnar topics (uncompressed, zstd, dictionary columns), in one pass or
many (a tiny dedupe map), with tombstones and their delete horizon, the lag
setting, the background thread, other processes appending, reading and
cleaning at the same time, and a cleaner SIGKILLed mid-pass."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from tidelog import _verify

TINY_MAP = 24 * 8  # 6 keys a pass
T0 = 1_700_000_000_000_000_000


def _fill_records(log, name, n, keys, **topic_kwargs):
    log.create_topic(name, cleanup_policy="compact", segment_bytes=4096, min_cleanable_dirty_ratio=1.0,
                     **topic_kwargs)
    latest = {}
    with log.producer(linger_ms=0) as p:
        for i in range(n):
            k = b"k%d" % (i % keys)
            v = b"v%d" % i
            p.send("m" if name == "m" else name, key=k, value=v)
            latest[k] = v
    return latest


def _history(topic):
    """(partition, offset, key, value) of every record a scan from offset 0 returns."""
    out = []
    for p in range(topic.partitions):
        for batch in topic.partition(p).scan(with_offsets=True):
            cols = batch.to_pydict()
            out += [(p, o, k, v) for o, k, v in zip(cols["_offset"], cols["key"], cols["value"])]
    return out


@pytest.mark.parametrize("budget", [None, TINY_MAP])
def test_compaction_keeps_the_latest_record_per_key_and_their_offsets(log, budget):
    latest = _fill_records(log, "m", 600, 25)
    t = log.topic("m")
    log.flush()
    before = {(p, o): (k, v) for p, o, k, v in _history(t)}
    time.sleep(0.05)
    totals = t.compact_now(dedupe_buffer_bytes=budget)
    assert totals["records_removed"] > 0 and totals["bytes_after"] < totals["bytes_before"]
    if budget:
        assert totals["passes"] > 1  # 25 keys, 6 a pass
    after = _history(t)
    # Every record that stayed is the one written at its offset, in offset order.
    assert all(before[(p, o)] == (k, v) for p, o, k, v in after)
    assert [o for _, o, _, _ in after] == sorted(o for _, o, _, _ in after)
    last = {}
    for _, _, k, v in after:
        last[k] = v
    assert last == latest
    # The sealed segments hold one record per key at most; the active one is untouched.
    assert len(after) < 600
    assert t.end_offsets() == {0: 600}
    assert dict(zip(t.table().column("key").to_pylist(), t.table().column("value").to_pylist())) == latest
    # A second pass changes nothing.
    again = t.compact_now(dedupe_buffer_bytes=budget)
    assert again["records_removed"] == 0 and again["segments_rewritten"] == 0
    log.close()
    assert not _verify.verify(log.path).damaged


def test_tombstones_delete_keys_and_go_after_delete_retention(log):
    log.create_topic("m", cleanup_policy="compact", segment_bytes=4096, delete_retention_ms=300,
                     min_cleanable_dirty_ratio=1.0)
    t = log.topic("m")
    with log.producer(linger_ms=0) as p:
        for i in range(200):
            p.send("m", key=b"k%d" % (i % 5), value=b"x" * 50)
        p.send("m", key=b"k1", value=None)
        for i in range(200):  # push the tombstone into a sealed segment
            p.send("m", key=b"k%d" % (2 + i % 3), value=b"y" * 50)
    t.compact_now()
    hist = _history(t)
    assert (b"k1", None) in [(k, v) for _, _, k, v in hist]  # younger than delete_retention_ms: seen
    assert [v for _, _, k, v in hist if k == b"k1"] == [None]  # older values of k1 are gone
    assert b"k1" not in t.table().column("key").to_pylist()
    time.sleep(0.4)
    t.compact_now()
    assert b"k1" not in [k for _, _, k, _ in _history(t)]  # the tombstone went too
    assert b"k0" in t.table().column("key").to_pylist()


def test_min_compaction_lag_keeps_young_segments(log):
    log.create_topic("m", cleanup_policy="compact", segment_bytes=4096, min_compaction_lag_ms=3_600_000,
                     min_cleanable_dirty_ratio=1.0)
    t = log.topic("m")
    with log.producer(linger_ms=0) as p:
        for i in range(300):
            p.send("m", key=b"k%d" % (i % 3), value=b"x" * 50)
    assert t.compact_now()["records_removed"] == 0
    log.alter_topic("m", min_compaction_lag_ms=0)
    assert t.compact_now()["records_removed"] > 0


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("dictionary", [False, True])
def test_columnar_topics_compact_by_their_key_column(log, compression, dictionary):
    schema = pa.schema([("ts", pa.timestamp("ns")), ("sensor", pa.int32()),
                        ("site", pa.dictionary(pa.int8(), pa.string()) if dictionary else pa.string()),
                        ("value", pa.float64())])
    t = log.create_topic("s", schema, key="sensor", timestamp="ts", cleanup_policy="compact",
                         compression=compression, segment_bytes=16384, min_cleanable_dirty_ratio=1.0)
    rng = np.random.default_rng(5)
    rows = []
    for b in range(40):
        sensors = rng.integers(0, 50, 64).astype(np.int32)
        ts = T0 + (b * 64 + np.arange(64)) * 1000
        values = rng.random(64)
        site = pa.array([f"site-{s % 4}" for s in sensors])
        if dictionary:
            site = site.dictionary_encode().cast(schema.field("site").type)
        t.append(pa.record_batch([pa.array(ts, pa.timestamp("ns")), pa.array(sensors), site, pa.array(values)],
                                 schema=schema))
        rows += list(zip(sensors.tolist(), values.tolist(), ts.tolist()))
    t.tombstone([7])
    expected = {}
    for s, v, _ts in rows:
        expected[s] = v
    expected.pop(7)
    before = t.table()
    totals = t.compact_now()
    assert totals["records_removed"] > 0
    after = t.table()
    assert dict(zip(after.column("sensor").to_pylist(), after.column("value").to_pylist())) == expected
    assert after.sort_by("sensor").to_pylist() == before.sort_by("sensor").to_pylist()
    # Timestamps survive: the time index still finds the rows.
    full = t.read(with_offsets=True)
    assert full.column("ts").cast(pa.int64()).to_pylist() == sorted(full.column("ts").cast(pa.int64()).to_pylist())
    log.close()
    assert not _verify.verify(log.path).damaged


def test_the_background_cleaner_compacts_dirty_partitions(log):
    log.create_topic("m", partitions=2, cleanup_policy="compact", segment_bytes=4096,
                     min_cleanable_dirty_ratio=0.5)
    t = log.topic("m")
    with log.producer(linger_ms=0) as p:
        for i in range(600):
            p.send("m", key=b"k%d" % (i % 10), value=b"x" * 40)
    log.flush()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        comp = [p["compaction"] for p in t.describe()["partitions"]]
        if all(c["compaction_passes"] > 0 and c["bytes_reclaimed"] > 0 for c in comp):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the cleaner thread did not compact: {comp}")
    assert all(c["last_compaction"] is not None and c["dirty_ratio"] < 0.5 for c in comp)


CLEANER = textwrap.dedent("""
    import sys, tidelog
    log = tidelog.open(sys.argv[1])
    t = log.topic("m")
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        t.compact_now(dedupe_buffer_bytes=int(sys.argv[3]))
    log.close()
""")


def test_appends_and_reads_go_on_while_another_process_compacts(log):
    _fill_records(log, "m", 400, 20)
    t = log.topic("m")
    log.flush()
    proc = subprocess.Popen([sys.executable, "-c", CLEANER, log.path, "30", str(TINY_MAP)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    latest = {}
    written = {}
    stop = threading.Event()
    errors = []

    def read_loop():
        try:
            while not stop.is_set():
                hist = _history(t)
                assert [o for _, o, _, _ in hist] == sorted(o for _, o, _, _ in hist)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        with log.producer(linger_ms=0) as p:
            i = 400
            while proc.poll() is None and i < 4000:
                k, v = b"k%d" % (i % 20), b"w%d" % i
                meta = p.send("m", key=k, value=v).result()
                written[meta.offset] = (k, v)
                latest[k] = v
                i += 1
    finally:
        stop.set()
        reader.join()
        proc.wait(timeout=120)
    assert proc.returncode == 0 and not errors
    for _, o, k, v in _history(t):
        if o in written:
            assert written[o] == (k, v)
    table = t.table()
    got = dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist()))
    assert all(got[k] == v for k, v in latest.items())
    log.close()
    assert not _verify.verify(log.path).damaged


def test_a_consumer_keeps_reading_through_a_compaction_by_another_process(log):
    """It reads from offset 0 while the segments it reads are replaced: what it
    gets is the records written at those offsets, in order, and at least the
    latest value of every key."""
    latest = _fill_records(log, "m", 800, 40)
    log.flush()
    c = log.consumer(["m"], start="earliest")
    first = c.poll(1.0)
    proc = subprocess.Popen([sys.executable, "-c", CLEANER, log.path, "3", str(64 << 20)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    seen = [first]
    while True:
        rec = c.poll(0.5)
        if rec is None and proc.poll() is not None:
            break
        if rec is not None:
            seen.append(rec)
    assert proc.wait(timeout=60) == 0
    offsets = [r.offset for r in seen]
    assert offsets == sorted(set(offsets))
    last = {}
    for r in seen:
        last[r.key] = r.value
    assert last == latest


def test_a_cleaner_killed_mid_pass_leaves_old_or_new_segments(log):
    latest = _fill_records(log, "m", 500, 15)
    t = log.topic("m")
    log.flush()
    for point in ("compact.written", "compact.indexes_unlinked", "compact.renamed", "compact.done"):
        env = {**os.environ, "TIDELOG_TEST_KILL_AT": f"{point}:2"}
        r = subprocess.run([sys.executable, "-c", CLEANER, log.path, "1", str(TINY_MAP)], env=env,
                           capture_output=True, timeout=120)
        assert r.returncode in (-signal.SIGKILL, 0), r.stderr[-2000:]
        table = t.table()
        assert dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist())) == latest
        with log.producer(linger_ms=0) as p:  # appends go on after the dead cleaner
            for i in range(30):
                k, v = b"k%d" % (i % 15), b"after-%s-%d" % (point.encode(), i)
                p.send("m", key=k, value=v)
                latest[k] = v
    t.compact_now()
    table = t.table()
    assert dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist())) == latest
    log.close()
    leftovers = [f for f in os.listdir(os.path.join(log.path, "topics", "m", "0")) if f.endswith(".cleaned")]
    assert leftovers == []
    assert not _verify.verify(log.path).damaged


def test_compact_now_waits_for_the_background_cleaners_pass(log):
    """compact_now() in one thread, the cleaner thread and another thread's
    compact_now() on the same partitions: they take turns, none fails."""
    _fill_records(log, "m", 800, 30)
    t = log.topic("m")
    log.alter_topic("m", min_cleanable_dirty_ratio=0.0)  # the thread passes whenever it can
    errors = []

    def run():
        try:
            for _ in range(15):
                t.compact_now(dedupe_buffer_bytes=TINY_MAP)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_closing_the_log_while_another_thread_compacts(log_dir):
    log = tidelog.open(log_dir)
    _fill_records(log, "m", 3000, 2000)
    t = log.topic("m")
    errors = []

    def run():
        try:
            t.compact_now(dedupe_buffer_bytes=TINY_MAP)  # many passes: still running at close
        except (tidelog.LogClosedError, tidelog.UnknownTopicError):
            pass
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.2)
    log.close()  # waits for the pass to give up, then closes cleanly
    th.join()
    assert not errors
    with tidelog.open(log_dir) as again:
        assert again.clean_shutdown
        assert again.topic("m").end_offsets() == {0: 3000}


def test_an_alter_by_another_process_reaches_a_handle_without_compacted_topics(log):
    t = log.create_topic("d", retention_ms=3_600_000)
    script = textwrap.dedent("""
        import sys, tidelog
        with tidelog.open(sys.argv[1]) as log:
            log.alter_topic("d", cleanup_policy="compact", retention_ms=None)
    """)
    subprocess.run([sys.executable, "-c", script, log.path], check=True, timeout=60)
    deadline = time.monotonic() + 10
    while not t.config.compacted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert t.config.compacted and t.config.retention_ms is None
    with log.producer(linger_ms=0) as p:
        with pytest.raises(tidelog.InvalidRecordError):
            p.send("d", value=b"no key")


def test_records_without_a_key_are_kept_even_as_tombstones(log):
    log.create_topic("m", segment_bytes=4096, delete_retention_ms=0)
    with log.producer(linger_ms=0) as p:
        p.send("m", value=None)      # no key, no value
        p.send("m", value=b"plain")  # no key
        for i in range(200):
            p.send("m", key=b"k%d" % (i % 3), value=b"x" * 60)
    log.alter_topic("m", cleanup_policy="compact")
    t = log.topic("m")
    t.compact_now()
    time.sleep(0.01)
    t.compact_now()
    kept = [(k, v) for _, _, k, v in _history(t) if k is None]
    assert kept == [(None, None), (None, b"plain")]
