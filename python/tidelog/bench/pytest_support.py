"""Runs one (workload, parameters, case, contender) of the suite under
pytest-benchmark: used by benches/test_suite.py.

pytest-benchmark times each ``contender.run(case)`` call as a whole (including
work a round does off the clock, such as crashing a writer); the suite's own,
self-timed metrics (medians over the measured rounds, as ``tidelog bench``
reports them) go into ``benchmark.extra_info``. Mode: the environment variable
``TIDELOG_BENCH_MODE`` ("quick" by default, "full" or "smoke").
"""
from __future__ import annotations

import os

from .contenders import default_contenders, find as find_contender
from .core import median
from .workloads import find as find_workload

MODE = os.environ.get("TIDELOG_BENCH_MODE", "quick")


def cases_of(workload: str, mode: str = MODE):
    """(id, params, case, contender name) for every supported combination (for parametrize)."""
    wl = find_workload(workload)
    for params in wl.grid(mode, {}):
        for case in wl.cases(params):
            for c in default_contenders():
                if c.supports(wl.name, params) is False:
                    continue
                ident = f"{wl.label(params, case)}-{c.name}".replace(" ", "_").replace(",", "")
                yield ident, params, case, c.name


def run_case(benchmark, workload: str, params: dict, case: dict, contender: str, tmpdir: str,
             mode: str = MODE) -> dict:
    import pytest

    wl = find_workload(workload)
    c = find_contender(contender)
    reason = c.available()
    if reason is not None:
        pytest.skip(reason)
    s = c.supports(wl.name, params)
    if s is not True:
        pytest.skip(s or "not supported")
    data = wl.make_data(params, mode)
    warm, rounds = wl.rounds(mode, {})
    measures: list[dict] = []
    c.setup(tmpdir, wl.name, params, data)
    try:
        benchmark.pedantic(lambda: measures.append(c.run(case)), rounds=rounds, warmup_rounds=warm, iterations=1)
    finally:
        c.teardown()
    ms = measures[warm:] if len(measures) > rounds else measures
    per = [wl.metrics(params, case, m) for m in ms]
    values = {k: median([p.get(k) for p in per]) for k in dict.fromkeys(k for p in per for k in p)}
    values.update(wl.pooled(params, case, ms))
    metric = wl.primary(params, case)
    info = {"suite": {"workload": wl.name, "params": params, "case": case, "contender": c.name, "kind": c.kind,
                      "metric": metric.name, "higher_is_better": metric.higher_is_better,
                      "value": values.get(metric.name), "metrics": values, "mode": mode}}
    benchmark.extra_info.update(info)
    return info["suite"]
