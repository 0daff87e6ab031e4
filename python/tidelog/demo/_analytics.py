"""The demo's analytics: a SQL query over a time window (DuckDB, else Polars,
else pyarrow's own group-by: the demo runs on a bare install too), and a
Parquet export of the whole topic."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HOTTEST = 5


@dataclasses.dataclass
class WindowQuery:
    engine: str
    seconds: float
    rows_in_window: int
    hottest: list[tuple[int, float, float]]  # (sensor_id, max, mean)
    bytes_read: int | None       # what the engine had tidelog read (None: not counted)
    bytes_total: int


def _engine() -> str:
    for name in ("duckdb", "polars"):
        try:
            __import__(name)
        except ImportError:
            continue
        return name
    return "pyarrow"


def _iso(ns: int) -> str:
    """A UTC timestamp literal with all nine digits (DuckDB's TIMESTAMP_NS)."""
    return str(np.datetime64(ns, "ns")).replace("T", " ")


def window_query(topic: Any, start_ns: int, end_ns: int) -> WindowQuery:
    """The ``HOTTEST`` sensors by their highest reading in [start_ns, end_ns)."""
    bytes_total = int(topic.describe()["bytes"])
    engine = _engine()
    t0 = time.perf_counter()
    bytes_read = None
    if engine == "duckdb":
        import duckdb

        import tidelog.duckdb

        con = duckdb.connect()
        table = tidelog.duckdb.register(con, topic, "readings")
        rows = tidelog.duckdb.sql(
            con, "select sensor_id, max(value) as hi, avg(value) as mean, count(*) as n from readings "
                 f"where ts >= TIMESTAMP_NS '{_iso(start_ns)}' and ts < TIMESTAMP_NS '{_iso(end_ns)}' "
                 "group by sensor_id").to_arrow_table()
        bytes_read = sum(r.bytes for r in table.reads)
        con.close()
    elif engine == "polars":
        import polars as pl

        import tidelog.polars

        reads = tidelog.polars.Reads()
        window = tidelog.polars.scan(topic, reads=reads).filter(
            (pl.col("ts") >= pl.lit(start_ns).cast(pl.Datetime("ns"))) &
            (pl.col("ts") < pl.lit(end_ns).cast(pl.Datetime("ns"))))
        rows = window.group_by("sensor_id").agg(
            pl.col("value").max().alias("hi"), pl.col("value").mean().alias("mean"),
            pl.len().alias("n")).collect().to_arrow()
        bytes_read = sum(r.bytes for r in reads)
    else:
        table = topic.read(start_time=start_ns, end_time=end_ns, columns=["sensor_id", "value"])
        rows = table.group_by("sensor_id").aggregate([("value", "max"), ("value", "mean"), ("value", "count")])
        rows = rows.rename_columns(["sensor_id", "hi", "mean", "n"])
    rows = pa.table(rows) if not isinstance(rows, pa.Table) else rows
    top = rows.sort_by([("hi", "descending")]).slice(0, HOTTEST)
    hottest = list(zip(top.column("sensor_id").to_pylist(), top.column("hi").to_pylist(),
                       top.column("mean").to_pylist()))
    n = pc.sum(rows.column("n")).as_py() or 0
    return WindowQuery(engine, time.perf_counter() - t0, int(n), hottest, bytes_read, bytes_total)


@dataclasses.dataclass
class ParquetExport:
    path: str
    rows: int
    files: int
    bytes: int
    seconds: float


def export_parquet(topic: Any, path: str) -> ParquetExport:
    t0 = time.perf_counter()
    result = topic.to_parquet(path)
    seconds = time.perf_counter() - t0
    files = [os.path.join(root, f) for root, _, names in os.walk(path) for f in names if f.endswith(".parquet")]
    return ParquetExport(path, int(result.rows), len(files), sum(os.path.getsize(f) for f in files), seconds)
