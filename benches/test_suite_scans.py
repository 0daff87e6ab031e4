"""The ``scans`` workload of the benchmark suite (tidelog.bench) under pytest-benchmark:
one test per (parameters, case, contender). The same code as ``tidelog bench -w scans``;
the suite's own metrics land in ``extra_info["suite"]``. TIDELOG_BENCH_MODE=full for
the full sizes (default: quick)."""
from __future__ import annotations

import pytest

from tidelog.bench.pytest_support import cases_of, run_case

CASES = list(cases_of("scans"))


@pytest.mark.parametrize("params, case, contender", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_suite_scans(benchmark, bench_dir, params, case, contender):
    run_case(benchmark, "scans", params, case, contender, bench_dir)
