"""``tidelog export``: a topic's rows to Parquet, CSV or Arrow IPC files, or to
an Apache Iceberg table; once, or incrementally (``--incremental``), with a
progress bar on stderr. The log is opened read-only, so an export runs beside
a live writer."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TextIO

from ..export import NoProgress

FORMATS = ("parquet", "csv", "arrow", "iceberg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="the log folder")
    parser.add_argument("topic")
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    parser.add_argument("--out", required=True,
                        help="the folder to write (iceberg: the folder of the default catalog and warehouse)")
    parser.add_argument("--incremental", action="store_true",
                        help="add what is new since the last run into --out, exactly once even across crashes "
                             "(iceberg exports always are)")
    parser.add_argument("--start-time", metavar="T", help="ISO-8601 time (naive = UTC) or int nanoseconds")
    parser.add_argument("--end-time", metavar="T", help="exclusive; ISO-8601 or int nanoseconds")
    parser.add_argument("--start-offset", type=int, metavar="N", help="one-off file exports: first offset of "
                                                                       "every partition")
    parser.add_argument("--end-offset", type=int, metavar="N", help="one-off file exports: end offset (exclusive)")
    parser.add_argument("--partition-by", nargs="+", metavar="COL",
                        help="hive folders: 'date' (UTC date of the timestamp column) and/or column names")
    parser.add_argument("--columns", nargs="+", metavar="COL", help="the columns to export (default: all)")
    parser.add_argument("--compression", default=None,
                        help="parquet, iceberg: zstd (default), snappy, gzip, brotli, lz4, none; arrow: zstd "
                             "(default), lz4, none")
    parser.add_argument("--row-group-size", type=int, default=None, metavar="ROWS",
                        help="rows per Parquet row group / Arrow record batch (default 1048576)")
    parser.add_argument("--max-rows-per-file", type=int, default=None, metavar="ROWS",
                        help="start a new file after this many rows (default: one file per partition and folder "
                             "per run; iceberg: about 128 MB of rows)")
    parser.add_argument("--catalog-uri", help="iceberg: SQL catalog URI (default sqlite:///<out>/catalog.db)")
    parser.add_argument("--warehouse", help="iceberg: warehouse folder or URI (default <out>/warehouse)")
    parser.add_argument("--table", help="iceberg: namespace.table (default default.<topic>)")
    parser.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                        help="progress on stderr (auto: on a terminal)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    import tidelog

    out = out or sys.stdout
    err = err or sys.stderr
    progress = progress_bar(err, args.progress, f"export {args.topic}")
    try:
        with tidelog.open(args.path, read_only=True) as log:
            topic = log.topic(args.topic)
            result = _export(topic, args, progress)
    except tidelog.TidelogError as e:
        progress.abandon()
        err.write(f"tidelog export: {type(e).__name__}: {e}\n")
        return 1
    except ImportError as e:
        progress.abandon()
        err.write(f"tidelog export: {e}\n")
        return 1
    except OSError as e:  # the output folder: permissions, no space left
        progress.abandon()
        err.write(f"tidelog export: {type(e).__name__}: {e}\n")
        return 1
    if args.json:
        out.write(json.dumps(result.to_dict(), indent=1) + "\n")
    else:
        rate = result.rows / result.seconds if result.seconds > 0 else 0.0
        where = result.path
        out.write(f"exported {result.rows:,} rows ({result.bytes_read / 1e6:,.1f} MB) of {args.topic!r} to {where}: "
                  f"{len(result.files)} files, {result.bytes_written / 1e6:,.1f} MB, {result.seconds:.2f} s "
                  f"({rate:,.0f} rows/s); offsets now {_offsets(result.end_offsets)}"
                  + (f", snapshot {result.snapshot_id}" if result.snapshot_id is not None else "") + "\n")
    for p, (a, b) in sorted(result.lost.items()):
        err.write(f"tidelog export: partition {p}: offsets [{a}, {b}) were deleted by retention before "
                  "they could be exported\n")
    return 0


def _export(topic, args: argparse.Namespace, progress):
    from ..errors import InvalidArgumentError
    from ..export import export_files, export_iceberg

    options = {"partition_by": tuple(args.partition_by) if args.partition_by else None, "columns": args.columns,
               "start_time": args.start_time, "end_time": args.end_time, "progress": progress}
    if args.compression is not None:
        options["compression"] = args.compression
    if args.row_group_size is not None:
        options["row_group_size"] = args.row_group_size
    if args.max_rows_per_file is not None:
        options["max_rows_per_file"] = args.max_rows_per_file
    if args.format == "iceberg":
        if args.start_offset is not None or args.end_offset is not None:
            raise InvalidArgumentError("iceberg exports resume from the table's last snapshot: "
                                       "--start-offset/--end-offset are for one-off file exports")
        out = os.path.abspath(args.out)
        if os.path.lexists(out) and not os.path.isdir(out):
            raise InvalidArgumentError(f"{out} is a file: --out names the folder of the catalog and warehouse")
        if not args.catalog_uri or not args.warehouse:
            os.makedirs(out, exist_ok=True)
        return export_iceberg(topic, catalog_uri=args.catalog_uri or f"sqlite:///{os.path.join(out, 'catalog.db')}",
                              warehouse=args.warehouse or os.path.join(out, "warehouse"),
                              table=args.table, **options)
    for name in ("catalog_uri", "warehouse", "table"):
        if getattr(args, name):
            raise InvalidArgumentError(f"--{name.replace('_', '-')} is for --format iceberg")
    return export_files(topic, args.out, format=args.format, incremental=args.incremental,
                        start_offset=args.start_offset, end_offset=args.end_offset, **options)


def _offsets(ends: dict[int, int]) -> str:
    if len(ends) > 8:
        return f"{sum(ends.values()):,} over {len(ends)} partitions"
    return ", ".join(f"{p}: {o}" for p, o in sorted(ends.items()))


# ----------------------------------------------------------------- progress
def progress_bar(stream: TextIO, mode: str, label: str) -> "_Progress":
    """The progress display for ``mode`` ("auto": on a terminal only, "always",
    "never"): rich's bar on a terminal when rich is installed, else plain text
    (a line redrawn in place on a terminal, a line every few seconds elsewhere)."""
    tty = hasattr(stream, "isatty") and stream.isatty()
    if mode == "never" or (mode == "auto" and not tty):
        return _Progress(stream, label, on=False)
    if tty:
        try:
            import rich.progress  # noqa: F401
        except ImportError:
            pass
        else:
            return _RichProgress(stream, label)
    return _Progress(stream, label, on=True, tty=tty)


class _Progress(NoProgress):
    """Rows, MB and their rates, and how far through the offsets the run is."""

    def __init__(self, stream: TextIO, label: str, on: bool, tty: bool = False):
        self.stream, self.label, self.on, self.tty = stream, label, on, tty
        self.total = 0
        self.finished_offsets = 0      # offsets of the partitions done
        self.partition_rows = 0        # rows of the partition being read
        self.rows = self.nbytes = 0
        self.t0 = self.last = time.monotonic()

    def start(self, total_offsets: int) -> None:
        self.total = total_offsets
        self.t0 = self.last = time.monotonic()
        self._show(force=True)

    def update(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.nbytes += nbytes
        self.partition_rows += rows
        self._show()

    def advance_to_partition_end(self, offsets: int) -> None:
        self.finished_offsets += offsets
        self.partition_rows = 0
        self._show()

    def finish(self) -> None:
        self.finished_offsets, self.partition_rows = self.total, 0
        self._show(force=True)
        if self.on and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def abandon(self) -> None:
        if self.on and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    @property
    def done(self) -> int:
        return min(self.total, self.finished_offsets + self.partition_rows)

    def _figures(self) -> str:
        seconds = max(time.monotonic() - self.t0, 1e-9)
        return (f"{self.rows:,} rows, {self.nbytes / 1e6:,.1f} MB, {self.rows / seconds:,.0f} rows/s, "
                f"{self.nbytes / 1e6 / seconds:,.1f} MB/s")

    def _show(self, force: bool = False) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.1 if self.tty else 2.0):
            return
        self.last = now
        pct = 100 if not self.total else self.done * 100 // self.total
        if self.tty:
            width = 30
            fill = width * pct // 100
            self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {pct:3d}% {self._figures()}")
        else:
            self.stream.write(f"{self.label}: {pct}% {self._figures()}\n")
        self.stream.flush()


class _RichProgress(_Progress):
    def __init__(self, stream: TextIO, label: str):
        super().__init__(stream, label, on=True, tty=True)
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[figures]}"), TimeElapsedColumn(),
                             console=Console(file=stream), transient=False)
        self._task = None

    def _show(self, force: bool = False) -> None:
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=max(self.total, 1), figures="")
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        self._bar.update(self._task, total=max(self.total, 1), completed=self.done, figures=self._figures())

    def finish(self) -> None:
        self.finished_offsets, self.partition_rows = self.total, 0
        self._show(force=True)
        self._bar.stop()

    def abandon(self) -> None:
        self._bar.stop()
