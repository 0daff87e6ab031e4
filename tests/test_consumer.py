"""The byte-record Consumer (issue 3): start positions, assign/seek/seek_to_time,
position/end_offsets, poll/poll_batch (zero-copy), blocking iteration, and
consumers in another process (futex wake-ups, visible end = durable end)."""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest

import tidelog
from _helpers import iter_buffers, make_sensors

LONG = 60_000


@pytest.fixture
def topic(log):
    """A 3-partition byte-record topic, appends visible at once."""
    return log.create_topic("ev", partitions=3, durability="none")


def produce(log, topic_name, values, partition=None, keys=None, timestamps=None, linger_ms=LONG):
    """Sends values (one batch per partition unless they overflow) and returns the RecordMetadata list."""
    with log.producer(linger_ms=linger_ms, acks="written") as p:
        futures = [
            p.send(topic_name, value=v, key=None if keys is None else keys[i],
                   timestamp=None if timestamps is None else timestamps[i], partition=partition)
            for i, v in enumerate(values)
        ]
        p.flush()
        return [f.result(timeout=5) for f in futures]


def one_record_per_frame(log, topic_name, values, partition, timestamps):
    with log.producer(linger_ms=0, acks="written") as p:
        return [p.send(topic_name, value=v, partition=partition, timestamp=t).result(5)
                for v, t in zip(values, timestamps)]


def read_all(c, n, timeout=5.0):
    out = []
    while len(out) < n:
        r = c.poll(timeout)
        assert r is not None, f"only {len(out)} of {n} records"
        out.append(r)
    return out


# ------------------------------------------------------------ start, assign
def test_start_earliest_and_latest(log, topic):
    produce(log, "ev", [b"old-%d" % i for i in range(6)], keys=[b"%d" % i for i in range(6)])
    early = log.consumer("ev", start="earliest")
    late = log.consumer(["ev"], start="latest")
    assert sorted(r.value for r in read_all(early, 6)) == sorted(b"old-%d" % i for i in range(6))
    assert early.poll(0.05) is None
    assert late.poll(0.05) is None
    assert late.end_offsets() == {("ev", p): topic.end_offsets()[p] for p in range(3)}
    assert [late.position("ev", p) for p in range(3)] == [topic.end_offsets()[p] for p in range(3)]
    meta = produce(log, "ev", [b"new"], partition=1)[0]
    r = late.poll(5)
    assert (r.partition, r.offset, r.value) == (1, meta.offset, b"new")
    r = early.poll(5)
    assert r.value == b"new"
    with pytest.raises(ValueError):
        log.consumer("ev", start="middle")


def test_assignment_and_assign(log, topic):
    for p in range(3):
        produce(log, "ev", [b"p%d-%d" % (p, i) for i in range(4)], partition=p)
    c = log.consumer("ev")
    assert sorted(c.assignment()) == [("ev", 0), ("ev", 1), ("ev", 2)]
    c.assign([("ev", 1)])
    assert c.assignment() == [("ev", 1)]
    recs = read_all(c, 4)
    assert [(r.partition, r.offset, r.value) for r in recs] == [(1, i, b"p1-%d" % i) for i in range(4)]
    assert c.poll(0.05) is None
    # a consumer without topics reads nothing until assigned
    c2 = log.consumer()
    assert c2.assignment() == []
    assert c2.poll(0.01) is None
    c2.assign([("ev", 2), ("ev", 0)])
    assert sorted((r.partition, r.offset) for r in read_all(c2, 8)) == [(0, i) for i in range(4)] + [(2, i) for i in range(4)]
    with pytest.raises(ValueError):
        c2.assign([("ev", 3)])
    with pytest.raises(tidelog.UnknownTopicError):
        c2.assign([("nope", 0)])
    with pytest.raises(tidelog.UnknownTopicError):
        log.consumer("nope")


def test_assign_keeps_positions_of_kept_partitions(log, topic):
    for p in range(2):
        produce(log, "ev", [b"%d" % i for i in range(5)], partition=p)
    c = log.consumer()
    c.assign([("ev", 0)])
    read_all(c, 2)
    c.assign([("ev", 0), ("ev", 1)])
    assert c.position("ev", 0) == 2
    assert c.position("ev", 1) == 0
    got = sorted((r.partition, r.offset) for r in read_all(c, 8))
    assert got == [(0, i) for i in range(2, 5)] + [(1, i) for i in range(5)]


def test_multiple_topics(log, topic):
    log.create_topic("other", partitions=1, durability="none")
    produce(log, "ev", [b"a"], partition=0)
    produce(log, "other", [b"b", b"c"])
    c = log.consumer(["ev", "other"])
    assert sorted((r.topic, r.value) for r in read_all(c, 3)) == [("ev", b"a"), ("other", b"b"), ("other", b"c")]


# ------------------------------------------------------- seek and position
def test_seek_and_position(log, topic):
    produce(log, "ev", [b"%d" % i for i in range(10)], partition=0)  # one frame
    produce(log, "ev", [b"%d" % i for i in range(10, 20)], partition=0)  # a second frame
    c = log.consumer()
    c.assign([("ev", 0)])
    assert c.position("ev", 0) == 0
    assert [r.offset for r in read_all(c, 3)] == [0, 1, 2]
    assert c.position("ev", 0) == 3, "records decoded ahead are not counted as consumed"
    c.seek("ev", 0, 7)
    assert c.position("ev", 0) == 7
    assert [(r.offset, r.value) for r in read_all(c, 5)] == [(i, b"%d" % i) for i in range(7, 12)]
    assert c.position("ev", 0) == 12
    c.seek("ev", 0, 0)
    assert read_all(c, 1)[0].offset == 0
    c.seek("ev", 0, 20)  # the end: nothing until more arrives
    assert c.poll(0.05) is None
    produce(log, "ev", [b"20"], partition=0)
    assert c.poll(5).offset == 20
    c.seek("ev", 0, 25)  # past the end: reset as auto.offset.reset says (start="earliest")
    assert c.position("ev", 0) == 0
    late = log.consumer(start="latest")
    late.assign([("ev", 0)])
    late.seek("ev", 0, 25)
    assert late.position("ev", 0) == 21
    produce(log, "ev", [b"%d" % i for i in range(21, 27)], partition=0)
    assert late.poll(5).offset == 21
    with pytest.raises(ValueError):
        c.seek("ev", 0, -1)
    with pytest.raises(ValueError):
        c.seek("ev", 1, 0)  # not assigned
    with pytest.raises(ValueError):
        c.position("ev", 2)
    c.seek_to_beginning()
    assert c.position("ev", 0) == 0
    c.seek_to_end()
    assert c.position("ev", 0) == 27


def test_end_offsets(log, topic):
    produce(log, "ev", [b"x"] * 3, partition=0)
    produce(log, "ev", [b"x"] * 5, partition=2)
    c = log.consumer("ev")
    assert c.end_offsets() == {("ev", 0): 3, ("ev", 1): 0, ("ev", 2): 5}
    assert c.end_offsets([("ev", 2)]) == {("ev", 2): 5}
    c.assign([("ev", 0)])
    assert c.end_offsets() == {("ev", 0): 3}


T = 1_700_000_000_000_000_000


def test_seek_to_time_one_record_per_frame(log, topic):
    u = 100_000  # 0.1 ms, so that datetimes (microseconds) can express every timestamp
    # partition 0: timestamps T+0, T+10u, ... ; partition 1: T+5u, T+15u, ...
    one_record_per_frame(log, "ev", [b"a%d" % i for i in range(10)], 0, [T + 10 * u * i for i in range(10)])
    one_record_per_frame(log, "ev", [b"b%d" % i for i in range(10)], 1, [T + 5 * u + 10 * u * i for i in range(10)])
    c = log.consumer("ev")
    for ts, want in [(-1, 0), (0, 0), (1, 1), (10, 1), (45, 5), (90, 9), (91, 10)]:
        c.seek_to_time("ev", 0, T + ts * u)
        assert c.position("ev", 0) == want, ts
    c.seek_to_time("ev", 0, T + 30 * u)
    r = c.poll(1)
    assert (r.partition, r.offset, r.timestamp) == (0, 3, T + 30 * u)
    # None: every assigned partition of the topic
    c.seek_to_time("ev", None, T + 42 * u)
    assert (c.position("ev", 0), c.position("ev", 1), c.position("ev", 2)) == (5, 4, 0)
    got = sorted((r.partition, r.offset) for r in read_all(c, 11))
    assert got == [(0, i) for i in range(5, 10)] + [(1, i) for i in range(4, 10)]
    # datetimes work as well
    dt = datetime.datetime.fromtimestamp(T // 10**9, tz=datetime.timezone.utc) + datetime.timedelta(microseconds=70 * u // 1000)
    c.seek_to_time("ev", 0, dt)
    assert c.position("ev", 0) == 7
    with pytest.raises(ValueError):
        c.seek_to_time("ev", 5, T)


BUG_SEEK_TO_TIME = ("Consumer.seek_to_time / Topic.offset_for_time resolve to the first offset of a frame, "
                    "not the first record with timestamp >= ts")


def test_seek_to_time_inside_a_batch(log, topic):
    """Kafka's offsetsForTimes: the first offset whose timestamp is >= ts, also
    when many records share one batch (frame), and with out-of-order timestamps."""
    produce(log, "ev", [b"%d" % i for i in range(100)], partition=0, timestamps=[T + 10 * i for i in range(100)])
    produce(log, "ev", [b"x"] * 4, partition=1, timestamps=[T + 10, T + 30, T + 20, T + 40])
    c = log.consumer("ev")
    c.seek_to_time("ev", 0, T + 500)
    assert c.position("ev", 0) == 50
    assert c.poll(1).timestamp == T + 500
    c.seek_to_time("ev", 0, T + 501)
    assert c.position("ev", 0) == 51
    for ts, want in [(T + 10, 0), (T + 15, 1), (T + 25, 1), (T + 31, 3), (T + 41, 4)]:
        c.seek_to_time("ev", 1, ts)
        assert c.position("ev", 1) == want, ts - T


# --------------------------------------------------------------------- poll
def test_poll_timeout_returns_none(log, topic):
    c = log.consumer("ev")
    for timeout in (0, 0.05, 0.3):
        t0 = time.monotonic()
        assert c.poll(timeout) is None
        took = time.monotonic() - t0
        assert timeout * 0.9 <= took < timeout + 1.0
    t0 = time.monotonic()
    assert c.poll_batch(10, 0.2) is None
    assert 0.18 <= time.monotonic() - t0 < 1.2


def test_poll_waits_without_cpu(log, topic):
    c = log.consumer("ev")
    cpu0 = time.process_time()
    assert c.poll(0.6) is None
    cpu = time.process_time() - cpu0
    assert cpu < 0.2, f"a blocked poll used {cpu:.3f}s of CPU in 0.6s"


def test_poll_mixed_with_poll_batch(log, topic):
    produce(log, "ev", [b"%d" % i for i in range(10)], partition=0)
    produce(log, "ev", [b"%d" % i for i in range(10, 20)], partition=0)
    c = log.consumer()
    c.assign([("ev", 0)])
    assert [r.offset for r in read_all(c, 3)] == [0, 1, 2]
    b = c.poll_batch(4, 1)
    assert b["offset"].to_pylist() == [3, 4, 5, 6]
    assert c.position("ev", 0) == 7
    assert c.poll(1).offset == 7
    b = c.poll_batch(100, 1)
    assert b["offset"].to_pylist() == list(range(8, 20)), "the rest of frame 1 and all of frame 2"
    assert b["value"].to_pylist() == [b"%d" % i for i in range(8, 20)]
    assert c.poll_batch(100, 0.01) is None


def mappings_of(topic) -> list[tuple[int, int]]:
    out = {}
    for p in range(topic.partitions):
        for frame in topic._partitions[p].frames():
            out[frame.mapping.address] = frame.mapping.size
    return list(out.items())


def test_poll_batch_columns_and_zero_copy(log, topic):
    values = [b"v%d" % i if i % 5 else None for i in range(50)]
    keys = [b"k%d" % i if i % 3 else None for i in range(50)]
    with log.producer(linger_ms=LONG, acks="written") as p:
        for i in range(50):
            p.send("ev", value=values[i], key=keys[i], partition=2, timestamp=T + i,
                   headers=[("i", b"%d" % i), ("i", None)] if i % 2 else None)
    c = log.consumer("ev")
    b = c.poll_batch(max_records=1000, timeout=1)
    assert isinstance(b, pa.RecordBatch)
    assert b.schema.names == ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
    assert b.num_rows == 50
    assert b["topic"].to_pylist() == ["ev"] * 50
    assert b["partition"].to_pylist() == [2] * 50
    assert b["offset"].to_pylist() == list(range(50))
    assert b["timestamp"].type == pa.timestamp("ns", tz="UTC")  # a time for DuckDB/Polars, not a BIGINT
    assert b["timestamp"].cast(pa.int64()).to_pylist() == [T + i for i in range(50)]
    assert b["key"].to_pylist() == keys
    assert b["value"].to_pylist() == values
    assert b["headers"].to_pylist()[1] == [{"key": "i", "value": b"1"}, {"key": "i", "value": None}]
    assert b["headers"].to_pylist()[0] == []
    for name in tidelog.RECORD_SCHEMA.names:
        assert b.schema.field(name).type == tidelog.RECORD_SCHEMA.field(name).type
    # the payload columns are views of the segment mapping
    maps = mappings_of(topic)
    n = 0
    for name in tidelog.RECORD_SCHEMA.names:
        for buf in iter_buffers(b[name]):
            assert any(base <= buf.address and buf.address + buf.size <= base + size for base, size in maps), (
                f"column {name}: buffer {buf.address:#x}+{buf.size} is outside the segment mappings")
            n += 1
    assert n >= 8
    # max_records is honoured, and a slice is zero-copy too
    c.seek("ev", 2, 10)
    b = c.poll_batch(max_records=7, timeout=1)
    assert b["offset"].to_pylist() == list(range(10, 17))
    assert b["value"].to_pylist() == values[10:17]
    for buf in iter_buffers(b["value"]):
        assert any(base <= buf.address < base + size for base, size in maps)
    with pytest.raises(ValueError):
        c.poll_batch(0)


def test_poll_batch_on_columnar_topic(log, sensors):
    sensors.append(make_sensors(100))
    c = log.consumer("sensors")
    total = 0
    while (b := c.poll_batch(1000, 0.05)) is not None:
        assert b.schema.names == ["topic", "partition", "offset", "ts", "sensor_id", "value"]
        total += b.num_rows
    assert total == 100
    c.seek_to_beginning()
    with pytest.raises(TypeError):
        c.poll(0)


def test_commit_without_a_group_is_refused(log, topic):
    with pytest.raises(tidelog.InvalidGroupIdError, match="group"):
        log.consumer("ev", group="")
    c = log.consumer("ev")
    with pytest.raises(tidelog.InvalidGroupIdError):
        c.commit()


def test_closed_consumer(log, topic):
    produce(log, "ev", [b"x"], partition=0)
    with log.consumer("ev") as c:
        assert c.poll(1) is not None
    with pytest.raises(tidelog.LogClosedError):
        c.poll(0)
    with pytest.raises(tidelog.LogClosedError):
        c.poll_batch(10, 0)


# ---------------------------------------------------------------- iteration
def test_iteration_blocks_and_resumes(log, topic):
    produce(log, "ev", [b"first-%d" % i for i in range(5)], partition=0)
    produced_at = []

    def later():
        time.sleep(0.3)
        produced_at.append(time.monotonic())
        produce(log, "ev", [b"late"], partition=1, linger_ms=0)

    watchdog_fired = threading.Event()

    def watchdog():  # if iteration never wakes up, unblock it so the test fails instead of hanging
        if not done.wait(15):
            watchdog_fired.set()
            produce(log, "ev", [b"watchdog"], partition=2, linger_ms=0)

    done = threading.Event()
    threading.Thread(target=watchdog, daemon=True).start()
    c = log.consumer("ev")
    it = iter(c)
    assert [next(it).value for _ in range(5)] == [b"first-%d" % i for i in range(5)]
    t = threading.Thread(target=later)
    t.start()
    cpu0 = time.process_time()
    r = next(it)
    got_at = time.monotonic()
    done.set()
    t.join()
    assert not watchdog_fired.is_set(), "iteration did not wake up when a record was produced"
    assert (r.partition, r.offset, r.value) == (1, 0, b"late")
    assert got_at >= produced_at[0]
    assert got_at - produced_at[0] < 2.0
    assert time.process_time() - cpu0 < 0.25  # slept, did not spin


def test_iteration_over_many_records(log, topic):
    n = 20_000
    with log.producer(linger_ms=5, acks="written") as p:
        for i in range(n):
            p.send("ev", value=b"%d" % i, key=b"%d" % (i % 100))
    c = log.consumer("ev")
    seen = []
    for r in c:
        seen.append(r)
        if len(seen) == n:
            break
    assert sorted(int(r.value) for r in seen) == list(range(n))
    for p in range(3):
        offs = [r.offset for r in seen if r.partition == p]
        assert offs == list(range(len(offs)))
    assert c.poll(0.01) is None


def test_iteration_shares_the_buffer_with_poll_and_stops_once_closed(log, topic):
    """iter(consumer) and poll() read one stream: records a poll took are not
    iterated again, nor the reverse; a closed consumer's iterator raises."""
    produce(log, "ev", [b"a%d" % i for i in range(6)], partition=0)  # one frame of six records
    c = log.consumer("ev")
    assert c.poll(1).value == b"a0"
    it = iter(c)
    assert iter(it) is it
    assert [next(it).value for _ in range(5)] == [b"a%d" % i for i in range(1, 6)]
    produce(log, "ev", [b"b0"], partition=0)
    produce(log, "ev", [b"b1"], partition=0)
    assert c.poll(1).value == b"b0"
    assert next(it).value == b"b1"
    assert c.poll(0.01) is None
    c.close()
    with pytest.raises(tidelog.LogClosedError):
        next(it)


def test_consumer_sees_producer_threads_concurrently(log, topic):
    """A consumer reading while a producer writes sees each record exactly once, in order."""
    n = 3000
    got = []

    def consume():
        c = log.consumer("ev")
        while len(got) < n:
            r = c.poll(10)
            if r is None:
                return
            got.append(r)

    t = threading.Thread(target=consume)
    t.start()
    with log.producer(linger_ms=1, batch_bytes=1024, acks="written") as p:
        for i in range(n):
            p.send("ev", value=b"%d" % i, key=b"%d" % (i % 7))
    t.join(30)
    assert len(got) == n
    assert sorted(int(r.value) for r in got) == list(range(n))
    for part in range(3):
        recs = [r for r in got if r.partition == part]
        assert [r.offset for r in recs] == list(range(len(recs)))
        assert [int(r.value) for r in recs] == sorted(int(r.value) for r in recs)


# ------------------------------------------------------------ cross-process
CHILD_CONSUMER = r"""
import json, resource, sys, time
import tidelog
log = tidelog.open(sys.argv[1], read_only=True)
c = log.consumer(sys.argv[2], start="earliest")
assert c.poll(0) is None
print("ready", flush=True)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.monotonic()
r = c.poll(30)
t1 = time.monotonic()
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
out = {"waited": t1 - t0, "woke_at": t1, "cpu": cpu}
if r is not None:
    out.update(partition=r.partition, offset=r.offset, value=r.value.hex(), key=r.key.hex(),
               headers=[[n, v.hex()] for n, v in r.headers], timestamp=r.timestamp)
print(json.dumps(out), flush=True)
"""


@pytest.mark.parametrize("durability,acks", [("none", "written"), ("fsync", "durable")])
def test_consumer_in_another_process_wakes_up(log, log_dir, durability, acks):
    log.create_topic("x", partitions=2, durability=durability)
    child = subprocess.Popen([sys.executable, "-c", CHILD_CONSUMER, str(log_dir), "x"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "ready", (line, child.stderr.read() if child.poll() is not None else "")
        time.sleep(0.4)  # the child is blocked in poll() now
        assert child.poll() is None, "the consumer returned before anything was produced"
        with log.producer(linger_ms=0, acks=acks) as p:
            t_send = time.monotonic()
            meta = p.send("x", value=b"wake up", key=b"k", headers=[("h", b"1")], partition=1).result(10)
            t_acked = time.monotonic()
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert "value" in res, f"the consumer timed out: {res}"
    assert bytes.fromhex(res["value"]) == b"wake up"
    assert bytes.fromhex(res["key"]) == b"k"
    assert res["headers"] == [["h", b"1".hex()]]
    assert (res["partition"], res["offset"], res["timestamp"]) == (1, meta.offset, meta.timestamp)
    assert res["waited"] >= 0.35
    assert res["woke_at"] >= t_send
    assert res["woke_at"] - t_acked < 2.0, "woken late"
    assert res["cpu"] < 0.2, f"the blocked consumer used {res['cpu']:.3f}s of CPU"


SLOW_FDATASYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* fdatasync, delayed by the number of microseconds in the file named by
   $TIDELOG_TEST_SLOW_FDATASYNC (no file: no delay). */
int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char* path = getenv("TIDELOG_TEST_SLOW_FDATASYNC");
    if (path) {
        FILE* f = fopen(path, "r");
        if (f) {
            long us = 0;
            if (fscanf(f, "%ld", &us) == 1 && us > 0) usleep((useconds_t)us);
            fclose(f);
        }
    }
    return real(fd);
}
"""


@pytest.fixture(scope="session")
def slow_fdatasync_lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("shim")
    src = d / "slow_fdatasync.c"
    src.write_text(SLOW_FDATASYNC_C)
    lib = d / "slow_fdatasync.so"
    try:
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(src), "-ldl"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"no C compiler for the fdatasync shim: {e}")
    return lib


CHILD_SLOW_PRODUCER = r"""
import json, os, sys, time
import tidelog
path, topic, acks, n, delay_file, delay_us = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
log = tidelog.open(path)
p = log.producer(linger_ms=0, acks=acks)
print("ready", flush=True)
sys.stdin.readline()  # the parent's consumer is waiting
with open(delay_file, "w") as f:
    f.write(delay_us)
out = []
for i in range(n):
    t0 = time.monotonic()
    meta = p.send(topic, value=b"%d" % i).result(30)
    t1 = time.monotonic()
    out.append([i, meta.offset, t0, t1])
    time.sleep(0.05)
os.unlink(delay_file)
print(json.dumps(out), flush=True)
p.close()
log.close()
"""


@pytest.mark.parametrize(
    "durability,acks",
    [("fsync", "written"), ("fsync", "durable"), ("interval", "written")],
)
def test_other_process_sees_only_durable_records(log_dir, tmp_path, slow_fdatasync_lib, durability, acks):
    """The producer runs in a child whose fdatasync takes DELAY longer: under
    durability="fsync" a read-only consumer in this process sees a record only
    once the group commit made it durable (never right after the write), and
    acks="durable" futures resolve only after that commit. The "interval"
    topic is the control: there records are visible once written."""
    delay = 0.4
    n = 2
    with tidelog.open(log_dir) as w:
        w.create_topic("x", partitions=1, durability=durability, flush_interval_ms=60_000)
    delay_file = tmp_path / "delay_us"
    env = dict(os.environ, LD_PRELOAD=str(slow_fdatasync_lib), TIDELOG_TEST_SLOW_FDATASYNC=str(delay_file))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SLOW_PRODUCER, str(log_dir), "x", acks, str(n), str(delay_file),
         str(int(delay * 1e6))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ro = tidelog.open(log_dir, read_only=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "ready", (line, child.stderr.read() if child.poll() is not None else "")
        c = ro.consumer("x")
        assert c.poll(0) is None
        child.stdin.write("go\n")
        child.stdin.flush()
        seen = {}
        while len(seen) < n:
            r = c.poll(15)
            assert r is not None, "the record never became visible"
            seen[r.offset] = time.monotonic()
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        ro.close()
    sent = json.loads(out.strip().splitlines()[-1])
    visible_after = [seen[off] - t0 for _, off, t0, _ in sent]
    acked_after = [t1 - t0 for _, _, t0, t1 in sent]
    if durability == "fsync":
        assert min(visible_after) >= 0.8 * delay, f"visible before durable: {visible_after}"
    else:
        assert min(visible_after) < 0.5 * delay, f"control: interval topics are visible once written: {visible_after}"
    if acks == "durable":
        assert min(acked_after) >= 0.8 * delay, f"acks='durable' resolved before the commit: {acked_after}"
        # the visible end is the durable end: nothing is seen before the commit that resolves the future
        assert all(seen[off] >= t0 + 0.8 * delay for _, off, t0, _ in sent)
    else:
        assert min(acked_after) < 0.5 * delay, f"acks='written' waited for the commit: {acked_after}"


# ------------------------------------------- Kafka's TopicPartition / OffsetAndMetadata
from tidelog import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OffsetAndMetadata, TopicPartition  # noqa: E402


def test_assign_takes_topic_partitions(log, topic):
    for p in range(3):
        produce(log, "ev", [b"%d" % i for i in range(10)], partition=p)
    c = log.consumer()
    c.assign([TopicPartition("ev", 0), ("ev", 1), TopicPartition("ev", 2, 4)])
    assert c.assignment() == [("ev", 0), ("ev", 1), ("ev", 2)]
    assert c.assignment() == [TopicPartition("ev", 0), TopicPartition("ev", 1), TopicPartition("ev", 2)]
    assert [c.position("ev", p) for p in range(3)] == [0, 0, 4], "a TopicPartition's offset is where it starts"
    c.assign(iter([TopicPartition("ev", 0, OFFSET_END), TopicPartition("ev", 1, OFFSET_BEGINNING)]))
    assert [c.position("ev", p) for p in range(2)] == [10, 0]
    c.assign([TopicPartition("ev", 0, OFFSET_INVALID)])  # no offset: the kept position
    assert c.position("ev", 0) == 10
    late = log.consumer(start="latest")
    late.assign([TopicPartition("ev", 1)])
    assert late.position("ev", 1) == 10
    for bad in ("ev", TopicPartition("ev", 0), [("ev",)], [("ev", 0, 1)], [0], ["ev"], [("ev", "0")], 5):
        with pytest.raises(TypeError):
            c.assign(bad)
    with pytest.raises(ValueError):
        c.assign([TopicPartition("ev", 3)])
    with pytest.raises(tidelog.InvalidArgumentError):
        c.assign([TopicPartition("ev", 1, -5)])
    with pytest.raises(tidelog.UnknownTopicError):
        c.assign([TopicPartition("nope", 0)])
    assert c.assignment() == [("ev", 0)], "a rejected assign changes nothing"


def test_seek_takes_topic_partitions(log, topic):
    produce(log, "ev", [b"%d" % i for i in range(20)], partition=0)
    c = log.consumer("ev")
    c.seek("ev", 0, 5)  # today's form
    assert c.position("ev", 0) == 5
    c.seek(TopicPartition("ev", 0, 7))  # confluent-kafka
    assert c.poll(5).offset == 7
    c.seek(TopicPartition("ev", 0), 9)  # kafka-python: seek(partition, offset)
    assert c.poll(5).offset == 9
    c.seek(("ev", 0), 3)
    assert c.position("ev", 0) == 3
    c.seek(topic="ev", partition=0, offset=4)
    assert c.position("ev", 0) == 4
    c.seek(TopicPartition("ev", 0, OFFSET_END))
    assert c.position("ev", 0) == 20
    c.seek(TopicPartition("ev", 0, OFFSET_BEGINNING))
    assert c.position("ev", 0) == 0
    c.seek(TopicPartition("ev", 0, 99))  # out of range: reset as auto.offset.reset (start="earliest")
    assert c.position("ev", 0) == 0
    with pytest.raises(tidelog.InvalidArgumentError, match="no offset"):
        c.seek(TopicPartition("ev", 0))
    with pytest.raises(ValueError):
        c.seek(TopicPartition("ev", 0), -1)  # logical offsets travel in a TopicPartition only
    with pytest.raises(ValueError):
        c.seek(TopicPartition("ev", 0, -5))
    with pytest.raises(ValueError, match="not assigned"):
        c.seek(TopicPartition("ev", 7, 0))
    with pytest.raises(TypeError):
        c.seek(TopicPartition("ev", 0), 1, 2)
    with pytest.raises(TypeError):
        c.seek("ev", 0)
    with pytest.raises(TypeError):
        c.seek(("ev", 0))
    with pytest.raises(TypeError):
        c.seek(5, 0, 1)
    with pytest.raises(TypeError):
        c.seek(TopicPartition("ev", 0), "1")
    assert c.position("ev", 0) == 0


def test_position_and_end_offsets_take_topic_partitions(log, topic):
    produce(log, "ev", [b"x"] * 5, partition=0)
    produce(log, "ev", [b"x"] * 2, partition=1)
    c = log.consumer("ev")
    read_all(c, 3)
    at = c.position("ev", 0) if c.position("ev", 0) else c.position("ev", 1)
    assert at > 0
    assert c.position(TopicPartition("ev", 0)) == c.position("ev", 0)  # kafka-python: an int
    assert c.position(("ev", 1)) == c.position("ev", 1)
    got = c.position([TopicPartition("ev", 0), ("ev", 1), TopicPartition("ev", 2)])  # confluent-kafka: a list
    assert all(isinstance(tp, TopicPartition) for tp in got)
    assert [(tp.topic, tp.partition, tp.offset) for tp in got] == [
        ("ev", 0, c.position("ev", 0)), ("ev", 1, c.position("ev", 1)), ("ev", 2, 0)]
    ends = c.end_offsets([TopicPartition("ev", 0), ("ev", 1)])
    assert ends == {("ev", 0): 5, ("ev", 1): 2}
    assert ends[TopicPartition("ev", 0)] == 5, "a TopicPartition looks the tuple-keyed dict up"
    with pytest.raises(ValueError, match="not assigned"):
        c.position(TopicPartition("other", 0))
    with pytest.raises(TypeError):
        c.position("ev")
    with pytest.raises(TypeError):
        c.position(TopicPartition("ev", 0), 0)
    with pytest.raises(TypeError):
        c.position(["ev"])
    with pytest.raises(TypeError):
        c.end_offsets("ev")
    with pytest.raises(ValueError):
        c.end_offsets([TopicPartition("ev", 5)])


def test_commit_and_committed_check_their_arguments(log, topic):
    """Without a group: every form Kafka's clients use is accepted
    (InvalidGroupIdError naming groups), bad input is a TypeError or
    InvalidArgumentError first."""
    c = log.consumer("ev")
    for call in (lambda: c.commit(), lambda: c.commit(offsets={("ev", 0): 5}),
                 lambda: c.commit(offsets={TopicPartition("ev", 0): OffsetAndMetadata(5, "meta")}),
                 lambda: c.commit({TopicPartition("ev", 0): OffsetAndMetadata(5)}),  # kafka-python, positionally
                 lambda: c.commit(offsets=[TopicPartition("ev", 0, 5)]),
                 lambda: c.commit(offsets=[TopicPartition("ev", 0, 5)], asynchronous=False),
                 lambda: c.committed([TopicPartition("ev", 0)]), lambda: c.committed([("ev", 0)], timeout=1)):
        with pytest.raises(tidelog.InvalidGroupIdError, match="group"):
            call()
    with pytest.raises(tidelog.InvalidArgumentError):
        c.commit(offsets={("ev", 0): -3})
    with pytest.raises(tidelog.InvalidArgumentError):
        c.commit(offsets=[TopicPartition("ev", 0)])  # a TopicPartition without an offset
    with pytest.raises(TypeError):
        c.commit(offsets={("ev", 0): "5"})
    with pytest.raises(TypeError):
        c.commit(offsets="ev")
    with pytest.raises(TypeError):
        c.commit(message=b"not a record")
    with pytest.raises(TypeError):
        c.committed("ev")
    with pytest.raises(TypeError):
        c.committed([("ev",)])


def test_async_consumer_takes_topic_partitions(log, topic):
    import asyncio

    produce(log, "ev", [b"%d" % i for i in range(10)], partition=1)

    async def main():
        async with log.async_consumer() as c:
            c.assign([TopicPartition("ev", 1, 2)])
            assert c.position(TopicPartition("ev", 1)) == 2
            assert (await c.poll(5)).offset == 2
            c.seek(TopicPartition("ev", 1, 6))
            assert (await c.poll(5)).offset == 6
            c.seek("ev", 1, 8)
            assert [tp.offset for tp in c.position([TopicPartition("ev", 1)])] == [8]
            with pytest.raises(tidelog.InvalidGroupIdError):
                await c.commit(offsets=[TopicPartition("ev", 1, 9)])

    asyncio.run(main())
