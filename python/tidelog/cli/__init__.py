"""The ``tidelog`` command."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidelog", description="An embedded, durable, Arrow-native event log")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulated IoT ingest, query and a consumer group, beside SQLite")
    demo.add_argument("--rows", type=int, default=10_000_000)
    demo.add_argument("--sensors", type=int, default=1_000)
    demo.add_argument("--batch", type=int, default=65_536)
    demo.add_argument("--dir", default=None, help="log folder (default: a temporary one, removed after)")
    demo.add_argument("--sqlite-rows", type=int, default=2_000_000,
                      help="rows for the SQLite comparison line (it is much slower)")
    verify = sub.add_parser(
        "verify", help="CRC-check every frame and the indexes of a log folder; --repair moves damage aside",
        description="Checks every frame (CRC32C, header, offsets), the indexes and the recovery checkpoint "
                    "of a log folder, steps over damage to the next intact frame, and prints a per-partition "
                    "report of damaged ranges and lost offsets. Exit status: 0 no damage (gaps acknowledged by "
                    "--repair are listed, not counted), 1 damage or unacknowledged lost offsets (left as they "
                    "are), 2 could not run, 3 damage found and repaired.")
    verify.add_argument("path", help="the log folder")
    verify.add_argument("--repair", action="store_true",
                        help="move each damaged range aside (its bytes to <segment>.log.damaged-<position>; "
                             "the intact frames after it to a new segment named by their first offset; offsets "
                             "never change), record lost offsets in lost-offsets.json, rebuild damaged indexes. "
                             "Refuses while a writer has the log open")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                        help="progress on stderr (auto: on a terminal, for logs of 64 MiB or more)")
    from . import groups as groups_cli

    groups_cli.add_arguments(sub.add_parser("groups", help="list, describe, reset or delete consumer groups"))
    from . import topics as topics_cli
    from . import export as export_cli

    export_cli.add_arguments(sub.add_parser(
        "export", help="a topic to Parquet, CSV or Arrow IPC files, or to an Iceberg table; once or incrementally",
        description="Exports a topic's rows into --out: Parquet, CSV or Arrow IPC files (hive folders with "
                    "--partition-by), or an Apache Iceberg table (pyiceberg). --incremental adds what is new since "
                    "the last run, exactly once even when a run is killed. The log is opened read-only, so an "
                    "export runs beside a live writer. Exit status: 0 done, 1 refused or failed (nothing "
                    "committed), 2 bad arguments."))

    topics_cli.add_arguments(sub.add_parser("topics", help="list, describe, alter or compact topics"))
    from . import serve as serve_cli

    serve_cli.add_arguments(sub.add_parser("serve", help="serve a log over Arrow Flight (DoGet, DoPut, ListFlights)",
                                           description=serve_cli.DESCRIPTION,
                                           formatter_class=argparse.RawDescriptionHelpFormatter))
    from . import mirror as mirror_cli

    mirror_cli.add_arguments(sub.add_parser("mirror", help="copy topics between log folders and Kafka clusters",
                                            description=mirror_cli.DESCRIPTION,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    from ..bench.cli import DESCRIPTION as BENCH_DESCRIPTION, add_arguments as add_bench_arguments

    bench = sub.add_parser("bench", help="the benchmark suite: tidelog beside the physical limits and its peers",
                           description=BENCH_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from ..bench.cli import main as bench_main

        return bench_main(args)
    if args.command == "demo":
        from ..demo import run_demo

        return run_demo(args.rows, args.sensors, args.batch, args.dir, args.sqlite_rows)
    if args.command == "groups":
        return groups_cli.main(args)
    if args.command == "topics":
        return topics_cli.main(args)
    if args.command == "export":
        return export_cli.main(args)
    if args.command == "mirror":
        return mirror_cli.main(args)
    if args.command == "serve":
        return serve_cli.main(args)
    if args.command == "verify":
        from .._verify import main as verify_main

        return verify_main(args.path, repair=args.repair, as_json=args.json, progress=args.progress)
    return 2


if __name__ == "__main__":
    sys.exit(main())
