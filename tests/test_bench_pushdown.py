"""The pushdown workload (tidelog.bench.pushdown) on tiny data: every
contender answers every query alike, tidelog's pushdown reads a small share
of the topic, and the workload's targets are evaluated."""
from __future__ import annotations

import pytest

pytest.importorskip("duckdb._sources")
pytest.importorskip("polars")

from tidelog.bench import Options, run_suite  # noqa: E402
from tidelog.bench.contenders import TidelogPushdown  # noqa: E402
from tidelog.bench.workloads import WORKLOADS  # noqa: E402


def test_pushdown_agrees_and_reads_little(tmp_path):
    workload = [w for w in WORKLOADS if w.name == "pushdown"]
    contenders = [TidelogPushdown(role) for role in ("pushdown", "whole scan", "memory", "needed")]
    doc = run_suite(Options(mode="smoke", dir=str(tmp_path), raise_errors=True), contenders=contenders,
                    workloads=workload)
    assert doc["errors"] == []
    checks: dict[str, set] = {}
    for r in doc["results"]:
        checks.setdefault(r["label"], set()).update(r["info"]["check"])
    assert len(checks) == 4 and all(len(v) == 1 for v in checks.values()), checks
    pushed = [r for r in doc["results"] if r["contender"] == "tidelog pushdown"]
    assert len(pushed) == 4
    for r in pushed:
        # smoke: 25 frames of 4 Ki rows; a 1% window spans 1 or 2, sensor 7 of 1000 (clustered) 1
        assert r["metrics"]["frames %"] <= 8, r
    assert {t["name"] for t in doc["targets"]} and all(t["ratio"] is not None for t in doc["targets"])
