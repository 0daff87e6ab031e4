"""``tidelog topics`` and ``tidelog stats`` as subprocesses against a real log."""
from __future__ import annotations

import json

import pyarrow as pa
from _helpers import assert_cli_error, run_tidelog

import tidelog


def test_create_list_describe_alter_delete(tmp_path):
    data = tmp_path / "data"
    proc = run_tidelog("topics", "create", data, "orders", "--partitions", "3")  # creates the log folder too
    assert proc.returncode == 0 and "3 partition(s), byte records" in proc.stdout
    proc = run_tidelog("topics", "create", data, "sensors", "-p", "2", "--key", "sensor_id", "--timestamp", "ts",
                       "--schema", "ts:timestamp[ns],sensor_id:int32,value:float64,zone:timestamp[ms, tz=UTC]",
                       "--compression", "zstd", "--set", "retention_ms=86400000", "segment_bytes=64M")
    assert proc.returncode == 0, proc.stderr
    with tidelog.open(data, read_only=True) as log:
        t = log.topic("sensors")
        assert t.schema.types == [pa.timestamp("ns"), pa.int32(), pa.float64(), pa.timestamp("ms", tz="UTC")]
        assert (t.config.key, t.config.timestamp, t.config.compression) == ("sensor_id", "ts", "zstd")
        assert (t.config.retention_ms, t.config.segment_bytes) == (86_400_000, 64 << 20)
        assert log.topic("orders").partitions == 3

    proc = run_tidelog("topics", "list", data)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].split()[:4] == ["TOPIC", "PARTITIONS", "RECORDS", "BYTES"]
    assert [line.split()[0] for line in lines[1:]] == ["orders", "sensors"]
    assert run_tidelog("topics", "list", data, "--names").stdout.split() == ["orders", "sensors"]

    proc = run_tidelog("topics", "describe", data, "sensors")
    assert proc.returncode == 0 and "schema: ts: timestamp[ns], sensor_id: int32" in proc.stdout
    d = json.loads(run_tidelog("topics", "describe", data, "sensors", "--json").stdout)
    assert d["name"] == "sensors" and len(d["partitions"]) == 2

    proc = run_tidelog("topics", "alter", data, "orders", "--set", "retention.ms=3600000")
    assert proc.returncode == 0 and "retention_ms = 3600000" in proc.stdout

    proc = run_tidelog("topics", "delete", data, "orders")
    assert proc.returncode == 0 and "deleted topic 'orders'" in proc.stdout
    assert run_tidelog("topics", "list", data, "--names").stdout.split() == ["sensors"]


def test_bad_topic_commands(tmp_path):
    data = tmp_path / "data"
    assert run_tidelog("topics", "create", data, "t").returncode == 0
    assert_cli_error(run_tidelog("topics", "create", data, "t"), 1, "already exists")
    assert_cli_error(run_tidelog("topics", "create", data, "bad/name"), 2, "bad/name")
    assert_cli_error(run_tidelog("topics", "create", data, "c", "--schema", "a:int99"), 2, "unknown type 'int99'")
    assert_cli_error(run_tidelog("topics", "create", data, "c", "--schema", "justaname"), 2, "NAME:TYPE")
    assert_cli_error(run_tidelog("topics", "create", data, "c", "--key", "k"), 2, "--schema")
    assert_cli_error(run_tidelog("topics", "create", data, "c", "--partitions", "0"), 2, "partitions")
    assert_cli_error(run_tidelog("topics", "describe", data, "nope"), 2, "no topic 'nope'")
    assert_cli_error(run_tidelog("topics", "alter", data, "t", "--set", "retention_ms=soon"), 2, "takes a number")
    assert_cli_error(run_tidelog("topics", "alter", data, "t", "--set", "novalue"), 2, "NAME=VALUE")
    assert_cli_error(run_tidelog("topics", "alter", data, "t", "--set", "segment_bytes=1"), 2, "segment_bytes")
    assert_cli_error(run_tidelog("topics", "delete", data, "t", "nope"), 2, "nothing was deleted")
    assert run_tidelog("topics", "list", data, "--names").stdout.split() == ["t"]  # nothing was deleted


def test_compact(tmp_path):
    data = tmp_path / "data"
    assert run_tidelog("topics", "create", data, "acc", "--set", "cleanup_policy=compact",
                       "delete_retention_ms=0", "segment_bytes=4096").returncode == 0
    lines = "".join(f"k{i % 3}:{'x' * 100}\n" for i in range(60))
    assert run_tidelog("produce", data, "acc", "-K:", input=lines).returncode == 0
    proc = run_tidelog("topics", "compact", data, "acc")
    assert proc.returncode == 0 and "records_removed" in proc.stdout


def test_stats(tmp_path):
    data = tmp_path / "data"
    assert run_tidelog("topics", "create", data, "orders", "-p", "2").returncode == 0
    assert run_tidelog("produce", data, "orders", input="a\nb\nc\n").returncode == 0
    assert run_tidelog("consume", data, "orders", "--group", "g", "-n", "1").returncode == 0
    proc = run_tidelog("stats", data)
    assert proc.returncode == 0, proc.stderr
    assert "1 topics, 3 records" in proc.stdout and "1 consumer groups" in proc.stdout
    assert any(line.split()[:2] == ["orders", "bytes"] for line in proc.stdout.splitlines())
    assert any(line.split()[:2] == ["g", "Empty"] for line in proc.stdout.splitlines())
    figures = json.loads(run_tidelog("stats", data, "--json").stdout)
    assert figures["records"] == 3 and figures["groups"][0]["lag"] == 2
