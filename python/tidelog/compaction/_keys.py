"""Key hashes and tombstones of a record batch, as the cleaner sees them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import _core
from ..errors import SchemaMismatchError

HASH_BYTES = 16


def key_hashes(column: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """(hashes, null_keys): the 128-bit hash of every row's key (uint8[n, 16]),
    and a uint8 mask of the rows whose key is null (None when none is): the
    cleaner never removes those (Kafka refuses them in compacted topics)."""
    n = len(column)
    out = np.empty((n, HASH_BYTES), dtype=np.uint8)
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = column.type
    if n == 0:
        return out, None
    if pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t):
        width = t.bit_width // 8
        data = column.buffers()[1]
        start = column.offset * width
        _core.hash_fixed_width_keys(memoryview(data)[start: start + n * width], n, width, out)
    elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        osize = 8 if large else 4
        offsets, data = column.buffers()[1], column.buffers()[2]
        view = memoryview(offsets)[column.offset * osize: (column.offset + n + 1) * osize]
        _core.hash_binary_keys(view, data if data is not None else b"", n, large, out)
    else:
        raise SchemaMismatchError(f"cannot compact by a key column of type {t}")
    nulls = None
    if column.null_count:
        nulls = np.asarray(column.is_null(), dtype=np.uint8)
    return out, nulls


def tombstones(batch: pa.RecordBatch, key_index: int, timestamp_index: int, records: bool) -> np.ndarray | None:
    """A bool mask of the rows that are tombstones, or None when none is.

    Byte records: a null ``value`` (Kafka's). Columnar topics: every column
    other than the key and the timestamp column is null."""
    if records:
        value = batch.column(batch.schema.get_field_index("value"))
        if not value.null_count:
            return None
        return np.asarray(value.is_null(), dtype=bool)
    others = [i for i in range(batch.num_columns) if i not in (key_index, timestamp_index)]
    if not others:
        return None
    mask = None
    for i in others:
        col = batch.column(i)
        if not col.null_count:
            return None  # one column without nulls: no row of the batch is a tombstone
        nulls = np.asarray(col.is_null(), dtype=bool)
        mask = nulls if mask is None else (mask & nulls)
        if not mask.any():
            return None
    return mask


def tombstone_batch(schema: pa.Schema, key_name: str, keys: pa.Array, timestamp_name: str | None,
                    timestamp_ns: int) -> pa.RecordBatch:
    """Rows that delete ``keys`` from a columnar compacted topic: the key, the
    timestamp (now) and nulls everywhere else. SchemaMismatchError when a
    column that must be null is not nullable."""
    n = len(keys)
    if len(schema) <= 1 + (timestamp_name is not None):
        raise SchemaMismatchError("this topic has no column besides its key and timestamp, so no row of it "
                                  "can be a tombstone (a row whose every other column is null)")
    columns = []
    for field in schema:
        if field.name == key_name:
            columns.append(keys.cast(field.type) if keys.type != field.type else keys)
        elif field.name == timestamp_name:
            t = field.type
            if pa.types.is_timestamp(t):
                unit_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[t.unit]
                columns.append(pa.array(np.full(n, timestamp_ns // unit_ns, dtype=np.int64)).cast(t))
            else:
                columns.append(pa.array(np.full(n, timestamp_ns, dtype=np.int64), type=t))
        else:
            if not field.nullable:
                raise SchemaMismatchError(
                    f"column {field.name!r} is not nullable, so this topic cannot hold tombstones (a "
                    "tombstone is a row whose every column but the key and the timestamp is null)")
            columns.append(pa.nulls(n, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)



__all__ = ["HASH_BYTES", "key_hashes", "tombstones", "tombstone_batch"]
