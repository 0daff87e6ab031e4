"""``tidelog mirror`` of columnar (Arrow) topics: log folders and Kafka either
side, partition to partition, rows checked one by one; a destination whose
settings differ is refused before anything is written; exactly once into a log
folder even when ``mirror --follow`` is SIGKILLed while a writer appends."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import pyarrow as pa
import pytest

import tidelog
from _helpers import SENSORS_SCHEMA, make_sensors
from tidelog.connect.mirror import DEDUPE_HEADER, mirror


def fill(path, topic: str, n: int, start: int = 0, partitions: int = 3) -> None:
    with tidelog.open(path) as log:
        if topic not in log.topics():
            log.create_topic(topic, SENSORS_SCHEMA, partitions=partitions, key="sensor_id", timestamp="ts")
        for i in range(start, start + n, 250):  # several appends: several frames per partition
            log.topic(topic).append(make_sensors(min(250, start + n - i), start=i))


def rows(target, topic: str) -> dict[int, list[dict]]:
    """{partition: its rows in offset order} of a log folder or a Kafka URL."""
    opened = tidelog.connect(target) if str(target).startswith("kafka://") else tidelog.open(target, read_only=True)
    with opened as log:
        t = log.topic(topic)
        out = {}
        for p in range(t.partitions):
            part = t.read(partitions=p, with_offsets=True)
            # (a Kafka record's rows share its offset: the stable sort keeps their order)
            out[p] = part.sort_by([("_offset", "ascending")]).drop_columns(["_partition", "_offset"]).to_pylist()
        return out


def settings(target, topic: str) -> tuple:
    opened = tidelog.connect(target) if str(target).startswith("kafka://") else tidelog.open(target, read_only=True)
    with opened as log:
        t = log.topic(topic)
        return t.schema, t.config.key, t.config.timestamp, t.partitions


def test_a_columnar_topic_mirrors_between_log_folders_row_for_row(tmp_path):
    src, dst, ck = str(tmp_path / "src"), str(tmp_path / "dst"), tmp_path / "ck.json"
    fill(src, "sensors", 3000)
    stats = mirror(src, dst, ["sensors"], checkpoint=ck)
    assert stats.records == 3000
    assert settings(dst, "sensors") == settings(src, "sensors")
    assert rows(dst, "sensors") == rows(src, "sensors")
    # Again: nothing new; then only the new rows.
    assert mirror(src, dst, ["sensors"], checkpoint=ck).records == 0
    fill(src, "sensors", 700, start=3000)
    assert mirror(src, dst, ["sensors"], checkpoint=ck).records == 700
    assert rows(dst, "sensors") == rows(src, "sensors")


def test_without_its_checkpoint_a_rerun_skips_the_rows_already_there(tmp_path):
    src, dst, ck = str(tmp_path / "src"), str(tmp_path / "dst"), tmp_path / "ck.json"
    fill(src, "sensors", 1200)
    mirror(src, dst, ["sensors"], checkpoint=ck)
    ck.unlink()
    fill(src, "sensors", 300, start=1200)
    stats = mirror(src, dst, ["sensors"], checkpoint=ck)
    assert (stats.records, stats.skipped_duplicates) == (300, 1200)
    assert rows(dst, "sensors") == rows(src, "sensors")


def test_byte_and_columnar_topics_mirror_in_one_run(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    fill(src, "sensors", 500)
    with tidelog.open(src) as log:
        log.create_topic("orders", partitions=2)
        with log.producer() as p:
            for i in range(40):
                p.send("orders", f"v{i}", f"k{i}")
    stats = mirror(src, dst, ["sensors", "orders"], checkpoint=tmp_path / "ck.json")
    assert stats.per_topic == {"sensors": 500, "orders": 40}
    assert rows(dst, "sensors") == rows(src, "sensors")


def test_rows_another_writer_added_to_the_destination_are_an_integrity_error(tmp_path):
    src, dst, ck = str(tmp_path / "src"), str(tmp_path / "dst"), tmp_path / "ck.json"
    fill(src, "sensors", 600)
    mirror(src, dst, ["sensors"], checkpoint=ck)
    fill(dst, "sensors", 50, start=10_000)    # not the source's rows
    fill(src, "sensors", 100, start=600)
    with pytest.raises(tidelog.IntegrityError):
        mirror(src, dst, ["sensors"], checkpoint=ck)


@pytest.mark.parametrize("change", ["schema", "key", "timestamp", "partitions", "bytes"])
def test_a_destination_topic_with_other_settings_is_refused_and_nothing_is_written(tmp_path, change):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    fill(src, "sensors", 100)
    with tidelog.open(dst) as log:
        if change == "bytes":
            log.create_topic("sensors", partitions=3)
        else:
            schema = SENSORS_SCHEMA.set(2, pa.field("value", pa.float32())) if change == "schema" else SENSORS_SCHEMA
            log.create_topic("sensors", schema, partitions=4 if change == "partitions" else 3,
                             key=None if change == "key" else "sensor_id",
                             timestamp=None if change == "timestamp" else "ts")
    with pytest.raises(tidelog.SchemaMismatchError) as raised:
        mirror(src, dst, ["sensors"], checkpoint=tmp_path / "ck.json")
    assert "nothing was written" in str(raised.value)
    with tidelog.open(dst, read_only=True) as log:
        assert sum(log.topic("sensors").end_offsets().values()) == 0
    assert not (tmp_path / "ck.json").exists()


def test_the_cli_refuses_a_mismatch_in_one_line(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    fill(src, "sensors", 10)
    with tidelog.open(dst) as log:
        log.create_topic("sensors", partitions=3)
    done = subprocess.run([sys.executable, "-m", "tidelog.cli", "mirror", src, dst, "--topics", "sensors",
                           "--checkpoint", str(tmp_path / "ck.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "SchemaMismatchError" in done.stderr


# ------------------------------------------------------------------ SIGKILL
def _start_mirror(src: str, dst: str, checkpoint) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tidelog.cli", "mirror", src, dst, "--topics", "sensors",
                             "--follow", "--checkpoint", str(checkpoint), "--checkpoint-interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(check, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except tidelog.TidelogError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} after {timeout_s} s")


def _dst_rows(dst: str) -> int:
    with tidelog.open(dst, read_only=True) as log:
        return sum(log.topic("sensors").end_offsets().values()) if "sensors" in log.topics() else 0


class Writer(threading.Thread):
    """Appends numbered sensor rows to the source, 40 at a time, until stopped."""

    def __init__(self, path: str, start: int):
        super().__init__(daemon=True)
        self.path, self.total = path, start
        self.stop = threading.Event()

    def run(self) -> None:
        with tidelog.open(self.path) as log:
            topic = log.topic("sensors")
            while not self.stop.is_set():
                topic.append(make_sensors(40, start=self.total))
                self.total += 40
                time.sleep(0.002)


@pytest.mark.slow
def test_sigkilled_columnar_mirror_processes_leave_no_gap_and_no_duplicate(tmp_path):
    """A writer appends Arrow batches to the source all along while `tidelog
    mirror --follow` is SIGKILLed mid-copy and started again, six times: the
    destination ends with every source row once, in source order per partition."""
    import random

    rng = random.Random(11)
    src, dst, ck = str(tmp_path / "src"), str(tmp_path / "dst"), tmp_path / "ck.json"
    fill(src, "sensors", 2000)
    writer = Writer(src, 2000)
    writer.start()
    copied_before = 0
    for _ in range(6):
        proc = _start_mirror(src, dst, ck)
        _wait_for(lambda: _dst_rows(dst) > copied_before, "the mirror copied nothing")  # it is copying ...
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)                                                # ... when it dies
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        copied_before = _dst_rows(dst)
    writer.stop.set()
    writer.join(60)
    total = writer.total
    started = time.time()
    proc = _start_mirror(src, dst, ck)

    def caught_up() -> bool:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]  # (a mirror that stopped says why)
        return _dst_rows(dst) >= total

    _wait_for(caught_up, f"fewer than {total} rows")
    _wait_for(lambda: json.loads(ck.read_text())["written_at"] > started, "no checkpoint")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert _dst_rows(dst) == total
    assert rows(dst, "sensors") == rows(src, "sensors")


# ------------------------------------------------------------------ Kafka
def test_a_columnar_topic_goes_to_kafka_and_back_row_for_row(tmp_path, kafka_url):
    topic = f"mc-{uuid.uuid4().hex[:10]}"
    src, back = str(tmp_path / "src"), str(tmp_path / "back")
    fill(src, topic, 2600)
    up = mirror(src, kafka_url, [topic], checkpoint=tmp_path / "up.json")
    assert up.records == 2600
    assert settings(kafka_url, topic) == settings(src, topic)
    assert rows(kafka_url, topic) == rows(src, topic)
    # Each Kafka record names the source rows it holds (its dedupe key).
    with tidelog.connect(kafka_url) as k:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as KTP

        c = Consumer({"bootstrap.servers": k.bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
        c.assign([KTP(topic, 0, 0)])
        first = None
        while first is None:
            for m in c.consume(1, 5.0):
                first = dict(m.headers())
        c.close()
    assert first[DEDUPE_HEADER].decode().startswith("0:0-")
    # Nothing twice on a rerun, new rows only, and back into a log folder.
    fill(src, topic, 400, start=2600)
    assert mirror(src, kafka_url, [topic], checkpoint=tmp_path / "up.json").records == 400
    down = mirror(kafka_url, back, [topic], checkpoint=tmp_path / "down.json")
    assert down.records == 3000
    assert settings(back, topic) == settings(src, topic)
    assert rows(back, topic) == rows(src, topic)


def test_a_rerun_into_kafka_without_its_checkpoint_writes_nothing_twice(tmp_path, kafka_url):
    topic = f"mc-{uuid.uuid4().hex[:10]}"
    src = str(tmp_path / "src")
    fill(src, topic, 900)
    mirror(src, kafka_url, [topic], checkpoint=tmp_path / "up.json")
    (tmp_path / "up.json").unlink()
    stats = mirror(src, kafka_url, [topic], checkpoint=tmp_path / "up.json")
    assert (stats.records, stats.skipped_duplicates) == (0, 900)
    assert rows(kafka_url, topic) == rows(src, topic)


def test_kafka_refuses_a_columnar_destination_with_another_schema(tmp_path, kafka_url):
    topic = f"mc-{uuid.uuid4().hex[:10]}"
    fill(tmp_path / "src", topic, 50)
    with tidelog.connect(kafka_url) as k:
        k.create_topic(topic, SENSORS_SCHEMA.set(2, pa.field("value", pa.float32())), partitions=3,
                       key="sensor_id", timestamp="ts")
    with pytest.raises(tidelog.SchemaMismatchError):
        mirror(str(tmp_path / "src"), kafka_url, [topic], checkpoint=tmp_path / "ck.json")
    with tidelog.connect(kafka_url) as k:
        assert sum(k.topic(topic).end_offsets().values()) == 0


@pytest.fixture(scope="module")
def second_kafka_url(kafka_broker):
    """Another cluster (a second single-node broker) for Kafka-to-Kafka mirrors."""
    from tidelog.bench.kafka import Broker

    broker = Broker(heap="512m").start()
    try:
        yield f"kafka://{broker.bootstrap}"
    finally:
        broker.stop()


def test_kafka_to_kafka_mirrors_columnar_and_byte_topics(tmp_path, kafka_url, second_kafka_url):
    topic, orders = f"mc-{uuid.uuid4().hex[:10]}", f"mo-{uuid.uuid4().hex[:10]}"
    src = str(tmp_path / "src")
    fill(src, topic, 1500)
    mirror(src, kafka_url, [topic], checkpoint=tmp_path / "up.json")
    with tidelog.connect(kafka_url) as k:
        k.create_topic(orders, partitions=2)
        with k.producer() as p:
            for i in range(30):
                p.send(orders, f"v{i}".encode(), f"k{i}".encode(), timestamp_ms=1_700_000_000_000 + i)
    across = mirror(kafka_url, second_kafka_url, [topic, orders], checkpoint=tmp_path / "across.json")
    assert across.per_topic == {topic: 1500, orders: 30}
    assert settings(second_kafka_url, topic) == settings(src, topic)
    assert rows(second_kafka_url, topic) == rows(src, topic)
    with tidelog.connect(second_kafka_url) as k:
        copied = k.topic(orders).read()
    assert sorted(copied.column("value").to_pylist()) == sorted(f"v{i}".encode() for i in range(30))
    # Again without the checkpoint: the destination's dedupe keys leave nothing to copy.
    (tmp_path / "across.json").unlink()
    again = mirror(kafka_url, second_kafka_url, [topic, orders], checkpoint=tmp_path / "across.json")
    assert (again.records, again.skipped_duplicates) == (0, 1530)
    assert rows(second_kafka_url, topic) == rows(src, topic)


def test_a_kafka_source_record_is_never_split_across_two_mirrored_records():
    import numpy as np

    from tidelog.connect._mirror_columnar import _spans

    offsets = np.array([5, 5, 5, 6, 6, 7, 8, 8])  # a Kafka source: rows of one record share its offset
    assert _spans(offsets, nbytes=10**7) == [(0, 3), (3, 5), (5, 6), (6, 8)]  # (each span is "too big")
    assert _spans(offsets, nbytes=100) == [(0, 8)]


def test_rows_over_a_kafka_records_size_go_in_several_records_each_naming_its_source_offsets(tmp_path, kafka_url):
    topic = f"mc-{uuid.uuid4().hex[:10]}"
    src = str(tmp_path / "src")
    with tidelog.open(src) as log:
        log.create_topic(topic, SENSORS_SCHEMA, partitions=1, timestamp="ts")
        log.topic(topic).append(make_sensors(120_000))  # ~2.4 MB: more than one Kafka record
    assert mirror(src, kafka_url, [topic], checkpoint=tmp_path / "up.json").records == 120_000
    assert rows(kafka_url, topic) == rows(src, topic)
    with tidelog.connect(kafka_url) as k:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as KTP

        end = k.topic(topic).end_offsets()[0]
        c = Consumer({"bootstrap.servers": k.bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
        c.assign([KTP(topic, 0, 0)])
        ranges = []
        while len(ranges) < end:
            ranges += [dict(m.headers())[DEDUPE_HEADER].decode() for m in c.consume(100, 5.0) if m.error() is None]
        c.close()
    assert end > 1
    spans = [tuple(int(x) for x in r.split(":")[1].split("-")) for r in ranges]
    assert spans[0][0] == 0 and spans[-1][1] == 119_999
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:]))  # consecutive, disjoint
