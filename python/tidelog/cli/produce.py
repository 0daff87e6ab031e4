"""``tidelog produce``: records from stdin or files into a topic, batched (kcat
``-P``, rpk ``topic produce``).

Input formats: ``raw`` (each line is a record's value), ``json`` (JSON lines),
``csv`` (a header row, then records). Into a byte-record topic a raw or JSON
line is the value as written and a CSV record becomes a JSON object; into a
columnar topic JSON and CSV fields map onto the schema by name. Lines are read
in blocks (``--batch-bytes``) and each block goes in as one append: Arrow's
JSON reader converts a whole block at once, and only a block it refuses is
converted row by row (``_rows``) to name the rows that do not fit, which are
skipped and counted (``--on-error skip``) or stop the run (the default), after
everything before them was written and nothing after."""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import select
import sys
import time
from typing import IO, Iterator

from ._errors import CliError, require_log_folder, usage_error
from ._output import InputProgress, human_bytes
from ._rows import RowConverter, RowError

FORMATS = ("raw", "json", "csv")
EXAMPLES = """\
examples:
  echo 'hello' | tidelog produce data/ orders                     # one record, value "hello"
  tidelog produce data/ orders events.jsonl --key-field order_id  # JSON lines, keyed by a field
  tidelog produce data/ orders -K: < pairs.txt                    # "key:value" lines (kcat -K:)
  tidelog produce data/ orders --header source=import --partition 0 < lines.txt
  tidelog produce data/ sensors readings.csv                      # CSV fields onto a columnar schema
  tidelog produce data/ sensors readings.jsonl --on-error skip    # skip (and count) rows that do not fit

The format follows the file name (.jsonl/.ndjson/.json: json, .csv: csv); otherwise json
for a columnar topic and raw for a byte-record topic. A summary (records, MB, records/s)
goes to stderr at the end.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("path", help="the log folder")
    parser.add_argument("topic")
    parser.add_argument("files", nargs="*", metavar="FILE", help="input files (default, or '-': stdin)")
    parser.add_argument("--format", "-f", choices=FORMATS, help="input format (default: by file name, see below)")
    parser.add_argument("--key", "-k", metavar="TEXT", help="byte records: this key for every record")
    parser.add_argument("--key-field", metavar="NAME", help="byte records: the key is this JSON/CSV field")
    parser.add_argument("--key-delimiter", "-K", metavar="SEP",
                        help="byte records: each raw line is KEY<SEP>VALUE (kcat's -K)")
    parser.add_argument("--header", "-H", metavar="NAME=VALUE", action="append", default=[],
                        help="byte records: a header on every record (repeatable)")
    parser.add_argument("--partition", "-p", type=int, metavar="N",
                        help="all records to this partition (default: by key, or spread unkeyed)")
    parser.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                        help="a row that does not fit: stop there (default; everything before it is written) "
                             "or skip it and count it")
    parser.add_argument("--batch-bytes", type=_size, default=4 << 20, metavar="SIZE",
                        help="input bytes per append (default 4M); smaller input that is all there is goes at once")
    parser.add_argument("--csv-delimiter", default=",", metavar="CHAR", help="default ','")
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary, no progress")


def _size(text: str) -> int:
    from .topics import parse_settings

    try:
        value = parse_settings([f"batch_bytes={text}"])["batch_bytes"]
    except CliError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


class Counts:
    def __init__(self) -> None:
        self.records = self.bytes = self.skipped = 0
        self.t0 = time.perf_counter()
        self.skip_notes: list[str] = []


class Run:
    """One produce run: where rows go (a columnar append or the producer),
    what happens to rows that do not fit, and the counts."""

    SHOWN_SKIPS = 5

    def __init__(self, log, topic, args: argparse.Namespace):
        self.log, self.topic, self.args = log, topic, args
        self.columnar = not topic.config.records
        self.counts = Counts()
        self.pending_values: list[bytes] = []
        self.pending_keys: list[bytes] = []
        self.headers = [_header(h) for h in args.header]
        self.producer = None if self.columnar else log.producer(acks="durable")
        self.source = "stdin"

    # ---------------------------------------------------------------- rows that do not fit
    def bad_row(self, line: int, reason: str, before_it=None) -> None:
        """A row that does not fit: stop (writing ``before_it``, the rows ahead
        of it, first) or count it and go on."""
        where = f"line {line} of {self.source}" if self.source != "stdin" else f"line {line} of stdin"
        if self.args.on_error == "stop":
            if before_it is not None:
                before_it()
            n = self.counts.records
            raise CliError(f"{where}: {reason}; stopped there ({plural(n, 'record')} before it "
                           f"{'was' if n == 1 else 'were'} written, none after; --on-error skip goes on past "
                           "such rows)")
        self.counts.skipped += 1
        if len(self.counts.skip_notes) < self.SHOWN_SKIPS:
            self.counts.skip_notes.append(f"{where}: {reason}")

    # ---------------------------------------------------------------- writing
    def append_table(self, table) -> None:
        if table.num_rows:
            self.topic.append(table, partition=self.args.partition)
            self.counts.records += table.num_rows

    def add_record(self, value: bytes, key: bytes | None) -> None:
        self.pending_values.append(value)
        self.pending_keys.append(key)

    def flush_records(self) -> None:
        n = len(self.pending_values)
        if not n:
            return
        keyed = any(k is not None for k in self.pending_keys)
        self.producer.send_many(self.topic.name, self.pending_values, keys=self.pending_keys if keyed else None,
                                headers=[self.headers] * n if self.headers else None, partition=self.args.partition)
        self.counts.records += n
        self.pending_values, self.pending_keys = [], []

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()

    # ---------------------------------------------------------------- byte-record keys
    def key_of(self, fields: dict | None, line: int) -> bytes | None:
        args = self.args
        if args.key is not None:
            return args.key.encode()
        if args.key_field is not None:
            if not isinstance(fields, dict) or args.key_field not in fields:
                self.bad_row(line, f"no field {args.key_field!r} for the key", self.flush_records)
                raise _Skip
            v = fields[args.key_field]
            return (v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))).encode()
        return None


class _Skip(Exception):
    """The row was skipped (``--on-error skip``)."""


def _header(text: str) -> tuple[str, bytes]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise usage_error(f"--header takes NAME=VALUE, not {text!r}")
    return name, value.encode()


# -------------------------------------------------------------------- reading input
def line_blocks(stream: IO[bytes], block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines of about ``block_bytes``; a block goes out early
    when the input has nothing more ready (a person typing, a slow pipe), so
    each line is written when it arrives rather than when the block fills."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = None
    buf = bytearray()
    read = getattr(stream, "read1", stream.read)
    while True:
        data = read(block_bytes)
        if not data:
            if buf:
                if not buf.endswith(b"\n"):
                    buf += b"\n"
                yield bytes(buf)
            return
        buf += data
        if len(buf) < block_bytes and (fd is None or select.select([fd], [], [], 0)[0]):
            continue
        cut = buf.rfind(b"\n")
        if cut < 0:
            continue  # a line longer than the block: read on
        yield bytes(buf[:cut + 1])
        del buf[:cut + 1]


def _lines(block: bytes, first_line: int) -> Iterator[tuple[int, bytes]]:
    for i, line in enumerate(block.split(b"\n")[:-1]):
        line = line.rstrip(b"\r")
        if line.strip():
            yield first_line + i, line


# -------------------------------------------------------------------- raw and JSON lines
def produce_lines(run: Run, stream: IO[bytes], fmt: str, progress: InputProgress) -> None:
    line_no = 1
    blocks = _parsed_ahead(stream, run) if run.columnar else ((b, None) for b in line_blocks(stream,
                                                                                            run.args.batch_bytes))
    for block, table in blocks:
        before = run.counts.records
        if run.columnar:
            if table is not None:
                run.append_table(table)
            else:
                _json_rows_columnar(run, block, line_no)
        else:
            _record_lines(run, block, line_no, fmt)
            run.flush_records()
        line_no += block.count(b"\n")
        run.counts.bytes += len(block)
        progress.update(run.counts.records - before, len(block))


_END = object()


def _parsed_ahead(stream: IO[bytes], run: Run) -> Iterator[tuple[bytes, object]]:
    """(block, its Arrow table or None) with the reading and parsing done on a
    helper thread, one block ahead: Arrow parses the next block while the
    current one is appended (both release the GIL). Blocks still come out as
    soon as they are read, so typed lines go in at once."""
    import queue
    import threading

    fast = _JsonBlocks(run.topic.schema)
    ready: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            for block in line_blocks(stream, run.args.batch_bytes):
                item = (block, fast.convert(block))
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, raised there
            ready.put(e)

    reader = threading.Thread(target=read, name="tidelog-produce-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _record_lines(run: Run, block: bytes, line_no: int, fmt: str) -> None:
    sep = run.args.key_delimiter.encode() if run.args.key_delimiter else None
    for n, line in _lines(block, line_no):
        try:
            if fmt == "json":
                try:
                    fields = json.loads(line)
                except ValueError as e:
                    run.bad_row(n, f"not JSON ({e})", run.flush_records)
                    continue
                run.add_record(line, run.key_of(fields, n))
            elif sep is not None:
                key, found, value = line.partition(sep)
                if not found:
                    run.bad_row(n, f"no key delimiter {sep.decode()!r} in the line", run.flush_records)
                    continue
                run.add_record(value, key)
            else:
                run.add_record(line, run.key_of(None, n))
        except _Skip:
            continue


def _json_rows_columnar(run: Run, block: bytes, line_no: int) -> None:
    rows = RowConverter(run.topic.schema, from_text=False)

    def write_good_rows() -> None:
        run.append_table(rows.take())

    for n, line in _lines(block, line_no):
        try:
            fields = json.loads(line)
        except ValueError as e:
            run.bad_row(n, f"not JSON ({e})", write_good_rows)
            continue
        try:
            rows.add(fields)
        except RowError as e:
            run.bad_row(n, str(e), write_good_rows)
    write_good_rows()


class _JsonBlocks:
    """Whole blocks of JSON lines through Arrow's JSON reader, with the
    topic's schema; None for a block it refuses or whose required fields are
    missing (then the rows are converted one by one). Timestamps may be
    ISO-8601 strings or integers: a block of integer timestamps is read with
    int64 there and cast."""

    def __init__(self, schema):
        import pyarrow as pa

        self.schema = schema
        as_ints = pa.schema([f.with_type(pa.int64()) if pa.types.is_timestamp(f.type) else f for f in schema])
        self.candidates = [schema] + ([as_ints] if not as_ints.equals(schema) else [])

    def convert(self, block: bytes):
        import pyarrow as pa
        import pyarrow.json as pj

        for i, parse_schema in enumerate(self.candidates):
            try:
                table = pj.read_json(pa.BufferReader(block),
                                     parse_options=pj.ParseOptions(explicit_schema=parse_schema,
                                                                   unexpected_field_behavior="error"))
                table = pa.Table.from_arrays([table[f.name].cast(f.type) for f in self.schema], schema=self.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError):
                continue
            if any(not f.nullable and table[f.name].null_count for f in self.schema):
                return None
            if i:  # the last schema that worked goes first next time
                self.candidates.insert(0, self.candidates.pop(i))
            return table
        return None


# -------------------------------------------------------------------- CSV
CSV_BATCH_ROWS = 65_536


def produce_csv(run: Run, stream: IO[bytes], progress: InputProgress) -> None:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    reader = csv.reader(text, delimiter=run.args.csv_delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    if run.columnar:
        names = set(run.topic.schema.names)
        unknown = [h for h in header if h not in names]
        if unknown:
            raise CliError(f"{run.source}: CSV column {unknown[0]!r} is not in the topic's schema "
                           f"({', '.join(run.topic.schema.names)})")
    batch: list[tuple[int, list[str]]] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        batch.append((reader.line_num, row))
        if len(batch) >= CSV_BATCH_ROWS:
            _csv_batch(run, header, batch, progress)
            batch = []
    if batch:
        _csv_batch(run, header, batch, progress)
    text.detach()


def _csv_batch(run: Run, header: list[str], batch: list[tuple[int, list[str]]], progress: InputProgress) -> None:
    before = run.counts.records
    nbytes = sum(len(v) + 1 for _, row in batch for v in row)
    if run.columnar:
        table = _csv_fast(run.topic.schema, header, batch)
        if table is not None:
            run.append_table(table)
        else:
            _csv_rows_columnar(run, header, batch)
    else:
        for n, row in batch:
            if len(row) != len(header):
                run.bad_row(n, f"{len(row)} fields under a header of {len(header)}", run.flush_records)
                continue
            fields = dict(zip(header, row))
            try:
                run.add_record(json.dumps(fields, separators=(",", ":")).encode(), run.key_of(fields, n))
            except _Skip:
                continue
        run.flush_records()
    run.counts.bytes += nbytes
    progress.update(run.counts.records - before, nbytes)


def _csv_fast(schema, header: list[str], batch: list[tuple[int, list[str]]]):
    """The batch cast column by column with Arrow; None if any value refuses."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if any(len(row) != len(header) for _, row in batch):
        return None
    where = {name: i for i, name in enumerate(header)}
    columns = []
    try:
        for f in schema:
            i = where.get(f.name)
            if i is None:
                column = pa.nulls(len(batch), f.type)
            else:
                strings = pa.array([row[i] for _, row in batch], pa.string())
                if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
                    strings = pc.if_else(pc.equal(strings, ""), pa.scalar(None, pa.string()), strings)
                column = strings.cast(f.type)
            if not f.nullable and column.null_count:
                return None
            columns.append(column)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return pa.Table.from_arrays(columns, schema=schema)


def _csv_rows_columnar(run: Run, header: list[str], batch: list[tuple[int, list[str]]]) -> None:
    rows = RowConverter(run.topic.schema, from_text=True)

    def write_good_rows() -> None:
        run.append_table(rows.take())

    for n, row in batch:
        if len(row) != len(header):
            run.bad_row(n, f"{len(row)} fields under a header of {len(header)}", write_good_rows)
            continue
        try:
            rows.add(dict(zip(header, row)))
        except RowError as e:
            run.bad_row(n, str(e), write_good_rows)
    write_good_rows()


# -------------------------------------------------------------------- the command
def _format_for(name: str | None, columnar: bool, key_field: str | None) -> str:
    if name:
        lower = name.lower()
        if lower.endswith((".jsonl", ".ndjson", ".json")):
            return "json"
        if lower.endswith(".csv"):
            return "csv"
    return "json" if columnar or key_field is not None else "raw"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _check_options(args: argparse.Namespace, topic) -> None:
    columnar = not topic.config.records
    keys = [o for o, v in (("--key", args.key), ("--key-field", args.key_field),
                           ("--key-delimiter", args.key_delimiter)) if v is not None]
    if len(keys) > 1:
        raise usage_error(f"{keys[0]} and {keys[1]} both give the key: pick one")
    if columnar and (keys or args.header):
        what = keys[0] if keys else "--header"
        key = f" (its key column is {topic.config.key!r})" if topic.config.key else ""
        raise usage_error(f"{what} is for byte-record topics; {topic.name!r} is columnar{key}")
    if args.partition is not None and not 0 <= args.partition < topic.partitions:
        raise usage_error(f"--partition {args.partition}: topic {topic.name!r} has partitions 0..{topic.partitions - 1}")
    if args.key_delimiter == "":
        raise usage_error("--key-delimiter must not be empty")
    if len(args.csv_delimiter) != 1:
        raise usage_error("--csv-delimiter takes one character")
    for f in args.files:
        if f != "-" and not os.path.isfile(f):
            raise usage_error(f"{f} does not exist" if not os.path.exists(f) else f"{f} is not a file")
    for h in args.header:
        _header(h)


def main(args: argparse.Namespace) -> int:
    import tidelog

    require_log_folder(args.path)
    with tidelog.open(args.path) as log:
        topic = log.topic(args.topic)
        _check_options(args, topic)
        run = Run(log, topic, args)
        files = args.files or ["-"]
        total = sum(os.path.getsize(f) for f in files if f != "-") if "-" not in files else None
        progress = InputProgress(f"produce {topic.name}", total, enabled=not args.quiet)
        try:
            for name in files:
                fmt = args.format or _format_for(None if name == "-" else name, run.columnar, args.key_field)
                if fmt == "raw" and run.columnar:
                    raise usage_error(f"--format raw is for byte-record topics; {topic.name!r} is columnar "
                                      "(json or csv)")
                if fmt != "raw" and args.key_delimiter is not None:
                    raise usage_error("--key-delimiter splits raw lines; with json or csv use --key-field")
                if fmt == "raw" and args.key_field is not None:
                    raise usage_error("--key-field reads a field of JSON or CSV input, not of raw lines "
                                      "(--format json, or --key-delimiter for KEY<SEP>VALUE lines)")
                run.source = "stdin" if name == "-" else name
                stream = sys.stdin.buffer if name == "-" else open(name, "rb")
                try:
                    if fmt == "csv":
                        produce_csv(run, stream, progress)
                    else:
                        produce_lines(run, stream, fmt, progress)
                finally:
                    if stream is not sys.stdin.buffer:
                        stream.close()
        except KeyboardInterrupt:
            progress.close()
            _summary(run, interrupted=True)
            raise
        finally:
            progress.close()
            run.close()
    if not args.quiet:
        _summary(run)
    return 0


def _summary(run: Run, interrupted: bool = False) -> None:
    c = run.counts
    seconds = max(time.perf_counter() - c.t0, 1e-9)
    line = (f"produced {plural(c.records, 'record')} ({human_bytes(c.bytes)} of input) to {run.topic.name!r} in "
            f"{seconds:.2f} s: {c.records / seconds:,.0f} records/s, {c.bytes / seconds / 1e6:,.1f} MB/s")
    if c.skipped:
        line += f"; skipped {plural(c.skipped, 'row')} that did not fit"
    if interrupted:
        line += " (interrupted)"
    for note in c.skip_notes:
        print(f"  skipped {note}", file=sys.stderr)
    if c.skipped > len(c.skip_notes):
        print(f"  ... and {c.skipped - len(c.skip_notes):,} more", file=sys.stderr)
    print(line, file=sys.stderr, flush=True)

