"""``tidelog consume``: a topic's records to stdout (kcat ``-C``, rpk ``topic
consume``), from a chosen position or as a consumer group member, once up to
the end or following new records.

Records are read in batches (``Consumer.poll_batch``); with ``--group`` each
batch's offsets are committed after it was written to stdout and flushed, so a
run that is killed or whose reader goes away (``| head``) resumes at the first
record it did not deliver (a SIGKILL between a batch's write and its commit:
at that batch, delivered again). A Ctrl-C that lands after a batch was written
commits it before the run ends."""
from __future__ import annotations

import argparse
import base64
import csv
import datetime as _dt
import json
import re
import sys
import time
from typing import Any

from ._args import positive
from ._errors import quiet_broken_pipe, require_log_folder, usage_error
from ._output import is_terminal, print_table

FORMATS = ("json", "table", "csv", "raw")
EXAMPLES = """\
examples:
  tidelog consume data/ orders                          # every record, values one a line, then exit
  tidelog consume data/ orders --from latest --follow   # new records as they come (Ctrl-C stops)
  tidelog consume data/ orders --from -10               # the last 10 of each partition
  tidelog consume data/ orders --from 2026-05-01T12:00  # from a time (ISO-8601, naive = UTC)
  tidelog consume data/ orders --from 15m               # the last 15 minutes (s, m, h, d)
  tidelog consume data/ orders --group billing -n 100   # as group 'billing': resumes where it committed
  tidelog consume data/ sensors --format table -n 20
  tidelog consume data/ sensors --partition 2 --from 1000 --format csv > part2.csv

--format defaults to raw (values only) for byte-record topics and json for columnar ones.
json prints one object per line; keys and values as UTF-8 text, or base64 under
key_base64/value_base64 when they are not UTF-8.
"""

_AGO = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_AGO_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_from(text: str) -> tuple[str, int | None]:
    """``--from`` as (kind, value): earliest, latest, offset N, last N, time ns."""
    from .._arrow import to_ns

    t = text.strip()
    if t.lower() in ("earliest", "beginning"):
        return "earliest", None
    if t.lower() in ("latest", "end"):
        return "latest", None
    if re.fullmatch(r"\d+", t):
        return "offset", int(t)
    if re.fullmatch(r"-\d+", t):
        return "last", -int(t)
    m = _AGO.match(t)
    if m:
        return "time", time.time_ns() - int(float(m.group(1)) * _AGO_S[m.group(2)] * 1e9)
    try:
        return "time", to_ns(t, "--from")
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is none of earliest, latest, an offset, -N (the last N), an ISO-8601 time "
            "or a duration ago (15m)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("path", help="the log folder")
    parser.add_argument("topic")
    parser.add_argument("--from", dest="start", type=parse_from, default=("earliest", None),
                        metavar="earliest|latest|OFFSET|-N|TIME",
                        help="where to start (default earliest; with --group: only where the group has no "
                             "committed offset, and only earliest or latest)")
    parser.add_argument("--follow", "-f", action="store_true", help="wait for new records instead of exiting at "
                                                                    "the end")
    parser.add_argument("--group", "-g", metavar="NAME",
                        help="read as a member of this consumer group, committing after each batch is written")
    parser.add_argument("--format", choices=FORMATS, help="output format (default: raw for byte records, json "
                                                          "for columnar topics)")
    parser.add_argument("-n", "--count", type=positive, metavar="N", help="stop after N records")
    parser.add_argument("--partition", "-p", type=int, metavar="N", help="only this partition")
    parser.add_argument("--key-delimiter", "-K", metavar="SEP",
                        help="raw: print KEY<SEP>VALUE (kcat's -K)")
    parser.add_argument("--plain", action="store_true", help="table: plain text even on a terminal")


def _check_options(args: argparse.Namespace, topic) -> str:
    columnar = not topic.config.records
    fmt = args.format or ("json" if columnar else "raw")
    if fmt == "raw" and columnar:
        raise usage_error(f"--format raw prints byte records' values; {topic.name!r} is columnar "
                          "(json, table or csv)")
    if args.key_delimiter is not None and fmt != "raw":
        raise usage_error("--key-delimiter goes with --format raw")
    if args.partition is not None and not 0 <= args.partition < topic.partitions:
        raise usage_error(f"--partition {args.partition}: topic {topic.name!r} has partitions "
                          f"0..{topic.partitions - 1}")
    if args.group is not None:
        if args.partition is not None:
            raise usage_error("--partition and --group exclude each other: a group assigns the partitions")
        if args.start[0] not in ("earliest", "latest"):
            raise usage_error("with --group, --from is earliest or latest (where the group has no committed "
                              "offset); to move a group, use 'tidelog groups reset-offsets'")
    return fmt


def _position(consumer, topic, kind: str, value: int | None) -> None:
    """Moves a plain consumer's partitions to ``--from``."""
    parts = [p for t, p in consumer.assignment() if t == topic.name]
    if kind == "earliest":
        consumer.seek_to_beginning()
    elif kind == "latest":
        consumer.seek_to_end()
    elif kind == "time":
        consumer.seek_to_time(topic.name, None, value)
    else:
        starts, ends = topic.start_offsets(), topic.end_offsets()
        for p in parts:
            at = value if kind == "offset" else ends[p] - value
            consumer.seek(topic.name, p, min(max(at, starts[p]), ends[p]))


def main(args: argparse.Namespace) -> int:
    import tidelog

    require_log_folder(args.path)
    with tidelog.open(args.path, read_only=args.group is None) as log:
        topic = log.topic(args.topic)
        fmt = _check_options(args, topic)
        kind, value = args.start
        if args.group is not None:
            consumer = log.consumer([topic.name], group=args.group, start=kind, enable_auto_commit=False)
        else:
            consumer = log.consumer([topic.name], start="earliest")
            if args.partition is not None:
                consumer.assign([(topic.name, args.partition)])
            _position(consumer, topic, kind, value)
        writer = _Writer(fmt, columnar=not topic.config.records, key_delimiter=args.key_delimiter,
                         plain=args.plain)
        done = 0
        t0 = time.perf_counter()
        delivered = False  # a batch reached stdout and its offsets are not committed yet
        try:
            while args.count is None or done < args.count:
                want = 10_000 if args.count is None else min(10_000, args.count - done)
                batch = consumer.poll_batch(max_records=want, timeout=0.5 if args.follow else 0)
                try:
                    if batch is None:
                        writer.flush()  # caught up: show what is held back
                        if args.follow:
                            continue
                        break
                    writer.write(batch)
                    if args.group is not None:
                        writer.flush()
                        delivered = True
                        consumer.commit()  # after the records were delivered, never before
                        delivered = False
                except BrokenPipeError:
                    quiet_broken_pipe()  # the reader left: what it did not get is not committed
                    return 0
                done += batch.num_rows
            writer.flush()
            if args.group is not None:
                consumer.commit()  # the group keeps its place even when there was nothing to read
        except KeyboardInterrupt:
            if delivered:
                consumer.commit()  # Ctrl-C after the batch reached stdout: the group goes on past it
            raise
        finally:
            consumer.close()
        if is_terminal(sys.stderr) and fmt != "table":
            print(f"consumed {done:,} records in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return 0


class _Writer:
    """Batches to stdout in one format; flushed after every batch."""

    def __init__(self, fmt: str, columnar: bool, key_delimiter: str | None, plain: bool):
        self.fmt, self.columnar, self.plain = fmt, columnar, plain
        self.sep = key_delimiter.encode() if key_delimiter is not None else None
        self.csv = None
        self.table_rows: list[dict[str, Any]] = []

    TABLE_ROWS = 1000  # rows per printed table: one table for a short read, pages for a long one

    def flush(self) -> None:
        """Prints the table rows held back (table format; the others write at once)."""
        if self.table_rows:
            rows, self.table_rows = self.table_rows, []
            print_table(list(rows[0]), [[_short(_text(v)) for v in r.values()] for r in rows], plain=self.plain,
                        right=("partition", "offset"))
            sys.stdout.flush()

    def write(self, batch) -> None:
        if self.fmt == "raw":
            out = sys.stdout.buffer
            values = batch.column("value").to_pylist()
            if self.sep is not None:
                keys = batch.column("key").to_pylist()
                lines = [(k or b"") + self.sep + (v or b"") for k, v in zip(keys, values)]
            else:
                lines = [v or b"" for v in values]
            out.write(b"\n".join(lines) + b"\n")
            out.flush()
            return
        rows = self._rows(batch)
        if self.fmt == "json":
            sys.stdout.write("".join(json.dumps(r, default=_json_value, ensure_ascii=False) + "\n" for r in rows))
        elif self.fmt == "csv":
            if self.csv is None:
                self.csv = csv.writer(sys.stdout, lineterminator="\n")
                self.csv.writerow(list(rows[0]) if rows else [])
            self.csv.writerows([[_text(v) for v in r.values()] for r in rows])
        else:
            self.table_rows.extend(rows)
            if len(self.table_rows) >= self.TABLE_ROWS:
                self.flush()
            return
        sys.stdout.flush()

    def _rows(self, batch) -> list[dict[str, Any]]:
        names = [n for n in batch.schema.names if n != "topic"]
        columns = [batch.column(n).to_pylist() for n in names]
        rows = [dict(zip(names, values)) for values in zip(*columns)]
        if not self.columnar:
            for r in rows:
                for name in ("key", "value"):
                    v = r.pop(name)
                    if isinstance(v, bytes):
                        try:
                            r[name] = v.decode()
                        except UnicodeDecodeError:
                            r[f"{name}_base64"] = base64.b64encode(v).decode()
                    else:
                        r[name] = v
                r["headers"] = {h["key"]: _bytes_text(h["value"]) for h in r.pop("headers") or []}
        return rows


def _bytes_text(v: bytes | None) -> str | None:
    if v is None:
        return None
    try:
        return v.decode()
    except UnicodeDecodeError:
        return base64.b64encode(v).decode()


def _json_value(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return _bytes_text(v)
    return str(v)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (_dt.datetime, _dt.date)) or hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return _bytes_text(v) or ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=_json_value, ensure_ascii=False) if v else ""
    return str(v)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
