"""The processes workload of the benchmark suite (tidelog.bench.many_processes):
its quick mode runs, the parent merges what the spawned workers measured, and
every acknowledged record of every process is in the round's log. No timing
assertions: what it measures is checked, not how fast."""
from __future__ import annotations

import math

import pytest

from tidelog.bench import Options, run_suite
from tidelog.bench import _child
from tidelog.bench.contenders import TidelogProcesses
from tidelog.bench.contenders.tidelog_processes import shared_mode_available
from tidelog.bench.workloads import find

ROLES = ["many", "one", "exclusive", "threads"]


def _contenders() -> list[TidelogProcesses]:
    return [TidelogProcesses(r) for r in ROLES if r != "many" or shared_mode_available()]


def test_workers_are_spawned():
    assert _child.spawn_context().get_start_method() == "spawn"


def test_quick_mode_merges_the_workers(tmp_path):
    wl = find("processes")
    doc = run_suite(Options(mode="quick", dir=str(tmp_path), raise_errors=True, rounds=1), contenders=_contenders(),
                    workloads=[wl])
    assert doc["errors"] == []
    rows = doc["results"]
    names = {c.name for c in _contenders()}
    assert {r["contender"] for r in rows} == names
    acks_per_thread, single_acks = wl.ACKS["quick"]
    processes, threads = wl.ACKS_SHAPE
    batch_rows, batches = wl.COLUMNAR["quick"]
    for r in rows:
        assert r["value"] is not None and math.isfinite(r["value"]) and r["value"] > 0, r
        part, many = r["params"]["part"], r["contender"] in ("tidelog processes", "tidelog 1 process, all threads")
        if part == "acks":
            # every ack of every thread of every process is a record of the round's log
            expected = processes * threads * acks_per_thread if many else single_acks
            assert r["info"]["check"] == [expected] * len(r["rounds"]), r
            assert r["metrics"]["acks/fdatasync"] > 0
        elif part == "columnar":
            assert r["info"]["check"] == [wl.COLUMNAR_PROCESSES * batches * batch_rows] * len(r["rounds"]), r
        else:
            assert r["contender"] in ("tidelog processes", "tidelog 1 process exclusive"), r
            assert r["metrics"]["p99 µs"] >= r["value"], r
        if r["contender"] != r["limit"]:
            assert r["ratio_limit"] > 0, r
    assert list(tmp_path.iterdir()) == []   # every round's log removed


@pytest.mark.skipif(not shared_mode_available(), reason="this build has no shared read-write mode yet")
def test_many_processes_one_log_round(tmp_path):
    """One round of each part from the many-process side, checked record by record."""
    wl = find("processes")
    c = TidelogProcesses("many")
    for params in wl.grid("smoke", {})[:2]:
        data = wl.make_data(params, "smoke")
        c.setup(str(tmp_path), wl.name, params, data)
        try:
            m = c.run({})
        finally:
            c.teardown()
        assert m["processes"] == data.processes and m["fdatasyncs"] >= 1 and m["seconds"] > 0
        if params["part"] == "acks":
            assert m["acks"] == m["check"] == data.processes * data.threads * data.per_thread
            assert len(m["latencies_ns"]) == m["acks"]
        else:
            assert m["rows"] == m["check"] == data.rows
