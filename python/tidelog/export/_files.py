"""File exports: a topic's rows as Parquet, CSV or Arrow IPC files in a
folder, hive-partitioned on request; one-off (the whole folder appears at
once) or incremental (each run adds what is new since the last one)."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from typing import Any

from .._log import _fsync_dir
from ..errors import InvalidArgumentError
from ._checkpoint import NAME as CHECKPOINT_NAME, Checkpoint, OutputLock, check_no_foreign_files, clean_leftovers
from ._result import ExportResult, NoProgress, offsets_arg, resume_ranges
from ._spec import (DEFAULT_ROW_GROUP_SIZE, check_compression, check_csv_types, check_format, check_row_group_size,
                    identity_mismatch, select, topic_identity)
from ._writers import FileOptions, RunWriter, kill_point

_DEFAULT = object()
#: The compression each format gets unless told: zstd where the format has it
#: (pyarrow's own default for Parquet is snappy; zstd files are smaller and
#: every reader of Parquet and Arrow IPC reads them).
DEFAULT_COMPRESSION = {"parquet": "zstd", "arrow": "zstd", "csv": "none"}
#: One-off exports build the folder beside its destination under this prefix
#: (``.<name>.tidelog-export-<pid>-<random>``) and rename it into place.
STAGING_INFIX = ".tidelog-export-"


def export_files(topic, path: str | os.PathLike, *, format: str = "parquet", partition_by: Any = None,
                 start_offset: Any = None, end_offset: Any = None, start_time: Any = None, end_time: Any = None,
                 columns: Any = None, incremental: bool = False, row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
                 compression: Any = _DEFAULT, compression_level: int | None = None,
                 max_rows_per_file: int | None = None, progress: Any = None) -> ExportResult:
    """Exports a topic's rows into the folder ``path``; see the package docstring."""
    fmt = check_format(format)
    selection = select(topic, columns, partition_by, start_time, end_time)
    if fmt == "csv":
        check_csv_types(topic.schema, selection.columns)
    codec, level = check_compression(fmt, DEFAULT_COMPRESSION[fmt] if compression is _DEFAULT else compression,
                                     compression_level)
    if max_rows_per_file is not None and (isinstance(max_rows_per_file, bool) or not isinstance(max_rows_per_file, int)
                                          or max_rows_per_file < 1):
        raise InvalidArgumentError(f"max_rows_per_file must be a positive int or None, not {max_rows_per_file!r}")
    options = FileOptions(fmt, codec, level, check_row_group_size(row_group_size), max_rows_per_file)
    out = os.path.abspath(os.fspath(path))
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InvalidArgumentError(f"{out} is a file: an export writes a folder")
    progress = progress or NoProgress()
    if incremental:
        if start_offset is not None or end_offset is not None:
            raise InvalidArgumentError("an incremental export starts where its last run ended and reads to the end: "
                                       "start_offset/end_offset are for one-off exports")
        return _incremental(topic, out, selection, options, progress)
    return _one_off(topic, out, selection, options, offsets_arg(topic, start_offset, "start_offset"),
                    offsets_arg(topic, end_offset, "end_offset"), progress)


# --------------------------------------------------------------------- runs
def _read_into(topic, root: str, selection, options: FileOptions, starts: dict[int, int], ends: dict[int, int],
               progress) -> tuple[list[tuple[str, str]], set[str], int, int]:
    """Writes the selected rows of [starts[p], ends[p]) of every partition into
    durable files under ``root`` (temporary names); returns the (temporary,
    final) names, the folders whose entries changed, rows and bytes read."""
    files: list[tuple[str, str]] = []
    folders: set[str] = set()
    rows = nbytes = 0
    read_columns = None if list(selection.read_columns) == topic.schema.names else list(selection.read_columns)
    progress.start(sum(max(0, ends[p] - starts[p]) for p in ends))
    for p in sorted(ends):
        first, end = starts[p], ends[p]
        if first >= end:
            continue
        writer = RunWriter(root, selection, topic.schema, options, p, first, end)
        try:
            scan = topic.scan({p: first}, {p: end}, partitions=[p], columns=read_columns,
                              start_time=selection.start_time, end_time=selection.end_time)
            for batch in scan:
                writer.write(batch)
                rows += batch.num_rows
                nbytes += batch.nbytes
                progress.update(batch.num_rows, batch.nbytes)
            writer.close()
        except BaseException:
            writer.abandon()
            raise
        progress.advance_to_partition_end(end - first)
        files += writer.done
        folders.update(os.path.dirname(final) for _, final in writer.done)
        folders.update(os.path.dirname(d) for d in writer.created_dirs)
    progress.finish()
    return files, folders, rows, nbytes


def _publish(files: list[tuple[str, str]], folders: set[str]) -> None:
    """Renames the durable files to their final names and makes the names durable."""
    for tmp, final in files:
        os.replace(tmp, final)
        kill_point("after-first-rename")
    for folder in sorted(folders, key=len, reverse=True):  # a new folder's own entries before its parent's
        _fsync_dir(folder)


def _incremental(topic, out: str, selection, options: FileOptions, progress) -> ExportResult:
    t0 = time.perf_counter()
    identity = topic_identity(topic)
    spec = selection.spec()

    def load_and_check() -> Checkpoint | None:
        checkpoint = Checkpoint.load(out)
        if checkpoint is not None:
            _check_same_export(out, checkpoint, identity, options.format, spec)
        else:
            check_no_foreign_files(out)
        return checkpoint

    if os.path.isdir(out):
        load_and_check()  # refused before the lock file is made: a refusal writes nothing
    else:
        os.makedirs(out)
        _fsync_dir(os.path.dirname(out))
    with OutputLock(out):
        checkpoint = load_and_check()  # again under the lock: the one that counts
        clean_leftovers(out, checkpoint)
        done = checkpoint.end_offsets if checkpoint is not None else {}
        ends = topic.end_offsets()
        starts, lost = resume_ranges(topic, done, ends, checkpoint is not None, out, "Export to a new folder")
        files, folders, rows, nbytes = _read_into(topic, out, selection, options, starts, ends, progress)
        if ends != done:
            _publish(files, folders)
            kill_point("before-commit")
            checkpoint = checkpoint or Checkpoint(identity, options.format, spec, {})
            checkpoint.end_offsets = dict(ends)
            checkpoint.runs += 1
            checkpoint.rows += rows
            checkpoint.store(out)
            kill_point("after-commit")
    return _result(out, options.format, files, rows, nbytes, starts, ends, lost, t0)


def _one_off(topic, out: str, selection, options: FileOptions, start: dict | None, end: dict | None,
             progress) -> ExportResult:
    t0 = time.perf_counter()
    if os.path.isdir(out) and os.listdir(out):
        raise InvalidArgumentError(f"{out} is not empty: a one-off export writes a new or empty folder "
                                   "(incremental=True adds to an export made before)")
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    _remove_dead_staging(parent, name)
    staging = os.path.join(parent, f".{name}{STAGING_INFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(staging)
    try:
        ends = topic.end_offsets()
        kept_from = topic.start_offsets()
        if end is not None:
            ends = {p: e if end[p] is None else min(e, end[p]) for p, e in ends.items()}
        starts = {p: max(kept_from[p], 0 if start is None or start[p] is None else start[p]) for p in ends}
        files, folders, rows, nbytes = _read_into(topic, staging, selection, options, starts, ends, progress)
        _publish(files, folders | {staging})
        Checkpoint(topic_identity(topic), options.format, selection.spec(), dict(ends), runs=1,
                   rows=rows).store(staging)
        try:
            os.rename(staging, out)  # onto a missing or empty folder: the export appears whole
        except OSError as e:
            raise InvalidArgumentError(f"{out} was filled while the export ran ({e.strerror}): nothing was "
                                       "written there") from None
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = [os.path.join(out, os.path.relpath(final, staging)) for _, final in files]
    return _result(out, options.format, [(None, f) for f in files], rows, nbytes, starts, ends, {}, t0)


def _remove_dead_staging(parent: str, name: str) -> None:
    """Removes the staging folders of one-off exports to ``name`` whose process is gone."""
    prefix = f".{name}{STAGING_INFIX}"
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_same_export(out: str, checkpoint: Checkpoint, identity: dict, fmt: str, spec: dict) -> None:
    why = identity_mismatch(checkpoint.topic, identity)
    if why is not None:
        raise InvalidArgumentError(f"{out} is the export of another topic ({checkpoint.topic.get('name')!r}): "
                                   f"{why}; export to a new folder")
    if checkpoint.format != fmt:
        raise InvalidArgumentError(f"{out} holds a {checkpoint.format} export; this run writes {fmt}: "
                                   "export to a new folder")
    if checkpoint.spec != spec:
        diff = {k: (checkpoint.spec.get(k), v) for k, v in spec.items() if checkpoint.spec.get(k) != v}
        raise InvalidArgumentError(f"{out} was exported with other settings ({', '.join(f'{k}: {a!r} there, {b!r} now' for k, (a, b) in diff.items())}): "
                                   "an incremental export keeps its columns, partitioning and time range")


def _result(out, fmt, files, rows, nbytes, starts, ends, lost, t0) -> ExportResult:
    finals = [final for _, final in files]
    return ExportResult(path=out, format=fmt, rows=rows, bytes_read=nbytes, files=finals,
                        bytes_written=sum(os.path.getsize(f) for f in finals), start_offsets=dict(starts),
                        end_offsets=dict(ends), lost=lost, seconds=time.perf_counter() - t0)


__all__ = ["CHECKPOINT_NAME", "DEFAULT_COMPRESSION", "export_files"]
