"""``tidelog mirror``: log folders and Kafka either side, resumable, exactly
once into a log folder even when the mirror is SIGKILLed mid-stream."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import tidelog
from tidelog.connect.mirror import DEDUPE_HEADER, mirror

T0_MS = 1_700_000_000_000


def fill(path, topic: str, n: int, start: int = 0, partitions: int = 3) -> None:
    with tidelog.open(path) as log:
        if topic not in log.topics():
            log.create_topic(topic, partitions=partitions)
        with log.producer() as p:
            for i in range(start, start + n):
                p.send(topic, f"v{i}", f"k{i}", {"n": str(i)}, timestamp_ms=T0_MS + i)


def copies(path, topic: str) -> list[tuple]:
    """(partition, key, value, headers without the mirror's, timestamp) of every record, in offset order."""
    with tidelog.open(path, read_only=True) as log:
        t = log.topic(topic).read(with_offsets=True).sort_by([("_partition", "ascending"), ("_offset", "ascending")])
    out = []
    for row in t.to_pylist():
        headers = [(h["key"], h["value"]) for h in row["headers"] if h["key"] != DEDUPE_HEADER]
        out.append((row["_partition"], row["key"], row["value"], headers, row["timestamp"]))
    return out


def test_a_one_shot_mirror_keeps_keys_headers_timestamps_and_partitions(tmp_path):
    fill(tmp_path / "src", "orders", 500)
    stats = mirror(str(tmp_path / "src"), str(tmp_path / "dst"), ["orders"], checkpoint=tmp_path / "ck.json")
    assert stats.records == 500
    assert copies(tmp_path / "dst", "orders") == copies(tmp_path / "src", "orders")
    # Run again: nothing new, nothing copied twice; new records only.
    assert mirror(str(tmp_path / "src"), str(tmp_path / "dst"), ["orders"], checkpoint=tmp_path / "ck.json").records == 0
    fill(tmp_path / "src", "orders", 100, start=500)
    assert mirror(str(tmp_path / "src"), str(tmp_path / "dst"), ["orders"], checkpoint=tmp_path / "ck.json").records == 100
    assert copies(tmp_path / "dst", "orders") == copies(tmp_path / "src", "orders")


def test_without_its_checkpoint_a_rerun_still_copies_nothing_twice(tmp_path):
    fill(tmp_path / "src", "orders", 300)
    mirror(str(tmp_path / "src"), str(tmp_path / "dst"), ["orders"], checkpoint=tmp_path / "ck.json")
    os.unlink(tmp_path / "ck.json")
    stats = mirror(str(tmp_path / "src"), str(tmp_path / "dst"), ["orders"], checkpoint=tmp_path / "ck.json")
    assert (stats.records, stats.skipped_duplicates) == (0, 300)
    assert len(copies(tmp_path / "dst", "orders")) == 300


def test_a_destination_with_other_partition_counts_gets_records_by_key(tmp_path):
    fill(tmp_path / "src", "orders", 200, partitions=3)
    with tidelog.open(tmp_path / "dst") as log:
        log.create_topic("orders", partitions=5)
    mirror(str(tmp_path / "src"), str(tmp_path / "dst"), ["orders"], checkpoint=tmp_path / "ck.json")
    from _helpers import kafka_partition

    got = copies(tmp_path / "dst", "orders")
    assert len(got) == 200
    assert all(p == kafka_partition(key, 5) for p, key, *_ in got)


def test_the_cli_reports_bad_input_in_one_line(tmp_path):
    fill(tmp_path / "src", "orders", 10)
    run = [sys.executable, "-m", "tidelog.cli", "mirror"]
    done = subprocess.run([*run, str(tmp_path / "src"), str(tmp_path / "dst"), "--topics", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "nope" in done.stderr
    done = subprocess.run([*run, str(tmp_path / "src"), str(tmp_path / "src"), "--topics", "orders"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "same" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([*run, str(tmp_path / "src"), str(tmp_path / "dst"), "--topics", "orders", "--json",
                           "--checkpoint", str(tmp_path / "ck.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '"records": 10' in done.stdout


def _start_mirror(src: str, dst: str, topic: str, checkpoint) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tidelog.cli", "mirror", src, dst, "--topics", topic, "--follow",
                             "--checkpoint", str(checkpoint), "--checkpoint-interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path, topic: str, n: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with tidelog.open(path, read_only=True) as log:
                if topic in log.topics() and sum(log.topic(topic).end_offsets().values()) >= n:
                    return
        except tidelog.TidelogError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path}: fewer than {n} records after {timeout_s} s")


def _wait_for_checkpoint(path, since: float, timeout_s: float = 60) -> None:
    import json

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if json.loads(path.read_text())["written_at"] > since:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint after {timeout_s} s")


@pytest.mark.slow
def test_sigkilled_mirror_processes_resume_with_no_gap_and_no_duplicate(tmp_path):
    """A writer keeps appending to the source while `tidelog mirror --follow`
    is SIGKILLed at random moments and started again: the destination ends
    with every source record exactly once, in source order per partition."""
    import random

    rng = random.Random(7)
    src, dst, ck = str(tmp_path / "src"), str(tmp_path / "dst"), tmp_path / "ck.json"
    fill(src, "orders", 2000)
    total = 2000
    for round_ in range(5):
        proc = _start_mirror(src, dst, "orders", ck)
        fill(src, "orders", 1500, start=total)
        total += 1500
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    started = time.time()
    proc = _start_mirror(src, dst, "orders", ck)
    _wait_for(dst, "orders", total)
    _wait_for_checkpoint(ck, started)  # (running: it has its SIGTERM handler)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert copies(dst, "orders") == copies(src, "orders")


# ------------------------------------------------------------------ Kafka
def test_a_log_folder_to_kafka_and_back_is_the_same(tmp_path, kafka_url):
    topic = f"m-{uuid.uuid4().hex[:10]}"
    fill(tmp_path / "src", topic, 600)
    up = mirror(str(tmp_path / "src"), kafka_url, [topic], checkpoint=tmp_path / "up.json")
    assert up.records == 600
    assert mirror(str(tmp_path / "src"), kafka_url, [topic], checkpoint=tmp_path / "up.json").records == 0
    with tidelog.connect(kafka_url) as k:
        assert k.topic(topic).partitions == 3
        assert sum(k.topic(topic).end_offsets().values()) == 600
    down = mirror(kafka_url, str(tmp_path / "back"), [topic], checkpoint=tmp_path / "down.json")
    assert down.records == 600
    # Kafka keeps milliseconds: these timestamps are whole milliseconds, so all of it round-trips.
    assert copies(tmp_path / "back", topic) == copies(tmp_path / "src", topic)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9092", "kafka://", "kafka://host", "kafka://h:1/path", 42])
def test_a_bad_kafka_url_is_an_invalid_argument_error(url):
    pytest.importorskip("confluent_kafka")
    with pytest.raises(tidelog.InvalidArgumentError):
        tidelog.connect(url)
