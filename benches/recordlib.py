"""Helpers shared by the Producer/Consumer benchmarks (issue 3):
test_bench_producer.py and test_bench_latency.py.

Their targets are partly absolute (records/s, microseconds) rather than ratios,
so a comparison can carry ``"target_on": "tidelog"`` (see report.py): the target
bounds the tidelog median itself, and the baseline measured in the same run is
shown next to it for context.
"""
from __future__ import annotations

import numpy as np

from benchlib import comparison

VALUE_BYTES = 100


def make_values(n: int, size: int = VALUE_BYTES, seed: int = 0) -> list[bytes]:
    """n distinct, incompressible values of ``size`` bytes (one bytes object each)."""
    blob = np.random.default_rng(seed).bytes(n * size)
    return [blob[i * size:(i + 1) * size] for i in range(n)]


def make_keys(n: int, start: int = 0) -> list[bytes]:
    """n distinct 16-byte keys, b"key-000000000042"."""
    return [b"key-%012d" % i for i in range(start, start + n)]


def absolute(name: str, *, value: float, target: str, unit: str, baseline: float, baseline_name: str,
             ratio: float | None = None, note: str = "") -> dict:
    """A comparison whose target bounds the tidelog median itself (">= 3e6"
    records/s, "<= 20" us). ``ratio`` defaults to value / baseline; pass
    baseline / value for lower-is-better units so that higher is better."""
    op, num = target.split()
    num = float(num)
    passed = {">=": value >= num, ">": value > num, "<=": value <= num, "<": value < num}[op]
    if ratio is None:
        ratio = value / baseline if baseline else float("nan")
    c = comparison(name, tidelog=value, baseline=baseline, unit=unit, ratio=ratio, target=target, passed=passed,
                   baseline_name=baseline_name, note=note)
    c["target_on"] = "tidelog"
    return c


def percentiles_us(samples_ns, qs=(50, 99, 99.9)) -> list[float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    if not len(a):
        return [float("nan")] * len(qs)
    return [float(x) for x in np.percentile(a, qs)]
