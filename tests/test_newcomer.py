"""A newcomer's first hour: what a user of confluent-kafka, kafka-python, pyarrow
or Polars does without reading the fine print must not lose data or hang.

Each test runs the user's script in a real child process where the behaviour
depends on process exit or on signals.
"""
from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

import tidelog


def _run(code: str, *args, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


# ------------------------------------------------------------- 1. records at close and exit
def test_pending_records_are_delivered_at_interpreter_exit(tmp_path):
    """Ten sends with a long linger and no flush(): the interpreter's exit delivers them."""
    r = _run("""
        import sys, tidelog
        log = tidelog.open(sys.argv[1])
        log.create_topic("orders")
        p = log.producer(linger_ms=5000)
        futures = [p.send("orders", value=b"v%d" % i) for i in range(10)]
        # no flush(), no close(): the script just ends
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    with tidelog.open(tmp_path, read_only=True) as log:
        assert log.topic("orders").read()["value"].to_pylist() == [b"v%d" % i for i in range(10)]


def test_log_close_delivers_and_closes_its_producers(tmp_path):
    with tidelog.open(tmp_path) as log:
        log.create_topic("orders")
        p = log.producer(linger_ms=5000)
        futures = [p.send("orders", value=b"v%d" % i) for i in range(10)]
    assert [f.result(timeout=1).offset for f in futures] == list(range(10))
    with pytest.raises(tidelog.LogClosedError):
        p.send("orders", value=b"late")
    with tidelog.open(tmp_path, read_only=True) as log:
        assert log.topic("orders").end_offsets() == {0: 10}


def test_records_that_cannot_be_delivered_fail_at_once(tmp_path):
    """A producer whose log went away fails its pending futures with DeliveryError
    when it is closed, instead of leaving them pending."""
    log = tidelog.open(tmp_path)
    log.create_topic("orders")
    p = log.producer(linger_ms=60_000)
    fut = p.send("orders", value=b"x")
    log.topic("orders")._close()  # the partitions are gone under the producer
    p.close(timeout=1)
    assert fut.done()
    with pytest.raises(tidelog.TidelogError):
        fut.result(timeout=0)
    log.close()


# ----------------------------------------------------------------- 2. Ctrl-C
BLOCKED = """
    import sys, time, tidelog
    log = tidelog.open(sys.argv[1])
    log.create_topic("t")
    how = sys.argv[2]
    print("ready", flush=True)
    try:
        if how == "iterate":
            for rec in log.consumer(["t"]):
                pass
        elif how == "poll":
            log.consumer(["t"]).poll()
        elif how == "poll_batch":
            log.consumer(["t"]).poll_batch()
        elif how == "wait_for_data":
            log.topic("t")._partitions[0].wait_for_data(0)
        elif how == "future":
            log.producer(linger_ms=600_000).send("t", value=b"x").result()  # waits for the linger
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(7)
"""


@pytest.mark.parametrize("how", ["iterate", "poll", "poll_batch", "wait_for_data", "future"])
def test_ctrl_c_interrupts_a_blocked_consumer(tmp_path, how):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(BLOCKED), str(tmp_path), how],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # well inside the blocking wait
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 7, (out, err)
    assert "interrupted" in out
    assert took < 2.0, f"KeyboardInterrupt took {took:.2f} s to arrive"


# ------------------------------------------------------------- 5. timestamps
def test_millisecond_timestamps(tmp_path):
    import warnings as _w

    with tidelog.open(tmp_path) as log:
        log.create_topic("r")
        with log.producer(linger_ms=0) as p:
            meta = p.send("r", value=b"a", timestamp_ms=1_733_300_000_123).get(timeout=5)
            assert meta.timestamp == 1_733_300_000_123_000_000
            with pytest.warns(tidelog.TimestampWarning, match="looks like milliseconds"):
                p.send("r", value=b"b", timestamp=1_733_300_000_123)
            with _w.catch_warnings():
                _w.simplefilter("error")  # plausible ns: no warning
                p.send("r", value=b"c", timestamp=1_733_300_000_123_000_000)
            with pytest.raises(ValueError):
                p.send("r", value=b"d", timestamp=1, timestamp_ms=1)
        cols = log.create_topic("c", pa.schema([("ts", pa.int64()), ("v", pa.int32())]), timestamp="ts")
        with pytest.warns(tidelog.TimestampWarning):
            cols.append({"ts": [1_733_300_000_123], "v": [1]})


def test_an_implausible_batch_after_plausible_ones_still_warns(tmp_path):
    """Small appends take a short path that trusts plausible timestamps; the first
    batch that is not plausible still gets the warning, and its range is indexed."""
    import warnings as _w
    with tidelog.open(tmp_path) as log:
        cols = log.create_topic("c", pa.schema([("ts", pa.int64()), ("v", pa.int32())]), timestamp="ts")
        with _w.catch_warnings():
            _w.simplefilter("error")
            for i in range(5):
                cols.append({"ts": [1_733_300_000_123_000_000 + i], "v": [i]})
        with pytest.warns(tidelog.TimestampWarning, match="looks like milliseconds"):
            cols.append({"ts": [1_733_300_000_123], "v": [5]})
        assert cols.offset_for_time(0, 1_733_300_000_000_000_000) == 0
        assert cols.read(start_time=1_733_300_000_123_000_003)["v"].to_pylist() == [3, 4]


def test_times_as_iso_strings_and_naive_datetimes_are_utc(tmp_path):
    with tidelog.open(tmp_path) as log:
        t = log.create_topic("s", pa.schema([("ts", pa.timestamp("ns")), ("v", pa.int64())]), timestamp="ts")
        t.append({"ts": [datetime.datetime(2026, 1, 1, h) for h in range(4)], "v": list(range(4))})
        assert t.read(start_time="2026-01-01T02:00:00Z")["v"].to_pylist() == [2, 3]
        assert t.read(start_time="2026-01-01 02:00")["v"].to_pylist() == [2, 3]  # naive = UTC
        assert t.read(end_time=datetime.datetime(2026, 1, 1, 1))["v"].to_pylist() == [0]
        assert t.read(start_time="2026-01-01T03:00:00+01:00")["v"].to_pylist() == [2, 3]
        assert t.offset_for_time(0, "2026-01-01T03:00:00Z") == 3
        with pytest.raises(ValueError, match="ISO-8601"):
            t.read(start_time="yesterday")


def test_byte_record_timestamps_are_arrow_timestamps_and_old_topics_stay_readable(tmp_path):
    import base64
    import json

    from tidelog._topic import RECORD_SCHEMA_V1

    with tidelog.open(tmp_path) as log:
        log.create_topic("new")
        log.create_topic("old")
    meta = tmp_path / "topics" / "old" / "topic.json"
    doc = json.loads(meta.read_text())
    doc["schema"] = base64.b64encode(RECORD_SCHEMA_V1.serialize().to_pybytes()).decode()  # a version-1 topic
    meta.write_text(json.dumps(doc))
    with tidelog.open(tmp_path) as log:
        with log.producer(linger_ms=0) as p:
            for name in ("new", "old"):
                p.send(name, value=b"x", timestamp_ms=1_733_300_000_000).get(timeout=5)
                p.send_many(name, [b"y", b"z"])
        new, old = log.topic("new").read(), log.topic("old").read()
        assert new.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
        assert old.schema.field("timestamp").type == pa.int64()
        assert new["timestamp"].cast(pa.int64()).to_pylist()[0] == old["timestamp"].to_pylist()[0]
        c = log.consumer(["new", "old"])
        recs = [c.poll(1) for _ in range(6)]
        assert all(isinstance(r.timestamp, int) for r in recs)
        import duckdb

        scan = log.topic("new").scan()
        kind = duckdb.sql("select typeof(timestamp) as t from scan limit 1").fetchall()[0][0]
        assert kind.startswith("TIMESTAMP"), kind


# ----------------------------------------------------- 6. Kafka's vocabulary
def test_kafka_configuration_vocabulary(tmp_path, caplog):
    import logging

    with tidelog.open(tmp_path) as log:
        log.create_topic("orders", partitions=2)
        p = log.producer({"linger.ms": "0", "acks": "all", "batch.size": 4096, "bootstrap.servers": "ignored:9092"})
        assert (p.linger_ms, p.acks, p.batch_bytes) == (0, "durable", 4096)
        assert log.producer(acks=1).acks == "written" and log.producer(acks=0).acks == "written"
        assert log.producer(batch_size=100, max_request_size=1000).max_record_bytes == 1000
        with pytest.raises(tidelog.InvalidArgumentError, match="linger.mss"):
            log.producer({"linger.mss": 5})
        with pytest.raises(tidelog.InvalidArgumentError):
            log.producer({"linger.ms": 5}, linger_ms=6)
        fut = p.send("orders", value="héllo", key="k", headers={"type": "Created", "raw": b"\x00"})
        meta = fut.get(timeout=5)  # kafka-python's name
        p.close()
        c = log.consumer({"auto.offset.reset": "latest", "enable.auto.commit": False})
        c.subscribe(["orders"])
        assert c.position("orders", meta.partition) == meta.offset + 1
        c2 = log.consumer(["orders"], auto_offset_reset="earliest")
        r = c2.poll(5)
        assert r.value == "héllo".encode() and r.key == b"k" and r.headers == [("type", b"Created"), ("raw", b"\x00")]
        with pytest.raises(tidelog.InvalidGroupIdError):
            log.consumer({"group.id": "bill/ing"})
        with pytest.raises(tidelog.InvalidArgumentError):
            log.consumer(auto_offset_reset="sometimes")
        caplog.set_level(logging.WARNING, logger="tidelog")
        c2.seek("orders", meta.partition, 10_000)  # out of range: reset as auto.offset.reset says
        assert c2.position("orders", meta.partition) == 0
        assert "outside the partition's offsets" in caplog.text


# ------------------------------------------------ 7/8. offsets and other libraries
def test_per_partition_offsets_and_offset_columns(tmp_path):
    with tidelog.open(tmp_path) as log:
        t = log.create_topic("s", pa.schema([("k", pa.int32()), ("v", pa.int64())]), partitions=2, key="k")
        t.append({"k": list(range(40)), "v": list(range(40))})
        ends = t.end_offsets()
        assert min(ends.values()) >= 3
        got = t.read(start_offset={0: 2, 1: ends[1] - 1}, with_offsets=True)
        assert got.column_names == ["k", "v", "_partition", "_offset"]
        rows = list(zip(got["_partition"].to_pylist(), got["_offset"].to_pylist()))
        assert rows == [(0, o) for o in range(2, ends[0])] + [(1, ends[1] - 1)]
        assert t.read(end_offset={0: 1}, partitions=[0]).num_rows == 1
        # each returned row is where _partition/_offset say
        for p, o, v in zip(got["_partition"].to_pylist(), got["_offset"].to_pylist(), got["v"].to_pylist()):
            assert t.read(o, o + 1, partitions=p)["v"].to_pylist() == [v]


def test_append_takes_polars_and_pandas_and_scans_give_them_back(tmp_path):
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    schema = pa.schema([("ts", pa.timestamp("ns")), ("name", pa.string()), ("v", pa.float64())])
    with tidelog.open(tmp_path) as log:
        t = log.create_topic("s", schema, timestamp="ts")
        t.append(pl.DataFrame({"ts": [datetime.datetime(2026, 1, 1)] * 2, "name": ["a", "b"], "v": [1.0, 2.0]}))
        t.append(pd.DataFrame({"ts": pd.to_datetime(["2026-01-02"]), "name": ["c"], "v": [3.0]}))
        with pytest.raises(tidelog.SchemaMismatchError):
            t.append(pl.DataFrame({"ts": ["not a time"], "name": ["x"], "v": [1.0]}))
        assert t.scan().to_polars()["name"].to_list() == ["a", "b", "c"]
        assert t.scan().to_pandas()["v"].tolist() == [1.0, 2.0, 3.0]
        assert pl.DataFrame(t.scan()).shape == (3, 3)  # the Arrow PyCapsule stream
        # pl.from_arrow() turns any PyCapsule stream into a Series of structs (Polars' choice):
        assert pl.from_arrow(t.scan()).struct.unnest().shape == (3, 3)


# --------------------------------------------------------------- 9. asyncio
def test_async_consumer_has_the_consumer_calls(tmp_path):
    import asyncio

    async def main():
        with tidelog.open(tmp_path) as log:
            log.create_topic("t")
            async with log.async_producer(linger_ms=0) as p:
                for i in range(5):
                    p.send_nowait("t", value=b"%d" % i)
                await p.flush()
            async with log.async_consumer() as c:
                c.assign([("t", 0)])
                c.seek("t", 0, 3)
                assert c.position("t", 0) == 3
                assert (await c.poll(1)).offset == 3
                waiter = asyncio.ensure_future(c.poll())  # blocks: nothing more
                await asyncio.sleep(0.05)
                await c.close()
                waiter.cancel()

    asyncio.run(main())


# ------------------------------------------------------------------ 11. errors
def test_opening_a_file_is_a_tidelog_error(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("not a log")
    with pytest.raises(tidelog.NotALogFolderError) as info:
        tidelog.open(f)
    assert isinstance(info.value, tidelog.TidelogError) and isinstance(info.value, NotADirectoryError)
    with pytest.raises(tidelog.InvalidArgumentError):
        tidelog.open("")


def test_log_locked_error_names_the_path(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time, tidelog\nlog = tidelog.open(sys.argv[1], exclusive=True)\n"
                             "print('ready', flush=True)\ntime.sleep(30)", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(tidelog.LogLockedError) as info:
            tidelog.open(tmp_path)
        assert info.value.pid == proc.pid and info.value.path == str(tmp_path)
        assert str(tmp_path) in str(info.value) and str(proc.pid) in str(info.value)
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------- 3. create_topic
def test_create_topic_is_all_or_nothing(tmp_path, monkeypatch):
    from tidelog._topic import Topic

    real = Topic._open_partitions

    def fails_half_way(self, native_log):
        real(self, native_log)
        raise tidelog.TidelogIOError("fallocate: No space left on device (simulated)")

    with tidelog.open(tmp_path) as log:
        monkeypatch.setattr(Topic, "_open_partitions", fails_half_way)
        with pytest.raises(tidelog.TidelogIOError):
            log.create_topic("big", partitions=50)
        monkeypatch.setattr(Topic, "_open_partitions", real)
        assert log.topics() == []
        assert not (tmp_path / "topics" / "big").exists()
    with tidelog.open(tmp_path) as log:  # the next open is not disturbed by anything left behind
        assert log.topics() == []
        assert not any((tmp_path / "trash").iterdir()) if (tmp_path / "trash").exists() else True
        t = log.create_topic("big", partitions=50)
        assert t.partitions == 50


def test_empty_partitions_cost_no_disk(tmp_path):
    def disk_bytes(path):
        return sum(os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, fs in os.walk(path) for f in fs)

    with tidelog.open(tmp_path) as log:
        t = log.create_topic("wide", partitions=500)
        assert disk_bytes(tmp_path / "topics" / "wide") < 8 << 20  # was 32 MiB per partition: 16 GB
        with log.producer(linger_ms=0) as p:
            p.send("wide", value=b"x", partition=7).get(timeout=5)
        seg = tmp_path / "topics" / "wide" / "7" / "00000000000000000000.log"
        assert os.path.getsize(seg) <= 1 << 20  # the first allocation step


# ------------------------------------------------- 4. read-only handles
def test_read_only_handle_notices_a_topic_deleted_and_created_again(tmp_path):
    writer = tidelog.open(tmp_path)
    writer.create_topic("t", pa.schema([("a", pa.int64())])).append({"a": [1, 2, 3]})
    ro = tidelog.open(tmp_path, read_only=True)
    assert ro.topic("t").read()["a"].to_pylist() == [1, 2, 3]
    writer.delete_topic("t")
    with pytest.raises(tidelog.UnknownTopicError):
        ro.topic("t").read()
    assert ro.topics() == []
    writer.create_topic("t", pa.schema([("b", pa.string())])).append({"b": ["new"]})
    assert ro.topics() == ["t"]
    assert ro.topic("t").read().to_pydict() == {"b": ["new"]}
    ro.close()
    writer.close()


CREATOR = """
import sys, tidelog
log = tidelog.open(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 1000):
    log.create_topic(f"t{i}", partitions=20)
    print(f"t{i}", flush=True)
"""


def test_create_topic_survives_sigkill_at_any_moment(tmp_path):
    """A writer creating topics is SIGKILLed at random moments: every topic whose
    create_topic returned is there and whole, any other is whole or absent, and
    the next open never fails because of what was left."""
    import random as _random

    rng = _random.Random(7)
    created: list[str] = []
    start = 0
    for cycle in range(12):
        proc = subprocess.Popen([sys.executable, "-c", CREATOR, str(tmp_path), str(start)],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # its first topic is made: the interpreter and the log are up
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        # the first line was read above; it names a topic that was created
        lines = [f"t{start}"] + out.split()
        created += lines
        start += 1000
        with tidelog.open(tmp_path) as log:
            names = log.topics()
            assert set(created) <= set(names), sorted(set(created) - set(names))
            for name in names:
                t = log.topic(name)
                assert t.partitions == 20 and len(t._partitions) == 20
            if names:
                with log.producer(linger_ms=0) as p:
                    p.send(names[-1], value=b"x", partition=19).get(timeout=5)
        trash = tmp_path / "trash"
        assert not trash.exists() or not any(trash.iterdir())
    assert len(created) >= 12


# ------------------------------------------------------------- import
def test_import_does_not_import_pandas():
    """``import tidelog`` stays light: pandas (about 0.2 s to import) is loaded only
    by whoever uses it. The templates built at import are made from buffers."""
    r = _run("import sys, tidelog, tidelog.es; print('pandas' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_one_row_builds_the_arrays_pa_array_would():
    from tidelog._arrow import one_row
    header_type = pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.binary())])
    header = one_row(header_type, [one_row(pa.string(), b"h"), one_row(pa.binary(), b"x")])
    cases = [
        (one_row(pa.int64(), -5), pa.array([-5], pa.int64())),
        (one_row(pa.int32(), 7), pa.array([7], pa.int32())),
        (one_row(pa.timestamp("ns", tz="UTC"), 1), pa.array([1], pa.timestamp("ns", tz="UTC"))),
        (one_row(pa.string(), b"abc"), pa.array(["abc"])),
        (one_row(pa.binary(16), b"0123456789abcdef"), pa.array([b"0123456789abcdef"], pa.binary(16))),
        (one_row(pa.list_(header_type), header), pa.array([[("h", b"x")]], pa.list_(header_type))),
    ]
    for built, expected in cases:
        built.validate(full=True)
        assert built.equals(expected)
