"""Renders a results JSON as the generated section of docs/BENCHMARKS.md.

    python -m tidelog.bench.render docs/bench/results.json docs/BENCHMARKS.md

redraws the plots next to the JSON (``--plots DIR`` to put them elsewhere;
skipped with a note when matplotlib is missing) and replaces the part of the
Markdown file between the ``tidelog-bench:begin`` and ``tidelog-bench:end``
markers; the rest of the file is left as it is. Without markers the section is
inserted before the file's first ``## `` heading (or the file is created).
"""
from __future__ import annotations

import argparse
import os
import sys

from .core import human_bytes
from .machine import describe
from .table import fmt, fmt_limit, fmt_more, fmt_peer, fmt_spread, fmt_value, headlines, label, skip_lines, target_lines

BEGIN = "<!-- tidelog-bench:begin -->"
END = "<!-- tidelog-bench:end -->"
RENDER_CMD = "python -m tidelog.bench.render docs/bench/results.json docs/BENCHMARKS.md"
RUN_CMD = "tidelog bench --json docs/bench/results.json --plot docs/bench --markdown docs/BENCHMARKS.md"

KIND_TEXT = {"tidelog": "tidelog", "limit": "physical limit", "peer": "peer"}


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


def _table(doc: dict, workload: str) -> list[str]:
    out = ["| case | contender | median | min–max | also | vs limit | vs best peer |",
           "|---|---|--:|--:|---|---|---|"]
    for r in doc["results"]:
        if r["workload"] != workload:
            continue
        name = r["contender"]
        value = fmt_value(r)
        if r["kind"] == "tidelog":
            name, value = f"**{name}**", f"**{value}**"
        elif r["kind"] == "limit":
            name = f"*{name}*"
        out.append("| " + " | ".join(_cell(c) for c in (label(r), name, value, fmt_spread(r), fmt_more(r),
                                                          fmt_limit(r), fmt_peer(r))) + " |")
    return out


def _round_counts(doc: dict) -> str:
    parts = []
    for name, wl in doc["workloads"].items():
        parts.append(f"{name} {wl['warmup_rounds']}+{wl['rounds']}")
    return ", ".join(parts)


def render_section(doc: dict, image_dir: str | None) -> str:
    m = doc["machine"]
    L: list[str] = [BEGIN, ""]
    L.append("## The benchmark suite (`tidelog bench`)")
    L.append("")
    L.append(f"*Generated from `{doc.get('json_path') or 'results.json'}` by `{RENDER_CMD}`; edit the generator "
             f"(`python/tidelog/bench/render.py`), not this section.*")
    L.append("")
    git = m.get("git") or {}
    commit = (f"commit `{git['commit'][:12]}`" + (" with uncommitted changes in "
                                                  + ", ".join(f"`{f}`" for f in git.get("dirty_files", [])[:8])
                                                  if git.get("dirty") else "")) if git else "no git checkout"
    fs = m.get("filesystem", {})
    L += [
        f"- **Run**: {m['date']}, mode `{doc['mode']}`, {doc.get('elapsed_s', 0) / 60:.1f} min, {commit}.",
        f"- **Command**: `{doc.get('command') or RUN_CMD}`",
        f"- **Machine**: {m.get('cpu')}, {m.get('cores')} cores, "
        f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB RAM, {m.get('kernel')}; scratch on "
        f"{fs.get('type', '?')} ({fs.get('device', '?')}, `{fs.get('options', '')}`); a shared VM, so "
        f"expect run-to-run noise of 10–30 % on fdatasync-bound rows.",
        f"- **Versions**: Python {m.get('python')}, " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
        + ".",
    ]
    opts = doc.get("options") or {}
    if opts.get("max_size") or opts.get("scan_sizes"):
        cap = []
        if opts.get("scan_sizes"):
            cap.append("scan sizes " + ", ".join(human_bytes(x) for x in opts["scan_sizes"]))
        if opts.get("max_size"):
            cap.append(f"scan and recovery sizes up to {human_bytes(opts['max_size'])} (`--max-size`)")
        L.append(f"- **Sizes**: {'; '.join(cap)}; the full grid goes to 5 GB scans and 1 GB recovery.")
    L.append("")
    hl = headlines(doc)
    if hl:
        L += ["### Headline ratios", ""]
        L += [f"- {h}" for h in hl]
        L.append("")
    tl = target_lines(doc)
    if tl:
        L += ["### Targets", ""]
        L += [f"- {t}" for t in tl]
        L.append("")
    L += [
        "### How to run",
        "",
        "```",
        "tidelog bench --quick                  # under a minute on small data: a check, not numbers to publish",
        "tidelog bench -w ingest -c tidelog sqlite   # some workloads / contenders, full size",
        f"{RUN_CMD}   # the published run, ~25 min",
        "tidelog bench --max-size 1G ...        # the same without the 5 GB scans (~15 min)",
        f"{RENDER_CMD}   # re-render this section (and the plots) from the JSON",
        "python -m pytest tests/test_bench_smoke.py   # CI: every workload x contender once, tiny data",
        "python -m pytest benches -k suite --benchmark-only   # the same workloads under pytest-benchmark",
        "```",
        "",
        "Plots and `rich` tables need `pip install 'tidelog[bench]'` (matplotlib, rich, duckdb, lmdb); without "
        "duckdb or lmdb those contenders are listed as skipped.",
        "",
        "### Method",
        "",
        "- **Same run, same machine, same data.** Every figure has its baselines measured in the same run. A "
        "workload builds its data once per parameter set (deterministic, seeded) and hands the same bytes to "
        "every contender.",
        f"- **Rounds.** Warm-up + measured rounds per workload: {_round_counts(doc)}. The warm-up round is "
        "dropped. *median* is the median over the measured rounds and *min–max* their spread. Latency and "
        "ack-latency percentiles are computed over every sample of every measured round.",
        "- **Interleaving.** Every contender is set up first. Then each round runs every case of every contender "
        "in turn, so noise on this shared VM hits them alike, in a new (seeded) order every round: a "
        "contender's time depends on what ran just before it (CPU caches warmed or flushed, code and data), "
        "and a fixed order would always pair the same neighbours. Scan sizes whose copies do not fit in memory side "
        "by side (5 GB here) run one contender at a time (setup, rounds, teardown): only one data set is on "
        "disk and in the page cache at once. In the latency workload the Kafka broker is stopped (SIGSTOP) "
        "while the other contenders' rounds run and resumed for Kafka's own: its idle threads on these two "
        "cores added 2–6 µs to every other contender's wake-ups, the `os.pipe` floor included.",
        "- **Page cache.** Warm everywhere. Scan data is written, then read once by the warm-up round. Recovery "
        "opens follow a write by a child process. Durable rows pay for their fdatasyncs; not-durable rows end "
        "when the data is in the page cache. Nothing drops the page cache between rounds.",
        "- **Scratch data** lives in a temporary folder (`--dir`) that is removed after each parameter set. "
        "Before each large data set the runner checks free disk (and, for the in-memory table, available "
        "memory) and skips with a message if it does not fit.",
        "- **Ratios** are speed ratios, so above 1 is faster in every row. For latencies and times they are "
        "baseline / value. *vs limit* compares with the workload's named physical limit. *vs best peer* "
        "compares with the fastest peer (SQLite, DuckDB, LMDB) measured with the same parameters. Peers do the "
        "same logical work their own best way: SQL aggregates in their engine, primary-key lookups, one "
        "transaction per batch.",
        "- **Slow contenders do less work per round.** SQLite ingests at most 256 Ki rows (full mode) or 64 Ki "
        "rows (quick mode) of a round's batches. Its figures are rates, so this changes the round length, not "
        "the rate.",
        "",
        "**The baselines.**",
        "",
        "| contender | kind | what it measures |",
        "|---|---|---|",
    ]
    for name, c in doc["contenders"].items():
        avail = "" if c.get("available") else f" — *not available: {c.get('reason')}*"
        L.append(f"| {name} | {KIND_TEXT.get(c['kind'], c['kind'])} | {_cell(c.get('description', ''))}{avail} |")
    L.append("")
    L.append("Named limit per workload: ingest and produce, `write+fdatasync` (durable) or `os.write` (not "
             "durable); threads, `write+fdatasync` from every thread; scans, `arrow (in memory)`; recovery, "
             "`open+mmap`; latency, `os.pipe`; records, `python call floor` (send), `pa.array conversion` or "
             "`os.write` (send_many); copies, `os.write`; damage, `tidelog intact`; processes, `tidelog 1 process` "
             "(acks, columnar) or `tidelog 1 process exclusive` (latency).")
    L.append("")
    for name, wl in doc["workloads"].items():
        L += [f"### {wl['title']}", "", wl["description"], ""]
        rows = [r for r in doc["results"] if r["workload"] == name]
        if rows:
            L += _table(doc, name)
            L.append("")
        if image_dir is not None:
            L += [f"![{wl['title']}]({image_dir}/{name}.png)", ""]
        sk = skip_lines(doc, name, bracket=True)
        if sk:
            L.append("Skipped: " + "; ".join(sk) + ".")
            L.append("")
        errs = [e for e in doc.get("errors", []) if e["workload"] == name]
        for e in errs:
            L.append(f"**Error** in {e['contender']}: `{e['error']}`")
            L.append("")
    L += [END, ""]
    return "\n".join(L)


def update_markdown(doc: dict, md_path: str, json_path: str | None = None, plots_dir: str | None = None) -> None:
    """Writes the generated section into ``md_path`` (see the module docstring)."""
    md_dir = os.path.dirname(os.path.abspath(md_path))
    image_dir = None
    if plots_dir is not None:
        image_dir = os.path.relpath(os.path.abspath(plots_dir), md_dir)
    if json_path:
        doc = {**doc, "json_path": os.path.relpath(os.path.abspath(json_path), os.path.dirname(md_dir))}
    section = render_section(doc, image_dir)
    text = open(md_path).read() if os.path.exists(md_path) else "# tidelog benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        i = text.find("\n## ")
        if i < 0:
            text = text.rstrip("\n") + "\n\n" + section
        else:
            text = text[:i + 1] + section + "\n" + text[i + 1:]
    os.makedirs(md_dir, exist_ok=True)
    with open(md_path, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    from .runner import load_json

    ap = argparse.ArgumentParser(prog="python -m tidelog.bench.render", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a results JSON written by tidelog bench --json")
    ap.add_argument("markdown", help="the Markdown file to update (e.g. docs/BENCHMARKS.md)")
    ap.add_argument("--plots", metavar="DIR", help="where the PNGs go (default: the JSON's folder)")
    ap.add_argument("--no-plots", action="store_true", help="do not redraw the plots (reference existing ones)")
    args = ap.parse_args(argv)
    doc = load_json(args.results)
    plots_dir = args.plots or os.path.dirname(os.path.abspath(args.results))
    if not args.no_plots:
        from .plots import MatplotlibMissing, plot

        try:
            for p in plot(doc, plots_dir):
                print(f"plot: {p}", file=sys.stderr)
        except MatplotlibMissing as e:
            print(f"note: {e}; the section references the existing PNGs", file=sys.stderr)
    have = any(os.path.exists(os.path.join(plots_dir, f"{w}.png")) for w in doc["workloads"])
    update_markdown(doc, args.markdown, json_path=args.results, plots_dir=plots_dir if have else None)
    print(f"updated {args.markdown} from {args.results} ({len(doc['results'])} rows, {fmt(doc.get('elapsed_s'))} s "
          f"run, {describe(doc['machine'])})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
