"""The harness of the target benchmarks (test_bench_*.py) and report.py, on top of
the suite of ``tidelog bench`` (tidelog.bench): the baselines are the suite's
contenders, taken from its registry by name, and the data comes from the one
sensor generator (tidelog._sensors).

Every benchmark measures tidelog and its baseline(s) *interleaved* in the same
session: before each timed tidelog round, pytest-benchmark's ``setup`` hook runs
one round of every baseline (each baseline times itself, so its own setup stays
out of the figure). Noise on this shared 2-core VM then hits both sides alike.
Medians are reported; the ratio of medians goes into ``benchmark.extra_info``
together with the target, so ``report.py`` can print PASS/FAIL from the JSON.

Sizes: ``TIDELOG_BENCH_MODE`` (as for the suite) is "quick" by default, small
data and few rounds, a check that every benchmark runs; ``report.py`` runs with
"full", the sizes the targets are defined on. ``sized(full=..., quick=...)``
picks one. Single-threaded: one benchmark at a time.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import pyarrow as pa

from tidelog._sensors import SCHEMA, TS0, readings
from tidelog.bench.contenders import find as find_contender
from tidelog.bench.core import drop_page_cache, make_keys, make_values, median  # noqa: F401 (shared helpers)
from tidelog.bench.pytest_support import MODE

BATCH_ROWS = 64 * 1024
VALUE_BYTES = 100


def sized(full, quick):
    """``full`` with TIDELOG_BENCH_MODE=full, else ``quick``."""
    return full if MODE == "full" else quick


def make_batch(rows: int, seed: int, start_ts: int = 0) -> pa.RecordBatch:
    """(int64 ts, int32 sensor_id, float64 value): 20 bytes a row, no nulls, ts 1 ms apart from ``start_ts``."""
    return readings(rows, seed, start_ts)


def make_batches(count: int, rows: int = BATCH_ROWS, seed: int = 0) -> list[pa.RecordBatch]:
    """``count`` batches in time order from the sensor stream's start (TS0: a timestamp a topic takes as is)."""
    return [make_batch(rows, seed + i, start_ts=TS0 + i * rows * 1_000_000) for i in range(count)]


@contextlib.contextmanager
def contender_rounds(name: str, workload: str, params: dict, data, tmpdir: str,
                     case: dict | None = None) -> Iterator["ContenderRounds"]:
    """The suite's contender ``name`` set up for ``workload`` at ``params`` on
    ``data`` (the workload's data class); yields a function running one round
    of ``case`` (or of the case it is called with) and returning the
    contender's measure ({"seconds": ..., ...}); tears the contender down on exit."""
    c = find_contender(name)
    reason = c.available()
    if reason is not None:
        import pytest

        pytest.skip(f"{name}: {reason}")
    assert c.supports(workload, params) is True, (name, workload, params)
    c.setup(tmpdir, workload, params, data)
    try:
        yield ContenderRounds(c, case or {})
    finally:
        c.teardown()


class ContenderRounds:
    """One set-up contender: calling it runs one round (of ``case``, default the
    one it was made with); ``contender`` is the contender itself."""

    def __init__(self, contender, case: dict):
        self.contender, self.case = contender, case

    def __call__(self, case: dict | None = None) -> dict:
        return self.contender.run(self.case if case is None else case)


def collect(round_fn: Callable[[], dict], measures: list[dict], case: dict | None = None) -> Callable[[], None]:
    """A subject for ``interleaved``: one round of a contender, its measure kept
    in ``measures`` (the figures come from the contender's own clock; take the
    last ``len(times)`` entries, the warm-up rounds come first)."""
    return lambda: measures.append(round_fn(case))


def seconds_of(round_fn: Callable[[], dict]) -> Callable[[], float]:
    """A baseline for ``interleaved``: one contender round, its self-timed seconds."""
    return lambda: round_fn()["seconds"]


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


def absolute(name: str, *, value: float, target: str, unit: str, baseline: float, baseline_name: str,
             ratio: float | None = None, note: str = "") -> dict:
    """A comparison whose target bounds the tidelog median itself (">= 3e6"
    records/s, "<= 20" us; report.py reads ``"target_on": "tidelog"``), the
    baseline shown for context. ``ratio`` defaults to value / baseline; pass
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


def record(benchmark, comparisons: list[dict], **extra) -> None:
    benchmark.extra_info["comparisons"] = comparisons
    for k, v in extra.items():
        benchmark.extra_info[k] = v
