"""topic.partition(p): the public handle of one partition (offsets, reads,
appends, waits, describe), and the low-level pieces the producer and the
consumer build on (frames/decode, encode/append_frames, log.wait_durable,
the log's wake-up notifier)."""
from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

import tidelog
from _helpers import T0, make_sensors


def test_handles_are_per_partition_and_validated(log, sensors):
    handles = [sensors.partition(p) for p in range(sensors.partitions)]
    assert [h.index for h in handles] == [0, 1, 2, 3]
    assert all(h.topic is sensors for h in handles)
    assert sensors.partition(2) is handles[2], "one handle per partition"
    import numpy as np
    assert sensors.partition(np.int64(1)) is handles[1]
    assert isinstance(handles[0], tidelog.Partition)
    assert repr(handles[3]) == "<tidelog.Partition 'sensors'[3]>"
    with pytest.raises(ValueError, match="partitions 0..3"):
        sensors.partition(4)
    with pytest.raises(ValueError):
        sensors.partition(-1)
    with pytest.raises(TypeError, match="a partition is an int"):
        sensors.partition("1")
    with pytest.raises(TypeError):
        sensors.partition(True)


def test_offsets_reads_and_describe_match_the_topic(log, sensors):
    sensors.append(make_sensors(1000))
    sensors.append(make_sensors(1000, start=1000))
    described = sensors.describe()["partitions"]
    for p in range(4):
        h = sensors.partition(p)
        assert h.start_offset == sensors.start_offsets()[p] == 0
        assert h.end_offset == sensors.end_offsets()[p] > 0
        assert h.describe() == described[p]
        assert h.size_bytes == described[p]["bytes"] > 0 and h.segment_count == described[p]["segments"] >= 1
        assert h.damaged_ranges() == [] and h.recovery_events() == []
        assert h.read().equals(sensors.read(partitions=p))
        assert h.read(3, 10, columns=["value"]).equals(sensors.read(3, 10, partitions=[p], columns=["value"]))
        assert pa.table(h.scan(with_offsets=True)).equals(sensors.read(partitions=p, with_offsets=True))
        t = h.read(start_time=T0 + 500_000, end_time=T0 + 1_500_000)
        assert t.equals(sensors.read(start_time=T0 + 500_000, end_time=T0 + 1_500_000, partitions=p))
        ts = T0 + 1_234_000
        assert h.offset_for_time(ts) == sensors.offset_for_time(p, ts)
    assert sum(sensors.partition(p).end_offset for p in range(4)) == 2000


def test_append_to_one_partition(log, sensors):
    res = sensors.partition(2).append(make_sensors(50))
    assert res.offsets == {2: (0, 49)}
    res = sensors.append(make_sensors(10, start=50), partition=1)
    assert res.offsets == {1: (0, 9)}
    assert sensors.partition(2).read()["value"].to_pylist() == [float(i) for i in range(50)]
    with pytest.raises(tidelog.SchemaMismatchError):
        sensors.partition(0).append({"nope": [1]})
    assert sensors.partition(0).end_offset == 0
    with pytest.raises(ValueError):
        sensors.append(make_sensors(1), partition=9)


@pytest.mark.parametrize("durability", ["fsync", "interval", "none"])
@pytest.mark.parametrize("durable", [None, True, False])
def test_append_durable_modes(log, durability, durable):
    t = log.create_topic("d", partitions=1, durability=durability)
    before = log.stats()
    res = t.partition(0).append({"timestamp": [T0], "key": [b"k"], "value": [b"v"], "headers": [[]]},
                                durable=durable)
    assert res.offsets == {0: (0, 0)}
    assert t.partition(0).end_offset == 1 or durability == "fsync" and durable is False
    after = log.stats()
    waited = durable is True or (durable is None and durability == "fsync")
    if waited:
        assert after["fdatasyncs"] + after["flushes"] > before["fdatasyncs"] + before["flushes"]
    log.flush()
    assert t.partition(0).read()["value"].to_pylist() == [b"v"]


def test_wait_for_data(log):
    t = log.create_topic("w", partitions=2, durability="none")
    h = t.partition(1)
    assert h.wait_for_data(0, timeout=0.01) is False
    threading.Timer(0.05, lambda: t.partition(1).append(
        {"timestamp": [T0], "key": [None], "value": [b"x"], "headers": [[]]})).start()
    t0 = time.monotonic()
    assert h.wait_for_data(0, timeout=10) is True
    assert time.monotonic() - t0 < 5
    assert h.wait_for_data(0, timeout=0) is True, "already there: returns at once"
    with pytest.raises(ValueError):
        h.wait_for_data(-1)


def test_frames_decode_encode_append_frames(log, sensors):
    h = sensors.partition(0)
    batch = make_sensors(20)
    frames = [h.encode(batch.slice(0, 10), time.time_ns()), h.encode(batch.slice(10), time.time_ns(), (T0, T0))]
    results = h.append_frames(frames)
    assert [base for base, _ in results] == [0, 10]
    log.wait_durable(results[-1][1])
    got = h.frames(0, h.end_offset)
    assert len(got) == 2
    assert pa.Table.from_batches([b for f in got for b in h.decode(f)]).equals(pa.Table.from_batches([batch]))
    skipped: list = []
    assert len(h.frames(0, h.end_offset, 1, skipped)) == 1 and skipped == []


def test_handles_of_a_closed_or_deleted_topic_raise(tmp_path):
    log = tidelog.open(tmp_path)
    t = log.create_topic("gone", partitions=2)
    h = t.partition(0)
    assert not t.closed
    log.delete_topic("gone")
    assert t.closed
    for call in (lambda: h.end_offset, lambda: h.start_offset, h.read, h.describe, lambda: h.wait_for_data(0, 0),
                 lambda: h.frames(0, 1), lambda: h.append({"timestamp": [T0], "key": [None], "value": [b"x"],
                                                           "headers": [[]]})):
        with pytest.raises(tidelog.LogClosedError):
            call()
    t2 = log.create_topic("t2")
    h2 = t2.partition(0)
    log.close()
    with pytest.raises(tidelog.LogClosedError):
        h2.end_offset


def test_read_only_handle_sees_appends_and_deletion(tmp_path):
    with tidelog.open(tmp_path) as w:
        t = w.create_topic("t", durability="none")
        with tidelog.open(tmp_path, read_only=True) as r:
            h = r.topic("t").partition(0)
            assert h.end_offset == 0
            t.partition(0).append({"timestamp": [T0], "key": [None], "value": [b"a"], "headers": [[]]})
            assert h.wait_for_data(0, timeout=10)
            assert h.read()["value"].to_pylist() == [b"a"]
            with pytest.raises(tidelog.ReadOnlyError):
                h.append({"timestamp": [T0], "key": [None], "value": [b"b"], "headers": [[]]})
            w.delete_topic("t")
            time.sleep(0.01)  # read-only handles look at most every 5 ms
            with pytest.raises(tidelog.UnknownTopicError):
                h.end_offset


def test_log_notifier(log):
    t = log.create_topic("n", durability="none")
    seq = log.notify_sequence()
    assert log.wait_notify(seq, 0.01) is False
    t.partition(0).append({"timestamp": [T0], "key": [None], "value": [b"a"], "headers": [[]]})
    assert log.wait_notify(seq, 10) is True, "moved already: returns at once"
    seq = log.notify_sequence()
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(log.wait_notify(seq, 30)))
    waiter.start()
    time.sleep(0.05)
    log.wake_waiters()
    waiter.join(10)
    assert not waiter.is_alive() and woke
