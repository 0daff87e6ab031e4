"""Filtered reads (scan/read filter=): the same rows as pyarrow's filter over
the whole topic, whatever the predicate and whatever the zone map files hold;
frames that cannot match are not read; bad filters fail before any read."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import tidelog
from tidelog import _core, _zones
from tidelog.errors import InvalidArgumentError
from _helpers import T0

SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")), ("sensor_id", pa.int32()), ("reading", pa.float64()), ("level", pa.uint16()),
    ("big", pa.int64()), ("day", pa.date32()), ("name", pa.string()),
])
FRAME_ROWS = 300  # above the zone map threshold


def _batch(k: int, rng) -> pa.RecordBatch:
    """Frame k: sensors clustered (frame k holds sensors 10k..10k+9), some
    nulls and NaNs, timestamps in order."""
    n = FRAME_ROWS
    ts = T0 // 1000 + k * 10_000 + np.arange(n) * 10
    sensor = 10 * k + rng.integers(0, 10, n)
    reading = rng.normal(k, 1.0, n)
    reading[rng.random(n) < 0.02] = np.nan
    null_mask = rng.random(n) < 0.05
    return pa.record_batch([
        pa.array(ts, pa.timestamp("us")),
        pa.array(sensor.astype(np.int32), mask=null_mask if k % 3 == 0 else None),
        pa.array(reading),
        pa.array(rng.integers(0, 1000 * (k + 1), n).astype(np.uint16) if k < 60 else np.full(n, 65535, np.uint16)),
        pa.array(rng.integers(-(2**62), 2**62, n), pa.int64()),
        pa.array((19_000 + k + np.arange(n) // 100).astype(np.int32), pa.int32()).cast(pa.date32()),
        pa.array([f"s{k}-{i % 7}" for i in range(n)]),
    ], schema=SCHEMA)


@pytest.fixture
def topic(log):
    t = log.create_topic("z", SCHEMA, partitions=2, timestamp="ts")
    rng = np.random.default_rng(5)
    for k in range(40):
        t.append(_batch(k, rng), partition=k % 2)
    return t


def _literal(rng: random.Random, column: str):
    if column == "ts":
        return pa.scalar(T0 // 1000 + rng.randrange(-10_000, 420_000), pa.timestamp("us"))
    if column == "sensor_id":
        return rng.choice([rng.randrange(-5, 420), 2**40, -(2**40), 7.5])
    if column == "reading":
        return rng.choice([rng.uniform(-3, 42), 0, float("inf")])
    if column == "level":
        return rng.choice([rng.randrange(0, 40_000), -1, 70_000, 65535])
    if column == "big":
        return rng.choice([rng.randrange(-(2**62), 2**62), pa.scalar(2**64 - 5, pa.uint64()), -(2**63)])
    if column == "day":
        return pa.scalar(19_000 + rng.randrange(-2, 45), pa.int32()).cast(pa.date32())
    return f"s{rng.randrange(0, 40)}-{rng.randrange(0, 7)}"


def _predicate(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth < 3 and r < 0.35:
        a, b = _predicate(rng, depth + 1), _predicate(rng, depth + 1)
        return (a & b) if rng.random() < 0.6 else (a | b)
    if depth < 3 and r < 0.42:
        return ~_predicate(rng, depth + 1)
    column = rng.choice(SCHEMA.names)
    f = pc.field(column)
    r = rng.random()
    if r < 0.08:
        return f.is_null()
    if r < 0.14:
        return f.is_valid()
    if r < 0.22 and column in ("sensor_id", "level", "big"):
        return f.isin([rng.randrange(0, 420) for _ in range(rng.randrange(1, 4))])
    lit = _literal(rng, column)
    op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
    if rng.random() < 0.2:  # literal on the left
        lit_expr = pc.scalar(lit)
        return {"==": lit_expr == f, "!=": lit_expr != f, "<": lit_expr < f, "<=": lit_expr <= f,
                ">": lit_expr > f, ">=": lit_expr >= f}[op]
    return {"==": f == lit, "!=": f != lit, "<": f < lit, "<=": f <= lit, ">": f > lit, ">=": f >= lit}[op]


def _expected(topic, expr, **kw) -> pa.Table:
    return topic.read(**kw).filter(expr)


def _same(got: pa.Table, want: pa.Table) -> bool:
    """Table.equals, with NaN equal to NaN (the data holds NaNs)."""
    def nan_free(t: pa.Table) -> pa.Table:
        if "reading" not in t.column_names:
            return t
        i = t.column_names.index("reading")
        col = t["reading"]
        return t.set_column(i, "reading", pc.if_else(pc.is_nan(col), pa.scalar(-1e300), col))
    return got.schema == want.schema and nan_free(got).equals(nan_free(want))


def test_random_filters_return_what_pyarrow_keeps(topic):
    rng = random.Random(11)
    whole = topic.read()
    tried = 0
    for _ in range(400):
        expr = _predicate(rng)
        try:
            want = whole.filter(expr)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            with pytest.raises(InvalidArgumentError):
                topic.read(filter=expr)
            continue
        got = topic.read(filter=expr)
        assert _same(got, want), expr
        tried += 1
    assert tried > 250


def test_zone_maps_skip_frames_that_cannot_match(topic):
    scan = topic.scan(filter=pc.field("sensor_id") == 77)
    rows = pa.Table.from_batches(list(scan), schema=topic.schema)
    assert rows.num_rows > 0 and set(rows["sensor_id"].to_pylist()) == {77}
    assert scan.frames_read == 1  # frame 7 alone holds sensors 70..79
    everything = topic.scan()
    list(everything)
    assert everything.frames_read == 40
    assert scan.bytes_read < everything.bytes_read / 30
    # or, range, unsigned and date columns
    for expr, frames in [((pc.field("sensor_id") < 25) | (pc.field("sensor_id") >= 390), 4),
                         (pc.field("level") == 65535, None),
                         (pc.field("day") >= pa.scalar(19_038, pa.int32()).cast(pa.date32()), 4),
                         (pc.field("sensor_id").isin([5, 205]), 2),
                         (pc.field("reading") > 100.0, 0)]:
        s = topic.scan(filter=expr)
        got = pa.Table.from_batches(list(s), schema=topic.schema)
        assert _same(got, _expected(topic, expr)), expr
        if frames is not None:
            assert s.frames_read == frames, (expr, s.frames_read)
        else:
            assert s.frames_read < 40


def test_time_comparisons_use_the_time_index(topic):
    t0 = pa.scalar(T0 // 1000 + 200_000, pa.timestamp("us"))
    t1 = pa.scalar(T0 // 1000 + 220_000, pa.timestamp("us"))
    expr = (pc.field("ts") >= t0) & (pc.field("ts") < t1) & (pc.field("reading") > -100)
    s = topic.scan(filter=expr)
    got = pa.Table.from_batches(list(s), schema=topic.schema)
    assert _same(got, _expected(topic, expr)) and got.num_rows > 500  # frames 20 and 21, less NaN readings
    assert s.frames_read == 2
    # combined with start_time/end_time: the intersection
    got = topic.read(start_time=T0 + 210_000_000, filter=expr)
    assert _same(got, _expected(topic, expr & (pc.field("ts") >= pa.scalar(T0 // 1000 + 210_000, pa.timestamp("us")))))
    assert 0 < got.num_rows < 300


def test_columns_offsets_and_filter_together(topic):
    expr = (pc.field("sensor_id") == 123) & pc.field("reading").is_valid()
    got = topic.read(columns=["reading"], filter=expr, with_offsets=True)
    assert got.column_names == ["reading", "_partition", "_offset"]
    want = topic.read(with_offsets=True).filter(expr)
    assert got["_offset"].to_pylist() == want["_offset"].to_pylist()
    assert _same(got.select(["reading"]), want.select(["reading"]))
    # the filtered column need not be asked for
    assert topic.read(columns=["name"], filter=expr)["name"].to_pylist() == want["name"].to_pylist()


@pytest.mark.parametrize("bad, words", [
    (pc.field("nope") == 1, "no column 'nope'"),
    (pc.field("name") > 3, "no kernel"),
    (pc.field("sensor_id") + 1, "must evaluate to bool"),
    ("sensor_id = 7", "pyarrow.compute.Expression"),
])
def test_bad_filters_fail_before_reading(topic, bad, words):
    with pytest.raises(InvalidArgumentError, match=words):
        topic.scan(filter=bad)
    with pytest.raises(InvalidArgumentError, match=words):
        topic.read(filter=bad)
    with pytest.raises(InvalidArgumentError):
        topic.partition(0).read(filter=bad)


def _zonemap(topic, p: int) -> str:
    return os.path.join(topic.directory, str(p), _zones.FILE_NAME)


def test_damaged_or_missing_zone_maps_cost_speed_not_rows(topic, log_dir):
    expr = pc.field("sensor_id") == 77
    want = _expected(topic, expr)
    rng = random.Random(3)
    original = open(_zonemap(topic, 1), "rb").read()
    for trial in range(30):
        data = bytearray(original)
        for _ in range(rng.randrange(1, 20)):  # flipped bytes, cut tails, garbage
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if trial % 3 == 0:
            data = data[:rng.randrange(len(data))]
        if trial % 5 == 0:
            data += os.urandom(rng.randrange(1, 300))
        with open(_zonemap(topic, 1), "wb") as f:
            f.write(data)
        with tidelog.open(log_dir, read_only=True) as reader:
            assert _same(reader.topic("z").read(filter=expr), want)
    os.remove(_zonemap(topic, 1))
    with tidelog.open(log_dir, read_only=True) as reader:
        s = reader.topic("z").scan(filter=expr)
        assert _same(pa.Table.from_batches(list(s), schema=topic.schema), want)
        assert s.frames_read == 20  # partition 1 without a map: all its frames
        assert not os.path.exists(_zonemap(topic, 1))  # a reader writes nothing


def test_a_writers_filtered_scan_rebuilds_a_missing_zone_map(topic):
    expr = pc.field("sensor_id") == 77
    os.remove(_zonemap(topic, 1))
    first = topic.scan(filter=expr)
    list(first)
    assert first.frames_read == 20  # frame 7, the match, is in partition 1
    again = topic.scan(filter=expr)
    assert _same(pa.Table.from_batches(list(again), schema=topic.schema), _expected(topic, expr))
    assert again.frames_read == 1


def test_entries_naming_frames_that_are_gone_exclude_nothing(log_dir):
    """A zone map left from frames that were lost (as a power cut loses a tail
    whose offsets are then written again) names frames by base offset and CRC:
    the new frames at those offsets do not match, so nothing is skipped."""
    schema = pa.schema([("ts", pa.timestamp("us")), ("v", pa.int32())])
    with tidelog.open(log_dir) as log:
        t = log.create_topic("t", schema, timestamp="ts")
        for k in range(5):
            t.append({"ts": pa.array(T0 // 1000 + np.arange(300) + k * 1000, pa.timestamp("us")), "v": np.full(300, k, np.int32)})
        stale = open(os.path.join(t.directory, "0", _zones.FILE_NAME), "rb").read()
        log.delete_topic("t")
        t = log.create_topic("t", schema, timestamp="ts")
        for k in range(5):  # the same offsets, other values
            t.append({"ts": pa.array(T0 // 1000 + np.arange(300) + k * 1000, pa.timestamp("us")),
                      "v": np.full(300, 100 + k, np.int32)})
        with open(os.path.join(t.directory, "0", _zones.FILE_NAME), "wb") as f:
            f.write(stale)
    with tidelog.open(log_dir, read_only=True) as reader:
        t = reader.topic("t")
        for k in range(5):
            got = t.read(filter=pc.field("v") == 100 + k)
            assert got.num_rows == 300, k


WRITER = r"""
import sys, numpy as np, pyarrow as pa, tidelog
schema = pa.schema([("ts", pa.timestamp("us")), ("v", pa.int64())])
with tidelog.open(sys.argv[1]) as log:
    t = log.topic("t") if "t" in log.topics() else log.create_topic("t", schema, timestamp="ts", partitions=2)
    k = t.end_offsets()[0] + t.end_offsets()[1]
    first = True
    while True:
        n = 300 + (k % 7) * 50
        t.append({"ts": pa.array(1_700_000_000_000_000 + np.arange(k, k + n), pa.timestamp("us")), "v": np.arange(k, k + n)},
                 durable=False)
        if first:
            print("ready", flush=True)  # after this process's first append
            first = False
        k += n
"""


def test_sigkilled_writers_leave_zone_maps_that_never_hide_rows(log_dir):
    rng = random.Random(8)
    for cycle in range(8):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait()
    with tidelog.open(log_dir) as log:  # recovery
        assert not log.clean_shutdown
        t = log.topic("t")
        for p in range(2):  # the open gave the last frames their entries back, before any read
            end = t.end_offsets()[p]
            if end == 0:
                continue  # unkeyed appends stick to one partition for a while: this one got none
            (last,) = t.partition(p).frames(end - 1, end, 1)
            entries = [(b, c) for _, _, body in _zones._entries(open(_zonemap(t, p), "rb").read())
                       for b, c in [_zones._BODY.unpack_from(body, 0)[:2]]]
            assert (last.base_offset, last.crc) in entries, (p, end, last.base_offset, last.record_count, [e for e in entries if e[0] >= last.base_offset - 2000], log.recovery_report)
        whole = t.read()
        assert whole.num_rows > 0
        for _ in range(30):
            lo = rng.randrange(0, whole.num_rows)
            expr = (pc.field("v") >= lo) & (pc.field("v") < lo + rng.randrange(1, 5000))
            assert t.read(filter=expr).equals(whole.filter(expr))


def test_retention_shrinks_the_zone_map(log, monkeypatch):
    monkeypatch.setattr(_zones, "REWRITE_MIN_BYTES", 4096)
    monkeypatch.setattr(_zones, "REWRITE_CHECK_WRITES", 16)
    schema = pa.schema([("ts", pa.timestamp("us")), ("v", pa.int64())])
    t = log.create_topic("r", schema, timestamp="ts", segment_bytes=64 << 10, retention_bytes=256 << 10)
    sizes = []
    for k in range(400):
        v = np.arange(k * 300, (k + 1) * 300)
        t.append({"ts": pa.array(T0 // 1000 + v, pa.timestamp("us")), "v": v})
        if k % 50 == 49:
            t.enforce_retention()
            sizes.append(os.path.getsize(_zonemap(t, 0)))
    start = t.start_offsets()[0]
    assert start > 0
    entry_bytes = 12 + 20 + 24  # head, body, one column
    assert sizes[-1] < 400 * entry_bytes / 3  # rewritten: not every entry ever written
    assert max(sizes[3:]) < 400 * entry_bytes / 2
    for lo in (start, start + 1000, 400 * 300 - 500):
        expr = (pc.field("v") >= lo) & (pc.field("v") < lo + 700)
        s = t.scan(filter=expr)
        got = pa.Table.from_batches(list(s), schema=schema)
        assert got["v"].to_pylist() == list(range(lo, min(lo + 700, 400 * 300))), lo
        assert s.frames_read <= 4


@pytest.mark.parametrize("n", [1, 7, 33, 300, 5000, 70_000])
def test_column_stats_of_every_width_both_ways(n):
    """Zone map statistics (native/column_stats, vectorized without nulls; a
    scalar pass with them), against numpy: nulls, NaNs, slices, and lengths
    around the vector widths."""
    rng = np.random.default_rng(n)
    for dtype, letter in [(np.int8, "b"), (np.int16, "h"), (np.int32, "i"), (np.int64, "l"), (np.uint8, "B"),
                          (np.uint16, "H"), (np.uint32, "I"), (np.uint64, "L"), (np.float32, "f"), (np.float64, "d")]:
        if np.dtype(dtype).kind == "f":
            values = rng.normal(size=n + 7).astype(dtype)
        else:
            info = np.iinfo(dtype)
            values = rng.integers(info.min, info.max, n + 7, dtype=dtype, endpoint=True)
        for nan in (False, True):
            if nan and np.dtype(dtype).kind != "f":
                continue
            v = values.copy()
            if nan:
                v[n // 2 + 3] = np.nan
            for mask in (None, rng.random(n + 7) < 0.1):
                arr = pa.array(v, mask=mask).slice(3, n)  # an offset, as sliced columns have
                kept = v[3:3 + n][~mask[3:3 + n]] if mask is not None else v[3:3 + n]
                real = kept[~np.isnan(kept)] if np.dtype(dtype).kind == "f" else kept
                nulls, lo, hi, has_nan = _core.zone_stats(arr, letter)
                assert nulls == (int(mask[3:3 + n].sum()) if mask is not None else 0)
                assert has_nan == bool(np.dtype(dtype).kind == "f" and np.isnan(kept).any())
                if len(real):
                    assert (lo, hi) == (real.min().item(), real.max().item()), (dtype, nan, mask is None)
                else:
                    assert lo is None and hi is None


@pytest.mark.parametrize("n", [1, 2, 5, 31, 64, 1000, 70_001])
def test_float_column_stats_with_nans_anywhere(n):
    """A NaN first, last, in the vector body or its tail, or everywhere: it takes part
    in neither min nor max, and is reported."""
    rng = np.random.default_rng(n)
    for dtype, letter in [(np.float32, "f"), (np.float64, "d")]:
        base = rng.normal(size=n).astype(dtype)
        for where in {0, n - 1, n // 2, max(0, n - 3)}:
            v = base.copy()
            v[where] = np.nan
            real = v[~np.isnan(v)]
            nulls, lo, hi, has_nan = _core.zone_stats(pa.array(v), letter)
            assert has_nan and nulls == 0
            if len(real):
                assert (lo, hi) == (real.min().item(), real.max().item()), (dtype, where)
            else:
                assert lo is None and hi is None
        assert _core.zone_stats(pa.array(np.full(n, np.nan, dtype)), letter) == (0, None, None, True)
        inf = base.copy()
        inf[n // 2] = np.inf
        assert _core.zone_stats(pa.array(inf), letter)[2] == np.inf


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 4097, 65_536])
def test_timestamp_span_and_order(n):
    """int64_min_max: (min, max, ordered) as the frame header needs them; the
    vectorized order check sees a single step down anywhere, and equal values
    are in order."""
    rng = np.random.default_rng(n)
    ascending = np.sort(rng.integers(-2**62, 2**62, n, dtype=np.int64))
    assert _core.int64_min_max(pa.array(ascending)) == (ascending[0], ascending[-1], True)
    assert _core.int64_min_max(pa.array(np.zeros(n, np.int64))) == (0, 0, True)
    for where in {1, n // 2, n - 1} if n > 1 else ():
        v = ascending.copy()
        v[where - 1], v[where] = v[where], v[where - 1] - 1
        assert _core.int64_min_max(pa.array(v)) == (v.min(), v.max(), False), where
    shuffled = rng.permutation(ascending)
    got = _core.int64_min_max(pa.array(shuffled).slice(0, n))
    assert got[:2] == (shuffled.min(), shuffled.max())
    assert got[2] == bool(np.all(np.diff(shuffled) >= 0))


def test_column_passes_are_vectorized_where_the_cpu_can():
    """A build that lost the AVX2 path would still be right, and slow: say so."""
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx2" not in flags:
        pytest.skip("this CPU has no AVX2")
    assert _core.simd_column_stats()


def test_an_inverted_time_range_is_empty_not_negative(log):
    """start_time after end_time inside one frame: no rows (a binary search gave
    the slice a negative length, a table of -1 rows). Found by test_model."""
    records = log.create_topic("inv", partitions=1, durability="none")
    with log.producer() as p:
        for i in range(4):
            p.send("inv", b"", timestamp=T0 + i * 1000)
    cols = log.create_topic("invc", pa.schema([("ts", pa.timestamp("ns")), ("v", pa.int64())]), timestamp="ts",
                            durability="none")
    cols.append(pa.record_batch([pa.array([T0 + i * 1000 for i in range(4)], pa.timestamp("ns")),
                                 pa.array(range(4), pa.int64())], names=["ts", "v"]))
    for topic in (records, cols):
        for t0, t1 in ((T0 + 2999, T0 + 2000), (T0 + 3000, T0 + 1000), (T0 + 1000, T0 + 1000)):
            got = topic.read(start_time=t0, end_time=t1, partitions=0)
            assert got.num_rows == 0 and [b.num_rows for b in got.to_batches()] == [], (topic.name, t0, t1)
        assert topic.read(start_time=T0 + 1000, end_time=T0 + 3000, partitions=0).num_rows == 2
    values = pa.array([1, 2, 3, 5], pa.int64())
    assert _core.int64_sorted_range(values, 4, 2) == (3, 3)
    assert _core.int64_sorted_range(values, 2, 4) == (1, 3)
