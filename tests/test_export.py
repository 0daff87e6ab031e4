"""File exports (tidelog.export, Topic.to_parquet, ``tidelog export``): round
trips per format and partitioning read back by pyarrow, DuckDB and Polars;
incremental runs with appends in between (exact rows, no duplicate, no gap,
over several partitions); leftovers of dead runs; bad input refused with a
typed error and nothing written. Crash tests: test_export_crash.py."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import tidelog
from tidelog import cli
from tidelog.export import CHECKPOINT_NAME, export_files

DAY_NS = 86_400 * 10**9
T0 = int(dt.datetime(2026, 12, 3, 20, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9
SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("site", pa.string()),
                    ("value", pa.float64()), ("seq", pa.int64())])


def rows(start: int, n: int, step_ns: int = 10**10) -> pa.RecordBatch:
    """Rows ``seq`` = start .. start+n-1 (unique: duplicates and gaps show), 10 s apart from T0,
    so a few thousand rows span several UTC dates."""
    seq = np.arange(start, start + n, dtype=np.int64)
    return pa.record_batch([pa.array(T0 + seq * step_ns, pa.timestamp("ns")), pa.array((seq * 7 % 13).astype(np.int32)),
                            pa.array([f"site {s % 3}/x" for s in seq]), pa.array(seq * 0.5), pa.array(seq)],
                           schema=SCHEMA)


@pytest.fixture
def sensors(log):
    topic = log.create_topic("sensors", schema=SCHEMA, partitions=3, key="sensor_id", timestamp="ts")
    for i in range(6):
        topic.append(rows(i * 5_000, 5_000))
    return topic


def seqs(table: pa.Table) -> list[int]:
    return sorted(table.column("seq").to_pylist())


def read_dataset(out, fmt: str = "parquet") -> pa.Table:
    return ds.dataset(str(out), format={"arrow": "ipc"}.get(fmt, fmt), partitioning="hive").to_table()


# ------------------------------------------------------------------ round trips
def test_parquet_round_trip(sensors, tmp_path):
    out = tmp_path / "out"
    r = sensors.to_parquet(out, row_group_size=4_000)
    assert r.rows == 30_000 and r.end_offsets == sensors.end_offsets() and r.bytes_written > 0
    names = sorted(os.listdir(out))
    assert CHECKPOINT_NAME in names
    data_files = [n for n in names if n.endswith(".parquet")]
    assert data_files == [f"p{p}-{0:020d}-{e:020d}.parquet" for p, e in sorted(sensors.end_offsets().items())]
    back = read_dataset(out)
    assert back.schema.names == SCHEMA.names
    assert back.sort_by("seq").equals(sensors.read().sort_by("seq"))
    meta = pq.ParquetFile(out / data_files[0]).metadata
    assert meta.row_group(0).num_rows == 4_000 and meta.row_group(0).column(0).compression == "ZSTD"
    # every row of a partition in offset order within its file
    p0 = pq.read_table(out / data_files[0])
    assert p0.equals(sensors.read(partitions=[0]))


def test_partition_by_date_read_by_pyarrow_duckdb_polars(sensors, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    out = tmp_path / "out"
    sensors.to_parquet(out, partition_by="date")
    dates = sorted(d for d in os.listdir(out) if d.startswith("date="))
    expected_days = sorted({dt.datetime.fromtimestamp((T0 + s * 10**10) // 10**9, dt.timezone.utc).date().isoformat()
                            for s in range(30_000)})
    assert dates == [f"date={d}" for d in expected_days] and len(dates) >= 3
    want = sensors.read()
    per_day = {}
    for s in want.column("seq").to_pylist():
        d = dt.datetime.fromtimestamp((T0 + s * 10**10) // 10**9, dt.timezone.utc).date()
        per_day[d] = per_day.get(d, 0) + 1

    back = read_dataset(out)
    assert seqs(back) == seqs(want)
    got = duckdb.sql(f"select date::date as d, count(*), sum(seq), count(distinct seq) from "
                     f"read_parquet('{out}/**/*.parquet', hive_partitioning=true) group by 1 order by 1").fetchall()
    assert [(d, n) for d, n, _, _ in got] == sorted(per_day.items())
    assert sum(s for _, _, s, _ in got) == sum(range(30_000)) and sum(c for *_, c in got) == 30_000
    frame = pl.scan_parquet(f"{out}/**/*.parquet", hive_partitioning=True).collect()
    assert frame.height == 30_000 and "date" in frame.columns
    assert sorted(frame["seq"].to_list()) == list(range(30_000))
    assert frame.group_by("date").len().sort("date")["len"].to_list() == [n for _, n in sorted(per_day.items())]


def test_partition_by_columns_with_nulls_and_odd_values(log, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    topic = log.create_topic("t", schema=SCHEMA, partitions=2)
    b = rows(0, 300)
    sites = pa.array([None if i % 10 == 0 else f"a/b c%{i % 4}" for i in range(300)])
    topic.append(b.set_column(2, "site", sites))
    out = tmp_path / "out"
    r = topic.to_parquet(out, partition_by=("sensor_id", "site"), columns=["seq", "site", "sensor_id"])
    assert r.rows == 300
    back = read_dataset(out)
    assert sorted(back.column_names) == ["sensor_id", "seq", "site"]
    want = {(s, sid, site) for s, sid, site in zip(b.column("seq").to_pylist(), b.column("sensor_id").to_pylist(),
                                                    sites.to_pylist())}
    got = {(s, sid, site) for s, sid, site in zip(back.column("seq").to_pylist(), back.column("sensor_id").to_pylist(),
                                                   back.column("site").to_pylist())}
    assert got == want
    # the files themselves hold only the non-partition columns
    some = next(os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(".parquet"))
    assert pq.read_schema(some).names == ["seq"]
    n = duckdb.sql(f"select count(*), count(distinct seq) from read_parquet('{out}/**/*.parquet', "
                   "hive_partitioning=true)").fetchall()[0]
    assert n == (300, 300)


@pytest.mark.parametrize("fmt", ["csv", "arrow"])
def test_csv_and_arrow_round_trip(sensors, tmp_path, fmt):
    pl = pytest.importorskip("polars")
    out = tmp_path / fmt
    r = export_files(sensors, out, format=fmt, partition_by="date", columns=["ts", "seq", "value"])
    assert r.rows == 30_000 and all(f.endswith("." + fmt) for f in r.files)
    back = read_dataset(out, fmt)
    assert seqs(back) == list(range(30_000))
    if fmt == "arrow":
        assert back.schema.field("ts").type == pa.timestamp("ns")
        frame = pl.scan_ipc(f"{out}/**/*.arrow", hive_partitioning=True).collect()
        assert frame.height == 30_000 and sorted(frame["seq"].to_list()) == list(range(30_000))
    else:
        duckdb = pytest.importorskip("duckdb")
        n = duckdb.sql(f"select count(*), count(distinct seq), count(distinct date) from "
                       f"read_csv('{out}/**/*.csv', hive_partitioning=true)").fetchall()[0]
        assert n[:2] == (30_000, 30_000) and n[2] >= 3


def test_selection_offsets_times_columns(sensors, tmp_path):
    t1, t2 = T0 + 1_000 * 10**10, T0 + 20_000 * 10**10
    iso = dt.datetime.fromtimestamp(t1 / 1e9, dt.timezone.utc).isoformat()
    r = sensors.to_parquet(tmp_path / "a", start_time=iso, end_time=t2, columns=["seq", "value"])
    back = read_dataset(tmp_path / "a")
    assert back.column_names == ["seq", "value"] and seqs(back) == list(range(1_000, 20_000))
    assert r.rows == 19_000
    ends = sensors.end_offsets()
    r = sensors.to_parquet(tmp_path / "b", start_offset={1: 5}, end_offset={0: 7})
    back = read_dataset(tmp_path / "b")
    assert back.num_rows == 7 + (ends[1] - 5) + ends[2]
    assert r.start_offsets == {0: 0, 1: 5, 2: 0} and r.end_offsets == {0: 7, 1: ends[1], 2: ends[2]}


def test_max_rows_per_file_and_many_folders(sensors, tmp_path, monkeypatch):
    from tidelog.export import _writers

    monkeypatch.setattr(_writers, "MAX_OPEN_FILES", 4)  # 13 sensor folders: files close early and reopen
    r = sensors.to_parquet(tmp_path / "out", partition_by="sensor_id", max_rows_per_file=500, row_group_size=100)
    back = read_dataset(tmp_path / "out")
    assert seqs(back) == list(range(30_000))
    names = [os.path.basename(f) for f in r.files]
    assert len(set(r.files)) == len(r.files) and any(n.count("-") == 3 for n in names)
    assert all(pq.ParquetFile(f).metadata.num_rows <= 500 for f in r.files)


# ------------------------------------------------------------------ incremental
def test_incremental_runs_with_appends_in_between(sensors, tmp_path):
    out = tmp_path / "inc"
    total = 30_000
    r = sensors.to_parquet(out, partition_by="date", incremental=True)
    assert r.rows == total
    for k in range(4):
        r = sensors.to_parquet(out, partition_by="date", incremental=True)   # nothing new
        assert r.rows == 0 and r.files == []
        n = 1_000 * (k + 1)
        sensors.append(rows(total, n))
        total += n
        r = sensors.to_parquet(out, partition_by="date", incremental=True)
        assert r.rows == n
        assert all(r.start_offsets[p] <= r.end_offsets[p] for p in r.end_offsets)
        back = read_dataset(out)
        assert back.num_rows == total and seqs(back) == list(range(total))
    ckpt = json.loads((out / CHECKPOINT_NAME).read_text())
    assert ckpt["end_offsets"] == {str(p): o for p, o in sensors.end_offsets().items()}
    assert ckpt["runs"] == 5 and ckpt["rows"] == total and ckpt["topic"]["name"] == "sensors"
    # a one-off export continues incrementally too
    one = tmp_path / "one"
    sensors.to_parquet(one, end_offset=100)
    sensors.append(rows(total, 10))
    r = sensors.to_parquet(one, incremental=True)
    assert r.start_offsets == {p: 100 for p in range(3)}
    assert seqs(read_dataset(one)) == list(range(total + 10))


def test_incremental_removes_what_dead_runs_left(sensors, tmp_path):
    out = tmp_path / "inc"
    sensors.to_parquet(out, incremental=True)
    ends = sensors.end_offsets()
    sensors.append(rows(30_000, 600))
    # a run that died: one file renamed into place past the checkpoint, one still under its temporary name
    past = out / f"p0-{ends[0]:020d}-{ends[0] + 999:020d}.parquet"
    pq.write_table(sensors.read(partitions=[0]).slice(0, 5), past)
    tmp = out / f".p1-{ends[1]:020d}-{ends[1] + 5:020d}.parquet.tmp"
    tmp.write_bytes(b"PAR1 torn")
    r = sensors.to_parquet(out, incremental=True)
    assert not past.exists() and not tmp.exists() and r.rows == 600
    assert seqs(read_dataset(out)) == list(range(30_600))


def test_incremental_refuses_another_topic_format_or_selection(sensors, log, tmp_path):
    out = tmp_path / "inc"
    sensors.to_parquet(out, incremental=True, columns=["seq", "ts"])
    before = sorted(os.listdir(out))
    other = log.create_topic("other", schema=SCHEMA)
    other.append(rows(0, 10))
    with pytest.raises(tidelog.InvalidArgumentError, match="another topic"):
        other.to_parquet(out, incremental=True, columns=["seq", "ts"])
    with pytest.raises(tidelog.InvalidArgumentError, match="holds a parquet export"):
        export_files(sensors, out, format="csv", incremental=True, columns=["seq", "ts"])
    with pytest.raises(tidelog.InvalidArgumentError, match="other settings"):
        sensors.to_parquet(out, incremental=True)
    with pytest.raises(tidelog.InvalidArgumentError, match="start_offset"):
        sensors.to_parquet(out, incremental=True, columns=["seq", "ts"], start_offset=3)
    assert sorted(os.listdir(out)) == before
    # the same name, deleted and created again: a new topic folder (unless the file system reuses the
    # inode), and fewer offsets than the export holds
    log.delete_topic("sensors")
    again = log.create_topic("sensors", schema=SCHEMA, partitions=3, key="sensor_id", timestamp="ts")
    again.append(rows(0, 10))
    with pytest.raises(tidelog.InvalidArgumentError, match="topic folder|created again"):
        again.to_parquet(out, incremental=True, columns=["seq", "ts"])
    assert sorted(os.listdir(out)) == before


def test_second_run_at_once_is_refused(sensors, tmp_path):
    from tidelog.export._checkpoint import OutputLock

    out = tmp_path / "inc"
    sensors.to_parquet(out, incremental=True)
    with OutputLock(str(out)):
        with pytest.raises(tidelog.LogLockedError, match="another export"):
            sensors.to_parquet(out, incremental=True)


def test_bad_input_is_refused_and_nothing_written(sensors, log, tmp_path):
    out = tmp_path / "out"
    cases = [
        (dict(columns=["nope"]), "unknown columns"),
        (dict(partition_by="nope"), "unknown partition column"),
        (dict(partition_by="value"), "cannot partition by column 'value'"),
        (dict(partition_by=("seq", "seq")), "distinct"),
        (dict(start_time="yesterday"), "not an ISO-8601 time"),
        (dict(start_time=T0 + 10, end_time=T0), "before start_time"),
        (dict(compression="lzma"), "compression"),
        (dict(row_group_size=0), "row_group_size"),
        (dict(start_offset=-1), "start_offset"),
        (dict(end_offset={7: 3}), "partitions 0..2"),
        (dict(columns=["sensor_id"], partition_by="sensor_id"), "nothing to write"),
    ]
    for kwargs, message in cases:
        with pytest.raises(tidelog.InvalidArgumentError, match=message):
            sensors.to_parquet(out, **kwargs)
        assert not out.exists(), kwargs
    with pytest.raises(tidelog.InvalidArgumentError, match="format"):
        export_files(sensors, out, format="orc")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(tidelog.InvalidArgumentError, match="is a file"):
        sensors.to_parquet(a_file)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(tidelog.InvalidArgumentError, match="not empty"):
        sensors.to_parquet(busy)
    with pytest.raises(tidelog.InvalidArgumentError, match="not a tidelog export"):
        sensors.to_parquet(busy, incremental=True)
    assert sorted(os.listdir(busy)) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["busy", "file", "log"]
    records = log.create_topic("records", partitions=1)
    with pytest.raises(tidelog.InvalidArgumentError, match="nested"):
        export_files(records, out, format="csv")
    with pytest.raises(tidelog.InvalidArgumentError, match="has none"):
        log.create_topic("plain", schema=SCHEMA).to_parquet(out, partition_by="date")


# ------------------------------------------------------------------ command line
def _cli(*args) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "tidelog.cli", "export", *map(str, args)], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_export_with_progress_beside_a_writer(sensors, log_dir, tmp_path):
    out = tmp_path / "out"
    # the test's log stays open read-write: the export opens it read-only beside it
    rc, stdout, stderr = _cli(log_dir, "sensors", "--format", "parquet", "--out", out, "--partition-by", "date",
                              "--incremental", "--progress", "always", "--start-time", "2026-12-03T00:00:00",
                              "--end-time", str(T0 + 100 * DAY_NS))
    assert rc == 0, stderr
    assert "exported 30,000 rows" in stdout and "export sensors: 100%" in stderr and "rows/s" in stderr
    sensors.append(rows(30_000, 50))
    rc, stdout, stderr = _cli(log_dir, "sensors", "--out", out, "--partition-by", "date", "--incremental",
                              "--start-time", "2026-12-03T00:00:00", "--end-time", str(T0 + 100 * DAY_NS), "--json")
    assert rc == 0, stderr
    doc = json.loads(stdout)
    assert doc["rows"] == 50 and doc["end_offsets"] == {str(p): o for p, o in sensors.end_offsets().items()}
    assert stderr == ""   # --progress auto: not a terminal
    assert seqs(read_dataset(out)) == list(range(30_050))


def test_cli_bad_input_is_one_line_and_nonzero(sensors, log_dir, tmp_path):
    out = tmp_path / "out"
    a_file = tmp_path / "f.parquet"
    a_file.write_text("x")
    for args, message in [
        (("nope", "--out", out), "UnknownTopicError"),
        (("sensors", "--out", out, "--columns", "ts", "nope"), "unknown columns ['nope']"),
        (("sensors", "--out", out, "--start-time", "12/03/2026"), "not an ISO-8601 time"),
        (("sensors", "--out", a_file), "is a file"),
        (("sensors", "--out", out, "--format", "csv", "--table", "x.y"), "--table is for --format iceberg"),
    ]:
        rc, stdout, stderr = _cli(log_dir, *args)
        assert rc == 1 and stdout == "", (args, stderr)
        assert stderr.count("\n") == 1 and stderr.startswith("tidelog export: ") and message in stderr, stderr
        assert "Traceback" not in stderr
        assert not out.exists()
    rc, _, stderr = _cli(tmp_path / "no-log", "sensors", "--out", out)
    assert rc == 1 and "LogNotFoundError" in stderr and stderr.count("\n") == 1
    rc, _, stderr = _cli(log_dir, "sensors", "--out", out, "--format", "orc")
    assert rc == 2 and "invalid choice" in stderr
    # an incremental output of another format
    assert cli.main(["export", str(log_dir), "sensors", "--out", str(out), "--incremental", "--progress",
                     "never"]) == 0
    rc, _, stderr = _cli(log_dir, "sensors", "--out", out, "--incremental", "--format", "csv")
    assert rc == 1 and "holds a parquet export" in stderr and stderr.count("\n") == 1


def test_memory_stays_bounded_whatever_the_topic_size(log, tmp_path, monkeypatch):
    """The rows buffered for unfinished row groups stay under a row group per folder and within the
    budget over all folders: a topic is streamed, never materialized (zstd frames, so every buffered
    row is decoded memory, not the mapped segment)."""
    from tidelog.export import _writers

    topic = log.create_topic("z", schema=SCHEMA, partitions=1, compression="zstd", timestamp="ts")
    for i in range(40):
        topic.append(rows(i * 5_000, 5_000))
    frame_bytes = rows(0, 5_000).nbytes
    monkeypatch.setattr(_writers, "BUFFER_BUDGET_BYTES", 4 * frame_bytes)
    peak = {"rows": 0, "bytes": 0}
    original_write = _writers.RunWriter.write

    def write(self, batch):
        original_write(self, batch)
        peak["rows"] = max([peak["rows"], *(b.rows for b in self.buffers.values())])
        peak["bytes"] = max(peak["bytes"], self.buffered_bytes)
        assert self.buffered_bytes == sum(b.nbytes for b in self.buffers.values())

    monkeypatch.setattr(_writers.RunWriter, "write", write)
    r = topic.to_parquet(tmp_path / "plain", row_group_size=20_000)
    assert r.rows == 200_000 and 0 < peak["rows"] < 20_000
    r = topic.to_parquet(tmp_path / "hive", partition_by="sensor_id", row_group_size=1 << 20)
    assert r.rows == 200_000 and 0 < peak["bytes"] <= 4 * frame_bytes
    assert seqs(read_dataset(tmp_path / "hive")) == list(range(200_000))


def test_a_column_of_many_values_makes_a_file_per_folder(log, tmp_path, monkeypatch):
    """Partitioning by a column whose values all appear in every frame (a sensor id) opens a file
    when a folder has a row group to write, not for every frame: with room for 8 open files and
    500 folders, each folder still gets one file."""
    from tidelog.export import _writers

    monkeypatch.setattr(_writers, "MAX_OPEN_FILES", 8)
    topic = log.create_topic("many", schema=SCHEMA, partitions=1)
    for i in range(20):
        b = rows(i * 5_000, 5_000)
        topic.append(b.set_column(1, "sensor_id", pa.array((np.arange(5_000) % 500).astype(np.int32))))
    r = topic.to_parquet(tmp_path / "out", partition_by="sensor_id")
    assert len(r.files) == 500 and r.rows == 100_000
    assert seqs(read_dataset(tmp_path / "out")) == list(range(100_000))


def test_incremental_runs_beside_a_writer_that_keeps_appending(sensors, log_dir, tmp_path):
    """Runs of ``tidelog export --incremental`` in another process while this process appends without
    pause: each run reads to the end it captured when it started; together they hold every row once."""
    import threading

    out = tmp_path / "out"
    stop = threading.Event()
    appended = {"total": 30_000}

    def writer():
        while not stop.is_set():
            sensors.append(rows(appended["total"], 300))
            appended["total"] += 300

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3):
            rc, stdout, stderr = _cli(log_dir, "sensors", "--out", out, "--incremental", "--partition-by", "date",
                                      "--json")
            assert rc == 0, stderr
            ends = {int(p): o for p, o in json.loads(stdout)["end_offsets"].items()}
            assert seqs(read_dataset(out)) == seqs(sensors.read(end_offset=ends, columns=["seq"]))
    finally:
        stop.set()
        thread.join()
    rc, _, stderr = _cli(log_dir, "sensors", "--out", out, "--incremental", "--partition-by", "date")
    assert rc == 0, stderr
    assert appended["total"] > 30_000 and seqs(read_dataset(out)) == list(range(appended["total"]))
