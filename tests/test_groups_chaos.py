"""Consumer-group chaos, CI-sized: member processes SIGKILLed, restarted,
added and removed while they consume and commit (tests/torture/groups_chaos.py;
run it as a script for long runs), once per kind of assignor; and the checker
itself shown to catch each kind of violation in a made-up history."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "torture"))

import groups_chaos  # noqa: E402

CI_KILLS = int(os.environ.get("TIDELOG_GROUPS_CHAOS_KILLS", "20"))
CI_RECORDS = int(os.environ.get("TIDELOG_GROUPS_CHAOS_RECORDS", "2000"))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_groups_chaos(strategy, tmp_path):
    """Every record processed, ownership exclusive per partition epoch,
    re-delivery only after a kill or a hand-off without a commit, committed
    offsets forward only, no child error, lag 0 after the drain."""
    s = groups_chaos.run(CI_KILLS, seconds=60, records=CI_RECORDS, strategy=strategy, gap_s=0.3,
                         directory=str(tmp_path))
    print("\n" + groups_chaos.summary_line(s))
    assert s["violation_list"] == []
    assert s["kills"] >= CI_KILLS
    assert s["processed"] >= CI_RECORDS
    # Every kill forces a rebalance, but the coordinator may fold a kill and a
    # restart (or two kills) that land in the same round into one generation,
    # and the sampler sees only the generations alive when it looks.
    assert s["generations"] >= CI_KILLS // 2


# ------------------------------------------------------------------ the checker
IDS = {(0, 0): 0, (0, 1): 1, (1, 0): 2}
MODES = {"a": "every_k", "b": "each", "lazy": "lazy"}


def line(kind, member, p, epoch, **fields):
    return {"k": kind, "m": member + "-id", "x": member, "g": 1, "p": p, "e": epoch, **fields}


def clean_history():
    return [line("A", "a", 0, 1, c=-1001), line("A", "a", 1, 1, c=-1001),
            line("R", "a", 0, 1, o=0, id=0), line("R", "a", 1, 1, o=0, id=2),
            line("C", "a", 0, 1, c=1),
            line("V", "a", 0, 1, c=1),
            line("A", "b", 0, 2, c=1), line("R", "b", 0, 2, o=1, id=1), line("C", "b", 0, 2, c=2)]


def violations(lines, killed=()):
    found = []
    counts = groups_chaos.check_lines(lines, IDS, 3, MODES, set(killed), found.append)
    return found, counts


def test_checker_accepts_a_clean_history():
    found, counts = violations(clean_history())
    assert found == []
    assert counts["processed"] == 3 and counts["reprocessed"] == 0


def test_checker_allows_redelivery_after_a_kill_only():
    h = clean_history()
    h[5:6] = []  # a's epoch 1 of partition 0 ends without on_revoke: a was killed ...
    h[4] = line("C", "a", 0, 1, c=0)  # ... after a commit of 0
    h[5:] = [line("A", "b", 0, 2, c=0), line("R", "b", 0, 2, o=0, id=0), line("R", "b", 0, 2, o=1, id=1)]
    found, counts = violations(h, killed={"a"})
    assert found == [] and counts["reprocessed_after_kill"] == 1
    found, _ = violations(h)  # a not killed: nothing explains the redelivery
    assert any("was not killed" in v for v in found)


@pytest.mark.parametrize("mutate, expected", [
    (lambda h: h.insert(3, line("R", "b", 0, 1, o=1, id=1)), "belongs to"),  # two members in one epoch
    (lambda h: h.__setitem__(6, line("A", "b", 0, 1, c=1)), "epoch did not grow"),
    (lambda h: h.__setitem__(6, line("A", "b", 0, 2, c=2)), "records skipped"),
    (lambda h: h.__setitem__(6, line("A", "b", 0, 2, c=0)), "not at 1 committed when"),
    (lambda h: h.insert(6, line("R", "a", 0, 1, o=1, id=1)), "after its owner gave the partition up"),
    (lambda h: h.__setitem__(7, line("R", "b", 0, 2, o=1, id=2)), "holds id 1"),
    (lambda h: h.__setitem__(2, line("R", "a", 0, 1, o=1, id=1)), "contiguous"),
    (lambda h: h.__setitem__(4, line("C", "a", 0, 1, c=2)), "past what it processed"),
    (lambda h: h.__setitem__(5, line("V", "a", 0, 1, c=0)), "not its position"),
    (lambda h: h.__delitem__(7), "never processed"),
])
def test_checker_finds(mutate, expected):
    h = clean_history()
    mutate(h)
    found, _ = violations(h)
    assert any(expected in v for v in found), found


def test_checker_counts_redelivery_after_a_lazy_hand_off():
    h = [line("A", "lazy", 0, 1, c=-1001), line("R", "lazy", 0, 1, o=0, id=0), line("R", "lazy", 0, 1, o=1, id=1),
         line("V", "lazy", 0, 1, c=0),
         line("A", "b", 0, 2, c=0), line("R", "b", 0, 2, o=0, id=0), line("R", "b", 0, 2, o=1, id=1),
         line("A", "b", 1, 1, c=-1001), line("R", "b", 1, 1, o=0, id=2)]
    found, counts = violations(h)
    assert found == [] and counts["reprocessed_after_handoff_without_commit"] == 2
    h[3] = line("V", "a", 0, 1, c=0)
    h[0:3] = [line("A", "a", 0, 1, c=-1001), line("R", "a", 0, 1, o=0, id=0), line("R", "a", 0, 1, o=1, id=1)]
    found, _ = violations(h)  # "every_k" commits its position when it gives a partition up
    assert any("not its position" in v for v in found)


def test_groups_chaos_script_entry_point(tmp_path, capsys):
    """A short run through the command line, so a broken harness shows up even where slow tests are skipped."""
    rc = groups_chaos.main(["--kills", "2", "--records", "200", "--seed", "3", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "groups chaos (cooperative-sticky, seed 3): 2 kills (" in out
