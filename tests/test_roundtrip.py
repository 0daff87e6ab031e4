"""Round trips through append/read: Arrow types, batch shapes, input kinds,
compression, and every kind of read selection."""
from __future__ import annotations

import datetime as dt
import decimal
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import tidelog
from tidelog import _core
from _helpers import KAFKA_MURMUR2_VECTORS, T0, assert_tables_equal, kafka_partition, make_sensors, sort_by

N = 257  # rows per typed batch: not a multiple of 8 or 64, so bitmaps have ragged tails


def _ints(t: pa.DataType, n: int) -> pa.Array:
    info = np.iinfo(t.to_pandas_dtype())
    rng = np.random.default_rng(1)
    v = rng.integers(info.min, info.max, n, dtype=t.to_pandas_dtype(), endpoint=True)
    v[:2] = [info.min, info.max]
    mask = np.zeros(n, bool)
    mask[5::7] = True
    return pa.array(v, type=t, mask=mask)


def _strings(n: int):
    return [None if i % 5 == 3 else ("" if i % 11 == 0 else f"s{i}-é✓-" + "x" * (i % 17)) for i in range(n)]


def _typed_arrays(n: int = N) -> dict[str, pa.Array]:
    rng = np.random.default_rng(2)
    nulls = [i % 6 == 1 for i in range(n)]
    out: dict[str, pa.Array] = {}
    for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()):
        out[str(t)] = _ints(t, n)
    f32 = rng.standard_normal(n).astype(np.float32)
    f32[:4] = [np.inf, -np.inf, np.nan, -0.0]
    out["float32"] = pa.array(f32, mask=np.array(nulls))
    f64 = rng.standard_normal(n)
    f64[:4] = [np.inf, -np.inf, np.nan, 5e-324]
    out["float64"] = pa.array(f64, mask=np.array(nulls))
    out["bool"] = pa.array([None if i % 7 == 0 else bool(i % 3) for i in range(n)], pa.bool_())
    out["string"] = pa.array(_strings(n), pa.string())
    out["large_string"] = pa.array(_strings(n), pa.large_string())
    out["binary"] = pa.array([None if i % 4 == 0 else bytes(range(i % 256)) for i in range(n)], pa.binary())
    base = np.arange(n, dtype=np.int64) * 1_000_003 + 1_600_000_000
    for unit, scale in (("s", 1), ("ms", 1000), ("us", 10**6), ("ns", 10**9)):
        out[f"ts_{unit}"] = pa.array(base * scale, pa.timestamp(unit), mask=np.array(nulls))
    out["ts_us_utc"] = pa.array(base * 10**6, pa.timestamp("us", tz="UTC"))
    out["ts_ns_tz"] = pa.array(base * 10**9, pa.timestamp("ns", tz="Europe/Paris"), mask=np.array(nulls))
    out["date32"] = pa.array([None if i % 9 == 2 else 18000 + i for i in range(n)], pa.date32())
    out["decimal128"] = pa.array(
        [None if i % 8 == 0 else decimal.Decimal(f"{(-1) ** i * i * 1234567}.{i % 100:02d}") for i in range(n)],
        pa.decimal128(20, 2),
    )
    out["dictionary"] = pa.array(
        [None if i % 10 == 0 else ["red", "green", "blue"][i % 3] for i in range(n)]
    ).dictionary_encode()
    out["list"] = pa.array(
        [None if i % 6 == 0 else [j for j in range(i % 5)] for i in range(n)], pa.list_(pa.int64())
    )
    out["list_of_list"] = pa.array(
        [None if i % 13 == 0 else [[i, None], [], None] for i in range(n)], pa.list_(pa.list_(pa.int32()))
    )
    out["struct"] = pa.array(
        [None if i % 7 == 0 else {"a": i, "b": None if i % 3 else f"b{i}", "c": [float(i)]} for i in range(n)],
        pa.struct([("a", pa.int32()), ("b", pa.string()), ("c", pa.list_(pa.float64()))]),
    )
    out["all_null"] = pa.nulls(n, pa.int64())
    out["null_type"] = pa.nulls(n)
    return out


TYPED = _typed_arrays()


@pytest.mark.parametrize("name", list(TYPED))
def test_roundtrip_type(log, name):
    arr = TYPED[name]
    schema = pa.schema([("row", pa.int64()), ("c", arr.type)])
    batch = pa.RecordBatch.from_arrays([pa.array(np.arange(N)), arr], schema=schema)
    topic = log.create_topic("t", schema)
    res = topic.append(batch)
    assert res.offsets == {0: (0, N - 1)}
    back = topic.read()
    assert back.schema.equals(schema)
    assert back.num_rows == N
    assert_tables_equal(back, batch)
    # and once more after a second append: both batches, in order
    topic.append(batch.slice(100, 50))
    back = topic.read()
    assert back.num_rows == N + 50
    assert_tables_equal(back.slice(N), batch.slice(100, 50))


def test_roundtrip_all_types_one_schema_partitioned(log):
    arrays = dict(TYPED)
    arrays["row"] = pa.array(np.arange(N))
    schema = pa.schema([(k, v.type) for k, v in arrays.items()])
    batch = pa.RecordBatch.from_arrays(list(arrays.values()), schema=schema)
    topic = log.create_topic("all", schema, partitions=3, key="string")
    res = topic.append(batch)
    assert sum(b - a + 1 for a, b in res.offsets.values()) == N
    back = sort_by(topic.read(), "row")
    assert_tables_equal(back, batch)


def test_roundtrip_after_reopen_typed(log_dir):
    arrays = dict(TYPED)
    schema = pa.schema([(k, v.type) for k, v in arrays.items()])
    batch = pa.RecordBatch.from_arrays(list(arrays.values()), schema=schema)
    with tidelog.open(log_dir) as lg:
        lg.create_topic("all", schema).append(batch)
    with tidelog.open(log_dir) as lg:
        t = lg.topic("all")
        assert t.schema.equals(schema)
        assert_tables_equal(t.read(), batch)


def test_roundtrip_sliced_input(log):
    """Slices (non-zero array offsets) of every type are stored as their logical values."""
    arrays = dict(TYPED)
    schema = pa.schema([(k, v.type) for k, v in arrays.items()])
    batch = pa.RecordBatch.from_arrays(list(arrays.values()), schema=schema)
    topic = log.create_topic("sliced", schema)
    part = batch.slice(13, 101)
    topic.append(part)
    assert_tables_equal(topic.read(), part)


def test_empty_batch(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=2)
    empty = pa.RecordBatch.from_pylist([], schema=sensors_schema)
    res = topic.append(empty)
    assert res.offsets == {}
    assert topic.end_offsets() == {0: 0, 1: 0}
    t = topic.read()
    assert t.num_rows == 0 and t.schema.equals(sensors_schema)
    assert topic.append(sensors_schema.empty_table()).offsets == {}
    assert topic.append({"ts": [], "sensor_id": [], "value": []}).offsets == {}
    # an empty batch in between does not disturb offsets
    topic.append(make_sensors(3))
    topic.append(empty)
    topic.append(make_sensors(2, start=3))
    assert sum(topic.end_offsets().values()) == 5
    assert sort_by(topic.read(), "value")["value"].to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_one_row_batches(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, durability="none")
    for i in range(50):
        assert topic.append(make_sensors(1, start=i)).offsets == {0: (i, i)}
    t = topic.read()
    assert t["value"].to_pylist() == [float(i) for i in range(50)]
    assert t.equals(pa.Table.from_batches([make_sensors(1, start=i) for i in range(50)]))


@pytest.mark.slow
def test_two_million_rows(log, sensors_schema):
    n = 2_000_000
    batch = make_sensors(n, seed=3)
    topic = log.create_topic("big", sensors_schema, partitions=2, key="sensor_id", durability="none")
    res = topic.append(batch)
    assert sum(b - a + 1 for a, b in res.offsets.values()) == n
    back = topic.read()
    assert back.num_rows == n
    assert pc.sum(back["value"]).as_py() == pc.sum(batch["value"]).as_py()
    assert sort_by(back, "value").equals(pa.Table.from_batches([batch]))


@pytest.mark.slow
def test_two_million_rows_split_across_frames_and_segments(log, sensors_schema):
    """With small segments a big append is cut into several frames and segments."""
    n = 2_000_000
    batch = make_sensors(n, seed=4)
    topic = log.create_topic("big", sensors_schema, segment_bytes=8 << 20, durability="none")
    assert topic.append(batch).offsets == {0: (0, n - 1)}
    assert topic.describe()["partitions"][0]["segments"] > 1
    back = topic.read()
    assert back.num_rows == n
    assert back.equals(pa.Table.from_batches([batch]))


def test_dict_of_numpy(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema)
    n = 1000
    data = {
        "ts": (T0 + np.arange(n, dtype=np.int64)).astype("datetime64[ns]"),
        "sensor_id": np.arange(n, dtype=np.int32) % 7,
        "value": np.linspace(0, 1, n),
    }
    assert topic.append(data).offsets == {0: (0, n - 1)}
    t = topic.read()
    assert t["ts"].to_numpy().astype(np.int64).tolist() == (T0 + np.arange(n)).tolist()
    assert np.array_equal(t["sensor_id"].to_numpy(), data["sensor_id"])
    assert np.array_equal(t["value"].to_numpy(), data["value"])
    # int64 nanoseconds are also accepted for a timestamp column
    topic.append({"ts": T0 + np.arange(3, dtype=np.int64), "sensor_id": np.zeros(3, np.int32), "value": np.ones(3)})
    assert topic.read(start_offset=n)["ts"].cast(pa.int64()).to_pylist() == [T0, T0 + 1, T0 + 2]


def test_dict_of_lists(log):
    schema = pa.schema([("a", pa.int64()), ("s", pa.string()), ("f", pa.float32()), ("l", pa.list_(pa.int16()))])
    topic = log.create_topic("t", schema)
    data = {"a": [1, None, 3], "s": ["x", "y", None], "f": [1.5, None, -2.0], "l": [[1, 2], [], None]}
    topic.append(data)
    assert topic.read().to_pydict() == data


def test_table_with_several_chunks(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=3)
    batches = [make_sensors(n, start=s) for n, s in ((10, 0), (0, 10), (25, 10), (1, 35), (64, 36))]
    table = pa.Table.from_batches(batches)
    assert table.column(0).num_chunks == 5
    res = topic.append(table)
    assert sum(b - a + 1 for a, b in res.offsets.values()) == 100
    assert sort_by(topic.read(), "value").equals(table.combine_chunks())


def test_zstd_roundtrip(log, sensors_schema):
    topic = log.create_topic("z", sensors_schema, partitions=2, key="sensor_id", compression="zstd",
                             compression_level=5)
    batch = make_sensors(20_000, seed=5)
    topic.append(batch)
    back = topic.read()
    assert sort_by(back, "value").equals(pa.Table.from_batches([batch]))
    # compression works on disk: fewer bytes than an uncompressed topic of the same data
    plain = log.create_topic("p", sensors_schema, partitions=2, key="sensor_id")
    plain.append(batch)
    assert topic.describe()["bytes"] < plain.describe()["bytes"]
    # selections work on compressed frames too
    assert topic.read(columns=["value"], partitions=[1]).num_rows == plain.read(columns=["value"], partitions=[1]).num_rows


def test_zstd_all_types(log):
    arrays = dict(TYPED)
    schema = pa.schema([(k, v.type) for k, v in arrays.items()])
    batch = pa.RecordBatch.from_arrays(list(arrays.values()), schema=schema)
    topic = log.create_topic("z", schema, compression="zstd")
    topic.append(batch)
    topic.append(batch.slice(7, 30))
    assert_tables_equal(topic.read(), pa.Table.from_batches([batch, batch.slice(7, 30)]))


def test_columns_selection(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema)
    batch = make_sensors(100)
    topic.append(batch)
    t = topic.read(columns=["value", "ts"])
    assert t.column_names == ["value", "ts"]
    assert t.schema.field("ts").type == pa.timestamp("ns")
    assert t["value"].equals(pa.chunked_array([batch["value"]]))
    assert t["ts"].equals(pa.chunked_array([batch["ts"]]))
    assert topic.read(columns=[]).num_columns == 0
    with pytest.raises(ValueError):
        topic.read(columns=["nope"])


def test_offset_ranges_single_partition(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema)
    for i in range(10):
        assert topic.append(make_sensors(100, start=100 * i)).offsets == {0: (100 * i, 100 * i + 99)}
    vals = lambda t: t["value"].to_pylist()  # noqa: E731
    assert vals(topic.read(150, 420)) == [float(i) for i in range(150, 420)]
    assert vals(topic.read(start_offset=0, end_offset=1)) == [0.0]
    assert vals(topic.read(start_offset=999)) == [999.0]
    assert vals(topic.read(end_offset=3)) == [0.0, 1.0, 2.0]
    assert vals(topic.read(200, 300)) == [float(i) for i in range(200, 300)]  # exactly one frame
    assert topic.read(500, 500).num_rows == 0
    assert topic.read(1000).num_rows == 0
    assert topic.read(5000).num_rows == 0
    assert topic.read(400, 10_000).num_rows == 600
    s = topic.scan(start_offset=250, end_offset=750)
    assert sum(b.num_rows for b in s) == 500
    assert pa.table(s)["value"].to_pylist() == [float(i) for i in range(250, 750)]
    with pytest.raises(ValueError):
        topic.read(start_offset=-1)


def test_offset_ranges_per_partition(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=3)
    for i in range(9):  # unkeyed batches are spread over the partitions
        topic.append(make_sensors(10, start=10 * i))
    ends = topic.end_offsets()
    assert sum(ends.values()) == 90
    full = topic.read()
    sub = topic.read(5, 15)
    expect = sum(max(0, min(e, 15) - 5) for e in ends.values())
    assert sub.num_rows == expect
    for p in range(3):
        part = topic.read(partitions=[p])
        assert topic.read(5, 15, partitions=p)["value"].to_pylist() == part["value"].to_pylist()[5:15]
        assert part.num_rows == ends[p]
    assert full.num_rows == 90


def _ts_topic(log, unit="ns", partitions=1, name="ts"):
    schema = pa.schema([("ts", pa.timestamp(unit)), ("v", pa.int64())])
    topic = log.create_topic(name, schema, partitions=partitions, timestamp="ts")
    return topic, schema


def test_time_range_int_ns(log):
    topic, schema = _ts_topic(log)
    # 20 batches of 50 rows, ts = T0 + i * 1 ms, a frame per batch
    rows = []
    for b in range(20):
        v = np.arange(50 * b, 50 * b + 50, dtype=np.int64)
        rows.append(v)
        topic.append({"ts": T0 + v * 1_000_000, "v": v})
    t0 = T0 + 123 * 1_000_000
    t1 = T0 + 777 * 1_000_000
    got = topic.read(start_time=t0, end_time=t1)["v"].to_pylist()
    assert got == list(range(123, 777))  # start inclusive, end exclusive
    assert topic.read(start_time=t0)["v"].to_pylist() == list(range(123, 1000))
    assert topic.read(end_time=t1)["v"].to_pylist() == list(range(0, 777))
    assert topic.read(start_time=t0 + 1, end_time=t0 + 2).num_rows == 0
    assert topic.read(start_time=t0, end_time=t0 + 1)["v"].to_pylist() == [123]
    assert topic.read(start_time=T0 + 10**12).num_rows == 0
    assert topic.read(end_time=T0).num_rows == 0
    # whole-frame boundaries
    assert topic.read(start_time=T0 + 100 * 1_000_000, end_time=T0 + 150 * 1_000_000)["v"].to_pylist() == \
        list(range(100, 150))
    # combined with offsets and columns
    t = topic.read(start_offset=200, end_offset=300, start_time=t0, end_time=t1, columns=["v"])
    assert t.column_names == ["v"] and t["v"].to_pylist() == list(range(200, 300))


def test_time_range_datetime(log):
    topic, _ = _ts_topic(log)
    base = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    base_ns = int(base.timestamp()) * 10**9
    v = np.arange(600, dtype=np.int64)
    for chunk in np.array_split(v, 6):
        topic.append({"ts": base_ns + chunk * 10**9, "v": chunk})  # one row per second
    start = base + dt.timedelta(minutes=2)
    end = base + dt.timedelta(minutes=3)
    assert topic.read(start_time=start, end_time=end)["v"].to_pylist() == list(range(120, 180))
    # naive datetimes are UTC
    naive = start.replace(tzinfo=None)
    assert topic.read(start_time=naive, end_time=end.replace(tzinfo=None))["v"].to_pylist() == list(range(120, 180))
    # another time zone, same instant
    cet = dt.timezone(dt.timedelta(hours=2))
    assert topic.read(start_time=start.astimezone(cet), end_time=end.astimezone(cet))["v"].to_pylist() == \
        list(range(120, 180))
    # numpy datetime64 too
    assert topic.read(start_time=np.datetime64(base_ns + 5 * 10**9, "ns"),
                      end_time=np.datetime64(base_ns + 7 * 10**9, "ns"))["v"].to_pylist() == [5, 6]


@pytest.mark.parametrize("kind", ["plain", "zstd", "dictionary", "compacted", "many_frames"])
def test_time_range_read_matches_the_scan(log, kind):
    """read(start_time=, end_time=) of one partition takes a short path (no
    Scan): it must return what the scan returns, whatever the frames hold:
    nulls and out-of-order timestamps, compressed or dictionary payloads,
    sparse frames of a compacted topic, more frames than one call returns."""
    schema = pa.schema([("k", pa.dictionary(pa.int32(), pa.string()) if kind == "dictionary" else pa.string()),
                        ("ts", pa.timestamp("us")), ("v", pa.int64())])
    opts = {"zstd": {"compression": "zstd"}, "compacted": {"key": "k", "cleanup_policy": "compact"}}.get(kind, {})
    topic = log.create_topic("t", schema, timestamp="ts", **opts)
    rng = np.random.default_rng(7)
    frames = 300 if kind == "many_frames" else 24
    for f in range(frames):
        n = int(rng.integers(1, 40))
        ts = (T0 // 1000 + f * 1000 + np.arange(n) * 20).astype("int64")
        if f % 5 == 1:
            ts = ts[::-1].copy()  # a frame out of time order
        mask = np.zeros(n, bool)
        if f % 7 == 2:
            mask[::3] = True      # rows without a timestamp are in no time range
        keys = pa.array([f"key-{int(x)}" for x in rng.integers(0, 30, n)])
        topic.append(pa.record_batch([keys.dictionary_encode() if kind == "dictionary" else keys,
                                      pa.array(ts, pa.timestamp("us"), mask=mask if kind != "compacted" else None),
                                      pa.array(np.arange(n) + f * 100)], schema=schema))
    if kind == "compacted":
        topic.compact_now()
    us = 1000
    for t0, t1 in [(T0 + 3_500 * us, T0 + 9_100 * us), (None, T0 + 2_000 * us), (T0 + 20_000 * us, None),
                   (T0 + 1_000 * us, T0 + 1_000 * us), (T0 - 10**12, T0 + 10**15), (T0 + 10**15, None)]:
        got = topic.read(start_time=t0, end_time=t1)
        want = topic.scan(start_time=t0, end_time=t1).to_table()
        assert got.schema == want.schema
        assert got.to_pylist() == want.to_pylist(), (kind, t0, t1)
        assert topic.read(start_time=t0, end_time=t1, partitions=0).to_pylist() == want.to_pylist()


def test_time_range_ms_column(log):
    topic, _ = _ts_topic(log, unit="ms")
    base_ms = T0 // 10**6
    v = np.arange(1000, dtype=np.int64)
    for chunk in np.array_split(v, 4):
        topic.append({"ts": pa.array(base_ms + chunk, pa.timestamp("ms")), "v": chunk})
    got = topic.read(start_time=(base_ms + 100) * 10**6, end_time=(base_ms + 900) * 10**6)["v"].to_pylist()
    assert got == list(range(100, 900))
    # a bound inside a millisecond: [x.5 ms, y.5 ms) holds x+1 .. y
    got = topic.read(start_time=(base_ms + 100) * 10**6 + 500_000, end_time=(base_ms + 200) * 10**6 + 500_000)
    assert got["v"].to_pylist() == list(range(101, 201))


def test_time_range_multi_partition_and_offset_for_time(log):
    topic, _ = _ts_topic(log, partitions=3)
    v = np.arange(3000, dtype=np.int64)
    for chunk in np.array_split(v, 30):
        topic.append({"ts": T0 + chunk * 1000, "v": chunk})
    got = sorted(topic.read(start_time=T0 + 1234 * 1000, end_time=T0 + 2345 * 1000)["v"].to_pylist())
    assert got == list(range(1234, 2345))
    for p in range(3):
        part = topic.read(partitions=[p])
        off = topic.offset_for_time(p, T0 + 1500 * 1000)
        # the frame holding the first row >= that time starts at or before off
        ts = part["ts"].cast(pa.int64()).to_numpy()
        first = int(np.argmax(ts >= T0 + 1500 * 1000)) if (ts >= T0 + 1500 * 1000).any() else len(ts)
        assert off <= first


def test_partitions_selection(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=4, key="sensor_id")
    batch = make_sensors(4000, seed=6)
    res = topic.append(batch)
    total = 0
    for p in range(4):
        t = topic.read(partitions=[p])
        assert t.num_rows == res.offsets.get(p, (0, -1))[1] - res.offsets.get(p, (0, -1))[0] + 1
        assert topic.read(partitions=p).equals(t)
        total += t.num_rows
    assert total == 4000
    two = topic.read(partitions=[1, 3])
    assert two.num_rows == topic.read(partitions=[1]).num_rows + topic.read(partitions=[3]).num_rows
    assert sort_by(topic.read(partitions=range(4)), "value").equals(pa.Table.from_batches([batch]))
    with pytest.raises(ValueError):
        topic.read(partitions=[4])
    with pytest.raises(ValueError):
        topic.read(partitions=[-1])


@pytest.mark.parametrize("n", [1, 3, 4, 7, 16])
def test_keyed_partitioning_int32(log, sensors_schema, n):
    topic = log.create_topic("t", sensors_schema, partitions=n, key="sensor_id")
    batch = make_sensors(5000, seed=7, sensors=300)
    batch2 = make_sensors(5000, start=5000, seed=8, sensors=300)
    topic.append(batch)
    topic.append(pa.Table.from_batches([batch2]))
    seen: dict[int, int] = {}
    for p in range(n):
        ids = topic.read(partitions=[p])["sensor_id"].to_pylist()
        for k in ids:
            assert seen.setdefault(k, p) == p, f"key {k} in partitions {seen[k]} and {p}"
            assert p == kafka_partition(struct.pack(">i", k), n), (k, p)
    assert len(seen) == len(set(batch["sensor_id"].to_pylist()) | set(batch2["sensor_id"].to_pylist()))
    assert topic.read().num_rows == 10_000


def test_keyed_partitioning_negative_int32(log):
    schema = pa.schema([("k", pa.int32()), ("v", pa.int64())])
    topic = log.create_topic("t", schema, partitions=5, key="k")
    keys = [-(2**31), -1, -12345, 0, 2**31 - 1, 42]
    topic.append({"k": keys, "v": list(range(len(keys)))})
    for p in range(5):
        for k in topic.read(partitions=[p])["k"].to_pylist():
            assert p == kafka_partition(struct.pack(">i", k), 5)


def test_keyed_partitioning_int64(log):
    schema = pa.schema([("k", pa.int64()), ("v", pa.int64())])
    topic = log.create_topic("t", schema, partitions=6, key="k")
    keys = np.random.default_rng(9).integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64)
    topic.append({"k": keys, "v": np.arange(2000)})
    for p in range(6):
        for k in topic.read(partitions=[p])["k"].to_pylist():
            assert p == kafka_partition(struct.pack(">q", k), 6)  # Kafka's LongSerializer: 8 bytes big-endian


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string(), pa.binary()])
def test_keyed_partitioning_strings(log, typ):
    schema = pa.schema([("k", typ), ("v", pa.int64())])
    topic = log.create_topic("t", schema, partitions=7, key="k")
    words = [f"order-{i}" + "é" * (i % 3) for i in range(500)] + ["", "abc", "foobar"]
    keys = [w.encode() if typ == pa.binary() else w for w in words]
    arr = pa.array(keys, typ)
    topic.append(pa.RecordBatch.from_arrays([arr.slice(1), pa.array(np.arange(len(keys) - 1))], schema=schema))
    count = 0
    for p in range(7):
        for k in topic.read(partitions=[p])["k"].to_pylist():
            kb = k if isinstance(k, bytes) else k.encode()
            assert p == kafka_partition(kb, 7), (k, p)
            count += 1
    assert count == len(keys) - 1


def test_null_keys_are_stored(log):
    schema = pa.schema([("k", pa.int32()), ("v", pa.int64())])
    topic = log.create_topic("t", schema, partitions=4, key="k")
    topic.append({"k": [1, None, 2, None, 3], "v": [0, 1, 2, 3, 4]})
    t = sort_by(topic.read(), "v")
    assert t["k"].to_pylist() == [1, None, 2, None, 3]
    for p in range(4):
        for k in topic.read(partitions=[p])["k"].to_pylist():
            if k is not None:
                assert p == kafka_partition(struct.pack(">i", k), 4)




@pytest.mark.parametrize("data,expected", KAFKA_MURMUR2_VECTORS)
def test_kafka_murmur2_vectors(data, expected):
    assert _core.kafka_murmur2(data) == expected
    assert _core.kafka_murmur2(bytearray(data)) == expected
    assert _core.kafka_murmur2(memoryview(b"xx" + data)[2:]) == expected


def test_kafka_murmur2_reference():
    """Against a pure-Python transcription of Kafka's Utils.murmur2 on random inputs."""

    def ref(data: bytes) -> int:
        m, r = 0x5BD1E995, 24
        length = len(data)
        h = (0x9747B28C ^ length) & 0xFFFFFFFF
        n4 = length // 4
        for i in range(n4):
            k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
            k = (k * m) & 0xFFFFFFFF
            k ^= k >> r
            k = (k * m) & 0xFFFFFFFF
            h = (h * m) & 0xFFFFFFFF
            h ^= k
        rem = length % 4
        tail = data[4 * n4 :]
        if rem == 3:
            h ^= tail[2] << 16
        if rem >= 2:
            h ^= tail[1] << 8
        if rem >= 1:
            h ^= tail[0]
            h = (h * m) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * m) & 0xFFFFFFFF
        h ^= h >> 15
        return h - (1 << 32) if h >= 1 << 31 else h

    for data, expected in KAFKA_MURMUR2_VECTORS:
        assert ref(data) == expected
    rng = np.random.default_rng(10)
    for n in list(range(0, 40)) + [100, 1001, 4096]:
        data = rng.bytes(n)
        assert _core.kafka_murmur2(data) == ref(data), n


def test_dictionary_batches_with_different_dictionaries(log):
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string())), ("v", pa.int64())])
    topic = log.create_topic("d", schema, partitions=2)
    b1 = pa.RecordBatch.from_arrays([pa.array(["x", "y", "x"]).dictionary_encode().cast(schema.field("d").type),
                                     pa.array([0, 1, 2])], schema=schema)
    b2 = pa.RecordBatch.from_arrays([pa.array(["q", None, "r", "q"]).dictionary_encode().cast(schema.field("d").type),
                                     pa.array([3, 4, 5, 6])], schema=schema)
    topic.append(b1)
    topic.append(b2)
    t = sort_by(topic.read(), "v")
    assert t["d"].to_pylist() == ["x", "y", "x", "q", None, "r", "q"]
    assert t.schema.equals(schema)


def test_scan_interfaces(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=2)
    batches = [make_sensors(100, start=100 * i) for i in range(6)]
    for b in batches:
        topic.append(b)
    expected = pa.Table.from_batches(batches)
    scan = topic.scan()
    assert sort_by(pa.table(scan), "value").equals(expected)  # __arrow_c_stream__
    assert sort_by(pa.table(scan), "value").equals(expected)  # and again: each export starts anew
    assert sort_by(scan.to_table(), "value").equals(expected)
    reader = scan.to_reader()
    assert isinstance(reader, pa.RecordBatchReader)
    assert sort_by(reader.read_all(), "value").equals(expected)
    assert sum(b.num_rows for b in scan) == 600
    assert all(isinstance(b, pa.RecordBatch) for b in topic.scan(columns=["value"]))
    # the end of a scan is fixed when it is created
    fixed = topic.scan()
    topic.append(make_sensors(10, start=600))
    assert fixed.to_table().num_rows == 600
    assert topic.scan().to_table().num_rows == 610
    assert topic.scan(columns=["ts"]).schema.names == ["ts"]
    empty = log.create_topic("e", sensors_schema)
    assert pa.table(empty.scan()).num_rows == 0
    assert empty.scan().to_table().schema.equals(sensors_schema)


def test_time_range_by_append_time(log, sensors_schema):
    """Without a timestamp column, time selections use the append time."""
    import time

    topic = log.create_topic("t", sensors_schema)
    topic.append(make_sensors(10))
    time.sleep(0.02)
    middle = time.time_ns()
    time.sleep(0.02)
    topic.append(make_sensors(5, start=10))
    after = time.time_ns() + 1
    assert topic.read(start_time=middle)["value"].to_pylist() == [float(i) for i in range(10, 15)]
    assert topic.read(end_time=middle)["value"].to_pylist() == [float(i) for i in range(10)]
    assert topic.read(start_time=after).num_rows == 0
    assert topic.offset_for_time(0, middle) == 10


def test_record_topic_without_schema(log):
    """A topic without a schema holds Kafka-like byte records, keyed by murmur2 of the key bytes."""
    topic = log.create_topic("orders", partitions=3)
    assert topic.schema.equals(tidelog.RECORD_SCHEMA)
    keys = [f"order-{i}".encode() for i in range(60)]
    res = topic.append({
        "timestamp": [T0 + i for i in range(60)],
        "key": keys,
        "value": [b'{"id": %d}' % i for i in range(60)],
        "headers": [[{"key": "type", "value": b"OrderCreated"}] if i % 2 else [] for i in range(60)],
    })
    assert res.rows == 60
    seen = 0
    for p in range(3):
        t = topic.read(partitions=p)
        for k in t["key"].to_pylist():
            assert p == kafka_partition(k, 3), k
        seen += t.num_rows
    assert seen == 60
    t = sort_by(topic.read(), "timestamp")
    assert t["value"].to_pylist()[5] == b'{"id": 5}'
    assert t["headers"].to_pylist()[5] == [{"key": "type", "value": b"OrderCreated"}]
    assert topic.read(start_time=T0 + 50).num_rows == 10


def test_describe(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=3, key="sensor_id", timestamp="ts")
    res = topic.append(make_sensors(1000))
    d = topic.describe()
    assert d["name"] == "t"
    assert d["records"] == 1000
    assert len(d["partitions"]) == 3
    for p in d["partitions"]:
        assert p["start_offset"] == 0
        first_last = res.offsets.get(p["partition"])
        assert p["end_offset"] == (first_last[1] + 1 if first_last else 0)
        assert p["segments"] >= 1
        assert (p["bytes"] > 0) == (p["end_offset"] > 0)
    assert d["bytes"] == sum(p["bytes"] for p in d["partitions"])
    assert d["config"]["partitions"] == 3 and d["config"]["key"] == "sensor_id"
    assert "sensor_id" in d["schema"]


@pytest.mark.parametrize("route", ["one-partition", "explicit-partition", "keyed-one-target", "keyed-split",
                                   "sticky", "null-timestamps", "compacted", "zstd"])
def test_small_appends_take_every_route_to_the_same_frames(log, route):
    """Small batches take a shorter path than large ones; whatever the route, the
    rows, offsets, timestamps and results are those the general path gives."""
    schema = pa.schema([("ts", pa.timestamp("ns")), ("key", pa.string()), ("v", pa.float64())])
    kw = {"timestamp": "ts"}
    if route in ("keyed-one-target", "keyed-split", "compacted"):
        kw["key"] = "key"
    if route == "compacted":
        kw["cleanup_policy"] = "compact"
    if route == "zstd":
        kw["compression"] = "zstd"
    parts = 1 if route in ("one-partition", "null-timestamps", "compacted", "zstd") else 4
    short = log.create_topic("short", schema=schema, partitions=parts, **kw)
    general = log.create_topic("general", schema=schema, partitions=parts, **kw)
    general._small_fast_path = False
    explicit = {"partition": 2} if route == "explicit-partition" else {}
    for i in range(0, 40, 4):
        rows = [{"ts": None if route == "null-timestamps" else T0 + j * 1000,
                 "key": "same" if route == "keyed-one-target" else f"k{j % 7}", "v": float(j)} for j in range(i, i + 4)]
        batch = pa.RecordBatch.from_pylist(rows, schema=schema)
        assert short.append(batch, **explicit) == general.append(batch, **explicit)
    for p in range(parts):
        a = short.read(partitions=[p], with_offsets=True)
        assert a.equals(general.read(partitions=[p], with_offsets=True))
        if route != "null-timestamps" and a.num_rows:
            first_ts = a.column("ts")[0].value
            assert short.offset_for_time(p, first_ts) == general.offset_for_time(p, first_ts)
    assert sum(short.read(partitions=[p]).num_rows for p in range(parts)) == 40


@pytest.mark.parametrize("kind", ["plain", "zstd", "dictionary", "two-partitions"])
def test_point_and_small_reads_equal_the_scan(log, kind):
    """read(start, end) of a range inside one frame takes a shorter path than a
    Scan; every range, inside a frame or across several, reads what the Scan reads."""
    schema = pa.schema([("ts", pa.timestamp("ns")), ("v", pa.int64()),
                        ("s", pa.dictionary(pa.int32(), pa.string()) if kind == "dictionary" else pa.string())])
    kw = {"compression": "zstd"} if kind == "zstd" else {}
    parts = 2 if kind == "two-partitions" else 1
    t = log.create_topic("t", schema=schema, timestamp="ts", partitions=parts, **kw)
    rng = np.random.default_rng(7)
    for i in range(6):
        n = int(rng.integers(1, 50))
        t.append(pa.table({"ts": pa.array([T0 + i * 1000 + j for j in range(n)], pa.timestamp("ns")),
                           "v": pa.array(range(n), pa.int64()),
                           "s": pa.array([f"s{j}" for j in range(n)]).cast(schema.field("s").type)}),
                 partition=i % parts)
    for p in range(parts):
        end = t.end_offsets()[p]
        for start in range(0, end):
            for stop in (start + 1, start + 3, end, end + 5):
                kwp = {"partitions": p} if parts > 1 else {}
                got = t.read(start, stop, **kwp)
                want = t.scan(start, stop, partitions=[p]).to_table()
                assert got.equals(want), (p, start, stop)
    with pytest.raises(ValueError):
        t.read(-1, 3)
    assert t.read(5, 5).num_rows == 0 and t.read(5, 2).num_rows == 0
    if parts == 1:
        ro = tidelog.open(log.path, read_only=True)
        try:
            assert ro.topic("t").read(3, 4).equals(t.read(3, 4))
        finally:
            ro.close()


@pytest.mark.parametrize("order", ["sorted", "sorted-with-ties", "shuffled", "nulls", "ms-unit"])
def test_time_ranges_by_search_or_by_mask_read_the_same_rows(log, order):
    """Frames whose timestamps never decrease carry FLAG_TIME_ORDERED and are
    binary-searched; others are masked. Both read exactly the rows in [t0, t1)."""
    unit = "ms" if order == "ms-unit" else "ns"
    schema = pa.schema([("ts", pa.timestamp(unit)), ("v", pa.int64())])
    t = log.create_topic("t", schema=schema, timestamp="ts")
    rng = np.random.default_rng(3)
    scale = 1 if unit == "ns" else 1_000_000
    base = T0 // scale
    all_ts, all_v = [], []
    for f in range(5):
        n = 200
        ts = base + f * 1000 + np.arange(n) * 5
        if order == "sorted-with-ties":
            ts = np.sort(base + f * 1000 + rng.integers(0, 300, n))
        if order == "shuffled":
            rng.shuffle(ts)
        ts_list = [int(x) for x in ts]
        if order == "nulls":
            ts_list = [None if i % 17 == 3 else x for i, x in enumerate(ts_list)]
        v = list(range(f * n, (f + 1) * n))
        t.append(pa.table({"ts": pa.array(ts_list, pa.timestamp(unit)), "v": pa.array(v, pa.int64())}))
        all_ts += ts_list
        all_v += v
    flags = [fr.flags for fr in t.partition(0).frames(0, t.end_offsets()[0])]
    ordered = order in ("sorted", "sorted-with-ties", "ms-unit")
    assert all(bool(f & tidelog._core.FLAG_TIME_ORDERED) == ordered for f in flags)
    for _ in range(40):
        a, b = sorted(int(x) for x in rng.integers(base - 100, base + 5200, 2))
        want = [v for ts, v in zip(all_ts, all_v) if ts is not None and a <= ts < b]
        t0, t1 = a * scale, b * scale
        got = t.read(start_time=t0, end_time=t1, with_offsets=True)
        assert got.column("v").to_pylist() == want
        assert got.column("_offset").to_pylist() == want  # v is the offset here
        assert [x for b_ in t.scan(start_time=t0, end_time=t1, columns=["v"]) for x in b_.column(0).to_pylist()] == want


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_time_range_edges_found_in_the_stored_column(log, unit):
    """A time-range read finds the rows of the frames at its edges by a search
    of the stored timestamp column (Frame.sorted_rows_in), before decoding:
    bounds between two ticks of the column's unit round as the mask does, ties
    stay together, and frames it cannot search (out of order, zstd, nulls) say
    None and take the decode-then-mask path."""
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    schema = pa.schema([("ts", pa.timestamp(unit)), ("v", pa.int64())])
    plain = log.create_topic("plain", schema=schema, timestamp="ts")
    packed = log.create_topic("packed", schema=schema, timestamp="ts", compression="zstd")
    rng = np.random.default_rng(11)
    base = T0 // scale
    all_ts = []
    for f in range(6):
        ts = np.sort(base + f * 500 + rng.integers(0, 400, 300)).astype(np.int64)  # ties included
        if f == 3:
            ts = ts[::-1].copy()
        batch = pa.record_batch([pa.array(ts, pa.timestamp(unit)), pa.array(np.arange(300) + f * 300)], schema=schema)
        plain.append(batch)
        packed.append(batch)
        all_ts += ts.tolist()
    frames = plain.partition(0).frames(0, plain.end_offsets()[0])
    searched = [fr.sorted_rows_in(1, base, base + 10**6) for fr in frames]
    assert [r is None for r in searched] == [False, False, False, True, False, False]
    assert all(fr.sorted_rows_in(1, base, base + 10**6) is None
               for fr in packed.partition(0).frames(0, packed.end_offsets()[0]))
    assert frames[0].sorted_rows_in(-1, 0, 1) is None and frames[0].sorted_rows_in(99, 0, 1) is None
    for _ in range(60):
        a, b = sorted(int(x) for x in rng.integers((base - 50) * scale, (base + 3100) * scale, 2))
        want = [i for i, ts in enumerate(all_ts) if a <= ts * scale < b]
        for topic in (plain, packed):
            assert topic.read(start_time=a, end_time=b).column("v").to_pylist() == want, (unit, a, b)


def test_the_edge_search_survives_damaged_messages(log):
    """Frame.sorted_rows_in reads the IPC message's own metadata: mangled
    messages (bytes flipped, cut short, lengths and offsets overwritten) under
    a valid frame CRC give None or rows inside the frame, never a crash or a
    read outside the payload."""
    schema = pa.schema([("ts", pa.timestamp("ns")), ("v", pa.int64())])
    topic = log.create_topic("mangled", schema=schema, timestamp="ts")
    h = topic.partition(0)
    batch = pa.record_batch([pa.array(np.arange(40, dtype=np.int64) * 10 + T0, pa.timestamp("ns")),
                             pa.array(np.arange(40))], schema=schema)
    good = h.encode(batch, T0)
    message = b"".join(bytes(p) for p in good[0])
    rng = np.random.default_rng(5)
    requests = []
    for case in range(400):
        m = bytearray(message)
        kind = case % 4
        if kind == 0:
            for at in rng.integers(0, len(m), int(rng.integers(1, 6))):
                m[at] ^= int(rng.integers(1, 256))
        elif kind == 1:
            m = m[:int(rng.integers(0, len(m)))]
        elif kind == 2:
            at = int(rng.integers(0, max(1, len(m) - 8)))
            m[at:at + 8] = int(rng.choice([-1, 2**31, 2**62, len(m), -8])).to_bytes(8, "little", signed=True)
        else:
            at = int(rng.integers(8, min(len(m), 300)))
            m[at:at + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "little")
        if not m:
            m = bytearray(b"\0")
        requests.append(([bytes(m)], 40, good[2], good[3], good[4], tidelog._core.FLAG_TIME_ORDERED, 0, -1))
    log.wait_durable(h.append_frames(requests)[-1][1])
    frames = h.frames(0, h.end_offset, 1000)
    assert len(frames) == 400
    results = [frame.sorted_rows_in(1, T0 + 55, T0 + 205) for frame in frames]
    assert all(got is None or 0 <= got[0] <= got[1] <= 40 for got in results), results
    assert any(got is None for got in results) and (6, 21) in results
