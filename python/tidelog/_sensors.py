"""Synthetic sensor readings: the one generator behind the demo, the benchmark
suite (``tidelog.bench``) and the target benchmarks (``benches/``).

Every reading is (ts, int32 sensor_id, float64 value). Two shapes:

* ``readings``: ``rows`` readings 1 ms apart from random sensors of
  ``SENSORS``, values ~ N(20, 5); int64 ts, 20 bytes a row. What the
  benchmarks append and scan.
* ``ticks``: every one of ``sensors`` sensors reports each 100 ms tick, each
  around its own baseline; ``timestamp("ns")`` ts. What the demo shows.

Both are deterministic: the same arguments give the same bytes, so figures
measured on them stay comparable from run to run. This module imports only
numpy and pyarrow, so the core package (demo.py) and the benchmarks can share it.
Pure functions: safe from any thread.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema([("ts", pa.int64()), ("sensor_id", pa.int32()), ("value", pa.float64())])
ROW_BYTES = 20                    # 8 + 4 + 8, no nulls
SENSORS = 1000
TS0 = 1_700_000_000_000_000_000   # ns since the epoch: where the benchmark suite's data starts
TS_STEP = 1_000_000               # readings are 1 ms apart


def readings(rows: int, seed: int, start_ts: int = TS0) -> pa.RecordBatch:
    """``rows`` readings (int64 ts, int32 sensor_id, float64 value): row ``i``
    has ts = start_ts + i * 1 ms, a uniform sensor of ``SENSORS`` and a value
    drawn from N(20, 5), both from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    ts = start_ts + np.arange(rows, dtype=np.int64) * TS_STEP
    ids = rng.integers(0, SENSORS, rows, dtype=np.int32)
    values = rng.normal(20.0, 5.0, rows)
    return pa.record_batch([pa.array(ts), pa.array(ids), pa.array(values)], schema=SCHEMA)


class SensorData:
    """A deterministic stream of ``total_rows`` readings in ``batch_rows``
    batches, in time order from ``TS0``, generated on demand (a 5 GB data set
    never has to sit in memory twice): every consumer of ``batches()`` gets the
    same rows. Immutable; each ``batches()`` call is an independent iterator."""

    def __init__(self, total_rows: int, batch_rows: int, seed: int = 0):
        self.total_rows = int(total_rows)
        self.batch_rows = int(batch_rows)
        self.seed = seed

    @property
    def nbatches(self) -> int:
        return -(-self.total_rows // self.batch_rows)

    @property
    def nbytes(self) -> int:
        return self.total_rows * ROW_BYTES

    def batches(self) -> Iterator[pa.RecordBatch]:
        for i in range(self.nbatches):
            start = i * self.batch_rows
            yield readings(min(self.batch_rows, self.total_rows - start), self.seed * 1_000_003 + i,
                           self.ts_of_row(start))

    def ts_of_row(self, row: int) -> int:
        return TS0 + row * TS_STEP


TICK_SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("value", pa.float64())])
TICK_NS = 100_000_000             # ticks: each sensor reports every 100 ms


def ticks(rows: int, sensors: int, batch_rows: int, start_ns: int, seed: int = 42) -> Iterator[pa.RecordBatch]:
    """Batches of ``rows`` readings in time order (``TICK_SCHEMA``): at every
    tick each sensor reports its own baseline (N(20, 5), drawn once) plus
    N(0, 0.5) noise; a batch holds ``batch_rows // sensors`` whole ticks."""
    rng = np.random.default_rng(seed)
    baseline = rng.normal(20.0, 5.0, sensors)
    sensor_ids = np.arange(sensors, dtype=np.int32)
    produced = 0
    tick = 0
    ticks_per_batch = max(1, batch_rows // sensors)
    while produced < rows:
        n_ticks = ticks_per_batch
        ts = start_ns + (tick + np.repeat(np.arange(n_ticks, dtype=np.int64), sensors)) * TICK_NS
        ids = np.tile(sensor_ids, n_ticks)
        values = np.repeat(baseline[None, :], n_ticks, axis=0).ravel() + rng.normal(0.0, 0.5, n_ticks * sensors)
        take = min(len(ts), rows - produced)
        yield pa.record_batch(
            [pa.array(ts[:take], pa.timestamp("ns")), pa.array(ids[:take]), pa.array(values[:take])],
            schema=TICK_SCHEMA,
        )
        produced += take
        tick += n_ticks


__all__ = ["SCHEMA", "ROW_BYTES", "SENSORS", "TS0", "TS_STEP", "readings", "SensorData", "TICK_SCHEMA", "TICK_NS",
           "ticks"]
