"""CI-sized many-writers torture: at least 50 SIGKILLs of writer processes that
share one log with each other and with two readers (tests/torture/many_writers.py;
run it as a script for long runs)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import many_writers  # noqa: E402

CI_KILLS = int(os.environ.get("TIDELOG_TORTURE_KILLS", "60"))
CI_SECONDS = float(os.environ.get("TIDELOG_TORTURE_SECONDS", "100"))


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    summary = many_writers.run(CI_KILLS, CI_SECONDS, directory=str(tmp_path_factory.mktemp("many-writers")))
    print("\n" + many_writers.summary_line(summary))
    return summary


@pytest.mark.slow
def test_no_acknowledged_record_lost(ci_run):
    """Every acknowledgement in the log at its offset with its checksum (or retired
    by retention), offsets dense, rows intact, each writer thread's order kept, no
    duplicates, readers shown only what the log holds, verify clean
    (many_writers.TortureFailure is raised at the first violation)."""
    assert ci_run["kills"] >= min(CI_KILLS, 50)
    assert ci_run["all_writer_kills"] >= 2
    assert ci_run["acked_records"] > 0
    assert ci_run["acked_checked_after_their_writers_kill"] > 0
    assert ci_run["shown_checked"] > 0


@pytest.mark.slow
def test_survivors_go_on_after_a_kill(ci_run):
    """Writers that were not killed acknowledge again soon after each kill (a
    generous bound: this measures a hang, not the latency; the run prints the figure)."""
    assert ci_run["max_survivor_stall_ms"] is not None
    assert ci_run["max_survivor_stall_ms"] < 5000


@pytest.mark.slow
def test_a_session_without_deaths_ends_clean(ci_run):
    """The run's session ends unclean (handles died in it); the recovery session
    after it closes cleanly and marks the log clean."""
    assert ci_run["clean_after_a_session_without_deaths"] is True


def test_many_writers_script_entry_point(tmp_path, capsys):
    """A short run through the command line, so a broken harness shows up even
    where slow tests are skipped."""
    summary_file = tmp_path / "summary.json"
    rc = many_writers.main(["--kills", "3", "--seconds", "30", "--seed", "5", "--dir", str(tmp_path),
                            "--json", str(summary_file)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "many-writers torture: 3 kills" in out
    import json

    assert json.loads(summary_file.read_text())["kills"] == 3
