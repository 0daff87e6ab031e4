"""Targets of the event store (``tidelog.es``): the ``events`` workload of
``tidelog bench`` (tidelog.bench.events), its contenders round by round,
interleaved (each round: the library on SQLite, the library on tidelog when
``tidelog.eventsourcing`` is there, then tidelog's API), so noise hits every
side alike. Durable on every side (tidelog: fsync; SQLite: WAL,
synchronous=FULL).

* E1 create (1 thread) and E2 create (16 threads): an aggregate with one
  event per command; tidelog.es >= 10x the library on SQLite (events/s).
* E3 load an aggregate of 100 events from a store of N events (full: 10 M;
  ``TIDELOG_BENCH_ES_EVENTS`` overrides N): tidelog.es >= 5x the library on
  SQLite (median µs per load); the same from a store of 1,000 events is
  reported beside it (the cost must not grow with N), with the build times.
* E4 a projection catching up from position 0 into SQLite (the same view code
  on every side): tidelog.es >= 5x the library on SQLite (events/s).
* E5 the library on tidelog (``tidelog.eventsourcing``) >= 3x the library on
  SQLite on create (1 thread) and on the load from N; skipped with the reason
  when the module is not in the build.

Medians over the measured rounds (the warm-up round dropped), the min-max
spread in the notes.
"""
from __future__ import annotations

import contextlib
import os

import pytest

from benchlib import MODE, comparison, contender_rounds, interleaved, median, record, sized
from tidelog.bench.contenders import find as find_contender
from tidelog.bench.workloads import find

ROUNDS = sized(5, 3)
TL, LIB, ON_TL = "tidelog event store", "eventsourcing sqlite", "eventsourcing on tidelog"

pytest.importorskip("eventsourcing")


def _grid() -> list[dict]:
    n = os.environ.get("TIDELOG_BENCH_ES_EVENTS")
    return find("events").grid(MODE, {"es_events": int(n)} if n else {})


def _params(part: str, **match) -> dict:
    return next(p for p in _grid() if p["part"] == part and all(p.get(k) == v for k, v in match.items()))


def _rounds(benchmark, bench_dir, params: dict) -> dict[str, list[dict]]:
    """Measures of every available contender, interleaved round by round, warm-up dropped."""
    wl = find("events")
    data = wl.make_data(params, MODE)
    others = [LIB] + ([ON_TL] if find_contender(ON_TL).available() is None else [])
    ms: dict[str, list[dict]] = {name: [] for name in [TL, *others]}
    with contextlib.ExitStack() as stack:
        runs = {name: stack.enter_context(contender_rounds(name, wl.name, params, data, f"{bench_dir}/{k}"))
                for k, name in enumerate(ms)}

        def baseline(name):
            def one() -> float:
                m = runs[name]({})
                ms[name].append(m)
                return m["seconds"]
            return one

        times, _ = interleaved(benchmark, lambda: ms[TL].append(runs[TL]({})),
                               {name: baseline(name) for name in others}, rounds=ROUNDS)
    n = len(times)
    return {k: v[-n:] for k, v in ms.items()}


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.3g}-{max(xs):.3g}"


def _rate(ms: list[dict], what: str = "events") -> list[float]:
    return [m[what] / m["seconds"] for m in ms]


def _p50_us(ms: list[dict]) -> list[float]:
    return [median(m["latencies_ns"]) / 1e3 for m in ms]


def _on_tidelog_row(name: str, values: dict[str, list[float]], unit: str, lower_is_better: bool) -> list[dict]:
    if ON_TL not in values:
        return []
    lib, on = median(values[LIB]), median(values[ON_TL])
    ratio = lib / on if lower_is_better else on / lib
    return [comparison(f"E5. {name}: the library on tidelog vs on SQLite", tidelog=on, baseline=lib, unit=unit,
                       ratio=ratio, target=">= 3", passed=ratio >= 3, baseline_name="eventsourcing sqlite",
                       note=f"spread {_spread(values[ON_TL])} vs {_spread(values[LIB])} {unit}")]


@pytest.mark.parametrize("threads", [1, 16])
def test_create(benchmark, bench_dir, threads):
    ms = _rounds(benchmark, bench_dir, _params("create", threads=threads))
    rates = {k: _rate(v) for k, v in ms.items()}
    t, b = median(rates[TL]), median(rates[LIB])
    tag = "E1" if threads == 1 else "E2"
    rows = [comparison(f"{tag}. create an aggregate + 1 event, {threads} thread(s), durable: tidelog.es vs the "
                       f"library on SQLite", tidelog=t, baseline=b, unit="events/s", ratio=t / b, target=">= 10",
                       passed=t / b >= 10, baseline_name="eventsourcing sqlite",
                       note=f"spread {_spread(rates[TL])} vs {_spread(rates[LIB])} events/s")]
    if threads == 1:
        rows += _on_tidelog_row("create, 1 thread", rates, "events/s", lower_is_better=False)
    record(benchmark, rows, **{f"{k} events/s": v for k, v in rates.items()})
    for r in rows:
        print(f"{r['name']}: {r['tidelog']:.0f} vs {r['baseline']:.0f} events/s, ratio {r['ratio']:.2f} ({r['note']})")


@pytest.mark.parametrize("size", ["small", "large"])
def test_load(benchmark, bench_dir, size):
    loads = [p for p in _grid() if p["part"] == "load"]
    params = min(loads, key=lambda p: p["store_events"]) if size == "small" else \
        max(loads, key=lambda p: p["store_events"])
    n = params["store_events"]
    ms = _rounds(benchmark, bench_dir, params)
    us = {k: _p50_us(v) for k, v in ms.items()}
    builds = {k: v[0].get("build_seconds") for k, v in ms.items()}
    t, b = median(us[TL]), median(us[LIB])
    target = size == "large"
    build_note = ", ".join(f"{k} {v:.1f} s" for k, v in builds.items() if v is not None)
    rows = [comparison(f"E3. load 100 events from a store of {n:,} events: tidelog.es vs the library on SQLite",
                       tidelog=t, baseline=b, unit="µs/load", ratio=b / t, target=">= 5" if target else None,
                       passed=b / t >= 5 if target else None, baseline_name="eventsourcing sqlite",
                       note=f"spread {_spread(us[TL])} vs {_spread(us[LIB])} µs; store built in {build_note}"
                            + ("" if target else "; reported, no target"))]
    if target:
        rows += _on_tidelog_row(f"load 100 events from {n:,}", us, "µs/load", lower_is_better=True)
    record(benchmark, rows, **{f"{k} µs/load": v for k, v in us.items()}, build_seconds=builds)
    for r in rows:
        print(f"{r['name']}: {r['tidelog']:.0f} vs {r['baseline']:.0f} µs, ratio {r['ratio']:.2f} ({r['note']})")


def test_project(benchmark, bench_dir):
    params = _params("project")
    ms = _rounds(benchmark, bench_dir, params)
    rates = {k: _rate(v) for k, v in ms.items()}
    t, b = median(rates[TL]), median(rates[LIB])
    rows = [comparison(f"E4. projection catch-up of {params['store_events']:,} events into SQLite: tidelog.es vs "
                       f"the library on SQLite", tidelog=t, baseline=b, unit="events/s", ratio=t / b, target=">= 5",
                       passed=t / b >= 5, baseline_name="eventsourcing sqlite",
                       note=f"spread {_spread(rates[TL])} vs {_spread(rates[LIB])} events/s")]
    record(benchmark, rows, **{f"{k} events/s": v for k, v in rates.items()})
    for r in rows:
        print(f"{r['name']}: {r['tidelog']:.0f} vs {r['baseline']:.0f} events/s, ratio {r['ratio']:.2f}")
