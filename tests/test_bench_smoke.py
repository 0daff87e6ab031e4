"""CI smoke run of the benchmark suite (``tidelog bench``): every workload x
contender once, on tiny data, one round, so that the benchmarks cannot rot.
No timing assertions: only that every pair runs, produces finite figures and
the same answers. Contenders whose package is missing (duckdb, lmdb,
eventsourcing, tidelog.eventsourcing, confluent-kafka) or tool (Java and
Maven, for the Kafka broker) are skipped, not failed. The Kafka contenders
run against the one broker the suite starts (tidelog.bench.kafka).
"""
from __future__ import annotations

import json
import math
import os

import pytest

from tidelog.bench import Contender, Options, run_suite
from tidelog.bench.contenders import default_contenders
from tidelog.bench.workloads import WORKLOADS

SMOKE = "smoke"


def _pairs():
    for wl in WORKLOADS:
        grid = wl.grid(SMOKE, {})
        for c in default_contenders():
            if any(c.supports(wl.name, p) is True for p in grid):
                yield pytest.param(wl, c, id=f"{wl.name}-{c.name.replace(' ', '_')}")


def _run(workloads, contenders, tmp_path, **kw) -> dict:
    opts = Options(mode=SMOKE, dir=str(tmp_path), raise_errors=True, **kw)
    return run_suite(opts, contenders=contenders, workloads=workloads)


@pytest.mark.parametrize("wl, contender", list(_pairs()))
def test_workload_contender(wl, contender, tmp_path):
    reason = contender.available()
    if reason is not None:
        pytest.skip(reason)
    doc = _run([wl], [contender], tmp_path)
    assert doc["errors"] == []
    expected = [p for p in wl.grid(SMOKE, {}) if contender.supports(wl.name, p) is True]
    rows = [r for r in doc["results"] if r["contender"] == contender.name]
    assert len(rows) == sum(len(wl.cases(p)) for p in expected), rows   # cases may differ by parameters
    for r in rows:
        assert r["value"] is not None and math.isfinite(r["value"]) and r["value"] > 0, r
        assert r["workload"] == wl.name and r["kind"] == contender.kind
    json.dumps(doc)  # the document is plain JSON
    assert list(tmp_path.iterdir()) == []  # scratch data cleaned up


def test_ratios_and_outputs(tmp_path, capsys):
    """A small run with tidelog, its limit and a peer: ratios on the tidelog rows,
    the table (plain and rich), the Markdown section, the plots, the JSON."""
    from tidelog.bench.render import BEGIN, END, update_markdown
    from tidelog.bench.runner import load_json, write_json
    from tidelog.bench.table import print_table

    names = {"tidelog", "write+fdatasync", "sqlite FULL"}
    cs = [c for c in default_contenders() if c.name in names]
    doc = _run([w for w in WORKLOADS if w.name == "ingest"], cs, tmp_path / "scratch")
    rows = [r for r in doc["results"] if r["contender"] == "tidelog"]
    keyed = [r for r in rows if "partitions" in r["params"]]   # no peer takes the 4-partition case
    assert keyed and all(r["ratio_limit"] > 0 and r["best_peer"] is None for r in keyed)
    rows = [r for r in rows if r not in keyed]
    assert rows
    for r in rows:
        assert r["limit"] == "write+fdatasync" and r["ratio_limit"] > 0
        assert r["best_peer"] == "sqlite FULL" and r["ratio_peer"] > 0
    print_table(doc, plain=True)
    out = capsys.readouterr().out
    assert "vs limit" in out and "write+fdatasync" in out
    pytest.importorskip("rich")
    print_table(doc, plain=False)
    assert "tidelog" in capsys.readouterr().out

    path = tmp_path / "results.json"
    write_json(doc, str(path))
    assert load_json(str(path))["results"] == doc["results"]
    md = tmp_path / "BENCH.md"
    md.write_text("# t\n\nintro\n\n## Old section\n\nkept\n")
    update_markdown(doc, str(md), json_path=str(path))
    update_markdown(doc, str(md), json_path=str(path))  # idempotent: replaced between the markers
    text = md.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "## Old section\n\nkept" in text
    assert text.index(BEGIN) < text.index("## Old section")


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from tidelog.bench.plots import plot

    cs = [c for c in default_contenders() if c.name in {"tidelog", "arrow (in memory)"}]
    doc = _run([w for w in WORKLOADS if w.name == "scans"], cs, tmp_path / "scratch")
    written = plot(doc, str(tmp_path / "plots"))
    assert [p.rsplit("/", 1)[-1] for p in written] == ["scans.png"]
    assert plot(doc, str(tmp_path / "all.png")) == [str(tmp_path / "all.png")]


def test_scans_agree(tmp_path):
    """Every scan contender returns the same sums for the same data."""
    cs = [c for c in default_contenders() if c.available() is None and c.supports("scans", {"size": 200_000})]
    doc = _run([w for w in WORKLOADS if w.name == "scans"], cs, tmp_path)
    by_query: dict[str, dict[str, float]] = {}
    for r in doc["results"]:
        by_query.setdefault(r["case"]["query"], {})[r["contender"]] = r["info"]["check"][0]
    assert set(by_query) == {"scan", "range", "point"}
    for q, checks in by_query.items():
        ref = checks["arrow (in memory)"]
        for name, v in checks.items():
            assert v == pytest.approx(ref, rel=1e-9), (q, name, checks)


def test_events_agree_and_targets(tmp_path, capsys):
    """The events workload on tiny data: every side loads the same aggregate and
    projects the same balances; the workload's targets are evaluated (met or
    not, a ratio each, or "not measured" for a side that is not there) and printed."""
    pytest.importorskip("eventsourcing", reason="the eventsourcing library is not installed (pip install "
                                                "eventsourcing==9.5.6): the events workload's peer")
    from tidelog.bench.table import print_table

    names = {"tidelog event store", "eventsourcing sqlite", "eventsourcing on tidelog", "sqlite view alone"}
    cs = [c for c in default_contenders() if c.name in names]
    doc = _run([w for w in WORKLOADS if w.name == "events"], cs, tmp_path)
    assert doc["errors"] == []
    checks: dict[str, set] = {}
    for r in doc["results"]:
        if "check" in r["info"]:
            checks.setdefault(r["label"], set()).update(r["info"]["check"])
    assert checks and all(len(v) == 1 for v in checks.values()), checks
    assert {r["contender"] for r in doc["results"]} >= {"tidelog event store", "eventsourcing sqlite"}
    sync = [c for c in cs if c.name == "eventsourcing sqlite"][0].description
    assert "synchronous=FULL" in sync and "WAL" in sync
    targets = doc["targets"]
    assert len(targets) == 6 and all(t["workload"] == "events" for t in targets)
    for t in targets:
        if t["subject"] == "eventsourcing on tidelog" and any(s["contender"] == t["subject"] for s in doc["skipped"]):
            assert t["ratio"] is None and "not measured" in t["reason"]
        else:
            assert t["ratio"] > 0 and t["met"] in (True, False), t
    print_table(doc, plain=True)
    out = capsys.readouterr().out
    assert "Targets" in out and "(target >= 10x)" in out


class _Missing(Contender):
    name = "missing"
    requires = ("tidelog_no_such_module",)

    def ingest_run(self, case):  # pragma: no cover - never runs
        raise AssertionError


def test_missing_package_is_skipped(tmp_path):
    doc = _run([w for w in WORKLOADS if w.name == "ingest"], [_Missing()], tmp_path)
    assert doc["results"] == [] and doc["errors"] == []
    (skip,) = doc["skipped"]
    assert skip["contender"] == "missing" and "tidelog_no_such_module" in skip["reason"]


def test_cli(tmp_path, capsys):
    from tidelog.cli import main

    out = tmp_path / "r.json"
    rc = main(["bench", "--smoke", "-w", "ingest", "-c", "tidelog", "os.write", "--json", str(out), "--plain",
               "--dir", str(tmp_path / "scratch"), "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert {r["contender"] for r in doc["results"]} == {"tidelog", "tidelog interval", "tidelog none", "os.write"}
    assert "ingest" in doc["workloads"] and doc["machine"]["cores"] >= 1
    assert "vs limit" in capsys.readouterr().out


# ------------------------------------------------------------- import graph

def _bench_import_graph() -> dict[str, set[str]]:
    """{module: the tidelog.bench modules it imports}, from the source: module-level
    and function-level imports alike (a function-level import is still an arrow).
    The implicit import of a parent package is left out (every submodule has it)."""
    import ast
    import pathlib

    import tidelog.bench

    root = pathlib.Path(tidelog.bench.__file__).parent
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        modules[".".join(parts)] = (path, is_pkg)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def _topological(graph: dict[str, set[str]]) -> list[str]:
    """The modules, each after the ones it imports; fails naming a circle if there is one."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == "done":
            return
        if state.get(m) == "open":
            raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
        state[m] = "open"
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = "done"
        order.append(m)

    for m in sorted(graph):
        visit(m, [])
    return order


def test_bench_imports_form_a_tree():
    graph = _bench_import_graph()
    assert "tidelog.bench._child" in graph and "tidelog.bench.contenders" in graph
    assert not graph["tidelog.bench._child"], graph["tidelog.bench._child"]  # it knows no contender
    _topological(graph)


def test_bench_modules_import_alone():
    """Each module imports in a fresh interpreter, leaves first: an import that
    only works after another module happened to be imported shows up here."""
    import subprocess
    import sys

    for m in _topological(_bench_import_graph()):
        if m.endswith(".__main__"):
            continue  # importing it runs the suite: `python -m tidelog.bench`
        r = subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (m, r.stderr[-2000:])


def test_the_latency_workload_pauses_other_contenders_servers():
    """A peer's server (the Kafka broker) is stopped while another contender's
    latency round runs, and runs again for its own and afterwards."""
    import subprocess
    import sys

    from tidelog.bench.core import Contender
    from tidelog.bench.runner import _others_paused
    from tidelog.bench.workloads import find

    def state(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        class WithServer(Contender):
            name = "with a server"

            def background_pids(self):
                return [server.pid]

        class Plain(Contender):
            name = "plain"

        peer, other = WithServer(), Plain()
        latency = find("latency")
        assert latency.pause_others
        with _others_paused(latency, other, [peer, other]):
            assert state(server.pid) == "T"
        assert state(server.pid) in "SR"
        with _others_paused(latency, peer, [peer, other]):
            assert state(server.pid) in "SR"  # its own round: running
        with _others_paused(find("ingest"), other, [peer, other]):
            assert state(server.pid) in "SR"  # only workloads that ask for it
    finally:
        server.kill()
        server.wait()


def test_each_parameter_set_starts_after_the_memory_is_released(monkeypatch, tmp_path):
    """The runner releases the memory a parameter set left (garbage, pyarrow's pool,
    malloc's free pages) before it builds the next one's data."""
    from tidelog.bench import runner
    from tidelog.bench.contenders import default_contenders
    from tidelog.bench.workloads import find

    calls = []
    real = runner.release_memory
    monkeypatch.setattr(runner, "release_memory", lambda: (calls.append(1), real()))
    scans = find("scans")
    opts = runner.Options(mode="smoke")
    made = []
    make = scans.make_data
    monkeypatch.setattr(scans, "make_data", lambda params, mode: (made.append(len(calls)), make(params, mode))[1])
    chosen = [c for c in default_contenders() if c.name == "tidelog"]
    runner.run_workload(scans, chosen, opts, str(tmp_path))
    grid = scans.grid("smoke", vars(opts))
    assert made == list(range(1, len(grid) + 1))  # one release before each set's data
    runner.release_memory()  # and it runs on this platform


def test_a_range_round_reads_windows_spread_over_the_data_and_times_the_first_alone():
    """The scans workload's range case: 8 windows of 1 % each, from 5 % to 95 % of
    the rows, in time order and inside the data; a round reports the time per
    window and the first window's own time (the caches the previous contender left)."""
    from tidelog.bench.contenders._common import timed_windows
    from tidelog.bench.workloads import find

    scans = find("scans")
    data = scans.make_data({"size": 200_000 * 20}, "smoke")
    rows = data.sensors.total_rows
    assert len(data.range_rows) == len(data.range_ts) == scans.RANGE_WINDOWS
    for (lo, hi), (t0, t1) in zip(data.range_rows, data.range_ts):
        assert 0 <= lo < hi <= rows and hi - lo == rows // 100
        assert (t0, t1) == (data.sensors.ts_of_row(lo), data.sensors.ts_of_row(hi))
    assert data.range_rows == sorted(data.range_rows)
    assert data.range_rows[0][0] == int(rows * 0.05) and data.range_rows[-1][1] <= int(rows * 0.95)

    seen = []
    m = timed_windows(data.range_ts, lambda t0, t1: (seen.append((t0, t1)), (2, 1.5))[1])
    assert seen == data.range_ts
    assert (m["rows"], m["check"], m["queries"]) == (2 * len(seen), 1.5 * len(seen), len(seen))
    assert 0 <= m["first_seconds"] <= m["seconds"]
    out = scans.metrics({"size": 0}, {"query": "range"}, m)
    assert out["ms/query"] == m["seconds"] * 1e3 / len(seen) and out["first ms"] == m["first_seconds"] * 1e3


def test_the_file_and_pipe_floor_hands_over_each_record_across_the_files_wrap(tmp_path, monkeypatch):
    """The ``file + pipe`` latency floor: each record written reaches the reader
    whole and in order, also when the file wraps past its capacity."""
    from tidelog.bench.contenders.limits import _FileChannel

    monkeypatch.setattr(_FileChannel, "CAPACITY", 4096)  # wraps every 40 records of 100 bytes
    path = str(tmp_path / "records.bin")
    _FileChannel.create(path)
    r, w = os.pipe()
    writer = _FileChannel(path, w, 100, writer=True)
    reader = _FileChannel(path, r, 100, writer=False)
    try:
        for i in range(130):
            value = i.to_bytes(8, "little") + bytes([i % 251]) * 92
            writer.put(value)
            assert reader.take() == value
    finally:
        writer.close()
        reader.close()
        os.close(r)
        os.close(w)
