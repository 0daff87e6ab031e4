"""Crashes: SIGKILL of a durable writer, torn and garbled tails, broken indexes."""
from __future__ import annotations

import functools
import json
import logging
import os
import warnings
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from _helpers import SENSORS_SCHEMA, T0, assert_tables_equal, make_sensors, partition_files, segment_logs

# Code shared by the child writer and the parent checker: deterministic batches
# (a function of their batch id) and a digest of a batch's values.
COMMON = r"""
import zlib
import numpy as np
import pyarrow as pa

CRASH_SCHEMA = pa.schema([("bid", pa.int64()), ("seq", pa.int64()), ("v", pa.float64()), ("s", pa.binary())])


def batch_rows(bid):
    rng = np.random.default_rng(bid)
    return int(rng.integers(1, 3000)) if bid % 7 else int(rng.integers(10_000, 30_000))


def make_batch(bid):
    n = batch_rows(bid)
    rng = np.random.default_rng([bid, 1])
    lengths = rng.integers(0, 40, n)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = rng.bytes(int(offsets[-1]))
    s = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])
    return pa.RecordBatch.from_arrays(
        [pa.array(np.full(n, bid, np.int64)), pa.array(np.arange(n, dtype=np.int64)),
         pa.array(rng.standard_normal(n)), s],
        schema=CRASH_SCHEMA,
    )


def digest(data):
    # a checksum of the values (independent of chunking and buffer offsets)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    h = zlib.crc32(str(data.num_rows).encode())
    for name in ("bid", "seq", "v"):
        h = zlib.crc32(data[name].to_numpy(), h)
    for chunk in data["s"].chunks:
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        h = zlib.crc32(np.diff(offsets).astype(np.int64), h)
        if len(chunk) and chunk.buffers()[2] is not None:
            h = zlib.crc32(memoryview(chunk.buffers()[2])[offsets[0] : offsets[-1]], h)
    return h
"""

CHILD = COMMON + r"""
import json, sys, threading
import tidelog

path, rnd, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log = tidelog.open(path)
if "crash" in log.topics():
    topic = log.topic("crash")
else:
    topic = log.create_topic("crash", CRASH_SCHEMA, partitions=2, durability="fsync", segment_bytes=4 << 20)
out_lock = threading.Lock()
print("ready", flush=True)


def work(th):
    i = 0
    while True:
        bid = rnd * 10**9 + th * 10**6 + i
        batch = make_batch(bid)
        res = topic.append(batch)
        line = json.dumps({"bid": bid, "rows": batch.num_rows, "digest": digest(batch),
                           "offsets": {str(p): list(r) for p, r in res.offsets.items()}})
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        i += 1


ts = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
"""

_common: dict = {}
exec(COMMON, _common)  # noqa: S102 - our own code, shared with the child
make_batch, digest = _common["make_batch"], _common["digest"]
batch_rows = functools.lru_cache(maxsize=None)(_common["batch_rows"])


def run_and_kill(log_dir, rnd: int, threads: int, rng: random.Random) -> list[dict]:
    """Starts a durable writer, SIGKILLs it at a random moment; returns its acknowledged batches."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(log_dir), str(rnd), str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            if line == "ready\n":
                ready.set()
            else:
                lines.append(line)
        ready.set()

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        assert ready.wait(60), "child never got ready"
        assert proc.poll() is None, f"child died: {proc.stderr.read()}"
        time.sleep(rng.uniform(0.05, 0.6))
        # make sure some acknowledgements exist in most rounds, then kill at a random moment
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        assert proc.poll() is None, f"child died before the kill: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # a line cut by the kill (no newline) was never acknowledged
    return [json.loads(line) for line in lines if line.endswith("\n")]


def verify_crash_topic(topic, acked: list[dict], check_ranges: list[dict] = ()) -> dict[int, int]:
    """Every acknowledged batch is intact at its offsets; every batch in the log is whole;
    offsets are dense. Returns {bid: partition} of what the log holds."""
    ends = topic.end_offsets()
    assert topic.start_offsets() == {0: 0, 1: 0}
    by_bid = {a["bid"]: a for a in acked}
    found: dict[int, tuple[int, int, int]] = {}  # bid -> (partition, first offset, rows)
    for p in range(topic.partitions):
        table = topic.read(partitions=p)
        assert table.num_rows == ends[p], f"partition {p}: {table.num_rows} rows, end offset {ends[p]}"
        table.validate(full=True)
        bids = table["bid"].to_numpy()
        if not len(bids):
            continue
        # rows of one batch are contiguous (one frame) and each batch is whole and unchanged
        cuts = np.flatnonzero(np.diff(bids)) + 1
        starts = np.concatenate([[0], cuts])
        stops = np.concatenate([cuts, [len(bids)]])
        position = np.arange(len(bids)) - np.repeat(starts, stops - starts)
        assert (table["seq"].to_numpy() == position).all(), f"partition {p}: rows out of order or torn"
        for a, b in zip(starts.tolist(), stops.tolist()):
            bid = int(bids[a])
            assert bid not in found, f"batch {bid} found twice"
            found[bid] = (p, a, b - a)
            assert b - a == batch_rows(bid), f"batch {bid}: {b - a} of {batch_rows(bid)} rows (torn)"
            ack = by_bid.get(bid)
            expected = ack["digest"] if ack else digest(make_batch(bid))
            assert digest(table.slice(a, b - a)) == expected, f"batch {bid}: values differ"
    for ack in acked:
        (p, (first, last)), = ack["offsets"].items()
        assert ack["rows"] == last - first + 1 == batch_rows(ack["bid"])
        assert found.get(ack["bid"]) == (int(p), first, ack["rows"]), f"acknowledged batch {ack['bid']} lost or moved"
    for ack in check_ranges:  # and through offset-range reads
        (p, (first, last)), = ack["offsets"].items()
        got = topic.read(first, last + 1, partitions=int(p))
        assert set(got["bid"].to_pylist()) == {ack["bid"]}
        assert digest(got) == ack["digest"], f"acknowledged batch {ack['bid']} changed"
    return found


@pytest.mark.slow
def test_sigkill_durable_writer_rounds(log_dir):
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    acked: list[dict] = []
    rounds = 5
    for rnd in range(1, rounds + 1):
        new = run_and_kill(log_dir, rnd, threads=1 + rnd % 2, rng=rng)
        acked += new
        # a reader sees every acknowledged batch before anyone recovers the log
        with tidelog.open(log_dir, read_only=True) as ro:
            verify_crash_topic(ro.topic("crash"), acked, new[-20:])
        if rnd % 2 == 0:
            # recover with a writer in between; odd rounds leave recovery to the next child
            with tidelog.open(log_dir) as lg:
                assert lg.clean_shutdown is False
                verify_crash_topic(lg.topic("crash"), acked, new[-20:])
    assert len(acked) > rounds, "too few acknowledged batches to mean anything"
    with tidelog.open(log_dir) as lg:
        assert lg.clean_shutdown is False
        t = lg.topic("crash")
        found = verify_crash_topic(t, acked, acked[::25])
        assert len(found) >= len(acked)
        ends = t.end_offsets()
        res = t.append(make_batch(99 * 10**9))
        (p, (first, last)), = res.offsets.items()
        assert first == ends[p]
    with tidelog.open(log_dir) as lg:
        assert lg.clean_shutdown is True
        assert lg.recovery_report == []
        t = lg.topic("crash")
        assert sum(t.end_offsets().values()) == sum(batch_rows(b) for b in found) + res.rows
        for ack in acked[-5:]:
            (p, (first, last)), = ack["offsets"].items()
            assert digest(t.read(first, last + 1, partitions=int(p))) == ack["digest"]


# ------------------------------------------------------------------ torn / garbled tails
def _frame_positions(topic, partition=0):
    """[frame_start, payload_position, payload_length, base_offset, count] of each frame of the
    partition's last segment (frames follow each other at 8-byte-aligned positions from 0)."""
    frames = topic._partitions[partition].frames()
    last = frames[-1].mapping.address
    out = []
    end = 0
    for f in frames:
        mapping, address, length, base, count = f.mapping, f.address, f.length, f.base_offset, f.record_count
        if mapping.address != last:
            continue
        pos = address - mapping.address
        out.append([end, pos, length, base, count])
        end = (pos + length + 7) // 8 * 8
    return out


def _damage(path, how, frame):
    start, pos, length, _base, _count = frame
    with open(path, "r+b") as f:
        if how == "truncate_payload":
            f.truncate(pos + length // 2)
        elif how == "truncate_header":
            f.truncate(start + 20)
        elif how == "truncate_last_byte":
            f.truncate(pos + length - 1)
        elif how == "garble_payload":
            f.seek(pos + length // 2)
            f.write(b"\xab" * 16)
        elif how == "garble_one_bit":
            f.seek(pos + length - 1)
            b = f.read(1)
            f.seek(pos + length - 1)
            f.write(bytes([b[0] ^ 0x01]))
        elif how == "garble_header":
            f.seek(start + 24)  # record_count
            f.write(b"\x99\x99")
        elif how == "junk_after":
            f.seek(0, 2)
            f.write(os.urandom(37))
        else:
            raise AssertionError(how)


DAMAGES = ["truncate_payload", "truncate_header", "truncate_last_byte", "garble_payload", "garble_one_bit",
           "garble_header", "junk_after"]


def _setup_tail(log_dir, batches=6, rows=200):
    with tidelog.open(log_dir) as lg:
        t = lg.create_topic("s", SENSORS_SCHEMA, timestamp="ts")
        for i in range(batches):
            t.append(make_sensors(rows, start=rows * i))
        frames = _frame_positions(t)
    return frames



def _forget_acknowledgement(log_dir, topic="s"):
    """What a crash before the tail was acknowledged leaves: no clean-shutdown
    marker, and neither a checkpoint nor a published end that vouches for it."""
    os.remove(log_dir / "clean-shutdown")
    for name in ("recovery-checkpoint", "state"):
        for f in partition_files(log_dir, topic, 0, name):
            os.remove(f)


@pytest.mark.parametrize("how", DAMAGES)
def test_torn_or_garbled_unacknowledged_tail_is_cut_off(log_dir, caplog, how):
    batches, rows = 6, 200
    frames = _setup_tail(log_dir, batches, rows)
    seg = segment_logs(log_dir, "s")[-1]
    assert os.path.getsize(seg) == (frames[-1][1] + frames[-1][2] + 7) // 8 * 8, "trimmed on close"
    _damage(seg, how, frames[-1])
    _forget_acknowledgement(log_dir)
    kept = batches if how == "junk_after" else batches - 1
    caplog.set_level(logging.WARNING, logger="tidelog")
    with tidelog.open(log_dir) as lg:
        assert lg.clean_shutdown is False
        t = lg.topic("s")
        assert t.end_offsets() == {0: kept * rows}
        table = t.read()
        assert_tables_equal(table, pa.Table.from_batches([make_sensors(kept * rows)]))
        # reported, in the recovery report and the log
        drops = [e for e in lg.recovery_report if e["bytes_dropped"] > 0]
        assert drops, f"nothing reported: {lg.recovery_report}"
        ev = drops[0]
        assert ev["topic"] == "s" and ev["partition"] == 0 and ev["kind"] == "cut"
        assert ev["file"] == seg
        assert ev["first_offset_dropped"] == kept * rows
        assert ev["reason"]
        assert any(r.name == "tidelog" and r.levelno == logging.WARNING for r in caplog.records), caplog.text
        # appends continue at the right offset
        res = t.append(make_sensors(10, start=kept * rows))
        assert res.offsets == {0: (kept * rows, kept * rows + 9)}
        # time-index reads still agree after the cut
        mid = T0 + (kept * rows // 2) * 1000
        assert t.read(start_time=mid)["value"].to_pylist() == [float(i) for i in range(kept * rows // 2, kept * rows + 10)]
    with tidelog.open(log_dir) as lg:
        assert lg.clean_shutdown and lg.recovery_report == []
        assert_tables_equal(lg.topic("s").read(), pa.Table.from_batches([make_sensors(kept * rows + 10)]))


@pytest.mark.parametrize("state", ["marker-kept", "marker-removed", "marker-and-checkpoint-removed"])
@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_acknowledged_tail_is_kept_and_its_offsets_not_reused(log_dir, caplog, how, state):
    """The clean close (its checkpoint) or the published durable end vouch for the
    last frame: damage to it is reported and kept, never cut, and its offsets are
    not handed out again."""
    batches, rows = 6, 200
    frames = _setup_tail(log_dir, batches, rows)
    seg = segment_logs(log_dir, "s")[-1]
    _damage(seg, how, frames[-1])
    if state != "marker-kept":
        os.remove(log_dir / "clean-shutdown")
    if state == "marker-and-checkpoint-removed":
        os.remove(partition_files(log_dir, "s", 0, "recovery-checkpoint")[0])
    end = batches * rows
    good = end if how == "junk_after" else (batches - 1) * rows
    caplog.set_level(logging.WARNING, logger="tidelog")
    for attempt in range(2):
        with tidelog.open(log_dir) as lg:
            t = lg.topic("s")
            assert t.end_offsets()[0] >= end
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", tidelog.CorruptionWarning)
                got = t.read(0, end, on_corrupt="skip")
            assert_tables_equal(got, pa.Table.from_batches([make_sensors(good)]))
            # junk past the durable end is a torn tail, cut; nothing below it is
            assert not [e for e in lg.recovery_report if e["kind"] == "cut" and e["first_offset_dropped"] < end]
            if how != "junk_after":
                with pytest.raises(tidelog.CorruptionError) as info:
                    t.read()
                assert (info.value.start_offset, info.value.end_offset) == (good, end)
                if attempt == 0:
                    damaged = [e for e in lg.recovery_report if e["kind"] == "damaged"]
                    assert damaged and damaged[0]["first_offset_dropped"] == good, lg.recovery_report
                    assert damaged[0]["end_offset"] == end and damaged[0]["bytes_dropped"] == 0
                    assert any(r.levelno == logging.WARNING for r in caplog.records), caplog.text
            if attempt == 0:
                first = t.append(make_sensors(10, start=end)).offsets[0][0]
                assert first >= end


def test_garbled_middle_frame_below_the_published_end_costs_only_that_frame(log_dir, caplog):
    """Without a checkpoint, recovery CRC-checks everything; what the previous
    writer published as durable is kept around the damaged frame."""
    frames = _setup_tail(log_dir, 6, 200)
    seg = segment_logs(log_dir, "s")[-1]
    _damage(seg, "garble_payload", frames[2])
    os.remove(log_dir / "clean-shutdown")
    for f in partition_files(log_dir, "s", 0, "recovery-checkpoint"):
        os.remove(f)
    caplog.set_level(logging.WARNING, logger="tidelog")
    with tidelog.open(log_dir) as lg:
        t = lg.topic("s")
        assert t.end_offsets() == {0: 1200}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tidelog.CorruptionWarning)
            got = t.read(on_corrupt="skip")
        want = make_sensors(1200)
        assert_tables_equal(got, pa.concat_tables([pa.Table.from_batches([want.slice(0, 400)]),
                                                   pa.Table.from_batches([want.slice(600)])]))
        ev = [e for e in lg.recovery_report if e["kind"] == "damaged"]
        assert ev and (ev[0]["first_offset_dropped"], ev[0]["end_offset"]) == (400, 600)
        assert "tidelog" in {r.name for r in caplog.records}
        assert t.append(make_sensors(1, start=1200)).offsets == {0: (1200, 1200)}


def test_garbled_middle_frame_full_recovery(log_dir, caplog):
    """Nothing vouches (no marker, checkpoint or published end): recovery CRC-checks
    everything and the log ends before the first bad frame."""
    frames = _setup_tail(log_dir, 6, 200)
    seg = segment_logs(log_dir, "s")[-1]
    _damage(seg, "garble_payload", frames[2])
    _forget_acknowledgement(log_dir)
    caplog.set_level(logging.WARNING, logger="tidelog")
    with tidelog.open(log_dir) as lg:
        t = lg.topic("s")
        assert t.end_offsets() == {0: 400}
        assert_tables_equal(t.read(), pa.Table.from_batches([make_sensors(400)]))
        drops = [e for e in lg.recovery_report if e["bytes_dropped"] > 0]
        assert drops and drops[0]["first_offset_dropped"] == 400
        assert "tidelog" in {r.name for r in caplog.records}
        assert t.append(make_sensors(1, start=400)).offsets == {0: (400, 400)}


def test_torn_tail_in_last_of_many_segments(log_dir):
    with tidelog.open(log_dir) as lg:
        t = lg.create_topic("s", SENSORS_SCHEMA, segment_bytes=64 << 10, durability="none")
        for i in range(20):
            t.append(make_sensors(1000, start=1000 * i))
        n_segments = t.describe()["partitions"][0]["segments"]
        frames = _frame_positions(t)
    assert n_segments > 3
    seg = segment_logs(log_dir, "s")[-1]
    _damage(seg, "truncate_payload", frames[-1])
    _forget_acknowledgement(log_dir)
    with tidelog.open(log_dir) as lg:
        t = lg.topic("s")
        assert t.end_offsets() == {0: 19_000}
        assert t.describe()["partitions"][0]["segments"] == n_segments
        assert t.read()["value"].to_pylist() == [float(i) for i in range(19_000)]
        assert lg.recovery_report


# ------------------------------------------------------------------ broken indexes
INDEX_DAMAGE = ["garbage", "deleted", "empty", "truncated_odd"]

@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
@pytest.mark.parametrize("how", INDEX_DAMAGE)
@pytest.mark.parametrize("which", [".index", ".timeindex"])
def test_broken_index_files(log_dir, how, which, clean):
    rows = 1000
    with tidelog.open(log_dir) as lg:
        t = lg.create_topic("s", SENSORS_SCHEMA, partitions=2, timestamp="ts", segment_bytes=64 << 10,
                            durability="none")
        for i in range(24):
            t.append(make_sensors(rows, start=rows * i))
        expected = {p: t.read(partitions=p) for p in range(2)}
        ends = t.end_offsets()
    files = partition_files(log_dir, "s", 0, which) + partition_files(log_dir, "s", 1, which)
    files = [f for f in files if f.endswith(which)]
    assert len(files) >= 4
    rng = np.random.default_rng(5)
    for f in files:
        size = os.path.getsize(f)
        if how == "garbage":
            with open(f, "wb") as fh:
                fh.write(rng.bytes(max(size, 64)))
        elif how == "deleted":
            os.remove(f)
        elif how == "empty":
            open(f, "wb").close()
        elif how == "truncated_odd":
            os.truncate(f, max(size - 3, 0))
    if not clean:
        os.remove(log_dir / "clean-shutdown")
    with tidelog.open(log_dir) as lg:
        t = lg.topic("s")
        assert t.end_offsets() == ends
        for p in range(2):
            assert_tables_equal(t.read(partitions=p), expected[p])
            e = ends[p]
            got = t.read(e // 3, 2 * e // 3, partitions=p)
            assert_tables_equal(got, expected[p].slice(e // 3, 2 * e // 3 - e // 3))
        # time reads (the time index) agree with a filter over everything
        lo, hi = T0 + 5_000 * 1000, T0 + 17_000 * 1000
        got = sorted(t.read(start_time=lo, end_time=hi)["value"].to_pylist())
        assert got == [float(i) for i in range(5_000, 17_000)]
        for p in range(2):
            ts = expected[p]["ts"].cast(pa.int64()).to_numpy()
            first = int(np.argmax(ts >= lo))
            assert t.offset_for_time(p, lo) <= first
        res = t.append(make_sensors(5, start=10**6))
        (p, (first, last)), = res.offsets.items()
        assert first == ends[p]
    with tidelog.open(log_dir) as lg:
        t = lg.topic("s")
        for p in range(2):
            assert t.read(0, ends[p], partitions=p).num_rows == ends[p]


def test_index_garbage_with_read_only_reader(log_dir):
    with tidelog.open(log_dir) as lg:
        t = lg.create_topic("s", SENSORS_SCHEMA, segment_bytes=64 << 10, durability="none")
        for i in range(10):
            t.append(make_sensors(1000, start=1000 * i))
    for f in partition_files(log_dir, "s", 0, ".index"):
        with open(f, "wb") as fh:
            fh.write(b"\xff" * 4096)
    with tidelog.open(log_dir, read_only=True) as ro:
        t = ro.topic("s")
        assert t.read(2500, 7500)["value"].to_pylist() == [float(i) for i in range(2500, 7500)]
