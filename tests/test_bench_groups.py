"""The groups workload of the benchmark suite (tidelog.bench.groups): a smoke
run of every part, members in spawned processes, one of them SIGKILLed. No
timing assertions: what it measures is checked, not how fast."""
from __future__ import annotations

import math

import pytest

from tidelog.bench import Options, run_suite
from tidelog.bench.contenders import SmallFdatasync, TidelogGroups
from tidelog.bench.contenders.tidelog_groups import groups_available
from tidelog.bench.workloads import find

pytestmark = pytest.mark.skipif(groups_available() is not None, reason=str(groups_available()))

ROLES = ["group", "one"]


def test_smoke_run_of_every_part(tmp_path):
    wl = find("groups")
    contenders = [TidelogGroups(r) for r in ROLES] + [SmallFdatasync(), SmallFdatasync(append=True)]
    doc = run_suite(Options(mode="smoke", dir=str(tmp_path), raise_errors=True), contenders=contenders,
                    workloads=[wl])
    assert doc["errors"] == []
    rows = {(r["params"]["part"], r["contender"]): r for r in doc["results"]}
    assert set(rows) == {("failover", "tidelog group"), ("join", "tidelog group"), ("commit", "tidelog group"),
                         ("commit", "pwrite+fdatasync 128 B"), ("commit", "append+fdatasync 128 B"),
                         ("autocommit", "tidelog group"),
                         ("scaling", "tidelog group"),
                         ("scaling", "tidelog group, 1 member")}
    for r in rows.values():
        assert r["value"] is not None and math.isfinite(r["value"]) and r["value"] > 0, r
        if r["limit"] is not None and r["contender"] != r["limit"]:
            assert r["ratio_limit"] > 0, r
    failover = rows[("failover", "tidelog group")]["metrics"]
    assert failover["kills"] == wl.FAILOVER["smoke"][1]
    assert failover["all moved max ms"] >= failover["p50 ms"] > 0
    join = rows[("join", "tidelog group")]["metrics"]
    assert join["joins"] == wl.JOIN["smoke"][1] and join["others records/s before"] > 0
    assert rows[("commit", "tidelog group")]["metrics"]["p99 µs"] >= rows[("commit", "tidelog group")]["value"]
    auto = rows[("autocommit", "tidelog group")]["metrics"]
    assert auto["records/s off"] > 0 and auto["records/s 100 ms"] > 0 and auto["5 s vs off"] > 0
    assert list(tmp_path.iterdir()) == []   # every round's log removed


def test_scaling_round_reads_every_record(tmp_path):
    """One scaling round of 4 members, and of one alone: together they received every record."""
    wl = find("groups")
    params = next(p for p in wl.grid("smoke", {}) if p["part"] == "scaling")
    data = wl.make_data(params, "smoke")
    for role, members in (("group", params["members"]), ("one", 1)):
        c = TidelogGroups(role)
        c.setup(str(tmp_path), wl.name, params, data)
        try:
            m = c.run({})
        finally:
            c.teardown()
        assert m["members"] == members and m["seconds"] > 0
        assert m["received"] >= m["records"] == data.partitions * data.per_partition
