"""Shared helpers for the tidelog benchmarks (imported by the bench modules and report.py).

Every benchmark measures tidelog and its baseline(s) *interleaved* in the same
session: before each timed tidelog round, pytest-benchmark's ``setup`` hook runs
one round of every baseline (each baseline times itself, so its own setup stays
out of the figure). Noise on this shared 2-core VM then hits both sides alike.
Medians are reported; the ratio of medians goes into ``benchmark.extra_info``
together with the target, so ``report.py`` can print PASS/FAIL from the JSON.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema([("ts", pa.int64()), ("sensor_id", pa.int32()), ("value", pa.float64())])
BATCH_ROWS = 64 * 1024
SENSORS = 1000


def make_batch(rows: int, seed: int, start_ts: int = 0) -> pa.RecordBatch:
    """(int64 ts, int32 sensor_id, float64 value): 20 bytes a row, no nulls."""
    rng = np.random.default_rng(seed)
    ts = start_ts + np.arange(rows, dtype=np.int64) * 1_000_000
    ids = rng.integers(0, SENSORS, rows, dtype=np.int32)
    values = rng.normal(20.0, 5.0, rows)
    return pa.record_batch([pa.array(ts), pa.array(ids), pa.array(values)], schema=SCHEMA)


def make_batches(count: int, rows: int = BATCH_ROWS, seed: int = 0) -> list[pa.RecordBatch]:
    return [make_batch(rows, seed + i, start_ts=i * rows * 1_000_000) for i in range(count)]


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def interleaved(
    benchmark,
    subject: Callable[[], object],
    baselines: dict[str, Callable[[], float]],
    *,
    rounds: int,
    warmup_rounds: int = 1,
    before_subject: Callable[[], None] | None = None,
    after_subject: Callable[[], None] | None = None,
) -> tuple[list[float], dict[str, list[float]]]:
    """Runs ``rounds`` (+ warm-up) rounds; each round runs every baseline once
    (untimed by pytest-benchmark, self-timed: each returns its elapsed seconds),
    then ``before_subject`` (untimed), then the timed ``subject``, then
    ``after_subject`` (untimed). Returns (subject seconds, {baseline: seconds}),
    warm-up rounds dropped."""
    subject_times: list[float] = []
    base_times: dict[str, list[float]] = {name: [] for name in baselines}
    # pytest-benchmark skips teardown when disabled (--benchmark-disable): run a
    # round's after_subject before the next round's setup, or at the end.
    torn_down = [True]

    def teardown():
        if not torn_down[0]:
            torn_down[0] = True
            if after_subject is not None:
                after_subject()

    def setup():
        teardown()
        for name, fn in baselines.items():
            base_times[name].append(fn())
        if before_subject is not None:
            before_subject()

    def target():
        t0 = time.perf_counter()
        torn_down[0] = False
        subject()
        subject_times.append(time.perf_counter() - t0)

    benchmark.pedantic(target, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=warmup_rounds,
                       iterations=1)
    teardown()
    drop = min(warmup_rounds, max(len(subject_times) - 1, 0))
    return subject_times[drop:], {k: v[drop:] for k, v in base_times.items()}


def comparison(name: str, *, tidelog: float, baseline: float, unit: str, ratio: float, target: str | None,
               passed: bool | None, baseline_name: str, note: str = "") -> dict:
    """One row of the report: medians (in ``unit``), ratio, target and verdict.
    ``target`` None means "reported, no target"."""
    return {
        "name": name,
        "tidelog": tidelog,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "pass": passed,
        "note": note,
    }


def record(benchmark, comparisons: list[dict], **extra) -> None:
    benchmark.extra_info["comparisons"] = comparisons
    for k, v in extra.items():
        benchmark.extra_info[k] = v




from tidelog.bench.core import drop_page_cache  # noqa: E402,F401  (one implementation, shared with the suite)
