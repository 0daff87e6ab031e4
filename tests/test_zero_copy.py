"""Reads of uncompressed topics are zero-copy views of the segment mappings,
stay valid after the files go, and are aligned."""
from __future__ import annotations

import gc

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from _helpers import assert_tables_equal, iter_buffers, make_sensors, sort_by

MIXED_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("ns")),
        ("id", pa.int32()),
        ("flag", pa.bool_()),
        ("name", pa.string()),
        ("blob", pa.large_binary()),
        ("tags", pa.list_(pa.string())),
        ("pt", pa.struct([("x", pa.float32()), ("y", pa.float64())])),
        ("amount", pa.decimal128(12, 3)),
    ]
)


def mixed_batch(n: int, start: int = 0) -> pa.RecordBatch:
    i = np.arange(start, start + n)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(i * 1000, pa.timestamp("ns")),
            pa.array(i.astype(np.int32) % 50),
            pa.array([None if k % 5 == 0 else bool(k % 2) for k in i], pa.bool_()),
            pa.array([None if k % 7 == 0 else f"name-{k}" for k in i]),
            pa.array([bytes([k % 256]) * (k % 9) for k in i], pa.large_binary()),
            pa.array([[f"t{k}", None] if k % 3 else [] for k in i], pa.list_(pa.string())),
            pa.array([{"x": float(k), "y": None if k % 4 == 0 else -float(k)} for k in i], MIXED_SCHEMA.field("pt").type),
            pa.array([None if k % 6 == 0 else __import__("decimal").Decimal(int(k) * 1001).scaleb(-3) for k in i], pa.decimal128(12, 3)),
        ],
        schema=MIXED_SCHEMA,
    )


def mappings_of(topic) -> list[tuple[int, int]]:
    out = {}
    for p in range(topic.partitions):
        for frame in topic._partitions[p].frames():
            m = frame.mapping
            out[m.address] = m.size
    return list(out.items())


def assert_inside_mappings(table: pa.Table, mappings) -> int:
    n = 0
    for col in table.columns:
        for buf in iter_buffers(col):
            a = buf.address
            assert any(base <= a and a + buf.size <= base + size for base, size in mappings), (
                f"buffer at {a:#x} (+{buf.size}) of column type {col.type} is outside every segment mapping"
            )
            n += 1
    return n


def fill(topic, batches=8, rows=1000, make=make_sensors):
    for b in range(batches):
        topic.append(make(rows, start=b * rows))


@pytest.mark.parametrize("partitions", [1, 3])
def test_read_buffers_point_into_mappings(log, sensors_schema, partitions):
    topic = log.create_topic("t", sensors_schema, partitions=partitions, key="sensor_id")
    fill(topic)
    table = topic.read()
    assert table.num_rows == 8000
    mappings = mappings_of(topic)
    assert mappings
    assert assert_inside_mappings(table, mappings) >= 3 * 8
    # a column selection and an offset range are zero-copy as well
    assert_inside_mappings(topic.read(columns=["value"]), mappings)
    assert_inside_mappings(topic.read(100, 2500), mappings)
    # scans too
    for batch in topic.scan():
        assert_inside_mappings(pa.Table.from_batches([batch]), mappings)


def test_nested_types_point_into_mappings(log):
    topic = log.create_topic("m", MIXED_SCHEMA, partitions=2, key="id")
    fill(topic, batches=5, rows=300, make=mixed_batch)
    table = topic.read()
    assert table.num_rows == 1500
    assert assert_inside_mappings(table, mappings_of(topic)) > 0
    assert_tables_equal(sort_by(table, "ts"), pa.Table.from_batches([mixed_batch(1500)]))


def test_dictionary_column_points_into_mappings(log):
    schema = pa.schema([("k", pa.dictionary(pa.int8(), pa.string())), ("v", pa.int64())])
    topic = log.create_topic("d", schema)
    for b in range(3):
        topic.append({"k": pa.array(["a", "bb", None, "a"] * 50).dictionary_encode(), "v": np.arange(200)})
    table = topic.read()
    assert table["k"].to_pylist() == ["a", "bb", None, "a"] * 150
    assert_inside_mappings(table, mappings_of(topic))


def test_compressed_topic_is_not_in_mappings_but_correct(log, sensors_schema):
    """The documented exception: zstd frames are decompressed into fresh memory."""
    topic = log.create_topic("z", sensors_schema, compression="zstd")
    fill(topic, batches=2)
    table = topic.read()
    mappings = mappings_of(topic)
    assert_tables_equal(table, pa.Table.from_batches([make_sensors(2000)]))
    for buf in iter_buffers(table["value"]):
        assert not any(base <= buf.address < base + size for base, size in mappings)


def _expected_table(batches: int, rows: int) -> pa.Table:
    return pa.Table.from_batches([make_sensors(batches * rows)])


def test_data_valid_after_delete_topic(log, sensors_schema):
    topic = log.create_topic("t", sensors_schema, partitions=2)
    fill(topic)
    table = topic.read()
    cols = topic.read(columns=["value"])
    scan_batches = list(topic.scan())
    mappings = mappings_of(topic)
    assert_inside_mappings(table, mappings)
    expected = sort_by(_expected_table(8, 1000), "value")
    log.delete_topic("t")
    del topic
    gc.collect()
    assert "t" not in log.topics()
    assert not (log.path and __import__("os").path.exists(__import__("os").path.join(log.path, "topics", "t")))
    # the memory is still mapped and holds the same values
    assert_tables_equal(sort_by(table, "value"), expected)
    assert pc.sum(cols["value"]).as_py() == sum(range(8000))
    assert sum(b.num_rows for b in scan_batches) == 8000
    # a new topic of the same name starts empty and does not disturb the old data
    again = log.create_topic("t", sensors_schema, partitions=2)
    again.append(make_sensors(10, start=10**6))
    assert again.read().num_rows == 10
    assert_tables_equal(sort_by(table, "value"), expected)


def test_data_valid_after_retention_deleted_segment(log, log_dir, sensors_schema):
    import os

    topic = log.create_topic("t", sensors_schema, segment_bytes=64 << 10, retention_bytes=128 << 10,
                             durability="none")
    # ~24 KiB frames: several segments
    for b in range(30):
        topic.append(make_sensors(1000, start=b * 1000))
    assert topic.describe()["partitions"][0]["segments"] > 4
    first_log = sorted(f for f in os.listdir(os.path.join(log_dir, "topics", "t", "0")) if f.endswith(".log"))[0]
    early = topic.read(0, 3000)
    assert_inside_mappings(early, mappings_of(topic))
    assert early["value"].to_pylist() == [float(i) for i in range(3000)]
    topic.enforce_retention()
    assert topic.start_offsets()[0] > 3000
    assert not os.path.exists(os.path.join(log_dir, "topics", "t", "0", first_log))
    gc.collect()
    assert early["value"].to_pylist() == [float(i) for i in range(3000)]
    assert_tables_equal(early, _expected_table(3, 1000))
    # what is left reads correctly from the new start
    start = topic.start_offsets()[0]
    rest = topic.read()
    assert rest["value"].to_pylist() == [float(i) for i in range(start, 30_000)]


def test_buffers_aligned(log):
    topic = log.create_topic("m", MIXED_SCHEMA, partitions=2, key="id")
    # odd row counts so that unaligned layouts would show
    for b, n in enumerate([1, 3, 17, 255, 1001, 2]):
        topic.append(mixed_batch(n, start=b * 2000))
    table = topic.read()
    for col in table.columns:
        for buf in iter_buffers(col):
            assert buf.address % 8 == 0, f"{col.type}: buffer at {buf.address:#x} is not 8-byte aligned"


@pytest.mark.parametrize("schema_kind", ["sensors", "mixed"])
def test_first_body_buffer_64_aligned(log, schema_kind):
    if schema_kind == "sensors":
        from _helpers import SENSORS_SCHEMA as schema
        make = make_sensors
    else:
        schema, make = MIXED_SCHEMA, mixed_batch
    topic = log.create_topic("a", schema)
    for b, n in enumerate([1, 2, 7, 100, 333, 1]):
        topic.append(make(n, start=b * 1000))
    frames = topic._partitions[0].frames()
    assert len(frames) == 6
    for frame, batch in zip(frames, topic.scan()):
        mapping, address, length = frame.mapping, frame.address, frame.length
        assert address % 8 == 0
        view = memoryview(mapping)
        start = address - mapping.address
        head = bytes(view[start : start + 8])
        assert head[:4] == b"\xff\xff\xff\xff", "payload is an Arrow IPC message"
        metadata_length = int.from_bytes(head[4:8], "little", signed=True)
        body = address + 8 + metadata_length
        assert body % 64 == 0, f"frame at offset {frame.base_offset}: body at {body:#x}"
        # the batch read from this frame has its buffers inside the body
        addrs = [buf.address for col in batch.columns for buf in iter_buffers(col)]
        assert min(addrs) >= body
        assert max(addrs) < address + length
