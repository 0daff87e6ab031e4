"""What an export selects and how it writes, checked once up front: every
bad argument becomes an ``InvalidArgumentError`` (or ``UnknownTopicError``)
before anything is read or written."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import pyarrow as pa

from ..errors import InvalidArgumentError

#: Output formats of file exports, and the file name extension of each.
FILE_FORMATS = {"parquet": "parquet", "csv": "csv", "arrow": "arrow"}
PARQUET_COMPRESSIONS = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")
ARROW_COMPRESSIONS = ("zstd", "lz4", "none")
#: Rows per Parquet row group (and per Arrow IPC record batch): pyarrow's own default.
DEFAULT_ROW_GROUP_SIZE = 1 << 20
#: The hive value of a null partition key: what pyarrow, Spark and Hive write.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
#: ``partition_by="date"``: the UTC date of the topic's timestamp column.
DATE = "date"
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
NS_PER_DAY = 86_400 * 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Selection:
    """The rows and columns an export takes from a topic, and how it lays them out.

    ``columns``: the columns written to the files (partition columns are not:
    their values are in the folder names, as hive partitioning does);
    ``read_columns``: the columns the scan reads (also the partition columns
    and, for a derived date, the timestamp column). ``partition_by``: the hive
    keys in folder order; ``date_from``: the timestamp column a derived
    ``date`` key comes from (None when there is none)."""

    columns: tuple[str, ...]
    read_columns: tuple[str, ...]
    partition_by: tuple[str, ...]
    date_from: str | None
    start_time: int | None
    end_time: int | None

    def spec(self) -> dict:
        """What decides the content of an incremental export's files: a later
        run must select the same, or its files would not fit with the others."""
        return {"columns": list(self.columns), "partition_by": list(self.partition_by),
                "start_time": self.start_time, "end_time": self.end_time}


def to_ns(value: Any, name: str) -> int | None:
    """A time argument as int ns (None stays None): int ns, ISO-8601 text
    (naive = UTC), a string of digits (ns, as the command line passes them),
    datetime, date, numpy.datetime64 or pandas.Timestamp."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    from .._arrow import to_ns as core_to_ns

    try:
        return core_to_ns(value, name)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(str(e)) from None


def select(topic, columns: Any, partition_by: Any, start_time: Any, end_time: Any) -> Selection:
    schema = topic.schema
    names = schema.names
    if columns is not None:
        if isinstance(columns, str):
            columns = [columns]
        columns = list(columns)
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise InvalidArgumentError(f"unknown columns {unknown}: topic {topic.name!r} has {names}")
        if len(set(columns)) != len(columns):
            raise InvalidArgumentError(f"columns {columns} name a column twice")
    keys = _partition_keys(partition_by)
    date_from = None
    for key in keys:
        if key == DATE and key not in names:
            date_from = topic.config.timestamp
            if date_from is None:
                raise InvalidArgumentError(f"partition_by='date' takes the date of the topic's timestamp column, "
                                           f"and topic {topic.name!r} has none (created without timestamp=...)")
            continue
        if key not in names:
            raise InvalidArgumentError(f"unknown partition column {key!r}: topic {topic.name!r} has {names} "
                                       "(or 'date', the UTC date of its timestamp column)")
        _check_partition_type(key, schema.field(key).type)
    chosen = list(names) if columns is None else columns
    written = tuple(c for c in chosen if c not in keys)
    if not written:
        raise InvalidArgumentError(f"nothing to write: every selected column ({chosen}) is a partition column")
    read = [c for c in names if c in written or c in keys or c == date_from]
    t0, t1 = to_ns(start_time, "start_time"), to_ns(end_time, "end_time")
    if t0 is not None and t1 is not None and t1 < t0:
        raise InvalidArgumentError(f"end_time ({t1}) is before start_time ({t0})")
    return Selection(written, tuple(read), keys, date_from, t0, t1)


def _partition_keys(partition_by: Any) -> tuple[str, ...]:
    if partition_by is None:
        return ()
    if isinstance(partition_by, str):
        keys = (partition_by,)
    elif isinstance(partition_by, (list, tuple)) and all(isinstance(k, str) for k in partition_by):
        keys = tuple(partition_by)
    else:
        raise InvalidArgumentError(f"partition_by takes None, 'date', a column name or a tuple of them, "
                                   f"not {partition_by!r}")
    if not keys or len(set(keys)) != len(keys) or not all(keys):
        raise InvalidArgumentError(f"partition_by {partition_by!r}: give distinct, non-empty column names")
    return keys


def _check_partition_type(name: str, t: pa.DataType) -> None:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)
            or pa.types.is_date(t)):
        return
    raise InvalidArgumentError(f"cannot partition by column {name!r} of type {t}: folder names take integers, "
                               "strings, booleans and dates")


def date_column(column: pa.Array) -> pa.Array:
    """The UTC date (date32) of every value of a timestamp (any unit) or
    int64-nanoseconds column; nulls stay null."""
    import numpy as np

    t = column.type
    unit_ns = _UNIT_NS[t.unit] if pa.types.is_timestamp(t) else 1
    values = column.view(pa.int64()) if pa.types.is_timestamp(t) else column
    per_day = NS_PER_DAY // unit_ns
    nulls = values.null_count
    ints = (values.fill_null(0) if nulls else values).to_numpy(zero_copy_only=False)
    days = np.floor_divide(ints, per_day).astype(np.int32)
    return pa.array(days, pa.date32(), mask=np.asarray(values.is_null()) if nulls else None)


def check_compression(fmt: str, compression: Any, level: Any) -> tuple[str | None, int | None]:
    """(compression, level) for the writer of ``fmt``: None for "none"."""
    allowed = {"parquet": PARQUET_COMPRESSIONS, "arrow": ARROW_COMPRESSIONS, "csv": ("none",),
               "iceberg": PARQUET_COMPRESSIONS}[fmt]
    if compression is None:
        compression = "none"
    if not isinstance(compression, str) or compression.lower() not in allowed:
        raise InvalidArgumentError(f"compression {compression!r} for {fmt}: use one of {allowed}")
    compression = compression.lower()
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise InvalidArgumentError(f"compression_level must be an int, not {level!r}")
    return (None if compression == "none" else compression), level


def check_row_group_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 31:
        raise InvalidArgumentError(f"row_group_size must be an int in [1, 2**31], not {value!r}")
    return value


def check_format(fmt: Any) -> str:
    if fmt not in FILE_FORMATS:
        raise InvalidArgumentError(f"format {fmt!r}: file exports write one of {tuple(FILE_FORMATS)} "
                                   "(Iceberg tables: tidelog.export.export_iceberg)")
    return fmt


def check_csv_types(schema: pa.Schema, columns: tuple[str, ...]) -> None:
    nested = [c for c in columns if pa.types.is_nested(schema.field(c).type)]
    if nested:
        raise InvalidArgumentError(f"CSV holds no nested values, and columns {nested} are nested: "
                                   "leave them out (columns=...) or export to Parquet or Arrow")


def topic_identity(topic) -> dict:
    """What tells this topic from another: its name, partition count, a hash
    of its schema, and the inode of its folder (a topic deleted and created
    again under the same name gets a new folder, and offsets from 0 again)."""
    return {"name": topic.name, "partitions": topic.partitions,
            "schema_sha256": hashlib.sha256(topic.schema.serialize().to_pybytes()).hexdigest(),
            "folder_inode": os.stat(topic.directory).st_ino}


def identity_mismatch(stored: dict, current: dict) -> str | None:
    """Why ``stored`` (a checkpoint's topic identity) is not ``current``, or None."""
    for key, what in (("name", "topic"), ("partitions", "partition count"), ("schema_sha256", "schema"),
                      ("folder_inode", "topic folder (the topic was deleted and created again, or the log "
                                       "was copied)")):
        if stored.get(key) != current[key]:
            return f"its {what} differs ({stored.get(key)!r} there, {current[key]!r} now)"
    return None
