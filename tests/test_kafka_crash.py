"""The broker SIGKILLed mid-stream and started again (same data, same port):
the producer (acks=all, idempotence) loses nothing acknowledged and writes
nothing twice; the mirror from Kafka into a log folder resumes with no gap and
no duplicate, even with the mirror process itself SIGKILLed as well."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

import tidelog
from tidelog.connect.mirror import DEDUPE_HEADER


@pytest.fixture
def killable_broker(kafka_broker):
    if kafka_broker.proc is None:
        pytest.skip("the Kafka broker is not this session's own (TIDELOG_TEST_KAFKA): it cannot be killed here")
    yield kafka_broker
    if kafka_broker.proc is None:  # a failed test must not leave the session without its broker
        kafka_broker.start()


def kill_and_restart(broker, down_s: float = 1.0) -> float:
    """SIGKILLs the broker, waits ``down_s``, starts it again; the seconds it was away."""
    t0 = time.monotonic()
    pid = broker.pid()
    broker.kill()
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
    time.sleep(down_s)
    broker.start()
    return time.monotonic() - t0


class Writer(threading.Thread):
    """Sends numbered records through tidelog's Kafka producer until stopped;
    remembers which were acknowledged and which failed."""

    def __init__(self, url: str, topic: str, pace_s: float = 0.0005):
        super().__init__(daemon=True)
        self.url, self.topic, self.pace_s = url, topic, pace_s
        self.acked: set[int] = set()
        self.failed: list = []
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with tidelog.connect(self.url) as k, k.producer({"linger.ms": 2}) as p:
            while not self.stop.is_set():
                i = self.sent
                fut = p.send(self.topic, value=str(i).encode(), key=str(i % 97).encode())
                fut.add_done_callback(lambda f, i=i: self.acked.add(i) if f.exception() is None
                                      else self.failed.append((i, f.exception())))
                self.sent += 1
                time.sleep(self.pace_s)
            p.flush()


def all_values(url: str, topic: str) -> list[int]:
    with tidelog.connect(url) as k:
        table = k.topic(topic).read()
    return [int(v) for v in table.column("value").to_pylist()]


@pytest.mark.slow
def test_the_idempotent_producer_loses_nothing_acknowledged_when_the_broker_is_killed(killable_broker):
    url = f"kafka://{killable_broker.bootstrap}"
    topic = f"crash-{uuid.uuid4().hex[:10]}"
    with tidelog.connect(url) as k:
        k.create_topic(topic, partitions=3)
    w = Writer(url, topic)
    w.start()
    time.sleep(2)
    acked_before_kill = len(w.acked)
    away = kill_and_restart(killable_broker)
    time.sleep(2)
    w.stop.set()
    w.join(120)
    assert not w.is_alive()
    values = all_values(url, topic)
    assert acked_before_kill > 0 and len(w.acked) > acked_before_kill
    assert w.acked <= set(values), f"lost acknowledged: {sorted(w.acked - set(values))[:10]}"
    assert len(values) == len(set(values)), "a record was written twice"
    assert not w.failed, w.failed[:3]
    print(f"\nbroker away {away:.1f} s; {w.sent} sent, {len(w.acked)} acknowledged, all present once")


@pytest.mark.slow
def test_the_mirror_into_a_log_folder_resumes_with_no_gap_and_no_duplicate(killable_broker, tmp_path):
    url = f"kafka://{killable_broker.bootstrap}"
    topic = f"crash-{uuid.uuid4().hex[:10]}"
    with tidelog.connect(url) as k:
        k.create_topic(topic, partitions=3)
    dst, ck = str(tmp_path / "dst"), str(tmp_path / "ck.json")

    def start_mirror() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tidelog.cli", "mirror", url, dst, "--topics", topic,
                                 "--follow", "--checkpoint", ck, "--checkpoint-interval", "0.2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    w = Writer(url, topic, pace_s=0.001)
    w.start()
    mirror_proc = start_mirror()
    time.sleep(3)
    kill_and_restart(killable_broker)          # the broker, mid-stream
    time.sleep(2)
    mirror_proc.send_signal(signal.SIGKILL)    # and the mirror itself
    mirror_proc.wait(30)
    time.sleep(0.5)
    mirror_proc = start_mirror()
    time.sleep(2)
    w.stop.set()
    w.join(120)
    expected = sorted(all_values(url, topic))
    assert set(w.acked) <= set(expected)
    deadline = time.monotonic() + 120
    got: list = []
    while time.monotonic() < deadline:
        try:
            with tidelog.open(dst, read_only=True) as log:
                if sum(log.topic(topic).end_offsets().values()) >= len(expected):
                    break
        except tidelog.TidelogError:
            pass
        time.sleep(0.2)
    time.sleep(1)  # anything extra (a duplicate) would land now
    mirror_proc.send_signal(signal.SIGTERM)
    out, err = mirror_proc.communicate(timeout=60)
    assert mirror_proc.returncode == 0, err.decode()[-2000:]
    with tidelog.open(dst, read_only=True) as log:
        table = log.topic(topic).read(with_offsets=True)
    got = [int(v) for v in table.column("value").to_pylist()]
    assert len(got) == len(set(got)), "a record was mirrored twice"
    assert sorted(got) == expected, "a gap"
    # Partitions and offsets are the source's (a fresh destination, exactly once).
    for row in table.to_pylist():
        source = next(h["value"].decode() for h in row["headers"] if h["key"] == DEDUPE_HEADER)
        assert source == f"{row['_partition']}:{row['_offset']}"
