"""Iceberg exports: each run appends one snapshot to an Apache Iceberg table
(through pyiceberg), whose summary records how far the table has got in
every partition; the next run resumes from there. Exactly once: the data
files and the offsets are in the same catalog commit."""
from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

import pyarrow as pa

from ..errors import IntegrityError, InvalidArgumentError
from ._result import ExportResult, NoProgress, resume_ranges
from ._spec import DATE, check_compression, date_column, identity_mismatch, select, topic_identity
from ._writers import TEST_SLEEP_ENV, kill_point

#: Snapshot summary properties a run commits with its data.
SUMMARY_OFFSETS = "tidelog.end-offsets"    # {"<partition>": offset, ...}: offsets below are in the table
SUMMARY_TOPIC = "tidelog.topic"            # the topic's identity (_spec.topic_identity)
SUMMARY_SPEC = "tidelog.spec"              # the selection: columns, partition_by, time range
SUMMARY_ROWS = "tidelog.rows"              # rows this run appended
#: Rows are handed to pyiceberg's writer in chunks of about this many bytes
#: (each chunk one or more data files): the memory a run holds.
CHUNK_BYTES = 128 << 20
DEFAULT_NAMESPACE = "default"
CATALOG_NAME = "tidelog"


def _pyiceberg():
    try:
        import pyiceberg  # noqa: F401
        from pyiceberg.catalog.sql import SqlCatalog  # noqa: F401
    except ImportError as e:
        raise ImportError(f"Iceberg exports need pyiceberg with its SQL catalog: pip install 'pyiceberg[sql-sqlite]' "
                          f"({e})") from None
    import pyiceberg

    return pyiceberg


def export_iceberg(topic, *, catalog: Any = None, catalog_uri: str | None = None, warehouse: str | None = None,
                   table: str | tuple[str, str] | None = None, partition_by: Any = None, start_time: Any = None,
                   end_time: Any = None, columns: Any = None, compression: str = "zstd",
                   compression_level: int | None = None, max_rows_per_file: int | None = None,
                   row_group_size: int | None = None, progress: Any = None) -> ExportResult:
    """Appends what is new in ``topic`` since the table's last tidelog
    snapshot to the Iceberg table ``table`` (``"namespace.name"`` or a tuple;
    default ``default.<topic>``, dots in the topic name as ``_``), creating
    the namespace and the table on the first run.

    The catalog: ``catalog`` (any pyiceberg ``Catalog``), or a SQL catalog
    at ``catalog_uri`` (for example ``sqlite:////data/catalog.db``) whose
    tables live under ``warehouse`` (a folder or a URI). ``partition_by``:
    ``"date"`` (a ``date`` column, the UTC date of the timestamp column) or
    column names, as the table's identity partition fields. Times and
    ``columns`` select as in ``Topic.scan``."""
    _pyiceberg()
    selection = select(topic, columns, partition_by, start_time, end_time)
    codec, level = check_compression("iceberg", compression, compression_level)
    if max_rows_per_file is not None and (isinstance(max_rows_per_file, bool) or not isinstance(max_rows_per_file, int)
                                          or max_rows_per_file < 1):
        raise InvalidArgumentError(f"max_rows_per_file must be a positive int or None, not {max_rows_per_file!r}")
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    columns_out = _table_columns(topic, selection)
    arrow_schema = pa.schema([_iceberg_field(topic.schema, name) for name in columns_out])
    if catalog is None:
        if not catalog_uri or not warehouse:
            raise InvalidArgumentError("give a pyiceberg catalog (catalog=...) or a SQL catalog_uri and a warehouse")
        catalog = _sql_catalog(catalog_uri, warehouse)
    identifier = _identifier(table, topic.name)
    properties = {"write.parquet.compression-codec": codec or "uncompressed"}
    if level is not None:
        properties["write.parquet.compression-level"] = str(level)
    if row_group_size is not None:
        properties["write.parquet.row-group-limit"] = str(row_group_size)
    iceberg_table = _open_table(catalog, identifier, arrow_schema, selection, properties)
    identity, spec = topic_identity(topic), selection.spec()
    done = _resume(iceberg_table, identity, spec, identifier)
    ends = topic.end_offsets()
    starts, lost = resume_ranges(topic, done, ends, bool(done), f"table {'.'.join(identifier)}",
                                 "Export to a new table")
    result = ExportResult(path=".".join(identifier), format="iceberg", rows=0, bytes_read=0, files=[],
                          bytes_written=0, start_offsets=dict(starts), end_offsets=dict(ends), lost=lost, seconds=0.0)
    if ends == done:
        progress.start(0)
        progress.finish()
        result.seconds = time.perf_counter() - t0
        return result
    summary = {SUMMARY_OFFSETS: json.dumps({str(p): o for p, o in sorted(ends.items())}),
               SUMMARY_TOPIC: json.dumps(identity, sort_keys=True), SUMMARY_SPEC: json.dumps(spec, sort_keys=True)}
    _append(topic, iceberg_table, selection, columns_out, arrow_schema, starts, ends, summary, result, progress,
            max_rows_per_file)
    result.seconds = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------ catalog
def _sql_catalog(uri: str, warehouse: str):
    from pyiceberg.catalog.sql import SqlCatalog

    if "://" not in warehouse:
        warehouse = os.path.abspath(warehouse)
        os.makedirs(warehouse, exist_ok=True)
        warehouse = f"file://{warehouse}"
    return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse)


def _identifier(table: Any, topic_name: str) -> tuple[str, str]:
    if table is None:
        return DEFAULT_NAMESPACE, topic_name.replace(".", "_")
    if isinstance(table, str):
        parts = tuple(table.split("."))
    elif isinstance(table, tuple) and all(isinstance(t, str) for t in table):
        parts = table
    else:
        raise InvalidArgumentError(f"table takes 'namespace.name' or a tuple (namespace, name), not {table!r}")
    if len(parts) < 2 or not all(parts):
        raise InvalidArgumentError(f"table {table!r}: give it as 'namespace.name'")
    return ".".join(parts[:-1]), parts[-1]


def _open_table(catalog, identifier: tuple[str, str], arrow_schema: pa.Schema, selection, properties: dict):
    from pyiceberg.exceptions import NoSuchTableError

    namespace = identifier[0]
    catalog.create_namespace_if_not_exists(namespace)
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        from pyiceberg.exceptions import TableAlreadyExistsError

        try:
            # the table and its partition spec in one commit: a run killed here leaves no half-made table
            create = catalog.create_table_transaction(identifier, schema=arrow_schema, properties=properties)
            if selection.partition_by:
                with create.update_spec() as spec:
                    for name in selection.partition_by:
                        spec.add_identity(name)
            create.commit_transaction()
        except TableAlreadyExistsError:
            pass  # another run made it meanwhile
        except (ValueError, TypeError, NotImplementedError) as e:
            raise InvalidArgumentError(f"Iceberg refuses the table schema ({e})") from e
        table = catalog.load_table(identifier)
    have = table.schema().as_arrow()
    if have.names != arrow_schema.names:
        raise InvalidArgumentError(f"table {'.'.join(identifier)} has columns {have.names}; this export writes "
                                   f"{arrow_schema.names}: export to a new table")
    return table


def _resume(table, identity: dict, spec: dict, identifier) -> dict[int, int]:
    """The end offsets of the newest tidelog snapshot of the table (walking
    back over snapshots other writers made, such as compactions), after
    checking it came from this topic and selection; {} for an empty table."""
    name = ".".join(identifier)
    snapshot = table.current_snapshot()
    if snapshot is None:
        return {}
    while snapshot is not None:
        props = _summary(snapshot)
        if SUMMARY_OFFSETS in props:
            stored_identity = json.loads(props.get(SUMMARY_TOPIC) or "{}")
            why = identity_mismatch(stored_identity, identity)
            if why is not None:
                raise InvalidArgumentError(f"table {name} is the export of another topic "
                                           f"({stored_identity.get('name')!r}): {why}; export to a new table")
            stored_spec = json.loads(props.get(SUMMARY_SPEC) or "{}")
            if stored_spec != spec:
                raise InvalidArgumentError(f"table {name} was exported with other settings ({stored_spec}, now "
                                           f"{spec}): an incremental export keeps its columns, partitioning and "
                                           "time range")
            return {int(p): int(o) for p, o in json.loads(props[SUMMARY_OFFSETS]).items()}
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    raise InvalidArgumentError(f"table {name} holds data that tidelog did not export (no snapshot records "
                               "offsets): export to a new table")


def _summary(snapshot) -> dict:
    """The snapshot's summary properties that tidelog writes (absent ones left out)."""
    summary = snapshot.summary
    if summary is None:
        return {}
    return {k: summary[k] for k in (SUMMARY_OFFSETS, SUMMARY_TOPIC, SUMMARY_SPEC) if summary[k] is not None}


# ------------------------------------------------------------------- schema
def _table_columns(topic, selection) -> list[str]:
    """The table's columns: the selected ones, partition columns included (an
    Iceberg table keeps them in its files), and ``date`` when derived."""
    out = [c for c in topic.schema.names if c in selection.columns or c in selection.partition_by]
    if selection.date_from is not None:
        out.append(DATE)
    return out


def _iceberg_field(schema: pa.Schema, name: str) -> pa.Field:
    """The Arrow field of a table column, in a type Iceberg stores: dictionaries
    decoded, small and unsigned integers widened, nanosecond timestamps as
    microseconds (Iceberg's v2 tables have no nanoseconds)."""
    if name not in schema.names:   # the derived date
        return pa.field(DATE, pa.date32())
    field = schema.field(name)
    return field.with_type(_iceberg_type(field.type))


def _iceberg_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _iceberg_type(t.value_type)
    if pa.types.is_integer(t):
        if t.bit_width < 32 or t in (pa.uint16(),):
            return pa.int32()
        if t == pa.uint32():
            return pa.int64()
        if t == pa.uint64():
            raise InvalidArgumentError("Iceberg has no unsigned 64-bit integers: leave the column out (columns=...)")
        return t
    if pa.types.is_timestamp(t) and t.unit in ("s", "ms", "ns"):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(t.value_field.with_type(_iceberg_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_iceberg_type(t.field(i).type)) for i in range(t.num_fields)])
    return t


# ------------------------------------------------------------------- append
def _chunks(topic, selection, columns_out: list[str], arrow_schema: pa.Schema, starts: dict, ends: dict,
            progress, max_rows: int | None):
    """The selected rows as tables of about CHUNK_BYTES (at most ``max_rows`` rows), in the table's schema."""
    read_columns = [c for c in topic.schema.names if c in set(selection.read_columns) | set(columns_out)]
    if read_columns == topic.schema.names:
        read_columns = None
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
    progress.start(sum(max(0, ends[p] - starts[p]) for p in ends))
    for p in sorted(ends):
        first, end = starts[p], ends[p]
        if first >= end:
            continue
        scan = topic.scan({p: first}, {p: end}, partitions=[p], columns=read_columns,
                          start_time=selection.start_time, end_time=selection.end_time)
        for batch in scan:
            progress.update(batch.num_rows, batch.nbytes)
            while batch.num_rows:
                take = batch if not max_rows else batch.slice(0, max_rows - pending_rows)
                batch = batch.slice(take.num_rows)
                pending.append(_conform(take, selection, columns_out, arrow_schema))
                pending_rows += take.num_rows
                pending_bytes += take.nbytes
                if pending_bytes >= CHUNK_BYTES or (max_rows and pending_rows >= max_rows):
                    yield pa.Table.from_batches(pending, schema=arrow_schema)
                    pending, pending_rows, pending_bytes = [], 0, 0
        progress.advance_to_partition_end(end - first)
    if pending:
        yield pa.Table.from_batches(pending, schema=arrow_schema)
    progress.finish()


def _conform(batch: pa.RecordBatch, selection, columns_out: list[str], arrow_schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field in arrow_schema:
        if field.name == DATE and selection.date_from is not None and field.name not in batch.schema.names:
            arrays.append(date_column(batch.column(selection.date_from)))
            continue
        column = batch.column(field.name)
        if column.type != field.type:
            if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
                import pyarrow.compute as pc

                column = pc.cast(column, field.type, safe=False)  # nanoseconds truncated to microseconds
            else:
                column = column.cast(field.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def _append(topic, table, selection, columns_out, arrow_schema, starts, ends, summary: dict, result: ExportResult,
            progress, max_rows: int | None) -> None:
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    sleep = float(os.environ.get(TEST_SLEEP_ENV) or 0)
    rows = 0
    file_numbers = itertools.count(0)   # one sequence for the run: data file names are <n>-<task>-<uuid>
    try:
        with table.transaction() as tx:
            with tx.update_snapshot(snapshot_properties=summary).fast_append() as append:
                for chunk in _chunks(topic, selection, columns_out, arrow_schema, starts, ends, progress, max_rows):
                    for data_file in _dataframe_to_data_files(table_metadata=tx.table_metadata, df=chunk,
                                                              io=table.io, write_uuid=append.commit_uuid,
                                                              counter=file_numbers):
                        append.append_data_file(data_file)
                        result.files.append(data_file.file_path)
                        result.bytes_written += data_file.file_size_in_bytes
                    rows += chunk.num_rows
                    result.bytes_read += chunk.nbytes
                    if sleep:
                        time.sleep(sleep)
                append.snapshot_properties = {**summary, SUMMARY_ROWS: str(rows)}
                kill_point("before-commit")
    except CommitFailedException as e:
        raise IntegrityError(f"another writer committed to table {result.path} while this export ran ({e}); "
                             "nothing of this run was committed: run it again") from e
    kill_point("after-commit")
    result.rows = rows
    snapshot = table.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot is not None else None
