"""Iceberg exports (tidelog.export.export_iceberg, ``tidelog export --format
iceberg``) through pyiceberg's SQL catalog on SQLite: read back with pyiceberg
and Polars; one snapshot per run carrying the offsets, resumed from; exactly
once when runs are SIGKILLed at random moments and around the commit; bad
input refused; a clear error without pyiceberg."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import tidelog

pytest.importorskip("pyiceberg.catalog.sql", reason="pyiceberg[sql-sqlite] is not installed (the test extra)")

from tidelog.export import export_iceberg  # noqa: E402
from tidelog.export._iceberg import SUMMARY_OFFSETS  # noqa: E402
from tidelog.export._writers import KILL_POINT_ENV, TEST_SLEEP_ENV  # noqa: E402

SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("site", pa.string()),
                    ("value", pa.float64()), ("seq", pa.int64())])
T0 = 1_796_342_400 * 10**9   # 2026-12-04T00:00:00Z


def rows(start: int, n: int) -> pa.RecordBatch:
    seq = np.arange(start, start + n, dtype=np.int64)
    return pa.record_batch([pa.array(T0 + seq * 10**10, pa.timestamp("ns")), pa.array((seq % 11).astype(np.int32)),
                            pa.array([f"s{s % 3}" for s in seq]), pa.array(seq * 0.5), pa.array(seq)], schema=SCHEMA)


def grow(topic, start: int, n: int, batch: int = 2_000) -> int:
    for at in range(start, start + n, batch):
        topic.append(rows(at, min(batch, start + n - at)))
    return start + n


@pytest.fixture
def sensors(log):
    return log.create_topic("sensors", schema=SCHEMA, partitions=3, key="sensor_id", timestamp="ts",
                            durability="interval")


def catalog_of(out):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("tidelog", uri=f"sqlite:///{out}/catalog.db", warehouse=f"file://{out}/warehouse")


def export(topic, out, **kw):
    return export_iceberg(topic, catalog_uri=f"sqlite:///{out}/catalog.db", warehouse=str(out / "warehouse"), **kw)


def table_seqs(out, name="default.sensors") -> list[int]:
    table = catalog_of(out).load_table(name)
    return sorted(table.scan(selected_fields=("seq",)).to_arrow().column("seq").to_pylist())


def check_committed_state(topic, out) -> None:
    """The table holds exactly the rows of offsets [0, end) its current snapshot records, once each."""
    if not table_exists(out):
        return   # killed before the table was made: nothing committed
    snapshot = catalog_of(out).load_table("default.sensors").current_snapshot()
    if snapshot is None:
        return
    ends = {int(p): o for p, o in json.loads(snapshot.summary[SUMMARY_OFFSETS]).items()}
    want = sorted(topic.read(end_offset=ends, columns=["seq"]).column("seq").to_pylist())
    assert table_seqs(out) == want


def table_exists(out) -> bool:
    if not (out / "catalog.db").exists():
        return False
    try:
        return catalog_of(out).table_exists("default.sensors")
    except Exception:  # noqa: BLE001 - killed before the catalog's own tables were made
        return False


def test_round_trip_incremental_one_snapshot_per_run(sensors, tmp_path):
    out = tmp_path / "ice"
    out.mkdir()
    total = grow(sensors, 0, 9_000)
    sensors.flush()
    r = export(sensors, out)
    assert r.rows == total and r.snapshot_id is not None and r.files
    table = catalog_of(out).load_table("default.sensors")
    back = table.scan().to_arrow().sort_by("seq")
    want = sensors.read().sort_by("seq")
    assert back.column_names == SCHEMA.names
    assert back.column("seq").equals(want.column("seq")) and back.column("site").equals(want.column("site"))
    assert back.column("ts").cast(pa.int64()).to_pylist() == [t // 1000 for t in want.column("ts").cast(pa.int64()).to_pylist()]
    snapshots = [r.snapshot_id]
    for k in range(3):
        assert export(sensors, out).snapshot_id is None   # nothing new: no snapshot
        total = grow(sensors, total, 500 * (k + 1))
        sensors.flush()
        r = export(sensors, out)
        assert r.rows == 500 * (k + 1)
        snapshots.append(r.snapshot_id)
        assert table_seqs(out) == list(range(total))
    table = catalog_of(out).load_table("default.sensors")
    assert [s.snapshot_id for s in table.snapshots()] == snapshots
    summary = table.current_snapshot().summary
    assert json.loads(summary[SUMMARY_OFFSETS]) == {str(p): o for p, o in sensors.end_offsets().items()}


def test_polars_reads_the_table(sensors, tmp_path, monkeypatch):
    pl = pytest.importorskip("polars")
    if not hasattr(pl, "scan_iceberg"):
        pytest.skip("this polars has no scan_iceberg")
    out = tmp_path / "ice"
    out.mkdir()
    total = grow(sensors, 0, 3_000)
    sensors.flush()
    export(sensors, out, partition_by="date", columns=["ts", "seq", "value"])
    table = catalog_of(out).load_table("default.sensors")
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")   # planned by pyiceberg, without a plugin
    frame = pl.scan_iceberg(table).collect()
    assert sorted(frame["seq"].to_list()) == list(range(total))
    assert frame.columns == ["ts", "value", "seq", "date"]
    assert frame["date"].n_unique() >= 1


def test_partition_by_date_and_column(sensors, tmp_path):
    out = tmp_path / "ice"
    out.mkdir()
    total = grow(sensors, 0, 20_000)
    sensors.flush()
    export(sensors, out, partition_by=("date", "site"), table="exports.by_day")
    table = catalog_of(out).load_table("exports.by_day")
    assert [f.name for f in table.spec().fields] == ["date", "site"]
    back = table.scan().to_arrow()
    assert sorted(back.column("seq").to_pylist()) == list(range(total))
    days = back.group_by("date").aggregate([("seq", "count")])
    assert days.num_rows >= 3
    one_day = table.scan(row_filter="site == 's1'").to_arrow()
    assert set(one_day.column("site").to_pylist()) == {"s1"}


def test_bad_input(sensors, log, tmp_path):
    out = tmp_path / "ice"
    out.mkdir()
    grow(sensors, 0, 100)
    sensors.flush()
    with pytest.raises(tidelog.InvalidArgumentError, match="unknown columns"):
        export(sensors, out, columns=["nope"])
    with pytest.raises(tidelog.InvalidArgumentError, match="namespace.name"):
        export(sensors, out, table="justname")
    export(sensors, out, columns=["seq", "value"])
    other = log.create_topic("other", schema=SCHEMA)
    other.append(rows(0, 5))
    with pytest.raises(tidelog.InvalidArgumentError, match="another topic"):
        export(other, out, table="default.sensors", columns=["seq", "value"])
    with pytest.raises(tidelog.InvalidArgumentError, match="columns"):
        export(sensors, out, columns=["seq"])
    assert len(catalog_of(out).load_table("default.sensors").snapshots()) == 1


def test_without_pyiceberg_the_error_names_it(sensors, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiceberg", None)
    monkeypatch.setitem(sys.modules, "pyiceberg.catalog.sql", None)
    with pytest.raises(ImportError, match=r"pip install 'pyiceberg\[sql-sqlite\]'"):
        export(sensors, tmp_path)


# ------------------------------------------------------------------ crashes
def cli_cmd(log_dir, out, *extra) -> list[str]:
    return [sys.executable, "-m", "tidelog.cli", "export", str(log_dir), "sensors", "--format", "iceberg",
            "--out", str(out), "--progress", "never", "--max-rows-per-file", "1000", *extra]


def test_iceberg_export_killed_at_random_moments(sensors, log_dir, tmp_path):
    """6 SIGKILLs at random moments (starting, creating the table, writing data files, committing), every
    third run left to complete, the topic growing after every run: then one run to the end."""
    out = tmp_path / "ice"
    rng = random.Random(5)
    total = grow(sensors, 0, 8_000)
    sensors.flush()
    kills = done = attempts = 0
    while kills < 6:
        attempts += 1
        proc = subprocess.Popen(cli_cmd(log_dir, out), env={**os.environ, TEST_SLEEP_ENV: "0.05"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=None if attempts % 3 == 0 else rng.uniform(0.3, 2.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        rc = proc.wait()
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert rc in (0, -signal.SIGKILL), err
        done += rc == 0
        check_committed_state(sensors, out)
        total = grow(sensors, total, 1_500)
        sensors.flush()
    assert done >= 2, (kills, done, attempts)
    final = subprocess.run(cli_cmd(log_dir, out), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert table_seqs(out) == list(range(total))


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_iceberg_export_killed_around_its_commit(sensors, log_dir, tmp_path, point):
    out = tmp_path / "ice"
    total = grow(sensors, 0, 2_000)
    sensors.flush()
    killed = subprocess.run(cli_cmd(log_dir, out), env={**os.environ, KILL_POINT_ENV: point})
    assert killed.returncode == -signal.SIGKILL
    total = grow(sensors, total, 500)
    sensors.flush()
    again = subprocess.run(cli_cmd(log_dir, out, "--json"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rows"] == (500 if point == "after-commit" else 2_500)
    assert table_seqs(out) == list(range(total))
