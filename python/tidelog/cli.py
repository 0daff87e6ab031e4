"""The ``tidelog`` command."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidelog", description="An embedded, durable, Arrow-native event log")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulated IoT ingest and query, beside SQLite")
    demo.add_argument("--rows", type=int, default=10_000_000)
    demo.add_argument("--sensors", type=int, default=1_000)
    demo.add_argument("--batch", type=int, default=65_536)
    demo.add_argument("--dir", default=None, help="log folder (default: a temporary one, removed after)")
    demo.add_argument("--sqlite-rows", type=int, default=2_000_000,
                      help="rows for the SQLite comparison line (it is much slower)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.rows, args.sensors, args.batch, args.dir, args.sqlite_rows)
    return 2


if __name__ == "__main__":
    sys.exit(main())
