"""``tidelog bench``: the benchmark suite from the command line."""
from __future__ import annotations

import argparse
import shlex
import sys
import time

from .core import parse_size

DESCRIPTION = """\
Runs tidelog side by side with the physical limits (memory, page cache, fdatasync, plain Arrow) and the stores
users would pick instead (SQLite, DuckDB, LMDB), and prints a comparison table: every row's median over the
measured rounds, its min-max spread, and its ratio to the workload's physical limit and to the best peer
(speed ratios: above 1 is faster). Results go to the terminal; --json, --markdown and --plot also write them
to files.

examples:
  tidelog bench --quick                          # under a minute: small data, 3 rounds
  tidelog bench --quick --json results.json      # and keep the results
  tidelog bench --workload ingest scans          # some workloads, full size
  tidelog bench --json docs/bench/results.json --plot docs/bench \\
                --markdown docs/BENCHMARKS.md    # the published run (~25 min; --max-size 1G: ~15 min)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .workloads import WORKLOADS

    names = [w.name for w in WORKLOADS]
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small data and 3 rounds: under a minute")
    mode.add_argument("--smoke", action="store_true", help="tiny data, one round (what CI runs)")
    p.add_argument("--workload", "-w", nargs="+", choices=names, metavar="NAME",
                   help=f"workloads to run (default: all): {', '.join(names)}")
    p.add_argument("--contender", "-c", nargs="+", metavar="NAME",
                   help="only contenders whose name starts with NAME (e.g. tidelog sqlite duckdb)")
    p.add_argument("--json", metavar="OUT.json", default=None,
                   help="also write the results as JSON to OUT.json (default: none)")
    p.add_argument("--plot", metavar="OUT.png|DIR",
                   help="draw plots (needs matplotlib): one PNG, or one PNG per workload in DIR")
    p.add_argument("--markdown", metavar="FILE.md",
                   help="write the results section into FILE.md (between its markers; see tidelog.bench.render)")
    p.add_argument("--dir", metavar="SCRATCH", help="scratch folder for the data (default: the system temp dir); "
                   "the file system it is on is part of what is measured")
    p.add_argument("--max-size", metavar="SIZE", help="cap on scan and recovery sizes, e.g. 1G (full mode)")
    p.add_argument("--scan-sizes", metavar="SIZE", nargs="+", help="scan sizes instead of 100M 1G 5G")
    p.add_argument("--rounds", type=int, help="measured rounds in full mode (default 5)")
    p.add_argument("--es-events", type=int, metavar="N",
                   help="events workload: events in the large store a 100-event aggregate is loaded from "
                        "(default 10,000,000 in full mode)")
    p.add_argument("--plain", action="store_true", help="plain-text table even if rich is installed")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def main(args: argparse.Namespace) -> int:
    from .runner import Options, run_suite, write_json
    from .table import print_table

    if args.plot:
        from .plots import MatplotlibMissing, require_matplotlib

        try:
            require_matplotlib()  # fail before a long run, not after
        except MatplotlibMissing as e:
            print(f"tidelog bench: {e}", file=sys.stderr)
            return 2
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    opts = Options(
        mode=mode,
        workloads=args.workload,
        contenders=args.contender,
        dir=args.dir,
        max_size=parse_size(args.max_size) if args.max_size else None,
        scan_sizes=[parse_size(s) for s in args.scan_sizes] if args.scan_sizes else None,
        rounds=args.rounds,
        es_events=args.es_events,
        log=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)),
    )
    t0 = time.perf_counter()
    doc = run_suite(opts)
    argv = sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]
    doc["command"] = " ".join(["tidelog", "bench", *(shlex.quote(a) for a in argv)])
    print_table(doc, plain=True if args.plain else None)  # None: rich when installed, else plain
    if args.json and args.json != "-":
        write_json(doc, args.json)
        print(f"results: {args.json}", file=sys.stderr)
    if args.plot:
        from .plots import plot

        for path in plot(doc, args.plot):
            print(f"plot: {path}", file=sys.stderr)
    if args.markdown:
        from .render import update_markdown

        plots_dir = args.plot if args.plot and not args.plot.endswith(".png") else None
        update_markdown(doc, args.markdown, json_path=args.json if args.json != "-" else None, plots_dir=plots_dir)
        print(f"markdown: {args.markdown}", file=sys.stderr)
    print(f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 1 if doc["errors"] else 0


def standalone(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tidelog.bench", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(standalone())


__all__ = ["add_arguments", "main", "standalone", "DESCRIPTION"]
