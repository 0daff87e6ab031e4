"""The demo's sensors: a backfill of history, then a live feed.

* ``backfill``: ``rows`` readings of the past (``tidelog._sensors.ticks``: every
  sensor each 100 ms tick, around its own baseline), appended durably in
  ``batch_rows`` batches, as a gateway forwarding a day's buffer would.
* ``LiveSensors``: the same sensors reporting now, tick by tick, with a few of
  them overheating (their readings climb through the alert threshold), so the
  alerting workers raise alerts while it runs. A tick's readings are appended
  as one durable batch; the reading's timestamp is taken just before, so a
  worker's "now - ts" is the produce-to-alert latency across processes.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

from .._sensors import TICK_NS, TICK_SCHEMA, ticks

SEED = 42
OVERHEATING = 3            # sensors 0..2 climb through the threshold during the live feed
OVERHEAT_DEGREES = 25.0    # how far they climb over the feed's length


def history_start_ns(rows: int, sensors: int, now_ns: int) -> int:
    """Where the backfill starts so that it ends at ``now_ns``."""
    return now_ns - -(-rows // sensors) * TICK_NS


def backfill(rows: int, sensors: int, batch_rows: int, start_ns: int) -> Iterator[pa.RecordBatch]:
    return ticks(rows, sensors, batch_rows, start_ns, seed=SEED)


class LiveSensors:
    """``sensors`` sensors reporting every ``tick_s``: each tick is one batch
    (TICK_SCHEMA) stamped with the wall clock."""

    def __init__(self, sensors: int, seconds: float, tick_s: float = TICK_NS / 1e9):
        self.sensors = sensors
        self.seconds = seconds
        self.tick_s = tick_s
        self.baseline = np.random.default_rng(SEED).normal(20.0, 5.0, sensors)  # the backfill's baselines
        self.noise = np.random.default_rng(SEED + 1)
        self.ids = pa.array(np.arange(sensors, dtype=np.int32))

    def tick(self, progress: float) -> pa.RecordBatch:
        values = self.baseline + self.noise.normal(0.0, 0.5, self.sensors)
        hot = min(OVERHEATING, self.sensors)
        values[:hot] += OVERHEAT_DEGREES * min(1.0, progress)
        now = time.time_ns()
        ts = pa.array(np.full(self.sensors, now, dtype=np.int64), pa.int64()).cast(pa.timestamp("ns"))
        return pa.record_batch([ts, self.ids, pa.array(values)], schema=TICK_SCHEMA)

    def run(self, send: Callable[[pa.RecordBatch], Any], on_tick: Callable[[int, int], None]) -> tuple[int, float]:
        """Sends a batch each tick for ``seconds`` (a late tick is sent at once,
        not skipped). Returns (rows, seconds taken)."""
        ticks_total = max(1, int(round(self.seconds / self.tick_s)))
        t0 = time.monotonic()
        rows = 0
        for i in range(ticks_total):
            due = t0 + i * self.tick_s
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            batch = self.tick(i / max(1, ticks_total - 1))
            send(batch)
            rows += batch.num_rows
            on_tick(i + 1, ticks_total)
        return rows, time.monotonic() - t0
