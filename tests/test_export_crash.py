"""File exports killed with SIGKILL: ``tidelog export --incremental`` run in a
subprocess and killed at random moments many times (the topic growing in
between), then run to completion: the folder then holds every row of the
topic exactly once (DuckDB and pyarrow count the rows and their distinct
``seq`` values). Also killed at the steps around the commit (test-only
kill points), and one-off exports killed midway leave nothing.

The runs are slowed with the test-only environment variable
TIDELOG_EXPORT_TEST_SLEEP_S (a sleep after each row group written)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tidelog.export._writers import KILL_POINT_ENV, TEST_SLEEP_ENV

SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("value", pa.float64()),
                    ("seq", pa.int64())])
T0 = 1_796_342_400 * 10**9   # 2026-12-04T00:00:00Z


def rows(start: int, n: int) -> pa.RecordBatch:
    seq = np.arange(start, start + n, dtype=np.int64)
    return pa.record_batch([pa.array(T0 + seq * 10**9, pa.timestamp("ns")), pa.array((seq % 17).astype(np.int32)),
                            pa.array(seq * 0.25), pa.array(seq)], schema=SCHEMA)


def grow(topic, start: int, n: int, batch: int = 2_000) -> int:
    for at in range(start, start + n, batch):
        topic.append(rows(at, min(batch, start + n - at)))
    return start + n


def export_cmd(log_dir, out, *extra) -> list[str]:
    return [sys.executable, "-m", "tidelog.cli", "export", str(log_dir), "sensors", "--out", str(out),
            "--row-group-size", "500", "--progress", "never", *extra]


def env(**extra) -> dict:
    return {**os.environ, TEST_SLEEP_ENV: "0.01", **extra}


def check_committed_state(topic, out) -> None:
    """What the checkpoint says is exported is exactly there: the committed files (by their names)
    hold the rows of offsets [0, end) of every partition once each (leftovers of a dead run aside)."""
    import json

    from tidelog.export._checkpoint import DATA_FILE, NAME

    try:
        ends = {int(p): o for p, o in json.loads((out / NAME).read_text())["end_offsets"].items()}
    except FileNotFoundError:
        return
    committed = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs
                 if DATA_FILE.match(f) and int(DATA_FILE.match(f).group(2)) < ends[int(DATA_FILE.match(f).group(1))]]
    got = sorted(ds.dataset(committed, format="parquet").to_table(columns=["seq"]).column("seq").to_pylist())
    want = sorted(topic.read(end_offset=ends, columns=["seq"]).column("seq").to_pylist())
    assert got == want


def check_exactly_once(out, total: int) -> None:
    duckdb = pytest.importorskip("duckdb")
    n, distinct, lo, hi = duckdb.sql(f"select count(*), count(distinct seq), min(seq), max(seq) from "
                                     f"read_parquet('{out}/**/*.parquet', hive_partitioning=true)").fetchall()[0]
    assert (n, distinct, lo, hi) == (total, total, 0, total - 1)
    table = ds.dataset(str(out), partitioning="hive").to_table(columns=["seq"])
    assert sorted(table.column("seq").to_pylist()) == list(range(total))


@pytest.fixture
def sensors(log):
    return log.create_topic("sensors", schema=SCHEMA, partitions=4, key="sensor_id", timestamp="ts",
                            durability="interval")


def test_incremental_export_killed_at_random_moments(sensors, log_dir, tmp_path):
    """12 SIGKILLs at random moments of runs (starting, cleaning, writing, renaming, committing), every
    fourth run left to complete, the topic growing after every run: then one run to the end."""
    out = tmp_path / "out"
    rng = random.Random(20261205)
    total = grow(sensors, 0, 20_000)
    sensors.flush()
    kills = runs_done = attempts = 0
    while kills < 12:
        attempts += 1
        proc = subprocess.Popen(export_cmd(log_dir, out, "--incremental", "--partition-by", "date"), env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=None if attempts % 4 == 0 else rng.uniform(0.05, 1.2))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        rc = proc.wait()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        assert rc in (0, -signal.SIGKILL), stderr
        runs_done += rc == 0
        check_committed_state(sensors, out)
        total = grow(sensors, total, 3_000)
        sensors.flush()
    assert runs_done >= 3, (kills, runs_done, attempts)
    final = subprocess.run(export_cmd(log_dir, out, "--incremental", "--partition-by", "date"),
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    check_exactly_once(out, total)
    assert not [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]


@pytest.mark.parametrize("point", ["after-first-rename", "before-commit", "after-commit"])
def test_incremental_export_killed_around_its_commit(sensors, log_dir, tmp_path, point):
    out = tmp_path / "out"
    total = grow(sensors, 0, 6_000)
    sensors.flush()
    assert subprocess.run(export_cmd(log_dir, out, "--incremental")).returncode == 0
    total = grow(sensors, total, 3_000)
    sensors.flush()
    killed = subprocess.run(export_cmd(log_dir, out, "--incremental"), env={**os.environ, KILL_POINT_ENV: point})
    assert killed.returncode == -signal.SIGKILL
    total = grow(sensors, total, 1_000)
    sensors.flush()
    again = subprocess.run(export_cmd(log_dir, out, "--incremental", "--json"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    import json

    # killed after its commit: the next run exports only the rows appended since
    assert json.loads(again.stdout)["rows"] == (1_000 if point == "after-commit" else 4_000)
    check_exactly_once(out, total)


def staging_files(folder, pid: int) -> list[str]:
    """The files in the hidden staging folder of the one-off export to ``folder/out`` by process ``pid``."""
    prefix = f".out.tidelog-export-{pid}-"
    return [f for n in os.listdir(folder) if n.startswith(prefix) for _, _, fs in os.walk(folder / n) for f in fs]


def test_one_off_export_killed_leaves_nothing(sensors, log_dir, tmp_path):
    out = tmp_path / "out"
    total = grow(sensors, 0, 30_000)
    sensors.flush()
    rng = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen(export_cmd(log_dir, out), env=env(**{TEST_SLEEP_ENV: "0.05"}))
        deadline = time.monotonic() + 30
        while not staging_files(tmp_path, proc.pid) and time.monotonic() < deadline:   # until it writes
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.kill()
        proc.wait()
        assert not out.exists()   # the export appears whole or not at all
    assert [n for n in os.listdir(tmp_path) if n.startswith(".out.")]   # the dead runs' hidden folders
    done = subprocess.run(export_cmd(log_dir, out, "--partition-by", "sensor_id"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".out.")]   # removed by the next export
    check_exactly_once(out, total)
