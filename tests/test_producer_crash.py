"""Crash: records acknowledged with acks="durable" survive SIGKILL of the
producing process (issue 3). A child produces from two threads and prints each
resolved RecordMetadata; the parent kills it at a random moment, reopens the
log and checks every acknowledged record, over several rounds on one log."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import tidelog

PARTITIONS = 3


def record_value(rnd: int, tid: int, i: int) -> bytes:
    """Deterministic payload of record i of thread tid in round rnd (shared with the child)."""
    return (b"r%d-t%d-i%d;" % (rnd, tid, i)) * ((i * 7 + rnd + tid) % 23 + 1)


def record_key(tid: int, i: int) -> bytes | None:
    return None if i % 4 == 0 else b"key-%d" % ((i * 31 + tid) % 17)


CHILD = r"""
import random, sys, threading
import tidelog

def record_value(rnd, tid, i):
    return (b"r%d-t%d-i%d;" % (rnd, tid, i)) * ((i * 7 + rnd + tid) % 23 + 1)

def record_key(tid, i):
    return None if i % 4 == 0 else b"key-%d" % ((i * 31 + tid) % 17)

path, rnd = sys.argv[1], int(sys.argv[2])
log = tidelog.open(path)
p = log.producer(linger_ms=1, acks="durable")
out = threading.Lock()

def worker(tid):
    rng = random.Random(rnd * 100 + tid)
    i = 0
    while True:
        futures = []
        for _ in range(rng.randint(1, 40)):
            futures.append((i, p.send("crash", value=record_value(rnd, tid, i), key=record_key(tid, i),
                                      headers=[("tid", b"%d" % tid)])))
            i += 1
        lines = []
        for idx, f in futures:
            m = f.result()
            lines.append("ack %d %d %d %d %d\n" % (tid, idx, m.partition, m.offset, m.timestamp))
        with out:
            sys.stdout.write("".join(lines))
            sys.stdout.flush()

threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(2)]
for t in threads:
    t.start()
print("ready", flush=True)
for t in threads:
    t.join()
"""


def run_round(log_dir, rnd: int, rng: random.Random) -> list[tuple]:
    """One child run, killed at a random moment; the acknowledged records."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(log_dir), str(rnd)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[bytes] = []
    first_ack = threading.Event()

    def reader():
        for line in child.stdout:
            lines.append(line)
            if line.startswith(b"ack"):
                first_ack.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert first_ack.wait(30), f"no ack from the child: {child.stderr.read() if child.poll() is not None else ''}"
        time.sleep(rng.uniform(0.0, 0.5))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        t.join(10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    acked = []
    for line in lines:
        if not line.endswith(b"\n") or not line.startswith(b"ack "):
            continue  # a line cut by the kill
        _, tid, idx, part, off, ts = line.split()
        acked.append((rnd, int(tid), int(idx), int(part), int(off), int(ts)))
    assert acked
    return acked


def test_acknowledged_durable_records_survive_sigkill(log_dir):
    with tidelog.open(log_dir) as log:
        log.create_topic("crash", partitions=PARTITIONS, durability="fsync")
    rng = random.Random(os.getpid())
    all_acked: list[tuple] = []
    for rnd in range(3):
        all_acked += run_round(log_dir, rnd, rng)
        with tidelog.open(log_dir) as log:
            topic = log.topic("crash")
            c = log.consumer("crash")
            ends = topic.end_offsets()
            records = {}
            total = sum(ends.values())
            while len(records) < total:
                r = c.poll(5)
                assert r is not None
                records[(r.partition, r.offset)] = r
            c.close()
        # every acknowledged record is there, with its value, key, headers and timestamp
        for rd, tid, idx, part, off, ts in all_acked:
            r = records.get((part, off))
            assert r is not None, f"acknowledged record {(rd, tid, idx)} at {part}/{off} lost (ends {ends})"
            assert r.value == record_value(rd, tid, idx), (rd, tid, idx)
            assert r.key == record_key(tid, idx)
            assert r.headers == [("tid", b"%d" % tid)]
            assert r.timestamp == ts
            if r.key is not None:
                assert part == (tidelog._core.kafka_murmur2(r.key) & 0x7FFFFFFF) % PARTITIONS
        # whatever else survived is whole: no duplicates, per-thread order kept within a partition
        seen = set()
        for part in range(PARTITIONS):
            last = {}
            for off in range(ends[part]):
                r = records[(part, off)]
                head = r.value.split(b";", 1)[0]
                assert head not in seen, f"duplicate record {head!r}"
                seen.add(head)
                rd, tid, idx = (int(x[1:]) for x in head.split(b"-"))
                assert r.value == record_value(rd, tid, idx)
                assert last.get((rd, tid), -1) < idx
                last[(rd, tid)] = idx
