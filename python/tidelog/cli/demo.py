"""``tidelog demo``: the whole story in one command (see ``tidelog.demo``)."""
from __future__ import annotations

import argparse

from ._args import count, positive, seconds

DESCRIPTION = """\
Simulated sensors report readings: first a backfill of history, appended durably in
columnar batches, then live every 100 ms (published at QoS 1 to a private Mosquitto and
taken in by the MQTT bridge when mosquitto is installed, appended directly otherwise). Worker processes in a
consumer group turn readings into alerts, stored as events in an event store; a
projection keeps the alerts' read model in SQLite. Then a SQL query over the last five
minutes (DuckDB, else Polars, else pyarrow), a Parquet export, and the same ingest into
SQLite for comparison. It needs no network and leaves nothing running.

examples:
  tidelog demo                           # about a minute; the data stays in a temporary folder it names
  tidelog demo --dir demo-log            # into ./demo-log (a second run replaces it)
  tidelog demo --rows 1000000 --live-seconds 5

exit status: 0 done, 1 failed, 2 bad arguments or a folder the demo did not make"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=None, metavar="DIR",
                        help="the log folder to write (default: a new temporary folder; either way it is kept, "
                             "and the demo says where). A folder an earlier demo made is replaced; any other "
                             "non-empty folder is refused")
    parser.add_argument("--rows", type=positive, default=10_000_000, help="readings of history (default 10,000,000)")
    parser.add_argument("--sensors", type=positive, default=1_000, help="simulated sensors (default 1,000)")
    parser.add_argument("--batch", type=positive, default=65_536,
                        help="rows per appended batch of history (default 65,536)")
    parser.add_argument("--live-seconds", type=seconds, default=15.0,
                        help="how long the sensors then report live, every 100 ms (default 15)")
    parser.add_argument("--workers", type=positive, default=2,
                        help="alerting worker processes in the consumer group (default 2)")
    parser.add_argument("--mqtt", default="auto", metavar="URL|auto|off",
                        help="the MQTT broker for the live readings: auto (the default: a private Mosquitto on a "
                             "loopback port when mosquitto is installed, stopped at the end), a broker of yours "
                             "(mqtt://host:port), or off (appended directly)")
    parser.add_argument("--sqlite-rows", type=count, default=2_000_000,
                        help="rows of the SQLite comparison (default 2,000,000; 0 skips it)")


def main(args: argparse.Namespace) -> int:
    from ..demo import DemoOptions, run_demo

    options = DemoOptions(rows=args.rows, sensors=args.sensors, batch_rows=args.batch, directory=args.dir,
                          sqlite_rows=args.sqlite_rows, live_seconds=args.live_seconds, workers=args.workers,
                          mqtt=args.mqtt)
    return run_demo(options)   # errors: the command's one error path (cli._errors)
