"""Compacted topics' configuration: cleanup_policy and Kafka's compaction
settings, alter_topic, keys required, tombstones, the table view, describe()."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

import tidelog
from tidelog.compaction import describe_partition

KV_SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("id", pa.int64()), ("v", pa.float64()), ("s", pa.string())])


def _meta(log, name):
    with open(os.path.join(log.path, "topics", name, "topic.json")) as f:
        return json.load(f)


def test_compaction_settings_are_stored_with_kafkas_defaults(log):
    t = log.create_topic("plain", partitions=1)
    c = log.create_topic("cdc", cleanup_policy="compact")
    assert (t.config.cleanup_policy, t.config.min_compaction_lag_ms, t.config.delete_retention_ms,
            t.config.min_cleanable_dirty_ratio) == ("delete", 0, 86_400_000, 0.5)
    assert c.config.compacted and not c.config.deletes
    assert _meta(log, "plain")["format_version"] == 2
    # A topic that may hold sparse frames is one older builds must refuse.
    assert _meta(log, "cdc")["format_version"] == 3
    both = log.create_topic("both", cleanup_policy="delete,compact", min_compaction_lag_ms=5,
                            delete_retention_ms=10, min_cleanable_dirty_ratio=0.25)
    assert both.config.cleanup_policy == "compact,delete"
    log.close()
    log2 = tidelog.open(log.path)
    try:
        assert log2.topic("both").config == both.config
        assert log2.topic("cdc").config.compacted
    finally:
        log2.close()


@pytest.mark.parametrize("kwargs, error", [
    ({"cleanup_policy": "forever"}, ValueError),
    ({"cleanup_policy": ""}, ValueError),
    ({"cleanup_policy": 3}, TypeError),
    ({"min_compaction_lag_ms": -1}, ValueError),
    ({"delete_retention_ms": -5}, ValueError),
    ({"delete_retention_ms": 1.5}, TypeError),
    ({"min_cleanable_dirty_ratio": 1.5}, ValueError),
    ({"min_cleanable_dirty_ratio": "half"}, ValueError),
])
def test_bad_compaction_settings_are_refused(log, kwargs, error):
    with pytest.raises(error):
        log.create_topic("t", **kwargs)
    assert "t" not in log.topics()


def test_a_compacted_columnar_topic_needs_a_key_column(log):
    with pytest.raises(ValueError, match="key"):
        log.create_topic("nokey", KV_SCHEMA, cleanup_policy="compact")
    log.create_topic("withkey", KV_SCHEMA, key="id", timestamp="ts", cleanup_policy="compact")


def test_records_without_a_key_are_refused_and_nothing_is_written(log):
    log.create_topic("cdc", cleanup_policy="compact")
    cols = log.create_topic("cols", pa.schema([("id", pa.int64()), ("v", pa.float64())]), key="id",
                            cleanup_policy="compact")
    with log.producer(linger_ms=0) as p:
        p.send("cdc", key=b"a", value=b"1").result()
        with pytest.raises(tidelog.InvalidRecordError, match="key"):
            p.send("cdc", value=b"no key")
        with pytest.raises(tidelog.InvalidRecordError):
            p.send_many("cdc", [b"x", b"y"], keys=[b"k", None])
        with pytest.raises(tidelog.InvalidRecordError):
            p.send_many("cdc", [b"x"])
    with pytest.raises(tidelog.InvalidRecordError):
        cols.append({"id": [1, None, 3], "v": [1.0, 2.0, 3.0]})
    assert log.topic("cdc").end_offsets() == {0: 1}
    assert cols.end_offsets() == {0: 0}


def test_tombstones_and_the_table_view(log):
    t = log.create_topic("cdc", partitions=3, cleanup_policy="compact")
    with log.producer(linger_ms=0) as p:
        for i in range(30):
            p.send("cdc", key=f"k{i % 7}".encode(), value=f"v{i}".encode())
    t.tombstone([b"k3", b"k5"])
    table = t.table()
    latest = {f"k{i % 7}".encode(): f"v{i}".encode() for i in range(30)}
    del latest[b"k3"], latest[b"k5"]
    assert dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist())) == latest
    assert t.table(columns=["key"]).column_names == ["key"]
    with pytest.raises(KeyError):
        t.table(columns=["nope"])


def test_columnar_tombstones_need_nullable_columns(log):
    t = log.create_topic("cols", KV_SCHEMA, key="id", timestamp="ts", cleanup_policy="compact")
    t.append({"ts": [1, 2, 3], "id": [1, 2, 1], "v": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]})
    t.tombstone([2])
    table = t.table()
    assert table.column("id").to_pylist() == [1]
    assert table.column("v").to_pylist() == [3.0]
    strict = log.create_topic("strict", pa.schema([("id", pa.int64()), pa.field("v", pa.float64(), nullable=False)]),
                              key="id", cleanup_policy="compact")
    with pytest.raises(tidelog.SchemaMismatchError, match="nullable"):
        strict.tombstone([1])
    assert strict.end_offsets() == {0: 0}


def test_table_of_an_empty_topic_and_of_a_topic_without_a_key(log):
    t = log.create_topic("cols", KV_SCHEMA, key="id", timestamp="ts", cleanup_policy="compact")
    assert t.table().num_rows == 0
    nokey = log.create_topic("nokey", KV_SCHEMA)
    with pytest.raises(ValueError, match="key"):
        nokey.table()


def test_alter_topic_changes_settings_durably_and_refuses_others(log):
    t = log.create_topic("events", partitions=2, retention_ms=None)
    assert _meta(log, "events")["format_version"] == 2
    new = log.alter_topic("events", cleanup_policy="compact,delete", retention_ms=60_000, delete_retention_ms=10)
    assert new["cleanup_policy"] == "compact,delete" and new["retention_ms"] == 60_000
    assert t.config.compacted and t.config.retention_ms == 60_000
    assert _meta(log, "events")["format_version"] == 3
    # Back to delete: the version stays 3 (sparse frames may be there).
    log.alter_topic("events", cleanup_policy="delete")
    assert _meta(log, "events")["format_version"] == 3
    before = _meta(log, "events")
    for bad in ({"segment_bytes": 1 << 20}, {"partitions": 4}, {"cleanup_policy": "nope"},
                {"delete_retention_ms": -1}, {"retention_ms": "soon"}, {"nonsense": 1}):
        with pytest.raises(tidelog.InvalidArgumentError):
            log.alter_topic("events", **bad)
    assert _meta(log, "events") == before
    with pytest.raises(tidelog.UnknownTopicError):
        log.alter_topic("missing", retention_ms=1)
    ro = tidelog.open(log.path, read_only=True)
    try:
        with pytest.raises(tidelog.ReadOnlyError):
            ro.alter_topic("events", retention_ms=1)
    finally:
        ro.close()


def test_compact_alone_ignores_retention_and_alter_brings_it_back(log):
    t = log.create_topic("c", cleanup_policy="compact", retention_ms=0, segment_bytes=4096)
    with log.producer(linger_ms=0) as p:
        for i in range(50):
            p.send("c", key=b"k%d" % i, value=b"x" * 200, timestamp_ms=1_577_836_800_000 + i)
    t.enforce_retention()
    assert t.start_offsets() == {0: 0}  # Kafka ignores retention.ms under cleanup.policy=compact
    log.alter_topic("c", cleanup_policy="compact,delete")
    t.enforce_retention()
    assert t.start_offsets()[0] > 0


def test_another_process_sees_an_altered_configuration(log):
    t = log.create_topic("c", retention_ms=None, segment_bytes=4096)
    with log.producer(linger_ms=0) as p:
        for i in range(50):
            p.send("c", key=b"k%d" % i, value=b"x" * 200, timestamp_ms=1_577_836_800_000 + i)
    # Another process alters retention; this handle's housekeeping (the cleaner
    # thread reloads topic.json, retention runs every second) applies it.
    log.alter_topic("c", cleanup_policy="compact")  # this handle now runs the cleaner thread
    script = textwrap.dedent("""
        import sys, tidelog
        log = tidelog.open(sys.argv[1])
        log.alter_topic("c", cleanup_policy="compact,delete", retention_ms=0)
        log.close()
    """)
    subprocess.run([sys.executable, "-c", script, log.path], check=True, timeout=60)
    deadline = time.monotonic() + 10
    while t.start_offsets()[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert t.config.retention_ms == 0 and t.config.deletes
    assert t.start_offsets()[0] > 0


def test_describe_reports_compaction_fields(log):
    t = log.create_topic("c", cleanup_policy="compact", segment_bytes=4096)
    with log.producer(linger_ms=0) as p:
        for i in range(40):
            p.send("c", key=b"k%d" % (i % 4), value=b"x" * 200)
    part = t.describe()["partitions"][0]
    assert part["compaction"]["dirty_ratio"] == 1.0
    assert part["compaction"]["last_compaction"] is None
    assert part["compaction"]["bytes_reclaimed"] == 0
    assert describe_partition(os.path.join(log.path, "topics", "c", "0"))["clean_end_offset"] == 0
    assert "compaction" not in log.create_topic("plain").describe()["partitions"][0]


def test_the_topics_command_alters_describes_and_compacts(log, capsys):
    from tidelog.cli import main

    log.create_topic("c", segment_bytes=4096)
    with log.producer(linger_ms=0) as p:
        for i in range(60):
            p.send("c", key=b"k%d" % (i % 3), value=b"x" * 100)
    path = log.path
    log.close()
    assert main(["topics", "alter", path, "c", "--set", "cleanup.policy=compact", "delete_retention_ms=0"]) == 0
    assert "cleanup_policy = compact" in capsys.readouterr().out
    assert main(["topics", "compact", path, "c"]) == 0
    assert "records_removed" in capsys.readouterr().out
    assert main(["topics", "describe", path, "c"]) == 0
    out = capsys.readouterr().out
    assert "cleanup_policy=compact" in out and "dirty ratio" in out
    assert main(["topics", "list", path, "--names"]) == 0 and capsys.readouterr().out.split() == ["c"]
    assert main(["topics", "alter", path, "c", "--set", "segment_bytes=1"]) == 2  # a bad value: exit 2, one line
    assert "segment_bytes" in capsys.readouterr().err
    assert main(["topics", "alter", path, "c", "--set", "delete_retention_ms=soon"]) == 2
    assert "takes a number" in capsys.readouterr().err
