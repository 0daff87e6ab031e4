"""The one-call append of small batches (SmallAppender) writes exactly the
frame the general path writes, and hands every case it does not handle to
that path (which raises or warns as before)."""
from __future__ import annotations

import decimal
import warnings

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from tidelog import _zones
from tidelog.errors import LogClosedError, ReadOnlyError
from _helpers import T0, run_python

SCHEMAS = {
    "ns": pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("value", pa.float64())]),
    "ms+strings": pa.schema([("name", pa.string()), ("ts", pa.timestamp("ms", tz="UTC")), ("n", pa.int16()),
                             ("blob", pa.large_binary()), ("ok", pa.bool_())]),
    "int64 ts": pa.schema([("k", pa.uint8()), ("ts", pa.int64()), ("d", pa.decimal128(10, 2)),
                           ("f", pa.binary(3)), ("day", pa.date32())]),
    "required": pa.schema([pa.field("id", pa.int64(), nullable=False), ("ts", pa.timestamp("us")),
                           ("v", pa.float32())]),
}
UNIT = {"ns": 1, "ms+strings": 10**6, "int64 ts": 1, "required": 1000}


def _batch(kind: str, rows: int, rng, nulls: bool) -> pa.RecordBatch:
    schema = SCHEMAS[kind]
    ts = (T0 + rng.integers(0, 10**12, rows)) // UNIT[kind]
    if rng.random() < 0.5:
        ts = np.sort(ts)
    mask = (rng.random(rows) < 0.3) if nulls else None
    cols = []
    for f in schema:
        t = f.type
        if f.name == "ts":
            cols.append(pa.array(ts, t, mask=mask if nulls and rng.random() < 0.3 else None))
        elif pa.types.is_string(t):
            cols.append(pa.array([f"n{i}" * (i % 4) for i in range(rows)], t, mask=mask))
        elif pa.types.is_large_binary(t):
            cols.append(pa.array([bytes([i % 256]) * (i % 5) for i in range(rows)], t))
        elif pa.types.is_boolean(t):
            cols.append(pa.array(rng.random(rows) < 0.5, t, mask=mask))
        elif pa.types.is_decimal(t):
            cols.append(pa.array([decimal.Decimal(i) / 4 for i in range(rows)], t))
        elif pa.types.is_fixed_size_binary(t):
            cols.append(pa.array([b"abc"] * rows, t))
        elif pa.types.is_date(t):
            cols.append(pa.array(np.arange(rows, dtype=np.int32), pa.int32()).cast(t))
        else:
            cols.append(pa.array(rng.integers(0, 100, rows).astype(t.to_pandas_dtype()), t,
                                 mask=mask if f.nullable else None))
    return pa.record_batch(cols, schema=schema)


def _frames(topic):
    """Each frame's header fields and payload; a time span that is the append
    time (a batch whose timestamps are all null) is left out: clocks differ."""
    part = topic.partition(0)
    now_ish = T0 + 10**15
    return [(f.record_count, None if f.min_timestamp > now_ish else f.min_timestamp,
             None if f.max_timestamp > now_ish else f.max_timestamp, f.flags, f.codec, bytes(memoryview(f.payload())))
            for f in part.frames(0, part.end_offset, 10**6)]


@pytest.mark.parametrize("kind", list(SCHEMAS))
def test_the_same_frames_as_the_general_path(log, kind):
    fast = log.create_topic("fast", SCHEMAS[kind], timestamp="ts", durability="none")
    slow = log.create_topic("slow", SCHEMAS[kind], timestamp="ts", durability="none")
    assert fast._small is not None
    slow._small = None
    rng = np.random.default_rng(4)
    for i in range(200):
        batch = _batch(kind, int(rng.integers(1, 40)), rng, nulls=i % 3 == 0)
        a, b = fast.append(batch), slow.append(batch)
        assert a == b and a.rows == batch.num_rows
    assert _frames(fast) == _frames(slow)
    assert fast.read().equals(slow.read())


def test_topics_without_a_timestamp_column_stamp_the_append_time(log):
    t = log.create_topic("t", pa.schema([("v", pa.int64())]), durability="none")
    assert t._small is not None
    import time
    before = time.time_ns()
    t.append(pa.record_batch([pa.array([1, 2])], names=["v"]))
    (f,) = t.partition(0).frames(0, 2)
    assert before <= f.min_timestamp == f.max_timestamp <= time.time_ns()


def test_what_it_leaves_to_the_general_path(log):
    schema = SCHEMAS["required"]
    t = log.create_topic("t", schema, timestamp="ts", durability="none")
    bad = pa.record_batch([pa.array([1, None]), pa.array([T0 // 1000] * 2, pa.timestamp("us")),
                           pa.array([1.0, 2.0], pa.float32())], schema=schema)
    with pytest.raises(tidelog.errors.SchemaMismatchError, match="null"):
        t.append(bad)  # a null in a non-nullable column: refused, nothing written
    assert t.end_offsets() == {0: 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.append(pa.record_batch([pa.array([1]), pa.array([5], pa.timestamp("us")), pa.array([1.0], pa.float32())],
                                 schema=schema))
    assert any("before 1980" in str(w.message) for w in caught)  # implausible: still warned about
    other = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("v", pa.float64())])
    with pytest.raises(tidelog.errors.SchemaMismatchError):
        t.append(pa.record_batch([pa.array([1]), pa.array([T0 // 1000], pa.timestamp("us")), pa.array([1.0])],
                                 schema=other))
    assert t.end_offsets() == {0: 1}


def test_batches_big_enough_for_a_zone_map_entry_get_one(log):
    t = log.create_topic("t", SCHEMAS["ns"], timestamp="ts", durability="none")
    rng = np.random.default_rng(1)
    t.append(_batch("ns", _zones.ZONE_MIN_ROWS, rng, nulls=False))
    t.append(_batch("ns", 3, rng, nulls=False))
    zones = t._zones._maps.get(0) or t._zones._maps.setdefault(0, _zones._PartitionZones(
        t._zones._path(0), t.schema))
    zones.refresh()
    assert zones.count == 1 and zones.base.tolist() == [0]


def test_durable_appends_closed_topics_and_readers(log, log_dir):
    t = log.create_topic("t", SCHEMAS["ns"], timestamp="ts")  # durability="fsync"
    rng = np.random.default_rng(2)
    synced = log.stats()["fdatasyncs"]
    r = t.append(_batch("ns", 2, rng, nulls=False))
    assert r.offsets == {0: (0, 1)} and log.stats()["fdatasyncs"] > synced
    with tidelog.open(log_dir, read_only=True) as reader:
        rt = reader.topic("t")
        assert rt._small is None
        with pytest.raises(ReadOnlyError):
            rt.append(_batch("ns", 1, rng, nulls=False))
    log.close()
    with pytest.raises(LogClosedError):
        t.append(_batch("ns", 1, rng, nulls=False))


NATIVE_THREAD_APPENDS = r"""
import ctypes, ctypes.util, sys
import numpy as np, pyarrow as pa, tidelog
schema = pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("value", pa.float64())])
n = 10_000  # > 64 KiB a batch: the IPC stream writer path
big = pa.record_batch([pa.array(1_700_000_000_000_000_000 + np.arange(n), pa.timestamp("ns")),
                       pa.array(np.zeros(n, np.int32)), pa.array(np.ones(n))], schema=schema)
log = tidelog.open(sys.argv[1])
t = log.create_topic("t", schema, timestamp="ts", durability="none")
errors = []

@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
def run(_):
    try:
        for _ in range(3):
            t.append(big)
    except BaseException as e:
        errors.append(e)
    return None

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
for _ in range(5):
    thread = ctypes.c_ulong()
    assert libc.pthread_create(ctypes.byref(thread), None, run, None) == 0
    assert libc.pthread_join(thread, None) == 0
assert not errors, errors
assert t.end_offsets() == {0: 15 * n}
log.close()
print("ok")
"""


def test_appends_from_threads_python_did_not_start(log_dir):
    """A native thread (as gRPC's, in a Flight server) that runs Python through
    a callback: big batches use the IPC stream writer, which must not outlive
    the thread's Python state (that crashed the process: hence a child)."""
    out = run_python(NATIVE_THREAD_APPENDS, str(log_dir))
    assert out.stdout.strip() == "ok"
