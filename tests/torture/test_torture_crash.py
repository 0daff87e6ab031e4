"""CI-sized crash torture (issue 5): at least 50 SIGKILL/recover/check cycles of a
busy durable writer (tests/torture/crash.py; run it as a script for long runs)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import crash  # noqa: E402

CI_CYCLES = int(os.environ.get("TIDELOG_TORTURE_CYCLES", "50"))


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    summary = crash.run(CI_CYCLES, directory=str(tmp_path_factory.mktemp("torture")), max_delay=0.25)
    print(f"\ncrash torture: {summary}")
    return summary


@pytest.mark.slow
def test_no_acknowledged_record_lost(ci_run):
    """Every cycle: every acknowledged record intact, offsets dense, nothing half-visible,
    start offsets monotonic (crash.TortureFailure is raised at the first violation)."""
    assert ci_run["cycles"] == CI_CYCLES
    assert ci_run["lost"] == 0
    assert ci_run["acked_records_checked"] > 0
    assert ci_run["recoveries"] >= CI_CYCLES // 2
    assert ci_run["verify_runs"] >= CI_CYCLES // 2


@pytest.mark.slow
def test_verify_finds_no_index_damage(ci_run):
    assert ci_run["verify_index_problems"] == 0, ci_run["verify_index_problem_samples"]


def test_crash_torture_smoke(tmp_path):
    """Three cycles, so a broken harness shows up even where slow tests are skipped."""
    summary = crash.run(3, seed=1234, directory=str(tmp_path), max_delay=0.1)
    assert summary["cycles"] == 3 and summary["lost"] == 0


def test_crash_script_entry_point(tmp_path, capsys):
    summary_file = tmp_path / "summary.json"
    rc = crash.main(["--cycles", "2", "--seed", "99", "--dir", str(tmp_path), "--max-delay", "0.05",
                     "--json", str(summary_file)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "crash torture: 2 cycles" in out and "lost 0" in out
    import json

    assert json.loads(summary_file.read_text())["cycles"] == 2
