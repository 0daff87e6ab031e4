"""Topics for the DuckDB and Polars pushdown tests (test_duckdb_pushdown.py,
test_polars_pushdown.py): every column type a filter may meet, NULLs and NaN
among the values, time in order across frames so that a time window maps to
a few of them."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa

T0 = dt.datetime(2026, 1, 1)                      # naive = UTC
T0_NS = int(T0.replace(tzinfo=dt.timezone.utc).timestamp()) * 10**9
STEP_NS = 1_000_000                               # one row per ms
SITES = ["north", "south", "east", "west"]

#: Every type a pushed filter may meet: a nanosecond time index, ints, floats
#: with NaN, a dictionary, strings, dates, a zoned microsecond timestamp.
SCHEMA = pa.schema([
    ("ts", pa.timestamp("ns")),
    ("sensor_id", pa.int32()),
    ("value", pa.float64()),
    ("site", pa.dictionary(pa.int32(), pa.string())),
    ("note", pa.string()),
    ("day", pa.date32()),
    ("stamp", pa.timestamp("us", tz="UTC")),
    ("flag", pa.bool_()),
])

#: The benchmark's shape: an int64 nanosecond time index.
INT_SCHEMA = pa.schema([("ts", pa.int64()), ("sensor_id", pa.int32()), ("value", pa.float64())])


def rows_batch(start: int, n: int, seed: int, null_ts: bool = False) -> pa.RecordBatch:
    """Rows start .. start+n of the SCHEMA data set (deterministic)."""
    rng = np.random.default_rng(seed)
    i = np.arange(start, start + n, dtype=np.int64)
    ts = T0_NS + i * STEP_NS
    ts_mask = (i % 97 == 5) if null_ts else np.zeros(n, dtype=bool)
    ids = rng.integers(0, 20, n).astype(np.int32)
    value = rng.normal(20.0, 5.0, n).round(3)
    value[i % 53 == 7] = math.nan
    value_mask = i % 61 == 3
    site_idx = rng.integers(0, len(SITES), n).astype(np.int32)
    site_mask = i % 71 == 1
    notes = np.array([f"n{k % 13:02d}" for k in i], dtype=object)
    note_mask = i % 17 == 0
    days = ((ts // 10**9) // 86_400 + (i % 5)).astype(np.int32)
    at = (ts // 1000) + (i % 7) * 1_000
    flag = (i % 3 == 0)
    return pa.record_batch([
        pa.array(ts, pa.timestamp("ns"), mask=ts_mask),
        pa.array(ids),
        pa.array(value, mask=value_mask),
        pa.DictionaryArray.from_arrays(pa.array(site_idx, mask=site_mask), pa.array(SITES)),
        pa.array(notes, pa.string(), mask=note_mask),
        pa.array(days, pa.date32()),
        pa.array(at, pa.timestamp("us", tz="UTC")),
        pa.array(flag, mask=(i % 29 == 11)),
    ], schema=SCHEMA)


def fill(log, name: str = "sensors", *, rows: int = 12_000, frame_rows: int = 1_000, partitions: int = 2,
         compression: str = "none", null_ts: bool = True):
    """A SCHEMA topic of ``rows`` rows appended ``frame_rows`` at a time (one
    frame per partition per append), keyed by sensor_id, timestamp "ts"."""
    topic = log.create_topic(name, schema=SCHEMA, partitions=partitions, key="sensor_id", timestamp="ts",
                             durability="none", compression=compression)
    for k, start in enumerate(range(0, rows, frame_rows)):
        topic.append(rows_batch(start, min(frame_rows, rows - start), seed=k, null_ts=null_ts))
    return topic


def fill_int(log, name: str = "readings", *, rows: int = 20_000, frame_rows: int = 1_000, partitions: int = 1):
    """An INT_SCHEMA topic (int64 ns timestamps), ``frame_rows`` rows a frame, in time order."""
    topic = log.create_topic(name, schema=INT_SCHEMA, partitions=partitions, timestamp="ts", durability="none",
                             key="sensor_id" if partitions > 1 else None)
    rng = np.random.default_rng(1)
    for start in range(0, rows, frame_rows):
        n = min(frame_rows, rows - start)
        i = np.arange(start, start + n, dtype=np.int64)
        topic.append(pa.record_batch([pa.array(T0_NS + i * STEP_NS), pa.array((i % 50).astype(np.int32)),
                                      pa.array(rng.normal(20.0, 5.0, n))], schema=INT_SCHEMA))
    return topic


def normalized(rows) -> list[tuple]:
    """Rows comparable with ==, sorted: NaN as a marker (NaN != NaN), floats to
    12 digits (sums in another order differ in the last bits), None first."""
    def key(v):
        if isinstance(v, float):
            return "NaN" if v != v else float(f"{v:.12g}")
        return v

    out = [tuple(key(v) for v in r) for r in rows]
    return sorted(out, key=lambda r: tuple((v is None, str(type(v)), v if v is not None else 0) for v in r))


def fill_clustered(log, name: str = "clustered", *, sensors: int = 20, per_sensor: int = 1_000):
    """An INT_SCHEMA topic clustered by sensor: each sensor's readings in its own
    frame (``per_sensor`` rows), in time order within it; the value column
    holds a NaN in every frame."""
    topic = log.create_topic(name, schema=INT_SCHEMA, timestamp="ts", durability="none")
    for s in range(sensors):
        i = np.arange(per_sensor, dtype=np.int64)
        value = np.full(per_sensor, float(s))
        value[7] = math.nan
        topic.append(pa.record_batch([pa.array(T0_NS + (i * sensors + s) * STEP_NS),
                                      pa.array(np.full(per_sensor, s, dtype=np.int32)), pa.array(value)],
                                     schema=INT_SCHEMA))
    return topic
