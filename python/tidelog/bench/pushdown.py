"""The ``pushdown`` workload: DuckDB and Polars queries over a topic through
``tidelog.duckdb`` / ``tidelog.polars``, which hand tidelog the query's columns
and filters, so that it reads only the frames that can hold matching rows.

Two queries, each through DuckDB SQL and through a Polars LazyFrame:

* ``window`` (the topic in time order, 64 Ki-row frames): the average value
  per sensor over a 1 % time window in the middle of the topic
  (``where ts >= t0 and ts < t1 group by sensor_id``);
* ``sensor`` (the topic clustered by sensor: every sensor's readings together,
  in time order within it): count and average of ``sensor_id = 7``, 1/1000 of
  the rows. A scan skips frames by a column other than the time index only
  through zone maps (per-frame min/max), so this one measures those.

Three contenders run each query on the same rows:

* ``tidelog pushdown``: the topic registered with ``tidelog.duckdb.register`` /
  scanned with ``tidelog.polars.scan``; it also reports the frames and bytes
  its reads touched, as a share of the topic's (``frames %``, ``bytes %``);
* ``tidelog, whole scan``: the same engine over ``topic.scan()`` as a stream
  (every column of every frame; the engine filters), what a query costs
  without pushdown;
* ``arrow in memory (query)``: the same engine over the rows held in memory as
  a ``pa.Table`` (Polars: a DataFrame made from it without a copy), the limit;
* ``only the rows needed, in memory``: the same engine over a ``pa.Table`` of
  just the rows the query keeps (the window's, sensor 7's): the floor of any
  pushdown, whose query still aggregates those rows.

The page cache is warm (the topic is written before timing). Contenders are in
contenders/tidelog_pushdown.py.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import pyarrow as pa

from .core import (
    GB, KiB, MB, ROW_BYTES, SCHEMA, SENSORS, TS0, TS_STEP, Metric, SensorData, Target, Workload,
    available_memory, human_bytes,
)


class SensorClustered:
    """``total_rows`` readings clustered by sensor: sensor s's readings are rows
    [s * per, (s + 1) * per) (per = total_rows // SENSORS; the last sensor takes
    the rest), its k-th reading at TS0 + (k * SENSORS + s) * 1 ms, so the data
    set holds the same timestamps as a time-ordered one. Deterministic, made
    on demand in ``batch_rows`` batches, as SensorData."""

    def __init__(self, total_rows: int, batch_rows: int, seed: int = 0):
        self.total_rows = int(total_rows)
        self.batch_rows = int(batch_rows)
        self.seed = seed
        self.per_sensor = max(1, self.total_rows // SENSORS)

    @property
    def nbytes(self) -> int:
        return self.total_rows * ROW_BYTES

    def batches(self) -> Iterator[pa.RecordBatch]:
        for i, start in enumerate(range(0, self.total_rows, self.batch_rows)):
            rows = np.arange(start, min(start + self.batch_rows, self.total_rows), dtype=np.int64)
            sensor = np.minimum(rows // self.per_sensor, SENSORS - 1)
            k = rows - sensor * self.per_sensor
            ts = TS0 + (k * SENSORS + sensor) * TS_STEP
            values = np.random.default_rng(self.seed * 1_000_003 + i).normal(20.0, 5.0, len(rows))
            yield pa.record_batch([pa.array(ts), pa.array(sensor.astype(np.int32)), pa.array(values)], schema=SCHEMA)


@dataclasses.dataclass
class PushdownData:
    rows: SensorData | SensorClustered   # what the topic holds, in append order
    layout: str                          # "time" | "sensor"
    window: tuple[int, int]              # [t0, t1) ns of the 1 % time window
    sensor: int = 7

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes


class Pushdown(Workload):
    name = "pushdown"
    title = "16. DuckDB and Polars with pushdown"
    description = (
        "A DuckDB SQL query and a Polars LazyFrame query over a topic of sensor rows (int64 ns ts, int32 "
        "sensor_id, float64 value; 64 Ki-row frames, page cache warm). *window*: avg(value) per sensor over a "
        "1 % time window in the middle, the topic in time order. *sensor*: count and avg of sensor_id = 7 "
        "(1/1000 of the rows), the topic clustered by sensor. *tidelog pushdown*: tidelog.duckdb.register / "
        "tidelog.polars.scan, which push the columns and filters into the topic's reads (frames % and bytes %: "
        "the share of the topic they touched); *tidelog, whole scan*: the same engine over topic.scan() (no "
        "pushdown); *arrow in memory*: the same engine over the rows held in memory as a pa.Table; *only the rows "
        "needed*: over a pa.Table of just the rows the query keeps (the floor of any pushdown)."
    )
    param_names = ("size", "layout")
    SIZES = {"smoke": [2 * MB], "quick": [10 * MB, 100 * MB], "full": [100 * MB, 1 * GB, 5 * GB]}
    BATCH_ROWS = {"smoke": 4 * KiB, "quick": 64 * KiB, "full": 64 * KiB}
    ENGINES = ("duckdb", "polars")

    def grid(self, mode, opts):
        sizes = opts.get("pushdown_sizes") or self.SIZES[mode]
        if opts.get("max_size"):
            sizes = [s for s in sizes if s <= opts["max_size"]]
        return [{"size": s, "layout": layout} for s in sizes for layout in ("time", "sensor")]

    def cases(self, params):
        query = "window" if params["layout"] == "time" else "sensor"
        return [{"engine": e, "query": query} for e in self.ENGINES]

    def interleaved(self, params):
        # round-robin while the two topics (page cache) and the in-memory table fit in a third of the memory
        return params["size"] * 3 <= available_memory() // 3

    def rounds(self, mode, opts):
        if mode == "full":
            return 1, opts.get("rounds") or 7
        return super().rounds(mode, opts)

    def make_data(self, params, mode):
        rows = params["size"] // ROW_BYTES
        batch_rows = self.BATCH_ROWS[mode]
        if params["layout"] == "time":
            data = SensorData(rows, batch_rows, seed=rows % 997)
        else:
            data = SensorClustered(rows, batch_rows, seed=rows % 997)
        lo = int(rows * 0.495)
        hi = lo + max(1, rows // 100)
        return PushdownData(data, params["layout"], (TS0 + lo * TS_STEP, TS0 + hi * TS_STEP))

    def limit(self, params, case):
        return "arrow in memory (query)"

    def targets(self, mode, opts):
        # A 1 % time window: within 2x the time of the same query over the rows in memory, and at least
        # 10x faster than the same engine over the whole scan.
        out = []
        for g in self.grid(mode, opts):
            if g["layout"] != "time":
                continue
            where = human_bytes(g["size"])
            for engine in self.ENGINES:
                match = {"size": g["size"], "layout": "time", "engine": engine}
                out.append(Target(f"{where} 1% window via {engine} <= 2x in-memory time", "tidelog pushdown",
                                  "arrow in memory (query)", match, 0.5))
                out.append(Target(f"{where} 1% window via {engine} >= 10x the whole scan", "tidelog pushdown",
                                  "tidelog, whole scan", match, 10.0))
        return out

    def primary(self, params, case):
        return Metric("ms/query", False)

    def metrics(self, params, case, m):
        out = {"ms/query": m["seconds"] * 1e3}
        if m.get("topic_bytes"):
            out["frames %"] = 100.0 * m["frames"] / m["topic_frames"]
            out["bytes %"] = 100.0 * m["bytes"] / m["topic_bytes"]
            out["rows read"] = m["rows"]
        return out

    def label(self, params, case):
        what = {"window": "1% time window", "sensor": "sensor_id = 7, by sensor"}
        engine = f" via {case['engine']}" if case.get("engine") else ""
        return f"{human_bytes(params['size'])} {what[case['query']] if case else params['layout']}{engine}"


__all__ = ["Pushdown", "PushdownData", "SensorClustered"]
