"""``tidelog consume`` and ``tidelog groups`` as subprocesses against a real
log: every --from form, --partition, -n, --follow, --group (the second run
goes on where the first committed), every --format, a reader that goes away,
group offsets reset, and bad arguments."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time

import pytest
from _helpers import assert_cli_error, run_tidelog

import tidelog

T0 = "2024-01-01T00:00:00"


@pytest.fixture
def data(tmp_path):
    """orders: 2 partitions, 10 records each (values p<partition>-<i>, keys k<i>);
    sensors: columnar, 20 rows one second apart from T0."""
    d = tmp_path / "data"
    assert run_tidelog("topics", "create", d, "orders", "-p", "2").returncode == 0
    for p in (0, 1):
        lines = "".join(f"k{i}:p{p}-{i}\n" for i in range(10))
        assert run_tidelog("produce", d, "orders", "-K:", "-p", p, "-H", "h=1", input=lines).returncode == 0
    assert run_tidelog("topics", "create", d, "sensors", "--timestamp", "ts",
                       "--schema", "ts:timestamp[ns],sensor_id:int32,value:float64").returncode == 0
    rows = "".join(json.dumps({"ts": f"2024-01-01T00:00:{i:02d}", "sensor_id": i, "value": i / 2}) + "\n"
                   for i in range(20))
    assert run_tidelog("produce", d, "sensors", input=rows).returncode == 0
    return d


def _values(proc) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_raw_by_default_every_record_then_exit(data):
    values = _values(run_tidelog("consume", data, "orders"))
    assert sorted(values) == sorted(f"p{p}-{i}" for p in (0, 1) for i in range(10))


@pytest.mark.parametrize("start, expected", [
    ("earliest", list(range(10))), ("latest", []), ("7", [7, 8, 9]), ("-2", [8, 9]), ("999", []), ("-99", list(range(10))),
])
def test_from_positions(data, start, expected):
    values = _values(run_tidelog("consume", data, "orders", "--partition", "1", "--from", start))
    assert values == [f"p1-{i}" for i in expected]


def test_from_a_time_and_a_duration_ago(data):
    rows = [json.loads(line) for line in _values(run_tidelog("consume", data, "sensors", "--from", "2024-01-01T00:00:15"))]
    assert [r["sensor_id"] for r in rows] == [15, 16, 17, 18, 19] and rows[0]["ts"] == "2024-01-01T00:00:15"
    assert _values(run_tidelog("consume", data, "sensors", "--from", "1h")) == []  # written in 2024, not in the last hour
    assert len(_values(run_tidelog("consume", data, "orders", "--from", "1h"))) == 20


def test_count(data):
    assert len(_values(run_tidelog("consume", data, "orders", "-n", "3"))) == 3


def test_formats(data):
    rows = [json.loads(line) for line in _values(run_tidelog("consume", data, "orders", "-p", "0", "--format", "json"))]
    assert rows[0]["key"] == "k0" and rows[0]["value"] == "p0-0" and rows[0]["headers"] == {"h": "1"}
    assert (rows[0]["partition"], rows[0]["offset"]) == (0, 0) and rows[0]["timestamp"].endswith("+00:00")
    out = run_tidelog("consume", data, "orders", "-p", "0", "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 10 and table[3]["value"] == "p0-3" and table[3]["key"] == "k3"
    out = run_tidelog("consume", data, "sensors", "--format", "csv", "-n", "2").stdout
    assert out.splitlines() == ["partition,offset,ts,sensor_id,value", "0,0,2024-01-01T00:00:00,0,0.0",
                                "0,1,2024-01-01T00:00:01,1,0.5"]
    lines = _values(run_tidelog("consume", data, "sensors", "--format", "table", "-n", "3"))
    assert lines[0].split() == ["partition", "offset", "ts", "sensor_id", "value"] and len(lines) == 4
    assert _values(run_tidelog("consume", data, "orders", "-p", "1", "-n", "1", "--format", "raw", "-K", "="))[0] == "k0=p1-0"


def test_follow_prints_new_records_until_n(data):
    proc = subprocess.Popen([sys.executable, "-m", "tidelog", "consume", str(data), "orders", "--from", "latest",
                             "--follow", "-n", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # it is waiting at the end
        assert proc.poll() is None
        assert run_tidelog("produce", data, "orders", "-p", "0", input="new1\nnew2\n").returncode == 0
        assert run_tidelog("produce", data, "orders", "-p", "1", input="new3\nnew4\n").returncode == 0
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["new1", "new2", "new3"]


def _committed(data, group: str) -> dict:
    with tidelog.open(data, read_only=True) as log:
        return {p: om.offset for (t, p), om in log.describe_group(group).offsets.items()}


def test_follow_stops_on_ctrl_c_with_130(data):
    proc = subprocess.Popen([sys.executable, "-m", "tidelog", "consume", str(data), "orders", "--follow",
                             "--group", "watchers"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        seen = 0
        while seen < 20 and time.monotonic() < deadline:
            seen += bool(proc.stdout.readline())
        # The 20 lines are out before their batch is committed: wait for the commit,
        # so that the Ctrl-C lands while it follows (the case under test).
        while _committed(data, "watchers") != {0: 10, 1: 10} and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(2)  # SIGINT
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    # it kept what it committed and left the group
    with tidelog.open(data) as log:
        d = log.describe_group("watchers")
        assert {p: om.offset for (t, p), om in d.offsets.items()} == {0: 10, 1: 10}
        assert [m for m in d.members if not m.departed] == []


def test_a_ctrl_c_after_a_batch_was_printed_commits_it(data, monkeypatch, capsys):
    """The window the Ctrl-C test above waits out: a batch written and flushed,
    its commit not yet made. An interrupt there still commits the batch."""
    import argparse

    from tidelog.cli import consume
    from tidelog.groups._consumer import GroupConsumer

    commits = []
    real = GroupConsumer.commit

    def interrupted_first_commit(self, *a, **kw):
        commits.append(len(commits))
        if len(commits) == 1:
            raise KeyboardInterrupt  # as if Ctrl-C landed on the way into the first commit
        return real(self, *a, **kw)

    monkeypatch.setattr(GroupConsumer, "commit", interrupted_first_commit)
    parser = argparse.ArgumentParser()
    consume.add_arguments(parser)
    args = parser.parse_args([str(data), "orders", "--group", "ctrl-c", "-n", "5"])
    with pytest.raises(KeyboardInterrupt):
        consume.main(args)
    assert len(capsys.readouterr().out.splitlines()) == 5  # the batch reached stdout
    assert len(commits) == 2  # and the interrupt committed it
    assert sum(_committed(data, "ctrl-c").values()) == 5


def test_group_second_run_goes_on_where_the_first_committed(data):
    first = _values(run_tidelog("consume", data, "orders", "--group", "g", "-n", "12"))
    second = _values(run_tidelog("consume", data, "orders", "--group", "g"))
    assert len(first) == 12 and len(second) == 8
    assert sorted(first + second) == sorted(f"p{p}-{i}" for p in (0, 1) for i in range(10))
    assert _values(run_tidelog("consume", data, "orders", "--group", "g")) == []

    proc = run_tidelog("groups", "list", data)
    assert proc.returncode == 0 and proc.stdout.split() == ["g"]
    proc = run_tidelog("groups", "describe", data, "g")
    assert proc.returncode == 0 and "group g: Empty" in proc.stdout
    assert json.loads(run_tidelog("groups", "describe", data, "g", "--json").stdout)["offsets"][0]["lag"] == 0

    proc = run_tidelog("groups", "reset-offsets", data, "g", "--to-offset", "orders:0=8", "orders:1=9")
    assert proc.returncode == 0 and "orders:0 -> 8" in proc.stdout
    assert sorted(_values(run_tidelog("consume", data, "orders", "--group", "g"))) == ["p0-8", "p0-9", "p1-9"]
    assert run_tidelog("groups", "reset-offsets", data, "g", "--to-earliest").returncode == 0
    assert len(_values(run_tidelog("consume", data, "orders", "--group", "g"))) == 20
    proc = run_tidelog("groups", "delete", data, "g")
    assert proc.returncode == 0 and run_tidelog("groups", "list", data).stdout.split() == []


def test_group_starts_latest_where_it_has_no_offsets(data):
    assert _values(run_tidelog("consume", data, "orders", "--group", "late", "--from", "latest")) == []
    assert run_tidelog("produce", data, "orders", "-p", "0", input="fresh\n").returncode == 0
    assert _values(run_tidelog("consume", data, "orders", "--group", "late")) == ["fresh"]


def test_a_reader_that_goes_away_commits_nothing_it_did_not_get(data):
    # `tidelog consume ... | head -1`: no traceback, exit 0
    shell = subprocess.run(f"{sys.executable} -m tidelog consume {data} orders --group pipe | head -1",
                           shell=True, capture_output=True, text=True, timeout=60)
    assert shell.stdout.count("\n") == 1 and "Traceback" not in shell.stderr and "Broken pipe" not in shell.stderr
    with tidelog.open(data) as log:
        assert sum(om.offset for om in log.describe_group("pipe").offsets.values()) <= 20


@pytest.mark.parametrize("args, code, fragments", [
    (["nosuch"], 2, ["no topic 'nosuch'"]),
    (["sensors", "--format", "raw"], 2, ["--format raw", "columnar"]),
    (["orders", "--partition", "5"], 2, ["partitions 0..1"]),
    (["orders", "--group", "g", "--partition", "0"], 2, ["exclude each other"]),
    (["orders", "--group", "g", "--from", "5"], 2, ["groups reset-offsets"]),
    (["orders", "--group", "bad/name"], 2, ["bad/name"]),
    (["orders", "--format", "json", "-K", ":"], 2, ["--key-delimiter goes with --format raw"]),
])
def test_bad_consume_arguments(data, args, code, fragments):
    assert_cli_error(run_tidelog("consume", data, *args), code, *fragments)


@pytest.mark.parametrize("args, code, fragments", [
    (["describe", "nog"], 2, ["no consumer group 'nog'"]),
    (["reset-offsets", "nog", "--to-earliest"], 2, ["nog"]),
    (["reset-offsets", "nog", "--to-offset", "garbage"], 2, ["TOPIC:PARTITION=OFFSET"]),
    (["delete", "nog"], 2, ["nog"]),
])
def test_bad_groups_arguments(data, args, code, fragments):
    assert_cli_error(run_tidelog("groups", args[0], data, *args[1:]), code, *fragments)


def test_groups_refuses_a_group_with_live_members(data):
    proc = subprocess.Popen([sys.executable, "-m", "tidelog", "consume", str(data), "orders", "--follow",
                             "--group", "busy"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(20):
            proc.stdout.readline()
        assert_cli_error(run_tidelog("groups", "delete", data, "busy"), 1, "busy")
        assert_cli_error(run_tidelog("groups", "reset-offsets", data, "busy", "--to-earliest"), 1, "busy")
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=30)
