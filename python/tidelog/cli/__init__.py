"""The ``tidelog`` command: one module per verb group (topics, produce,
consume, groups, stats, export, serve; verify and bench live with their
subpackages), registered here, and one error path for all of them: an error a
user can cause prints one line, ``tidelog <verb>: <what>``, and exits with a
documented code (``_errors``); never a traceback."""
from __future__ import annotations

import argparse
import sys

from ._errors import (EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_OK, CliError, Parser, quiet_broken_pipe,
                      report)

EXAMPLES = """\
examples:
  tidelog topics create data/ orders --partitions 3
  echo '{"id": 1}' | tidelog produce data/ orders --key-field id
  tidelog consume data/ orders --from earliest --format json
  tidelog consume data/ orders --group billing --follow
  tidelog groups describe data/ billing
  tidelog stats data/
  tidelog export data/ orders --format parquet --out out/
  tidelog verify data/
  tidelog serve data/ --flight 127.0.0.1:8815
  tidelog bench --quick
  tidelog demo

Every verb has its own help with examples: tidelog consume --help.

""" + EXIT_CODES_HELP


def version() -> str:
    try:
        from .. import __version__

        return __version__
    except ImportError:  # pragma: no cover - an install without the attribute
        from importlib.metadata import version as dist_version

        return dist_version("tidelog")


def build_parser() -> Parser:
    parser = Parser(prog="tidelog", description="tidelog: an embedded, durable, Arrow-native event log",
                    epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"tidelog {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from . import consume as consume_cli
    from . import groups as groups_cli
    from . import produce as produce_cli
    from . import stats as stats_cli
    from . import topics as topics_cli

    topics_cli.add_arguments(sub.add_parser("topics", help="list, describe, create, alter, delete or compact "
                                                           "topics"))
    produce_cli.add_arguments(sub.add_parser(
        "produce", help="records from stdin or files (raw lines, JSON lines, CSV) into a topic",
        description="Appends records from stdin or files to a topic, in batches: raw lines, JSON lines or CSV; "
                    "into a columnar topic, JSON and CSV fields map onto its schema by name."))
    consume_cli.add_arguments(sub.add_parser(
        "consume", help="a topic's records to stdout (json, table, csv, raw), once or following",
        description="Prints a topic's records from a position (or as a consumer group member) up to the end, "
                    "or keeps following new ones with --follow."))
    groups_cli.add_arguments(sub.add_parser("groups", help="list, describe, reset or delete consumer groups"))
    stats_cli.add_arguments(sub.add_parser("stats", help="topics, records, bytes on disk and group lag of a log",
                                           description="What a log folder holds: topics, records, bytes, "
                                                       "segments, consumer groups and their lag."))

    from . import export as export_cli

    export_cli.add_arguments(sub.add_parser(
        "export", help="a topic to Parquet, CSV or Arrow IPC files, or to an Iceberg table; once or incrementally",
        description="Exports a topic's rows into --out: Parquet, CSV or Arrow IPC files (hive folders with "
                    "--partition-by), or an Apache Iceberg table (pyiceberg). --incremental adds what is new since "
                    "the last run, exactly once even when a run is killed. The log is opened read-only, so an "
                    "export runs beside a live writer. Exit status: 0 done, 1 refused or failed (nothing "
                    "committed), 2 bad arguments.",
        epilog="examples:\n  tidelog export data/ sensors --format parquet --out out/\n"
               "  tidelog export data/ sensors --out out/ --incremental --partition-by date\n"
               "  tidelog export data/ sensors --format iceberg --out lake/\n"))
    verify = sub.add_parser(
        "verify", help="CRC-check every frame and the indexes of a log folder; --repair moves damage aside",
        description="Checks every frame (CRC32C, header, offsets), the indexes and the recovery checkpoint "
                    "of a log folder, steps over damage to the next intact frame, and prints a per-partition "
                    "report of damaged ranges and lost offsets. Exit status: 0 no damage (gaps acknowledged by "
                    "--repair are listed, not counted), 1 damage or unacknowledged lost offsets (left as they "
                    "are), 2 could not run, 3 damage found and repaired.",
        epilog="examples:\n  tidelog verify data/\n  tidelog verify data/ --json\n  tidelog verify data/ --repair\n")
    verify.add_argument("path", help="the log folder")
    verify.add_argument("--repair", action="store_true",
                        help="move each damaged range aside (its bytes to <segment>.log.damaged-<position>; "
                             "the intact frames after it to a new segment named by their first offset; offsets "
                             "never change), record lost offsets in lost-offsets.json, rebuild damaged indexes. "
                             "Refuses while a writer has the log open")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                        help="progress on stderr (auto: on a terminal, for logs of 64 MiB or more)")
    from . import serve as serve_cli

    serve_cli.add_arguments(sub.add_parser("serve", help="serve a log over Arrow Flight (DoGet, DoPut, ListFlights)",
                                           description=serve_cli.DESCRIPTION))
    from . import connect as connect_cli

    connect_cli.add_arguments(sub.add_parser(
        "connect", help="bridge a log and a messaging system (mqtt: subscribe into a topic, or publish one)",
        description="Bridges between a log and other messaging systems: tidelog connect mqtt --help"))
    from . import mirror as mirror_cli

    mirror_cli.add_arguments(sub.add_parser("mirror", help="copy topics between log folders and Kafka clusters",
                                            description=mirror_cli.DESCRIPTION))
    from ..bench.cli import DESCRIPTION as BENCH_DESCRIPTION, add_arguments as add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="the benchmark suite: tidelog beside the physical limits "
                                                     "and its peers", description=BENCH_DESCRIPTION))
    from . import demo as demo_cli

    demo_cli.add_arguments(sub.add_parser("demo", help="the whole story: sensors, durable ingest, a consumer group, "
                                                       "event-sourced alerts, a query, a Parquet export, beside SQLite",
                                          description=demo_cli.DESCRIPTION))
    return parser


def _verb_parser(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    """The subparser of ``tidelog <names...>`` (for printing its help)."""
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "bench":
        from ..bench.cli import main as bench_main

        return bench_main(args)
    if command == "verify":
        from .._verify import main as verify_main

        return verify_main(args.path, repair=args.repair, as_json=args.json, progress=args.progress)
    from . import connect, consume, demo, export, groups, mirror, produce, serve, stats, topics

    modules = {"topics": topics, "produce": produce, "consume": consume, "groups": groups, "stats": stats,
               "export": export, "serve": serve, "demo": demo, "connect": connect, "mirror": mirror}
    return modules[command].main(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return EXIT_OK
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    if getattr(args, "verb", "") is None:  # `tidelog topics`: that group's help
        _verb_parser(parser, args.command).print_help()
        return EXIT_OK
    verb = " ".join(x for x in (args.command, getattr(args, "verb", None)) if x)
    from ..errors import TidelogError

    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"tidelog {verb}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        quiet_broken_pipe()
        return EXIT_OK
    except (CliError, TidelogError, OSError) as e:
        return report(verb, e)


__all__ = ["main", "build_parser", "version"]


if __name__ == "__main__":
    sys.exit(main())
