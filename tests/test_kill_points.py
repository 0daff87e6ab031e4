"""A read-write handle killed inside each of its locked sections (the kill
points of native/kill_points.h, armed by TIDELOG_TEST_KILL_AT in a child
process): the other handles notice by the kernel's release of what it held,
repair what it left, and carry on; nothing acknowledged is lost, offsets stay
dense, no frame is half visible, and the log verifies clean."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pytest

import tidelog
from tidelog import _verify

SCHEMA = pa.schema([("writer", pa.int64()), ("seq", pa.int64()), ("pad", pa.binary())])

CHILD = textwrap.dedent(r"""
    import os, sys, time
    import pyarrow as pa
    import tidelog
    path, topic_name, journal, create, close_after = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    log = tidelog.open(path)
    if create != "-":
        log.create_topic(create, schema=pa.schema([("writer", pa.int64()), ("seq", pa.int64()), ("pad", pa.binary())]))
    t = log.topic(topic_name)
    out = open(journal, "a", buffering=1)
    pad = b"x" * 3000
    for seq in range(100000):
        t.append(pa.record_batch({"writer": [1], "seq": [seq], "pad": [pad]}), durable=True)
        out.write(f"{seq}\n")
        if seq == close_after:
            log.close()
            sys.exit(3)
    sys.exit(2)  # the kill point was never reached
""")

# point -> (topic settings, what the child does: create a topic / close after n appends, kill count)
POINTS = {
    "append.locked": ({}, {}),
    "append.intent": ({}, {}),
    "append.mid_pwritev": ({}, {}),
    "append.after_pwritev": ({}, {}),
    "append.mid_commit": ({}, {}),
    "append.committed": ({}, {}),
    "append.published": ({"durability": "interval"}, {}),
    "roll.intent": ({"segment_bytes": 16384}, {}),
    "roll.sealed": ({"segment_bytes": 16384}, {}),
    "roll.created": ({"segment_bytes": 16384}, {}),
    "roll.dir_synced": ({"segment_bytes": 16384}, {}),
    "flush.locked": ({}, {}),
    "flush.synced": ({}, {}),
    "retention.published": ({"segment_bytes": 16384, "retention_bytes": 32768}, {}),
    "retention.unlinked_one": ({"segment_bytes": 16384, "retention_bytes": 32768}, {}),
    "checkpoint.locked": ({}, {}),
    "close.sealed": ({}, {"close_after": 5, "survivor_closes_first": True, "kill_at": 1}),
    "open.partition_init": ({}, {"create": "fresh", "kill_at": 1}),
}


def _run_survivor(topic, stop, acked, times, errors):
    seq = 0
    pad = b"y" * 3000
    while not stop.is_set():
        try:
            topic.append(pa.record_batch({"writer": [0], "seq": [seq], "pad": [pad]}), durable=True)
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(repr(e))
            return
        acked.append(seq)
        times.append(time.monotonic())
        seq += 1


def _check_log(path, topic_name, expect, retention=False):
    """Every acknowledged (writer, seq) exactly once, offsets dense from the start,
    each writer's order kept (with retention: those not older than the oldest kept)."""
    with tidelog.open(path, read_only=True) as ro:
        t = ro.topic(topic_name)
        p = t.partition(0)
        table = t.read(p.start_offset)
        offsets = list(range(p.start_offset, p.end_offset))
        assert table.num_rows == len(offsets), (table.num_rows, p.start_offset, p.end_offset)
        writers = table.column("writer").to_pylist()
        seqs = table.column("seq").to_pylist()
        seen = {}
        for w, s in zip(writers, seqs):
            assert (w, s) not in seen, f"duplicate record {(w, s)}"
            seen[(w, s)] = True
        for w in set(writers):
            mine = [s for ww, s in zip(writers, seqs) if ww == w]
            assert mine == sorted(mine), f"writer {w}: order not kept"
            # dense per writer above what retention removed
            assert mine == list(range(mine[0], mine[0] + len(mine))), f"writer {w}: a gap"
        for w, wanted in expect.items():
            present = {s for ww, s in seen if ww == w}
            lowest = min(present) if present else (float("inf") if retention else 0)
            missing = [s for s in wanted if s >= lowest and s not in present]
            assert not missing, f"writer {w}: acknowledged records missing: {missing[:10]}"


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_handle_killed_inside_a_locked_section_costs_the_others_nothing(tmp_path, point):
    settings, child_opts = POINTS[point]
    failovers = []
    for cycle in range(2):
        path = str(tmp_path / f"log{cycle}")
        journal = str(tmp_path / f"journal{cycle}")
        log = tidelog.open(path)
        topic_name = "t"
        log.create_topic("t", schema=SCHEMA, **settings)
        create = "-"
        if child_opts.get("create"):
            topic_name = create = child_opts["create"]
        survivor_topic = log.topic("t")
        stop, acked, times, errors = threading.Event(), [], [], []
        survivor = threading.Thread(target=_run_survivor, args=(survivor_topic, stop, acked, times, errors))
        survivor.start()
        env = dict(os.environ, TIDELOG_TEST_KILL_AT=f"{point}:{child_opts.get('kill_at', 1 + cycle * 2)}")
        close_after = child_opts.get("close_after", -1)
        if child_opts.get("survivor_closes_first"):
            # the child must be the partition's last handle: the survivor leaves first
            time.sleep(0.05)
            stop.set()
            survivor.join()
            log.close()
        child = subprocess.run([sys.executable, "-c", CHILD, path, topic_name, journal, create, str(close_after)],
                               env=env, capture_output=True, text=True, timeout=120)
        died = time.monotonic()
        assert child.returncode == -9, f"the child did not die at {point}: rc {child.returncode}\n{child.stderr}"
        if child_opts.get("survivor_closes_first"):
            log = tidelog.open(path)
            t0 = time.monotonic()
            log.topic(topic_name).append(pa.record_batch({"writer": [2], "seq": [0], "pad": [b""]}), durable=True)
            failovers.append(time.monotonic() - t0)
        else:
            if create != "-":
                # the dead child held the new partition's init lock: it is initialized again
                t0 = time.monotonic()
                log.topic(create).append(pa.record_batch({"writer": [2], "seq": [0], "pad": [b""]}), durable=True)
                failovers.append(time.monotonic() - t0)
            else:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not (times and times[-1] > died) and not errors:
                    time.sleep(0.001)
                assert not errors, errors
                after = [t for t in times if t > died]
                assert after, f"no append of the survivor succeeded within 5 s after the kill at {point}"
                failovers.append(max(0.0, after[0] - died))
            stop.set()
            survivor.join()
            assert not errors, errors
        child_acked = []
        if os.path.exists(journal):  # (a child killed while it opens has none)
            with open(journal) as f:
                child_acked = [int(line) for line in f if line.strip()]
        log.close()
        _check_log(path, topic_name, {0: acked if topic_name == "t" else [], 1: child_acked},
                   retention="retention_bytes" in settings)
        report = _verify.verify(path, progress="never")
        assert not report.damaged, _verify.format_report(report)
    print(f"{point}: failover {max(failovers) * 1000:.1f} ms (max of {len(failovers)})")
    assert max(failovers) < 1.0, failovers
