"""The error hierarchy and the conditions that raise each error."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from _helpers import SENSORS_SCHEMA, make_sensors


def test_hierarchy():
    for name in ("LogLockedError", "TopicExistsError", "UnknownTopicError", "SchemaMismatchError",
                 "CorruptionError", "ReadOnlyError", "InvalidTopicNameError"):
        cls = getattr(tidelog, name)
        assert issubclass(cls, tidelog.TidelogError), name
        assert issubclass(cls, Exception)
    assert issubclass(tidelog.TidelogError, Exception)


# ------------------------------------------------------------------ writer lock
@pytest.mark.parametrize("first_exclusive", [True, False])
def test_exclusive_and_shared_handles_exclude_each_other_in_one_process(log_dir, first_exclusive):
    first = tidelog.open(log_dir, exclusive=first_exclusive)
    try:
        with pytest.raises(tidelog.LogLockedError) as info:
            tidelog.open(log_dir, exclusive=not first_exclusive)
        assert info.value.pid == os.getpid() and info.value.pids == [os.getpid()]
        assert "this process already has it open" in str(info.value) and str(log_dir) in str(info.value)
        assert info.value.path == str(log_dir)
        assert isinstance(info.value, tidelog.TidelogError)
        if first_exclusive:  # an exclusive handle has it alone: a shared one is refused too
            with pytest.raises(tidelog.LogLockedError):
                tidelog.open(log_dir, exclusive=True)
        else:  # shared handles: any number
            with tidelog.open(log_dir) as second:
                second.create_topic("u", SENSORS_SCHEMA)
        # the first handle is unharmed
        t = first.create_topic("t", SENSORS_SCHEMA)
        t.append(make_sensors(5))
        assert t.read().num_rows == 5
    finally:
        first.close()
    # once closed, the folder can be opened either way again
    with tidelog.open(log_dir, exclusive=True) as again:
        assert again.topic("t").read().num_rows == 5


HOLDER = r"""
import sys, os, tidelog
log = tidelog.open(sys.argv[1], exclusive=len(sys.argv) > 2)
print(os.getpid(), flush=True)
sys.stdin.readline()
log.close()
print("closed", flush=True)
"""


@pytest.mark.parametrize("child_exclusive", [True, False])
def test_exclusive_handle_in_another_process(log_dir, child_exclusive):
    args = [sys.executable, "-c", HOLDER, str(log_dir)] + (["exclusive"] if child_exclusive else [])
    child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(child.stdout.readline())
        assert pid == child.pid
        with pytest.raises(tidelog.LogLockedError) as info:
            tidelog.open(log_dir, exclusive=not child_exclusive)
        assert info.value.pid == child.pid
        assert str(child.pid) in str(info.value)
        if not child_exclusive:  # a shared handle beside the child's
            with tidelog.open(log_dir) as lg:
                assert lg.topics() == []
        # readers are welcome while the writer runs
        with tidelog.open(log_dir, read_only=True) as ro:
            assert ro.topics() == []
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with tidelog.open(log_dir) as lg:
        assert lg.topics() == []


def test_lock_released_when_writer_killed(log_dir):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(log_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert int(child.stdout.readline()) == child.pid
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with tidelog.open(log_dir) as lg:  # a dead holder's lock does not block
        assert lg.topics() == []


# ------------------------------------------------------------------ topics
def test_topic_exists(log, log_dir, sensors_schema):
    log.create_topic("t", sensors_schema)
    with pytest.raises(tidelog.TopicExistsError):
        log.create_topic("t", sensors_schema)
    with pytest.raises(tidelog.TopicExistsError):
        log.create_topic("t", pa.schema([("x", pa.int8())]), partitions=2)
    log.close()
    with tidelog.open(log_dir) as lg:
        with pytest.raises(tidelog.TopicExistsError):
            lg.create_topic("t", sensors_schema)
        assert lg.topic("t").schema.equals(sensors_schema)


def test_unknown_topic(log, sensors_schema):
    with pytest.raises(tidelog.UnknownTopicError):
        log.topic("nope")
    with pytest.raises(tidelog.UnknownTopicError):
        log.delete_topic("nope")
    with pytest.raises(tidelog.UnknownTopicError):
        log["nope"]
    assert "nope" not in log
    log.create_topic("yes", sensors_schema)
    log.delete_topic("yes")
    with pytest.raises(tidelog.UnknownTopicError):
        log.topic("yes")
    assert isinstance(tidelog.UnknownTopicError("x"), tidelog.TidelogError)


# ------------------------------------------------------------------ schema mismatch
@pytest.fixture
def strict(log):
    schema = pa.schema([
        pa.field("ts", pa.timestamp("ns"), nullable=False),
        pa.field("sensor_id", pa.int32(), nullable=False),
        pa.field("value", pa.float64()),
    ])
    topic = log.create_topic("strict", schema, partitions=3, key="sensor_id")
    topic.append({"ts": np.arange(30, dtype=np.int64), "sensor_id": np.arange(30, dtype=np.int32),
                  "value": np.ones(30)})
    return topic


def _bad_inputs(schema: pa.Schema):
    n = 10
    good = {"ts": pa.array(np.arange(n, dtype=np.int64), pa.timestamp("ns")),
            "sensor_id": pa.array(np.arange(n, dtype=np.int32)), "value": pa.array(np.ones(n))}
    yield "wrong type (int64 id)", pa.RecordBatch.from_arrays(
        [good["ts"], pa.array(np.arange(n, dtype=np.int64)), good["value"]], names=["ts", "sensor_id", "value"])
    yield "wrong type (float32 value)", pa.table(
        {"ts": good["ts"], "sensor_id": good["sensor_id"], "value": pa.array(np.ones(n, np.float32))})
    yield "wrong ts unit", pa.table(
        {"ts": pa.array(np.arange(n), pa.timestamp("ms")), "sensor_id": good["sensor_id"], "value": good["value"]})
    yield "missing column (batch)", pa.RecordBatch.from_arrays([good["ts"], good["sensor_id"]], names=["ts", "sensor_id"])
    yield "extra column (batch)", pa.RecordBatch.from_arrays(
        [good["ts"], good["sensor_id"], good["value"], good["value"]], names=["ts", "sensor_id", "value", "extra"])
    yield "reordered columns", pa.RecordBatch.from_arrays(
        [good["sensor_id"], good["ts"], good["value"]], names=["sensor_id", "ts", "value"])
    yield "renamed column", pa.RecordBatch.from_arrays(
        [good["ts"], good["sensor_id"], good["value"]], names=["ts", "sensor", "value"])
    yield "missing column (dict)", {"ts": good["ts"], "sensor_id": good["sensor_id"]}
    yield "extra column (dict)", {**good, "extra": [1] * n}
    yield "unconvertible values (dict)", {**good, "sensor_id": ["a"] * n}
    yield "overflowing values (dict)", {**good, "sensor_id": [2**40] * n}
    yield "nulls in non-nullable (batch)", pa.RecordBatch.from_arrays(
        [good["ts"], pa.array([1, None] * (n // 2), pa.int32()), good["value"]], schema=schema)
    yield "nulls in non-nullable (dict)", {**good, "ts": [None] * n}
    yield "nulls in a later chunk (table)", pa.Table.from_batches([
        pa.RecordBatch.from_arrays([good["ts"], good["sensor_id"], good["value"]], schema=schema),
        pa.RecordBatch.from_arrays([good["ts"], pa.array([None] * n, pa.int32()), good["value"]], schema=schema),
    ])


BAD_INPUT_LABELS = [label for label, _ in _bad_inputs(pa.schema([
    pa.field("ts", pa.timestamp("ns"), nullable=False), pa.field("sensor_id", pa.int32(), nullable=False),
    pa.field("value", pa.float64())]))]


@pytest.mark.parametrize("label", BAD_INPUT_LABELS)
def test_schema_mismatch_writes_nothing(strict, label):
    data = dict(_bad_inputs(strict.schema))[label]
    ends = strict.end_offsets()
    before = strict.read()
    stats = strict._log.stats()
    with pytest.raises(tidelog.SchemaMismatchError) as info:
        strict.append(data)
    assert isinstance(info.value, tidelog.TidelogError), label
    assert str(info.value), label
    assert strict.end_offsets() == ends, label
    assert strict.read().equals(before), label
    after = strict._log.stats()
    assert after["frames"] == stats["frames"] and after["bytes"] == stats["bytes"], label


def test_schema_mismatch_message_names_the_column(strict):
    bad = pa.RecordBatch.from_arrays(
        [pa.array([1], pa.timestamp("ns")), pa.array([1], pa.int64()), pa.array([1.0])],
        names=["ts", "sensor_id", "value"])
    with pytest.raises(tidelog.SchemaMismatchError, match="sensor_id"):
        strict.append(bad)


def test_append_rejects_other_objects(strict):
    with pytest.raises(TypeError):
        strict.append([1, 2, 3])
    with pytest.raises(TypeError):
        strict.append("not data")


def test_key_or_timestamp_column_must_exist(log, sensors_schema):
    with pytest.raises(tidelog.TidelogError):
        log.create_topic("a", sensors_schema, key="nope")
    with pytest.raises(tidelog.TidelogError):
        log.create_topic("b", sensors_schema, timestamp="nope")
    with pytest.raises(tidelog.TidelogError):
        log.create_topic("c", sensors_schema, timestamp="value")  # float64 is no timestamp
    assert log.topics() == []


# ------------------------------------------------------------------ read-only
def test_read_only_rejects_writes(log_dir, sensors_schema):
    with tidelog.open(log_dir) as w:
        w.create_topic("t", sensors_schema).append(make_sensors(10))
    with tidelog.open(log_dir, read_only=True) as ro:
        t = ro.topic("t")
        with pytest.raises(tidelog.ReadOnlyError):
            t.append(make_sensors(1))
        with pytest.raises(tidelog.ReadOnlyError):
            ro.create_topic("u", sensors_schema)
        with pytest.raises(tidelog.ReadOnlyError):
            ro.delete_topic("t")
        assert isinstance(tidelog.ReadOnlyError("x"), tidelog.TidelogError)
        assert t.read().num_rows == 10
        assert ro.topics() == ["t"]
    with tidelog.open(log_dir) as w:
        assert w.topic("t").end_offsets() == {0: 10}
        assert w.topics() == ["t"]


def test_read_only_needs_an_existing_log(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(tidelog.LogNotFoundError):
        tidelog.open(missing, read_only=True)
    assert issubclass(tidelog.LogNotFoundError, tidelog.TidelogError)
    assert not missing.exists()


# ------------------------------------------------------------------ topic names
BAD_NAMES = ["../x", "a/b", "", "a" * 250, "é", ".", "..", "a b", "x\x00", "/abs", "..\\x", "tab\t", "a:b", "ü" * 3]
GOOD_NAMES = ["a", "a" * 249, "sensors.v2", "my_topic-1", "...", ".hidden", "-", "_", "A.b-C_9"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_topic_names(log, log_dir, name):
    before = set(os.listdir(log_dir.parent))
    with pytest.raises(tidelog.InvalidTopicNameError):
        log.create_topic(name, SENSORS_SCHEMA)
    with pytest.raises(tidelog.InvalidTopicNameError):
        log.topic(name)
    assert log.topics() == []
    assert set(os.listdir(log_dir.parent)) == before  # nothing escaped the log folder
    topics_dir = log_dir / "topics"
    assert not topics_dir.exists() or os.listdir(topics_dir) == []


def test_invalid_topic_name_types(log):
    for name in (None, 5, b"abc"):
        with pytest.raises(tidelog.InvalidTopicNameError):
            log.create_topic(name, SENSORS_SCHEMA)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_topic_names(log, log_dir, name):
    t = log.create_topic(name, SENSORS_SCHEMA)
    t.append(make_sensors(2))
    assert log.topic(name).read().num_rows == 2
    assert name in log.topics()
    assert os.path.isdir(log_dir / "topics" / name)


# ------------------------------------------------------------------ config values
BAD_CONFIGS = [
    {"partitions": 0},
    {"partitions": -1},
    {"partitions": "2"},
    {"partitions": 1.5},
    {"durability": "sometimes"},
    {"durability": None},
    {"compression": "lz4"},
    {"compression": "gzip"},
    {"compression_level": 0},
    {"compression_level": 23},
    {"segment_bytes": 100},
    {"segment_bytes": 2**31},
    {"retention_ms": -5},
    {"retention_bytes": -1},
    {"retention_bytes": 1.5},
    {"segment_ms": -1},
    {"flush_interval_ms": 0},
]


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=[repr(c) for c in BAD_CONFIGS])
def test_bad_config_values(log, sensors_schema, config):
    # A wrong type is a TypeError (as Python's own), a wrong value a ValueError.
    wrong_type = any(v is None or isinstance(v, (str, float)) and k not in ("durability", "compression")
                     for k, v in config.items())
    with pytest.raises(TypeError if wrong_type else ValueError):
        log.create_topic("t", sensors_schema, **config)
    assert log.topics() == []
    # the name is still free
    log.create_topic("t", sensors_schema)


def test_schema_must_be_a_schema(log):
    with pytest.raises(TypeError):
        log.create_topic("t", {"a": "int64"})
    with pytest.raises(ValueError):
        log.create_topic("t", pa.schema([("a", pa.int64()), ("a", pa.int32())]))
    assert log.topics() == []


def test_bad_read_arguments(log, sensors_schema):
    t = log.create_topic("t", sensors_schema, partitions=2, timestamp="ts")
    t.append(make_sensors(10))
    with pytest.raises(ValueError):
        t.read(partitions=[2])
    with pytest.raises(ValueError):
        t.read(columns=["nope"])
    with pytest.raises(ValueError):
        t.read(start_offset=-1)
    with pytest.raises(ValueError):  # strings are ISO-8601 times
        t.read(start_time="yesterday")


# ------------------------------------------------------------------ use after close
def test_use_after_close(log_dir, sensors_schema):
    lg = tidelog.open(log_dir)
    t = lg.create_topic("t", sensors_schema)
    t.append(make_sensors(3))
    scan = t.scan()
    lg.close()
    lg.close()  # closing twice is fine
    for call in (lambda: lg.topic("t"), lambda: lg.topics(), lambda: lg.create_topic("u", sensors_schema),
                 lambda: lg.delete_topic("t"), lambda: lg.stats(), lambda: lg.flush(),
                 lambda: t.append(make_sensors(1)), lambda: t.read(), lambda: t.scan(), lambda: list(scan),
                 lambda: t.describe(), lambda: t.end_offsets(), lambda: t.start_offsets(),
                 lambda: t.enforce_retention()):
        with pytest.raises(tidelog.TidelogError):
            call()
    with tidelog.open(log_dir) as again:
        assert again.topic("t").read().num_rows == 3


def test_context_manager_closes(log_dir, sensors_schema):
    with tidelog.open(log_dir) as lg:
        t = lg.create_topic("t", sensors_schema)
    with pytest.raises(tidelog.TidelogError):
        t.append(make_sensors(1))
    with pytest.raises(tidelog.TidelogError):
        lg.topics()
    with tidelog.open(log_dir) as lg:  # the lock was released
        assert lg.clean_shutdown


def test_use_of_deleted_topic(log, sensors_schema):
    t = log.create_topic("t", sensors_schema)
    t.append(make_sensors(3))
    log.delete_topic("t")
    with pytest.raises(tidelog.TidelogError):
        t.append(make_sensors(1))
    with pytest.raises(tidelog.TidelogError):
        t.read()


# ------------------------------------------------------- the native error contract
def test_every_native_error_code_maps_to_a_class_by_name():
    """Each errc of native/errors.h (tidelog._core.ErrorCode) has its class in
    errors._NATIVE_ERRORS: adding a code natively without a mapping fails here."""
    from tidelog import _core, errors

    names = [code.name for code in _core.ErrorCode]
    assert len(names) == len(set(names)) >= 11
    assert set(names) == set(errors._NATIVE_ERRORS), "a native error code without a Python class (or a stale entry)"
    for code in _core.ErrorCode:
        cls = errors._NATIVE_ERRORS[code.name]
        assert issubclass(cls, tidelog.TidelogError), code
        # The path error_bridge.h takes: the number becomes its name, the name its class.
        err = _core._error_from_native(int(code), "42", None)
        assert type(err) is cls, code
    assert type(_core._error_from_native(0, "a std::exception", None)) is tidelog.TidelogError
    assert errors._NATIVE_ERRORS["conflict"] is tidelog.IntegrityError
    assert errors._NATIVE_ERRORS["invalid_argument"] is tidelog.InvalidArgumentError


def test_invalid_argument_error_is_public_and_raised_natively(tmp_path):
    from tidelog import _core

    assert "InvalidArgumentError" in tidelog.__all__ and issubclass(tidelog.InvalidArgumentError, ValueError)
    nlog = _core.NativeLog(str(tmp_path / "log"))
    try:
        with pytest.raises(tidelog.InvalidArgumentError, match="segment_bytes"):
            nlog.open_partition(str(tmp_path / "log" / "t" / "0"), segment_bytes=0, durability="none")
    finally:
        nlog.close()


def test_corruption_place_arrives_as_fields(log_dir):
    """A read that meets a damaged frame raises CorruptionError whose place comes
    from native fields (not parsed out of the message)."""
    with tidelog.open(log_dir) as log:
        t = log.create_topic("metrics.v1", partitions=2)
        with log.producer(linger_ms=0) as producer:
            for i in range(4):
                producer.send("metrics.v1", value=b"v%d" % i, partition=1).result()  # a frame each
        frames = t._partitions[1].frames()
        victim = frames[2]
        path, at = victim.mapping.path, victim.address - victim.mapping.address + victim.length // 2
        base, end, position = victim.base_offset, victim.next_offset, victim.position
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x5A]))
    with tidelog.open(log_dir, read_only=True) as log:
        with pytest.raises(tidelog.CorruptionError) as info:
            log.topic("metrics.v1").read(partitions=1)
    e = info.value
    assert (e.topic, e.partition, e.segment, e.path) == ("metrics.v1", 1, os.path.basename(path), path)
    assert (e.position, e.start_offset, e.end_offset) == (position, base, end)
    assert f"position {position}" in str(e)  # the message still says it for people


def test_corruption_fields_are_not_parsed_from_text():
    from tidelog import errors

    e = errors._from_native("corrupt", "topic 't' partition 1 segment 00000000000000000000.log position 64 "
                                       "(offsets 0..9): bad CRC", None)
    assert type(e) is tidelog.CorruptionError
    assert (e.topic, e.partition, e.segment, e.position, e.start_offset, e.end_offset) == (None,) * 6
    assert not hasattr(errors, "_FRAME_PLACE")


@pytest.mark.parametrize("name, kafka", [
    ("UnknownTopicError", "UNKNOWN_TOPIC_OR_PARTITION"),
    ("CorruptionError", "CORRUPT_MESSAGE"),
    ("RecordTooLargeError", "MESSAGE_TOO_LARGE"),
    ("TopicExistsError", "TOPIC_ALREADY_EXISTS"),
    ("InvalidTopicNameError", "INVALID_TOPIC_EXCEPTION"),
    ("InvalidArgumentError", "INVALID_CONFIG"),
    ("SchemaMismatchError", "INVALID_RECORD"),
    ("TidelogIOError", "KAFKA_STORAGE_ERROR"),
    ("TidelogError", "UNKNOWN_SERVER_ERROR"),
])
def test_kafka_error_names(name, kafka):
    assert getattr(tidelog, name).kafka_error == kafka


def test_every_error_class_has_a_kafka_name():
    from tidelog import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, tidelog.TidelogError)]
    assert len(classes) >= 16
    for cls in classes:
        assert isinstance(cls.kafka_error, str) and cls.kafka_error.isupper(), cls


@pytest.mark.parametrize("settings", [
    {"partitions": 0}, {"durability": "sometimes"}, {"retention_ms": -5}, {"compression": "lz9"},
    {"segment_bytes": 1}, {"flush_interval_ms": 0}, {"cleanup_policy": "shred"},
])
def test_bad_topic_settings_are_invalid_argument_errors(tmp_path, settings):
    import pyarrow as pa

    with tidelog.open(tmp_path / "log") as log:
        with pytest.raises(tidelog.InvalidArgumentError):
            log.create_topic("t", schema=pa.schema([("x", pa.int64())]), **settings)
        assert log.topics() == []
