"""Corruption (issue 5): random bit flips and overwritten ranges in sealed
segments and in index files.

- Reading a damaged frame raises CorruptionError naming topic, partition,
  segment and file position; never garbage, never a crash; reads that do not
  touch the damage return exactly what was written.
- Damaged indexes: reads stay correct (readers and writers), and a writer open
  rebuilds indexes that fail its check.
- ``tidelog verify`` finds every injected corruption.
"""
from __future__ import annotations

import os
import random
import shutil
import struct
import warnings

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from _helpers import SENSORS_SCHEMA, T0, assert_tables_equal, frame_spans, make_sensors, partition_files, segment_logs
from tidelog import _verify

DICT_SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("tag", pa.dictionary(pa.int8(), pa.string())),
                         ("n", pa.int64())])
TOPICS = {  # name: partitions
    "cols": 2,   # uncompressed columnar, keyed
    "z": 1,      # zstd frames
    "dict": 1,   # dictionary column: whole-IPC-stream frames
    "recs": 1,   # byte records through the producer
}


def _dict_batch(n: int, start: int) -> pa.RecordBatch:
    idx = np.arange(start, start + n)
    tags = pa.array([f"tag{(i * 7) % 5}" for i in idx]).dictionary_encode().cast(DICT_SCHEMA.field("tag").type)
    return pa.RecordBatch.from_arrays([pa.array(T0 + idx * 1000, pa.timestamp("ns")), tags, pa.array(idx)],
                                      schema=DICT_SCHEMA)


def _build(path) -> None:
    """A log whose topics have several segments each; timestamps increase (no out-of-order frames)."""
    with tidelog.open(path) as log:
        cols = log.create_topic("cols", SENSORS_SCHEMA, partitions=2, key="sensor_id", timestamp="ts",
                                segment_bytes=16 << 10)
        z = log.create_topic("z", SENSORS_SCHEMA, timestamp="ts", compression="zstd", segment_bytes=8 << 10)
        dt = log.create_topic("dict", DICT_SCHEMA, timestamp="ts", segment_bytes=16 << 10)
        log.create_topic("recs", segment_bytes=8 << 10)
        for i in range(24):
            cols.append(make_sensors(250, start=250 * i))
            z.append(make_sensors(300, start=300 * i))
            dt.append(_dict_batch(120, 120 * i))
        with log.producer(linger_ms=0) as p:
            for i in range(600):
                p.send("recs", value=b"value-%d;" % i * (i % 13 + 1), key=b"k%d" % (i % 11),
                       headers=[("i", b"%d" % i)], timestamp=T0 + i * 1000)


def _read_all(log) -> dict:
    out = {}
    for name, n in TOPICS.items():
        t = log.topic(name)
        for p in range(n):
            out[(name, p)] = t.read(partitions=p)
    return out


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("corruption") / "log"
    _build(path)
    with tidelog.open(path, read_only=True) as ro:
        expected = _read_all(ro)
        ends = {name: ro.topic(name).end_offsets() for name in TOPICS}
    report = _verify.verify(path, progress="never")
    assert not report.damaged, _verify.format_report(report)
    for name, n in TOPICS.items():
        for p in range(n):
            assert len(segment_logs(path, name, p)) >= 3, (name, p)
    return path, expected, ends


@pytest.fixture
def damaged_copy(pristine, tmp_path):
    path, expected, ends = pristine
    copy = tmp_path / "log"
    shutil.copytree(path, copy)
    return copy, expected, ends


def _frames(path: str) -> list[tuple]:
    """frame_spans(path), asserting that the frames fill the file."""
    out = frame_spans(path)
    end = out[-1][0] + out[-1][3] if out else 0
    assert end == os.path.getsize(path), f"{path}: frames end at {end}, the file at {os.path.getsize(path)}"
    return out


def _flip(path: str, positions: list[int], rng: random.Random) -> None:
    with open(path, "r+b") as f:
        for pos in positions:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b ^ (1 << rng.randrange(8))]))


def _overwrite(path: str, pos: int, data: bytes) -> bool:
    with open(path, "r+b") as f:
        f.seek(pos)
        old = f.read(len(data))
        f.seek(pos)
        f.write(data)
    return old != data


def _check_reads(log, expected, damaged_key, seg_base, next_base, frame_base, seg_name, frame_pos, covered):
    """Every read either returns exactly the expected rows or raises a CorruptionError naming the damage."""
    name, p = damaged_key
    t = log.topic(name)
    for key, table in expected.items():
        if key != damaged_key:
            assert_tables_equal(log.topic(key[0]).read(partitions=key[1]), table)
    start = t.start_offsets()[p]
    exp = expected[damaged_key]
    if covered:
        with pytest.raises(tidelog.CorruptionError) as info:
            t.read(partitions=p)
        err = info.value
        assert (err.topic, err.partition, err.segment, err.position) == (name, p, seg_name, frame_pos), str(err)
        assert name in str(err) and seg_name in str(err) and str(frame_pos) in str(err)
        # up to the damaged frame, and from the next segment on, reads are exact
        assert_tables_equal(t.read(start, frame_base, partitions=p), exp.slice(0, frame_base - start))
        assert_tables_equal(t.read(next_base, partitions=p), exp.slice(next_base - start))
        # a scan stops with the same error after yielding only good batches
        got = []
        with pytest.raises(tidelog.CorruptionError):
            for batch in t.scan(partitions=p):
                got.append(batch)
        if got:
            assert_tables_equal(pa.Table.from_batches(got), exp.slice(0, sum(b.num_rows for b in got)))
        # records topics: the consumer raises too
        if name == "recs":
            c = log.consumer()
            c.assign([(name, p)])
            c.seek(name, p, seg_base)
            with pytest.raises(tidelog.CorruptionError):
                for _ in range(100_000):
                    if c.poll(timeout=0) is None:
                        break
            c.close()
    else:
        assert_tables_equal(t.read(partitions=p), exp)


DAMAGES = ["bit", "bits", "range", "zeros", "header-bit", "header-range", "padding"]


@pytest.mark.parametrize("seed", range(14))
def test_random_damage_in_a_sealed_segment(damaged_copy, seed):
    path, expected, ends = damaged_copy
    rng = random.Random(seed)
    name = rng.choice(sorted(TOPICS))
    p = rng.randrange(TOPICS[name])
    segs = segment_logs(path, name, p)
    k = rng.randrange(len(segs) - 1)  # a sealed segment
    seg = segs[k]
    seg_base = int(os.path.basename(seg)[:20])
    next_base = int(os.path.basename(segs[k + 1])[:20])
    frames = _frames(seg)
    how = DAMAGES[seed % len(DAMAGES)]
    if how == "padding" and not any(f[1] > 64 or f[3] > f[1] + f[2] for f in frames):
        how = "bit"
    frame = rng.choice([f for f in frames if how != "padding" or f[1] > 64 or f[3] > f[1] + f[2]])
    start, poff, plen, length, base, count = frame
    covered = True
    if how == "bit":
        _flip(seg, [start + poff + rng.randrange(plen)], rng)
    elif how == "bits":
        _flip(seg, sorted({start + poff + rng.randrange(plen) for _ in range(rng.randint(2, 8))}), rng)
    elif how == "range":
        n = rng.randint(1, min(200, plen))
        at = start + poff + rng.randrange(plen - n + 1)
        assert _overwrite(seg, at, bytes(rng.randrange(256) for _ in range(n))) or True
    elif how == "zeros":
        n = rng.randint(8, min(300, plen))
        at = start + poff + rng.randrange(plen - n + 1)
        if not _overwrite(seg, at, bytes(n)):
            _flip(seg, [at], rng)
    elif how == "header-bit":
        _flip(seg, [start + rng.randrange(64)], rng)
    elif how == "header-range":
        n = rng.randint(2, 24)
        at = start + rng.randrange(64 - n + 1)
        data = bytes(rng.randrange(256) for _ in range(n))
        if not _overwrite(seg, at, data):
            _flip(seg, [at], rng)
    elif how == "padding":
        pads = list(range(start + 64, start + poff)) + list(range(start + poff + plen, start + length))
        _flip(seg, [rng.choice(pads)], rng)
        covered = False  # the CRC does not cover padding: the records are intact

    # verify finds it, at that frame
    report = _verify.verify(path, progress="never")
    assert report.damaged, f"{how} at frame {start} of {seg} not found"
    probs = [pr for pr in report.all_problems() if pr.file == seg]
    assert probs, _verify.format_report(report)
    assert probs[0].position == start, _verify.format_report(report)
    assert probs[0].kind == ("padding" if not covered else "frame")
    others = [pr for pr in report.all_problems() if pr.file != seg and pr.kind != "index"]
    assert not others, _verify.format_report(report)

    seg_name = os.path.basename(seg)
    for ro in (True, False):
        with tidelog.open(path, read_only=ro) as log:
            t = log.topic(name)
            assert t.end_offsets() == ends[name]  # a sealed segment's damage changes no offsets
            _check_reads(log, expected, (name, p), seg_base, next_base, base, seg_name, start, covered)
    # --repair moves the damaged bytes aside and keeps every intact frame at its offset
    _check_repair(path, expected, (name, p), seg, report if covered else None)


def _damaged_offsets(report, key) -> set[int]:
    out = set()
    for r in report.damaged_ranges:
        if (r.topic, r.partition) == key:
            out.update(range(r.start_offset, r.end_offset))
    return out


def _check_repair(path, expected, key, seg, report) -> None:
    """verify --repair: exit 3; the damaged bytes are saved beside the segment; the
    log then opens with nothing damaged, every intact row reads back at its offset,
    the damaged offsets are a gap (CorruptionError, or skipped), offsets are never
    reused, and verify is clean."""
    name, p = key
    damaged = _damaged_offsets(report, key) if report is not None else set()
    rep = _verify.verify(path, repair=True, progress="never")
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    if damaged:
        sides = [f for f in os.listdir(os.path.dirname(seg)) if ".log.damaged-" in f or ".log.cut-" in f]
        assert sides, os.listdir(os.path.dirname(seg))
    exp = expected[key]
    with tidelog.open(path) as log:
        assert not [e for e in log.recovery_report if e["kind"] in ("damaged", "cut")], log.recovery_report
        t = log.topic(name)
        start = t.start_offsets()[p]
        keep = [i for i in range(exp.num_rows) if start + i not in damaged]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tidelog.CorruptionWarning)
            got = t.read(partitions=p, on_corrupt="skip")
        assert_tables_equal(got, exp.take(keep))
        if damaged:
            with pytest.raises(tidelog.CorruptionError):
                t.read(min(damaged), min(damaged) + 1, partitions=p)
        end = t.end_offsets()[p]
        assert end >= start + exp.num_rows
        if name == "recs":
            with log.producer(linger_ms=0) as prod:
                assert prod.send(name, value=b"after", partition=p).result().offset == end
        elif name == "dict":
            assert t.append(_dict_batch(3, 10**6)).offsets[p][0] == end
        else:
            assert t.append(make_sensors(3, start=10**6)).offsets[p][0] == end
    assert _verify.exit_code(_verify.verify(path, progress="never")) == _verify.EXIT_CLEAN


@pytest.mark.parametrize("seed", range(6))
def test_random_damage_in_the_last_segment_is_repaired(damaged_copy, seed):
    """Damage in a partition's last segment: reads raise; verify --repair moves the
    damaged bytes aside and keeps the intact frames after them at their offsets."""
    path, expected, ends = damaged_copy
    rng = random.Random(1000 + seed)
    name = rng.choice(sorted(TOPICS))
    p = rng.randrange(TOPICS[name])
    seg = segment_logs(path, name, p)[-1]
    frames = _frames(seg)
    start, poff, plen, length, base, count = rng.choice(frames)
    _flip(seg, [start + poff + rng.randrange(plen)], rng)
    with tidelog.open(path, read_only=True) as log:
        with pytest.raises(tidelog.CorruptionError) as info:
            log.topic(name).read(partitions=p)
        assert info.value.position == start and info.value.segment == os.path.basename(seg)
        assert (info.value.start_offset, info.value.end_offset) == (base, base + count)
    report = _verify.verify(path, progress="never")
    assert _damaged_offsets(report, (name, p)) == set(range(base, base + count)), _verify.format_report(report)
    _check_repair(path, expected, (name, p), seg, report)


INDEX_DAMAGES = ["bit", "range", "garbage-file", "partial-entry", "zero-entry", "empty"]


def _damage_an_index(path, seed):
    rng = random.Random(2000 + seed)
    name = rng.choice(["cols", "z", "dict"])  # columnar topics with a timestamp column
    p = rng.randrange(TOPICS[name])
    ext = rng.choice([".index", ".timeindex"])
    files = [f for f in partition_files(path, name, p, ext) if f.endswith(ext)]
    f = rng.choice(files)
    size = os.path.getsize(f)
    entry = 8 if ext == ".index" else 16
    how = INDEX_DAMAGES[seed % len(INDEX_DAMAGES)]
    if how == "bit":
        _flip(f, [rng.randrange(size)], rng)
    elif how == "range":
        n = rng.randint(1, size)
        at = rng.randrange(size - n + 1)
        if not _overwrite(f, at, bytes(rng.randrange(256) for _ in range(n))):
            _flip(f, [at], rng)
    elif how == "garbage-file":
        with open(f, "wb") as fh:
            fh.write(bytes(rng.randrange(256) for _ in range(max(size, 4 * entry))))
    elif how == "partial-entry":
        with open(f, "ab") as fh:
            fh.write(b"\x01" * rng.randint(1, entry - 1))
    elif how == "zero-entry":
        k = rng.randrange(size // entry)
        if not _overwrite(f, k * entry, bytes(entry)):
            _flip(f, [k * entry + 4], rng)
    elif how == "empty":
        open(f, "wb").close()
    return name, p, f


def _check_index_reads(log, name, p, expected, ends, seed):
    exp = expected[(name, p)]
    e = ends[name][p]
    rng = random.Random(seed)
    t = log.topic(name)
    assert t.end_offsets() == ends[name]
    assert_tables_equal(t.read(partitions=p), exp)
    for _ in range(5):
        lo = rng.randrange(e)
        hi = rng.randrange(lo, e + 1)
        assert_tables_equal(t.read(lo, hi, partitions=p), exp.slice(lo, hi - lo))
    ts = exp["ts"].cast(pa.int64()).to_numpy()
    wrong = []
    for i in [rng.randrange(len(ts)) for _ in range(3)] + [len(ts) - 1]:
        t0 = int(ts[i])
        want = exp.filter(pa.compute.greater_equal(exp["ts"].cast(pa.int64()), t0))
        got = t.read(start_time=t0, partitions=p)
        if got.num_rows != want.num_rows or t.offset_for_time(p, t0) != int(np.argmax(ts >= t0)):
            wrong.append((t0, got.num_rows, want.num_rows))
        else:
            assert_tables_equal(got, want)
    return wrong


@pytest.mark.parametrize("seed", range(12))
def test_random_damage_in_an_index(damaged_copy, seed):
    """verify finds it; readers (which never repair) and a writer (which rebuilds what fails
    its check) read exactly what was written, by offset and by time."""
    path, expected, ends = damaged_copy
    name, p, f = _damage_an_index(path, seed)
    report = _verify.verify(path, progress="never")
    assert report.damaged and all(pr.kind == "index" for pr in report.all_problems()), _verify.format_report(report)
    assert any(os.path.basename(pr.file) == os.path.basename(f) for pr in report.all_problems())
    wrong = {}
    for ro in (True, False):
        with tidelog.open(path, read_only=ro) as log:
            w = _check_index_reads(log, name, p, expected, ends, seed)  # offset reads asserted inside
            if w:
                wrong["reader" if ro else "writer"] = w
    assert not wrong, f"time reads over a damaged {os.path.basename(f)} came back wrong: {wrong}"


@pytest.mark.parametrize("seed", range(0, 12, 3))
def test_rebuilt_index_keeps_the_seal_entry(damaged_copy, seed):
    """After a writer open rebuilt (or verify --repair deleted) a damaged index, readers
    read right and verify finds nothing."""
    path, expected, ends = damaged_copy
    name, p, f = _damage_an_index(path, seed)
    tidelog.open(path).close()
    rep = _verify.verify(path, repair=True, progress="never")
    with tidelog.open(path, read_only=True) as log:
        assert not _check_index_reads(log, name, p, expected, ends, seed)
    assert _verify.exit_code(rep) in (_verify.EXIT_CLEAN, _verify.EXIT_REPAIRED), _verify.format_report(rep)
    assert not _verify.verify(path, progress="never").damaged


def test_rebuilt_index_seal_entry_minimal(tmp_path):
    """Indexes deleted (FORMAT.md §10 allows it), rebuilt by the next writer: readers'
    time reads still find the segment's last records."""
    d = tmp_path / "log"
    with tidelog.open(d) as log:
        t = log.create_topic("s", SENSORS_SCHEMA, timestamp="ts", segment_bytes=16 << 10)
        for i in range(40):
            t.append(make_sensors(80, start=80 * i))
    segs = segment_logs(d, "s")
    for ext in (".index", ".timeindex"):
        os.remove(segs[0][:-4] + ext)
    tidelog.open(d).close()
    end = int(os.path.basename(segs[1])[:20])
    with tidelog.open(d, read_only=True) as ro:
        t = ro.topic("s")
        for k in range(1, 60):
            ts = T0 + (end - k) * 1000
            got = t.read(start_time=ts).num_rows
            assert got == 40 * 80 - (end - k), (ts, got)
    report = _verify.verify(d, progress="never")
    assert not report.damaged, _verify.format_report(report)


def test_lowered_time_index_entry_is_found_by_verify(damaged_copy):
    path, expected, ends = damaged_copy
    f = [x for x in partition_files(path, "cols", 0, ".timeindex") if x.endswith(".timeindex")][0]
    data = bytearray(open(f, "rb").read())
    assert len(data) >= 4 * 16
    ts2 = struct.unpack_from("<q", data, 32)[0]
    struct.pack_into("<q", data, 48, ts2 + 1)  # entry 3 lowered, entries still increasing
    open(f, "wb").write(data)
    report = _verify.verify(path, progress="never")
    probs = report.all_problems()
    assert len(probs) == 1 and probs[0].kind == "index" and probs[0].position == 48, _verify.format_report(report)
    assert "skip" in probs[0].reason
    rep = _verify.verify(path, repair=True, progress="never")
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED
    with tidelog.open(path, read_only=True) as log:
        exp = expected[("cols", 0)]
        t0 = ts2 + 2
        want = exp.filter(pa.compute.greater_equal(exp["ts"].cast(pa.int64()), t0))
        assert_tables_equal(log.topic("cols").read(start_time=t0, partitions=0), want)


def test_lowered_time_index_entry(damaged_copy):
    path, expected, ends = damaged_copy
    f = [x for x in partition_files(path, "cols", 0, ".timeindex") if x.endswith(".timeindex")][0]
    data = bytearray(open(f, "rb").read())
    ts2 = struct.unpack_from("<q", data, 32)[0]
    struct.pack_into("<q", data, 48, ts2 + 1)
    open(f, "wb").write(data)
    exp = expected[("cols", 0)]
    t0 = ts2 + 2
    want = exp.filter(pa.compute.greater_equal(exp["ts"].cast(pa.int64()), t0))
    for ro in (True, False):
        with tidelog.open(path, read_only=ro) as log:
            t = log.topic("cols")
            try:
                got = t.read(start_time=t0, partitions=0)
            except tidelog.CorruptionError:
                continue  # refusing is fine; a short answer is not
            assert_tables_equal(got, want)


def test_time_index_running_max_survives_reopen(tmp_path):
    S = pa.schema([("ts", pa.int64()), ("pad", pa.binary())])
    d = tmp_path / "log"
    with tidelog.open(d) as log:
        t = log.create_topic("t", S, timestamp="ts")
        t.append({"ts": [1000], "pad": [b"x"]})
        t.append({"ts": [5000], "pad": [b"x" * 5000]})  # > 4 KiB: the next frame gets index entries
        t.append({"ts": [2000], "pad": [b"x"]})
        assert t.offset_for_time(0, 4000) == 1
    with tidelog.open(d) as log:
        t = log.topic("t")
        assert t.offset_for_time(0, 4000) == 1
        assert t.read(start_time=4000).num_rows == 1
    assert not _verify.verify(d, progress="never").damaged


def test_overwritten_ranges_across_frames_never_return_garbage(damaged_copy):
    """A large random overwrite spanning frame boundaries in every sealed segment of a
    partition: every read is either exact or a CorruptionError."""
    path, expected, ends = damaged_copy
    rng = random.Random(77)
    segs = segment_logs(path, "cols", 1)
    for seg in segs[:-1]:
        size = os.path.getsize(seg)
        n = rng.randint(100, 3000)
        _overwrite(seg, rng.randrange(size - n), bytes(rng.randrange(256) for _ in range(n)))
    report = _verify.verify(path, progress="never")
    bad_files = {pr.file for pr in report.all_problems() if pr.kind in ("frame", "padding")}
    assert bad_files == set(segs[:-1]), _verify.format_report(report)
    exp = expected[("cols", 1)]
    with tidelog.open(path, read_only=True) as log:
        t = log.topic("cols")
        e = ends["cols"][1]
        for _ in range(40):
            lo = rng.randrange(e)
            hi = rng.randrange(lo, e + 1)
            try:
                got = t.read(lo, hi, partitions=1)
            except tidelog.CorruptionError as err:
                assert err.topic == "cols" and err.partition == 1 and err.segment and err.position is not None
                continue
            assert_tables_equal(got, exp.slice(lo, hi - lo))


def test_truncated_sealed_segment(damaged_copy):
    """A sealed segment cut short (a lost block at its end): reads stop with a CorruptionError
    or return exact rows; verify reports the break in the offsets."""
    path, expected, ends = damaged_copy
    segs = segment_logs(path, "cols", 0)
    seg = segs[1]
    frames = _frames(seg)
    cut = frames[len(frames) // 2][0] + 100
    os.truncate(seg, cut)
    report = _verify.verify(path, progress="never")
    assert report.damaged
    assert any(pr.file in (seg, segs[2]) and pr.kind == "frame" for pr in report.all_problems()), \
        _verify.format_report(report)
    for ro in (True, False):
        with tidelog.open(path, read_only=ro) as log:
            t = log.topic("cols")
            exp = expected[("cols", 0)]
            try:
                got = t.read(partitions=0)
            except tidelog.CorruptionError:
                pass
            else:
                raise AssertionError(f"a read over a truncated segment returned {got.num_rows} rows")
            base = int(os.path.basename(seg)[:20])
            assert_tables_equal(t.read(0, base, partitions=0), exp.slice(0, base))
