"""Runs workloads against contenders and turns the measures into result rows.

Method, for every parameter set of a workload:

1. the memory the previous parameter set left is released (``release_memory``),
   then the workload builds the data once (every contender gets the same bytes);
2. every contender is set up, then the rounds run round-robin: each round
   runs every case for every contender in turn, so that noise on a shared
   machine hits all of them alike, in a new (seeded) order every round, so
   that no contender always runs after the same neighbour (who warms or
   flushes the CPU caches for it); data sets too large to hold several at
   once (5 GB scans) run one contender at a time (setup, rounds, teardown);
3. the first ``warmup`` rounds are dropped; each metric is the median over the
   remaining rounds, with the min-max spread (latency percentiles are computed
   over all samples of all measured rounds);
4. every row gets its ratio to the workload's named physical limit and to the
   best peer measured with the same parameters ("speed" ratios: above 1 means
   faster, also for latencies and times, where it is baseline / value).
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import math
import os
import random
import shutil
import signal
import tempfile
import time
import traceback
from typing import Callable

from .core import Contender, Metric, Skip, Workload, evaluate_targets, median, speed
from .machine import machine_info


@dataclasses.dataclass
class Options:
    mode: str = "quick"                      # "smoke" | "quick" | "full"
    workloads: list[str] | None = None       # names; None = all
    contenders: list[str] | None = None      # names or name prefixes; None = all
    dir: str | None = None                   # scratch root (default: the system temp dir)
    max_size: int | None = None              # cap on scan/recovery data sizes (bytes)
    scan_sizes: list[int] | None = None      # explicit scan sizes (bytes)
    rounds: int | None = None                # measured rounds in full mode
    es_events: int | None = None             # events workload: N, the large store's events (full: 10 M)
    raise_errors: bool = False               # re-raise a contender's exception (tests)
    log: Callable[[str], None] | None = None  # progress lines

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("log")
        return d


def select_contenders(all_contenders: list[Contender], names: list[str] | None) -> list[Contender]:
    if not names:
        return list(all_contenders)
    out = []
    for c in all_contenders:
        if any(c.name.startswith(n) for n in names):
            out.append(c)
    if not out:
        raise SystemExit(f"no contender matches {names}; there are {[c.name for c in all_contenders]}")
    return out


def _key(params: dict, case: dict) -> str:
    return json.dumps({**params, **case}, sort_keys=True)


class _Collector:
    def __init__(self, wl: Workload, opts: Options):
        self.wl, self.opts = wl, opts
        self.measures: dict[tuple[str, str], list[dict]] = {}
        self.groups: dict[str, tuple[dict, dict]] = {}
        self.skipped: list[dict] = []
        self.errors: list[dict] = []

    def skip(self, c: Contender, params: dict | None, reason: str) -> None:
        self.skipped.append({"workload": self.wl.name, "contender": c.name, "kind": c.kind, "params": params,
                             "reason": reason})
        self._say(f"  skip {c.name}{'' if params is None else ' at ' + self.wl.label(params, {})}: {reason}")

    def error(self, c: Contender, params: dict, case: dict | None, exc: BaseException) -> None:
        if self.opts.raise_errors:
            raise exc
        self.errors.append({"workload": self.wl.name, "contender": c.name, "params": params, "case": case,
                            "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        self._say(f"  ERROR {c.name} at {self.wl.label(params, case or {})}: {type(exc).__name__}: {exc}")

    def add(self, c: Contender, params: dict, case: dict, m: dict) -> None:
        k = _key(params, case)
        self.groups[k] = (params, case)
        self.measures.setdefault((c.name, k), []).append(m)

    def _say(self, line: str) -> None:
        if self.opts.log:
            self.opts.log(line)


def _setup(col: _Collector, c: Contender, tmpdir: str, params: dict, data) -> bool:
    try:
        c.setup(tmpdir, col.wl.name, params, data)
        return True
    except Skip as e:
        col.skip(c, params, str(e))
    except Exception as e:  # noqa: BLE001 - reported as an error row
        col.error(c, params, None, e)
    _teardown(col, c, params, after_failed_setup=True)
    return False


def _teardown(col: _Collector, c: Contender, params: dict, after_failed_setup: bool = False) -> None:
    try:
        c.teardown()
    except Exception as e:  # noqa: BLE001
        if after_failed_setup:
            return  # best-effort cleanup of a half-built setup; the scratch folder goes anyway
        if col.opts.raise_errors:
            raise
        col._say(f"  (teardown of {c.name} failed: {type(e).__name__}: {e})")


@contextlib.contextmanager
def _others_paused(wl: Workload, running: Contender, active: list[Contender]):
    """With ``wl.pause_others``: the other contenders' background processes
    (the Kafka broker) stopped while ``running``'s round runs, resumed after."""
    pids: set[int] = set()
    if wl.pause_others:
        mine = set(running.background_pids())
        pids = {pid for c in active if c is not running for pid in c.background_pids()} - mine
    stopped = []
    try:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except ProcessLookupError:
                pass
        for pid in stopped:  # SIGSTOP is asynchronous: the round starts once they are stopped
            _wait_stopped(pid, 1.0)
        yield
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def _wait_stopped(pid: int, timeout_s: float) -> None:
    """Waits until ``pid`` is in the stopped state (or is gone, or ``timeout_s`` passes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("T", "t"):
            return
        time.sleep(0.001)


def release_memory() -> None:
    """Hands the memory the previous parameter set left in this process back to the
    system: its garbage, pyarrow's pool's cached pages, malloc's free pages. In the
    published run, without it, the 5 GB time range of the scans workload (run after
    the ingest, produce and threads workloads) read at 2.4-3.5 ms a query from its
    second round on, against 1.3-1.9 ms with it, with no page fault and no garbage
    collection inside the query; the in-memory baseline did not change."""
    gc.collect()
    try:
        import pyarrow as pa
        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - best effort: a pool without the call
        pass
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def run_workload(wl: Workload, contenders: list[Contender], opts: Options, scratch: str) -> _Collector:
    col = _Collector(wl, opts)
    mode = opts.mode
    ready = []
    for c in contenders:
        reason = c.available()
        grid = wl.grid(mode, vars(opts))
        if reason is not None:
            if any(c.supports(wl.name, p) for p in grid):
                col.skip(c, None, reason)
            continue
        ready.append(c)
    warm, rounds = wl.rounds(mode, vars(opts))
    for params in wl.grid(mode, vars(opts)):
        part = []
        for c in ready:
            s = c.supports(wl.name, params)
            if isinstance(s, str):
                col.skip(c, params, s)
            elif s:
                part.append(c)
        if not part:
            continue
        t_params = time.perf_counter()
        release_memory()
        data = wl.make_data(params, mode)
        cases = wl.cases(params)
        tmpdir = tempfile.mkdtemp(prefix=f"{wl.name}-", dir=scratch)
        try:
            if wl.interleaved(params):
                active = [c for c in part if _setup(col, c, tmpdir, params, data)]
                try:
                    for r in range(warm + rounds):
                        for case in cases:
                            # A new order every round (seeded: runs repeat): a contender's time depends on
                            # what ran just before it (CPU caches warmed or flushed, code and data), and a
                            # fixed order, or a rotation of one, would always pair the same neighbours.
                            order = list(active)
                            random.Random(r).shuffle(order)
                            for c in order:
                                try:
                                    wl.settle(params, case)
                                    with _others_paused(wl, c, active):
                                        m = c.run(case)
                                except Exception as e:  # noqa: BLE001
                                    col.error(c, params, case, e)
                                    active.remove(c)
                                    _teardown(col, c, params)
                                    continue
                                if r >= warm:
                                    col.add(c, params, case, m)
                finally:
                    for c in active:
                        _teardown(col, c, params)
            else:
                for c in part:
                    if not _setup(col, c, tmpdir, params, data):
                        continue
                    try:
                        for r in range(warm + rounds):
                            for case in cases:
                                wl.settle(params, case)
                                m = c.run(case)
                                if r >= warm:
                                    col.add(c, params, case, m)
                    except Exception as e:  # noqa: BLE001
                        col.error(c, params, None, e)
                    finally:
                        _teardown(col, c, params)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        col._say(f"  {wl.label(params, {})}: {len(part)} contenders, {time.perf_counter() - t_params:.1f} s")
    return col


def _finite(x):
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def build_rows(wl: Workload, col: _Collector, contenders: list[Contender]) -> list[dict]:
    kinds = {c.name: c.kind for c in contenders}
    order = {c.name: i for i, c in enumerate(contenders)}
    rows: list[dict] = []
    for k, (params, case) in col.groups.items():
        metric: Metric = wl.primary(params, case)
        group = []
        for (name, key), ms in col.measures.items():
            if key != k or not ms:
                continue
            per_round = [wl.metrics(params, case, m) for m in ms]
            names = list(dict.fromkeys(n for pr in per_round for n in pr))
            values = {n: median([pr.get(n) for pr in per_round]) for n in names}
            values.update(wl.pooled(params, case, ms))
            prim = [pr.get(metric.name) for pr in per_round]
            info = {}
            for m in ms:
                for mk, mv in m.items():
                    if isinstance(mv, (bool, str)) or mk == "check":
                        info.setdefault(mk, []).append(mv)
            group.append({
                "workload": wl.name,
                "params": params,
                "case": case,
                "label": wl.label(params, case),
                "contender": name,
                "kind": kinds.get(name, "?"),
                "metric": metric.name,
                "higher_is_better": metric.higher_is_better,
                "value": values.get(metric.name),
                "min": min(prim) if prim else None,
                "max": max(prim) if prim else None,
                "rounds": prim,
                "metrics": values,
                "info": info,
            })
        by_name = {r["contender"]: r for r in group}
        limit = wl.limit(params, case)
        peers = [r for r in group if r["kind"] == "peer" and r["value"] is not None]
        best = max(peers, key=lambda r: speed(r["value"], metric), default=None)
        for r in group:
            sp = speed(r["value"], metric)
            lim = by_name.get(limit)
            r["limit"] = limit if lim is not None else None
            r["ratio_limit"] = sp / speed(lim["value"], metric) if lim is not None and r is not lim else None
            r["best_peer"] = best["contender"] if best is not None else None
            r["ratio_peer"] = sp / speed(best["value"], metric) if best is not None and r is not best else None
        group.sort(key=lambda r: order.get(r["contender"], 99))
        rows.extend(group)
    return rows


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _finite(obj)


def run_suite(opts: Options, contenders: list[Contender] | None = None,
              workloads: list[Workload] | None = None) -> dict:
    """Runs the suite and returns the results document (see write_json)."""
    from .contenders import default_contenders
    from .workloads import WORKLOADS, find

    t_start = time.perf_counter()
    if workloads is None:
        workloads = [find(n) for n in opts.workloads] if opts.workloads else list(WORKLOADS)
    all_contenders = contenders if contenders is not None else default_contenders()
    chosen = select_contenders(all_contenders, opts.contenders)
    root = opts.dir or tempfile.gettempdir()
    os.makedirs(root, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="tidelog-bench-", dir=root)
    doc = {
        "suite": "tidelog bench",
        "format": 1,
        "mode": opts.mode,
        "command": None,
        "options": opts.as_dict(),
        "machine": machine_info(scratch),
        "workloads": {},
        "contenders": {c.name: c.info() for c in chosen},
        "results": [],
        "skipped": [],
        "errors": [],
        "targets": [],
    }
    for c in chosen:
        if c.available() is None:
            c.prepare(opts.mode)
    try:
        for wl in workloads:
            t0 = time.perf_counter()
            if opts.log:
                opts.log(f"== {wl.name}: {wl.title}")
            warm, rounds = wl.rounds(opts.mode, vars(opts))
            col = run_workload(wl, chosen, opts, scratch)
            doc["workloads"][wl.name] = {**wl.info(), "warmup_rounds": warm, "rounds": rounds,
                                         "seconds": time.perf_counter() - t0}
            rows = build_rows(wl, col, chosen)
            doc["results"].extend(rows)
            doc["targets"].extend(evaluate_targets(wl.name, wl.targets(opts.mode, vars(opts)), rows))
            doc["skipped"].extend(col.skipped)
            doc["errors"].extend(col.errors)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    doc["elapsed_s"] = time.perf_counter() - t_start
    return _clean(doc)


def write_json(doc: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def load_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)
