"""``tidelog produce`` as a subprocess: raw lines, JSON lines and CSV into byte
and columnar topics, keys, headers, partitions, rows that do not fit (skip
with a count, or stop with nothing after them written), bad options."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from _helpers import assert_cli_error, kafka_partition, run_tidelog

import tidelog

SCHEMA = "ts:timestamp[ns],sensor_id:int32,value:float64,name:string"


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    assert run_tidelog("topics", "create", d, "orders", "-p", "3").returncode == 0
    assert run_tidelog("topics", "create", d, "sensors", "-p", "2", "--key", "sensor_id", "--timestamp", "ts",
                       "--schema", SCHEMA).returncode == 0
    return d


def _records(data, topic="orders"):
    with tidelog.open(data, read_only=True) as log:
        c = log.consumer([topic])
        out = []
        while (r := c.poll(timeout=0)) is not None:
            out.append(r)
        return out


def _table(data, topic="sensors") -> pa.Table:
    with tidelog.open(data, read_only=True) as log:
        return log.topic(topic).read().sort_by("ts")


def test_raw_lines_with_header_and_partition(data):
    proc = run_tidelog("produce", data, "orders", "--header", "source=cli", "-H", "v=2", "--partition", "1",
                       input="one\r\ntwo\n\nthree")
    assert proc.returncode == 0, proc.stderr
    assert "produced 3 records" in proc.stderr and "records/s" in proc.stderr
    recs = _records(data)
    assert [r.value for r in recs] == [b"one", b"two", b"three"]
    assert {r.partition for r in recs} == {1}
    assert all(r.headers == [("source", b"cli"), ("v", b"2")] and r.key is None for r in recs)


def test_raw_key_delimiter_and_fixed_key(data):
    assert run_tidelog("produce", data, "orders", "-K", ":", input="k1:v:1\nk2:v2\n").returncode == 0
    assert run_tidelog("produce", data, "orders", "--key", "fixed", "-q", input="v3\n").returncode == 0
    recs = {r.value: r for r in _records(data)}
    assert recs[b"v:1"].key == b"k1" and recs[b"v2"].key == b"k2" and recs[b"v3"].key == b"fixed"
    assert recs[b"v:1"].partition == kafka_partition(b"k1", 3)  # keyed: Kafka's partitioner


def test_key_field_reads_json_lines_from_stdin(data):
    assert run_tidelog("produce", data, "orders", "--key-field", "id", input='{"id": "x"}\n').returncode == 0
    assert [r.key for r in _records(data)] == [b"x"]


def test_json_lines_into_a_byte_topic_keyed_by_a_field(data, tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text('{"id": "a", "n": 1}\n{"id": 7, "n": 2}\n')
    proc = run_tidelog("produce", data, "orders", f, "--key-field", "id")
    assert proc.returncode == 0, proc.stderr
    recs = sorted(_records(data), key=lambda r: json.loads(r.value)["n"])
    assert [(r.key, json.loads(r.value)) for r in recs] == [(b"a", {"id": "a", "n": 1}), (b"7", {"id": 7, "n": 2})]


def test_csv_into_a_byte_topic_becomes_json_objects(data, tmp_path):
    f = tmp_path / "rows.csv"
    f.write_text('id,text\n1,"hello, world"\n2,"two\nlines"\n')
    assert run_tidelog("produce", data, "orders", f, "--key-field", "id").returncode == 0
    values = sorted(json.loads(r.value)["id"] for r in _records(data))
    assert values == ["1", "2"]
    assert {json.loads(r.value)["text"] for r in _records(data)} == {"hello, world", "two\nlines"}


def test_json_lines_into_a_columnar_topic(data):
    lines = [json.dumps({"ts": f"2024-01-01T00:00:{i:02d}", "sensor_id": i % 4, "value": i * 0.5, "name": f"s{i}"})
             for i in range(50)]
    lines.append(json.dumps({"ts": 1704067250000000000, "sensor_id": 1}))  # int ns, fields left out: null
    proc = run_tidelog("produce", data, "sensors", input="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "produced 51 records" in proc.stderr
    t = _table(data)
    assert t.num_rows == 51 and t["value"].to_pylist()[:3] == [0.0, 0.5, 1.0]
    assert t["ts"][0].as_py() == dt.datetime(2024, 1, 1)
    assert t["ts"][50].value == 1704067250000000000 and t["name"][50].as_py() is None


def test_csv_into_a_columnar_topic(data, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("sensor_id,ts,value\n3,2024-01-01T00:00:01,1.5\n4,2024-01-01 00:00:02,\n5,1704067203000000000,2\n")
    proc = run_tidelog("produce", data, "sensors", f)
    assert proc.returncode == 0, proc.stderr
    t = _table(data)
    assert t["sensor_id"].to_pylist() == [3, 4, 5] and t["value"].to_pylist() == [1.5, None, 2.0]
    assert t["name"].null_count == 3


ROWS_THAT_DO_NOT_FIT = [
    '{"ts": "2024-01-01T00:00:00", "sensor_id": 1, "value": 1}',
    '{"ts": "2024-01-01T00:00:01", "sensor_id": 2, "value": "high"}',   # line 2: not a number
    'not json',                                                          # line 3
    '{"ts": "2024-01-01T00:00:03", "sensor_id": 1.5}',                  # line 4: not an integer
    '{"ts": "2024-01-01T00:00:04", "sensor_id": 1, "colour": "red"}',   # line 5: not in the schema
    '{"ts": "yesterday", "sensor_id": 1}',                               # line 6: not a time
    '{"ts": "2024-01-01T00:00:06", "sensor_id": 99999999999}',          # line 7: out of int32
    '{"ts": "2024-01-01T00:00:07Z", "sensor_id": 7, "value": 7}',
]


def test_rows_that_do_not_fit_stop_the_run_by_default(data):
    proc = run_tidelog("produce", data, "sensors", input="\n".join(ROWS_THAT_DO_NOT_FIT) + "\n")
    line = assert_cli_error(proc, 1, "line 2 of stdin", "'value'", "'high'", "1 record before it was written")
    assert "--on-error skip" in line
    assert _table(data)["sensor_id"].to_pylist() == [1]  # what came before, nothing after


def test_rows_that_do_not_fit_are_skipped_and_counted(data):
    proc = run_tidelog("produce", data, "sensors", "--on-error", "skip",
                       input="\n".join(ROWS_THAT_DO_NOT_FIT) + "\n")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "produced 2 records" in err and "skipped 6 rows that did not fit" in err
    for where, why in [(2, "'high' is not a number"), (3, "not JSON"), (4, "1.5 is not an integer"),
                       (5, "'colour' is not in the topic's schema"), (6, "not an ISO-8601 time")]:
        assert f"line {where} of stdin: " in err and why in err, (where, why, err)
    assert "... and 1 more" in err
    assert _table(data)["sensor_id"].to_pylist() == [1, 7]


def test_csv_rows_that_do_not_fit(data, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("ts,sensor_id,value\n2024-01-01T00:00:00,1,1\n2024-01-01T00:00:01,x,2\n2024-01-01T00:00:02,3\n"
                 "2024-01-01T00:00:03,4,4\n")
    assert_cli_error(run_tidelog("produce", data, "sensors", f), 1, f"line 3 of {f}", "'x' is not an integer")
    proc = run_tidelog("produce", data, "sensors", f, "--on-error", "skip")
    assert proc.returncode == 0 and "skipped 2 rows" in proc.stderr and "2 fields under a header of 3" in proc.stderr
    assert _table(data)["sensor_id"].to_pylist() == [1, 1, 4]
    g = tmp_path / "g.csv"
    g.write_text("ts,colour\n2024-01-01T00:00:00,red\n")
    assert_cli_error(run_tidelog("produce", data, "sensors", g, "--on-error", "skip"), 1,
                     "CSV column 'colour' is not in the topic's schema")


def test_byte_topic_bad_json_and_missing_key_field(data):
    text = '{"id": 1}\nnope\n{"other": 2}\n{"id": 3}\n'
    assert_cli_error(run_tidelog("produce", data, "orders", "-f", "json", "--key-field", "id", input=text), 1,
                     "line 2 of stdin", "not JSON")
    proc = run_tidelog("produce", data, "orders", "-f", "json", "--key-field", "id", "--on-error", "skip", input=text)
    assert proc.returncode == 0 and "skipped 2 rows" in proc.stderr and "no field 'id' for the key" in proc.stderr
    assert sorted(r.key for r in _records(data)) == [b"1", b"1", b"3"]


def test_large_input_goes_in_batches(data, tmp_path):
    n = 200_000
    f = tmp_path / "big.jsonl"
    with open(f, "w") as out:
        for i in range(n):
            out.write(f'{{"ts": {1_704_067_200_000_000_000 + i}, "sensor_id": {i % 16}, "value": {i}}}\n')
    proc = run_tidelog("produce", data, "sensors", f, "--batch-bytes", "1M", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"produced {n:,} records" in proc.stderr
    with tidelog.open(data, read_only=True) as log:
        t = log.topic("sensors")
        assert sum(t.end_offsets().values()) == n
        assert sorted(t.read(columns=["value"])["value"].to_pylist()) == list(map(float, range(n)))
        frames = sum(1 for p in range(t.partitions) for _ in t.scan(partitions=[p]))
        assert frames < 100  # batched: about 1 MiB of input per append, not a row at a time


@pytest.mark.parametrize("args, code, fragments", [
    (["sensors", "--key", "k"], 2, ["--key is for byte-record topics", "'sensor_id'"]),
    (["sensors", "--header", "a=b"], 2, ["--header is for byte-record topics"]),
    (["sensors", "--format", "raw"], 2, ["--format raw is for byte-record topics"]),
    (["orders", "--key", "a", "--key-field", "b"], 2, ["pick one"]),
    (["orders", "--header", "nameonly"], 2, ["NAME=VALUE"]),
    (["orders", "--partition", "3"], 2, ["partitions 0..2"]),
    (["orders", "-f", "json", "-K", ":"], 2, ["--key-delimiter splits raw lines"]),
    (["orders", "missing.jsonl"], 2, ["missing.jsonl does not exist"]),
    (["nosuch"], 2, ["no topic 'nosuch'"]),
    (["orders", "-K", ":"], 1, ["no key delimiter"]),
    (["orders", "-f", "raw", "--key-field", "id"], 2, ["--key-field reads a field of JSON or CSV input"]),
])
def test_bad_produce_options(data, args, code, fragments):
    assert_cli_error(run_tidelog("produce", data, *args, input="line\n"), code, *fragments)


@pytest.mark.parametrize("after_s", [0.3, 0.8, 1.5])
def test_produce_sigkilled_mid_stream_leaves_whole_rows_in_order(data, tmp_path, after_s):
    """SIGKILL `tidelog produce` while it streams JSON lines into a columnar
    topic: what is there after is whole rows, in the input's order, with no
    gap (a prefix of each partition's input), and the log verifies clean."""
    import os
    import signal
    import subprocess
    import sys
    import time

    lines = tmp_path / "rows.jsonl"
    with open(lines, "w") as f:
        for i in range(400_000):
            f.write(json.dumps({"ts": i, "sensor_id": i % 2, "value": float(i), "name": f"n{i}"}) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "tidelog", "produce", str(data), "sensors", str(lines),
                             "--batch-bytes", "256K"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_tidelog("verify", data).returncode == 0
    with tidelog.open(data, read_only=True) as log:
        for p in range(2):
            part = log.topic("sensors").read(partitions=[p])
            for sensor in set(part.column("sensor_id").to_pylist()):
                got = [v for s, v in zip(part.column("sensor_id").to_pylist(), part.column("value").to_pylist())
                       if s == sensor]
                want = [float(i) for i in range(sensor, sensor + 2 * len(got), 2)]
                assert got == want   # no torn row, no gap, no reordering
