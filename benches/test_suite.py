"""The workloads of the benchmark suite (tidelog.bench) under pytest-benchmark:
one test per (workload, parameters, case, contender), the same code as
``tidelog bench -w <workload>``; the suite's own metrics land in
``extra_info["suite"]``. Select a workload with ``-k``, e.g.
``pytest benches/test_suite.py -k ingest``. TIDELOG_BENCH_MODE=full for the
full sizes (default: quick)."""
from __future__ import annotations

import pytest

from tidelog.bench.pytest_support import cases_of, run_case
from tidelog.bench.workloads import WORKLOADS

CASES = [(wl.name, *case) for wl in WORKLOADS for case in cases_of(wl.name)]


@pytest.mark.parametrize("workload, params, case, contender", [(c[0], *c[2:]) for c in CASES],
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_suite(benchmark, bench_dir, workload, params, case, contender):
    run_case(benchmark, workload, params, case, contender, bench_dir)
