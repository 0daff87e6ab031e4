#!/usr/bin/env python
"""Runs the tidelog benchmarks and prints medians and ratios against the targets.

    python benches/report.py                 # one run of the whole suite at full sizes
    python benches/report.py --runs 3        # three runs; medians across runs decide PASS/FAIL
    python benches/report.py -k append       # only some benchmarks (pytest -k)
    python benches/report.py --json a.json b.json   # no run: report pytest-benchmark JSON files
    python benches/report.py --markdown      # the table as Markdown (for docs/BENCHMARKS.md)

Each benchmark stores its comparisons in ``extra_info["comparisons"]`` (see
benchlib.py): the tidelog median, the baseline median measured interleaved in
the same session, the ratio and the target. With several runs the reported
figures are the medians across runs, and every run's ratio is listed.

A comparison may carry ``"target_on": "tidelog"``: its target is then an
absolute bound on the tidelog median in the comparison's unit (e.g. ">= 3e6"
records/s, "<= 20" us) rather than on the ratio; the ratio is still shown.
Comparisons without the key are checked against the ratio, as before.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_suite(json_path: str, keyword: str | None) -> None:
    cmd = [sys.executable, "-m", "pytest", HERE, "-q", "--benchmark-only", f"--benchmark-json={json_path}",
           "-p", "no:cacheprovider"]
    if keyword:
        cmd += ["-k", keyword]
    # The targets are defined on the full sizes (plain `pytest benches` runs the quick ones).
    env = {**os.environ, "TIDELOG_BENCH_MODE": os.environ.get("TIDELOG_BENCH_MODE", "full")}
    print(f"$ TIDELOG_BENCH_MODE={env['TIDELOG_BENCH_MODE']}", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    if rc not in (0, 5):
        if not os.path.exists(json_path):
            raise SystemExit(f"benchmarks failed (pytest exit {rc}), no results")
        print(f"warning: pytest exit {rc}: some benchmarks failed; reporting the others", file=sys.stderr)


def load(paths: list[str]) -> list[dict[str, dict]]:
    """One {comparison name: comparison} dict per run."""
    runs = []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        rows = {}
        for bench in data.get("benchmarks", []):
            for c in bench.get("extra_info", {}).get("comparisons", []):
                rows[c["name"]] = c
        runs.append(rows)
    return runs


def check(target: str | None, value: float) -> bool | None:
    if not target:
        return None
    t = target.replace("s", "").strip()
    op, num = t.split()
    num = float(num)
    return {">=": value >= num, ">": value > num, "<": value < num, "<=": value <= num}[op]


def fmt(x: float, unit: str = "") -> str:
    if x != x:  # nan
        return "nan"
    if unit == "s":
        return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"
    ax = abs(x)
    if ax >= 1e9:
        return f"{x / 1e9:.2f} G"
    if ax >= 1e6:
        return f"{x / 1e6:.2f} M"
    if ax >= 1e4:
        return f"{x / 1e3:.1f} k"
    if ax >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def table(runs: list[dict[str, dict]]) -> list[dict]:
    names: list[str] = []
    for r in runs:
        for n in r:
            if n not in names:
                names.append(n)
    out = []
    for n in sorted(names, key=lambda s: (s.split(".")[0], names.index(s))):
        rows = [r[n] for r in runs if n in r]
        first = rows[0]
        ratio = statistics.median(c["ratio"] for c in rows)
        tidelog = statistics.median(c["tidelog"] for c in rows)
        on_value = first.get("target_on") == "tidelog"
        out.append({
            "name": n,
            "unit": first["unit"],
            "tidelog": tidelog,
            "baseline": statistics.median(c["baseline"] for c in rows),
            "baseline_name": first["baseline_name"],
            "ratio": ratio,
            "ratios": [c["ratio"] for c in rows],
            "target": first["target"],
            "target_on": "tidelog" if on_value else "ratio",
            "verdict": check(first["target"], tidelog if on_value else ratio),
            "note": first.get("note", ""),
        })
    return out


def target_text(r: dict) -> str:
    """The target as printed: "ratio >= 5" style targets as they are, absolute
    ones ("target_on": "tidelog") with the value formatted in the row's unit."""
    t = r["target"]
    if not t:
        return "-"
    if r.get("target_on") != "tidelog":
        return t
    op, num = t.split()
    return f"{op} {fmt(float(num), r['unit'])} {r['unit']}"


def verdict_text(v: bool | None) -> str:
    return "-" if v is None else ("PASS" if v else "FAIL")


def print_text(rows: list[dict]) -> None:
    headers = ["benchmark", "tidelog", "baseline", "unit", "ratio", "runs", "target", "result"]
    body = []
    for r in rows:
        body.append([
            r["name"], fmt(r["tidelog"], r["unit"]), fmt(r["baseline"], r["unit"]) + f" ({r['baseline_name']})",
            r["unit"], f"{r['ratio']:.3g}", " ".join(f"{x:.3g}" for x in r["ratios"]), target_text(r),
            verdict_text(r["verdict"]),
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)] if body else []
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)))


def print_markdown(rows: list[dict]) -> None:
    print("| benchmark | tidelog (median) | baseline (median) | ratio | per-run ratios | target | result |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        u = r["unit"]
        unit = "" if u == "s" else f" {u}"
        print(f"| {r['name']} | {fmt(r['tidelog'], u)}{unit} | {fmt(r['baseline'], u)}{unit} ({r['baseline_name']}) "
              f"| {r['ratio']:.3g} | {', '.join(f'{x:.3g}' for x in r['ratios'])} | {target_text(r)} "
              f"| {verdict_text(r['verdict'])} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="how many times to run the suite")
    ap.add_argument("-k", dest="keyword", help="pytest -k expression")
    ap.add_argument("--json", nargs="+", help="report these pytest-benchmark JSON files instead of running")
    ap.add_argument("--keep", help="folder to keep the JSON of each run in")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)

    paths = args.json
    if not paths:
        folder = args.keep or tempfile.mkdtemp(prefix="tidelog-bench-json-")
        os.makedirs(folder, exist_ok=True)
        paths = []
        for i in range(args.runs):
            p = os.path.join(folder, f"run{i + 1}.json")
            run_suite(p, args.keyword)
            paths.append(p)
    rows = table(load(paths))
    print()
    (print_markdown if args.markdown else print_text)(rows)
    failed = [r for r in rows if r["verdict"] is False]
    print(f"\n{len(paths)} run(s); {sum(r['verdict'] is True for r in rows)} PASS, {len(failed)} FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
