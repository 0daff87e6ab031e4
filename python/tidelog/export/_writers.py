"""Writing one run's rows into files: Parquet, CSV or Arrow IPC, one file per
topic partition and hive folder, in bounded memory.

A file is written under its temporary name, made durable (fsync) when it
closes, and only then renamed to its final name by the caller; ``done``
lists (temporary, final) pairs in the order the files closed.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
import urllib.parse

import numpy as np
import pyarrow as pa

from ._spec import FILE_FORMATS, HIVE_NULL, Selection, date_column

#: At most this many files open at once in one run (hive partitioning by a
#: column of many values): the least recently written one is closed (its
#: folder's next rows go to a new file, ``-<n>`` in the name).
MAX_OPEN_FILES = 64
#: Rows buffered for unfinished row groups, over every hive folder; past it
#: the fullest buffer is written as a (smaller) row group.
BUFFER_BUDGET_BYTES = 256 << 20
#: Test-only: seconds to sleep after each row group or batch written, so that a
#: crash test can kill a run at random moments of a small export. Not an option.
TEST_SLEEP_ENV = "TIDELOG_EXPORT_TEST_SLEEP_S"
#: Test-only: the name of a step (``kill_point``) at which the run SIGKILLs
#: itself, so that a crash test hits the short moments around a commit.
KILL_POINT_ENV = "TIDELOG_EXPORT_TEST_KILL_AT"


def kill_point(name: str) -> None:
    """Test-only: dies here with SIGKILL when TIDELOG_EXPORT_TEST_KILL_AT names this step."""
    if os.environ.get(KILL_POINT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class FileOptions:
    format: str                      # a key of FILE_FORMATS
    compression: str | None          # None: uncompressed
    compression_level: int | None
    row_group_size: int
    max_rows_per_file: int | None    # None: no limit

    @property
    def extension(self) -> str:
        return FILE_FORMATS[self.format]


#: A file's writeback starts in a background thread once this much more of it
#: is written: its bytes go to the disk while the next row groups are encoded,
#: and the fsync at its close waits for the last few only (a 600 MB file would
#: otherwise be written at its fsync, after the encoding).
WRITEBACK_BYTES = 64 << 20


class _Writeback:
    """fdatasyncs a file in a background thread each time ``kick()`` is called
    (the call returns at once; kicks during a sync merge into the next)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY)
        self.wanted = threading.Event()
        self.closing = False
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._run, name="tidelog export writeback", daemon=True)
        self.thread.start()

    def kick(self) -> None:
        self.wanted.set()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.closing:
                return
            try:
                os.fdatasync(self.fd)
            except OSError as e:  # raised by close(), in the writer's thread
                self.error = e
                return

    def close(self) -> None:
        self.closing = True
        self.wanted.set()
        self.thread.join()
        os.close(self.fd)
        if self.error is not None:
            raise self.error


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hive_segment(name: str, value) -> str:
    """``name=value`` as a folder name (the value URI-encoded, as pyarrow's
    hive partitioning reads it; nulls as ``__HIVE_DEFAULT_PARTITION__``)."""
    if value is None:
        text = HIVE_NULL
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    return f"{name}={urllib.parse.quote(text, safe='')}"


class _Buffer:
    """The rows of one hive folder not written yet, in arrival (offset) order."""

    __slots__ = ("batches", "rows", "nbytes")

    def __init__(self) -> None:
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0
        self.nbytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes

    def take(self, rows: int) -> pa.Table:
        """The first ``rows`` rows, as a table over the buffered batches (no copy)."""
        table = pa.Table.from_batches(self.batches)
        if rows >= table.num_rows:
            self.batches, self.rows, self.nbytes = [], 0, 0
            return table
        rest = table.slice(rows)
        self.batches = rest.to_batches()
        self.rows = rest.num_rows
        self.nbytes = sum(b.nbytes for b in self.batches)
        return table.slice(0, rows)


class _File:
    """One output file being written under its temporary name."""

    def __init__(self, tmp_path: str, final_path: str, schema: pa.Schema, options: FileOptions):
        self.tmp_path, self.final_path = tmp_path, final_path
        self.options = options
        self.rows = 0
        self._sleep = float(os.environ.get(TEST_SLEEP_ENV) or 0)
        self._writeback: _Writeback | None = None
        self._written_at_kick = 0
        fmt = options.format
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(tmp_path, schema, compression=options.compression or "none",
                                            compression_level=options.compression_level)
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(tmp_path, schema)
        else:
            write_options = pa.ipc.IpcWriteOptions(compression=options.compression)
            self._writer = pa.ipc.new_file(tmp_path, schema, options=write_options)

    def write(self, table: pa.Table) -> None:
        """Appends ``table`` as row groups of ``row_group_size`` rows (the last one may be shorter)."""
        size = self.options.row_group_size
        if self.options.format == "parquet":
            self._writer.write_table(table, row_group_size=size)
        elif self.options.format == "csv":
            self._writer.write_table(table)
        else:
            self._writer.write_table(table, max_chunksize=size)
        self.rows += table.num_rows
        self._start_writeback()
        if self._sleep:
            time.sleep(self._sleep)

    def _start_writeback(self) -> None:
        size = os.stat(self.tmp_path).st_size
        if size - self._written_at_kick >= WRITEBACK_BYTES:
            if self._writeback is None:
                self._writeback = _Writeback(self.tmp_path)
            self._writeback.kick()
            self._written_at_kick = size

    def close(self) -> None:
        self._writer.close()
        if self._writeback is not None:
            self._writeback.close()
        fsync_file(self.tmp_path)

    def abandon(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - it is being thrown away
            pass
        if self._writeback is not None:
            try:
                self._writeback.close()
            except OSError:
                pass


class RunWriter:
    """The files of one run over one topic partition's offsets [first, end):
    ``p<partition>-<first>-<end>.<ext>`` (offsets 20 digits, as segment
    names), in the hive folder of each row's partition keys; a folder whose
    file had to close early (``max_rows_per_file``, too many open files) gets
    ``...-<end>-1.<ext>``, ``-2``, ... Files are written under
    ``.<name>.tmp`` (hidden from pyarrow, DuckDB and Polars globs).

    Rows are buffered per folder and written a whole row group at a time, so
    a file is opened when its folder has a row group to write: a column of
    many values interleaved in every frame (a sensor id) opens a file per
    folder and row group at most, not one per frame."""

    def __init__(self, root: str, selection: Selection, schema: pa.Schema, options: FileOptions,
                 partition: int, first: int, end: int):
        self.root = root
        self.selection = selection
        self.schema = pa.schema([schema.field(c) for c in selection.columns], metadata=schema.metadata)
        self.options = options
        self.base = f"p{partition}-{first:020d}-{end:020d}"
        self.buffers: dict[str, _Buffer] = {}
        self.buffered_bytes = 0
        self.open: collections.OrderedDict[str, _File] = collections.OrderedDict()
        self.sequence: dict[str, int] = {}
        self.done: list[tuple[str, str]] = []     # (tmp, final) of the files closed, durable
        self.created_dirs: list[str] = []         # folders made, parents first

    def write(self, batch: pa.RecordBatch) -> None:
        if not self.selection.partition_by:
            self._add("", batch.select(list(self.selection.columns)))
            return
        for folder, rows in self._split(batch):
            self._add(folder, rows.select(list(self.selection.columns)))
        while self.buffered_bytes > BUFFER_BUDGET_BYTES:
            self._flush(max(self.buffers, key=lambda f: self.buffers[f].nbytes))

    def close(self) -> None:
        for folder in list(self.buffers):
            self._flush(folder)
        while self.open:
            self._close(next(iter(self.open)))

    def abandon(self) -> None:
        for f in self.open.values():
            f.abandon()
        self.open.clear()

    # -------------------------------------------------------------- buffers
    def _add(self, folder: str, batch: pa.RecordBatch) -> None:
        buffer = self.buffers.get(folder)
        if buffer is None:
            buffer = self.buffers[folder] = _Buffer()
        buffer.add(batch)
        self.buffered_bytes += batch.nbytes
        size = self.options.row_group_size
        if buffer.rows >= size:
            self._write(folder, buffer.rows // size * size)

    def _flush(self, folder: str) -> None:
        """Writes every buffered row of ``folder`` (a shorter row group)."""
        self._write(folder, self.buffers[folder].rows)

    def _write(self, folder: str, rows: int) -> None:
        buffer = self.buffers[folder]
        before = buffer.nbytes
        table = buffer.take(rows)
        self.buffered_bytes -= before - buffer.nbytes
        if not buffer.rows:
            del self.buffers[folder]
        limit = self.options.max_rows_per_file
        while table.num_rows:
            f = self.open.get(folder)
            if f is None:
                f = self._new_file(folder)
            else:
                self.open.move_to_end(folder)
            part = table if not limit else table.slice(0, limit - f.rows)
            f.write(part)
            table = table.slice(part.num_rows)
            if limit and f.rows >= limit:
                self._close(folder)

    # ---------------------------------------------------------------- files
    def _new_file(self, folder: str) -> _File:
        if len(self.open) >= MAX_OPEN_FILES:
            self._close(next(iter(self.open)))
        seq = self.sequence.get(folder, 0)
        self.sequence[folder] = seq + 1
        name = f"{self.base}{'' if seq == 0 else f'-{seq}'}.{self.options.extension}"
        directory = os.path.join(self.root, folder) if folder else self.root
        self._make_dirs(directory)
        f = _File(os.path.join(directory, f".{name}.tmp"), os.path.join(directory, name), self.schema, self.options)
        self.open[folder] = f
        return f

    def _close(self, folder: str) -> None:
        f = self.open.pop(folder)
        f.close()
        self.done.append((f.tmp_path, f.final_path))

    def _make_dirs(self, directory: str) -> None:
        missing = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            os.mkdir(d)
            self.created_dirs.append(d)

    # ------------------------------------------------------------- hive keys
    def _split(self, batch: pa.RecordBatch):
        """(hive folder, rows) for each distinct combination of partition keys in ``batch``."""
        keys = []
        for name in self.selection.partition_by:
            if name == "date" and self.selection.date_from is not None:
                keys.append(date_column(batch.column(self.selection.date_from)))
            else:
                keys.append(batch.column(name))
        n = batch.num_rows
        codes = np.zeros(n, dtype=np.int64)
        for column in keys:
            encoded = column.dictionary_encode() if not pa.types.is_dictionary(column.type) else column
            width = len(encoded.dictionary) + 1
            idx = encoded.indices.fill_null(width - 1).to_numpy(zero_copy_only=False).astype(np.int64)
            codes = codes * width + idx
            codes = np.unique(codes, return_inverse=True)[1].astype(np.int64)  # dense again: no overflow
        if n == 0:
            return
        if (codes == codes[0]).all():
            yield self._folder(keys, 0), batch
            return
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.diff(sorted_codes)) + 1
        bounds = [0, *starts.tolist(), n]
        grouped = batch.take(pa.array(order))
        for lo, hi in zip(bounds, bounds[1:]):
            yield self._folder(keys, int(order[lo])), grouped.slice(lo, hi - lo)

    def _folder(self, keys: list[pa.Array], row: int) -> str:
        return "/".join(hive_segment(name, column[row].as_py())
                        for name, column in zip(self.selection.partition_by, keys))
