"""Kafka messages -> Arrow: the record schema's columns for byte topics, the
decoded batches for columnar ones, with topic/partition/offset columns."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .._topic import RECORD_SCHEMA
from ._columnar import decode
from ._fastpath import byte_columns

_TS = RECORD_SCHEMA.field("timestamp").type
_HEADERS = RECORD_SCHEMA.field("headers").type


_NO_HEADER_ITEMS = pa.array([], _HEADERS.value_type)


def _int_array(values: np.ndarray) -> pa.Array:
    """An int32/int64 ndarray as an Arrow array over the same memory (pa.array
    takes a detour through its pandas check that costs more than the rows)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _place_columns(topic: str, partition: int, offsets: np.ndarray) -> list[pa.Array]:
    n = len(offsets)
    return [pa.DictionaryArray.from_arrays(_int_array(np.zeros(n, dtype=np.int32)), pa.array([topic])),
            _int_array(np.full(n, partition, dtype=np.int32)), _int_array(offsets)]


def payload_batch(registry, topic: str, msgs: list) -> tuple[pa.RecordBatch, np.ndarray]:
    """(the payload rows of ``msgs``, each row's Kafka offset)."""
    if registry.is_columnar(topic):
        batches = [decode(m.value(), m.headers(), registry) for m in msgs]
        counts = [b.num_rows for b in batches]
        offsets = np.repeat(np.fromiter((m.offset() for m in msgs), np.int64, len(msgs)), counts)
        data = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
        return data, offsets
    n = len(msgs)
    offsets, stamps, keys, values, found = byte_columns(msgs)
    ts = pa.Array.from_buffers(_TS, n, [None, pa.py_buffer(stamps)])
    if found is not None:
        headers = pa.array([[{"key": k, "value": v} for k, v in h or ()] for h in found], _HEADERS)
    else:  # no headers at all (the common case): empty lists, built without a Python object per record
        headers = pa.ListArray.from_arrays(_int_array(np.zeros(n + 1, dtype=np.int32)), _NO_HEADER_ITEMS)
    return pa.RecordBatch.from_arrays([ts, keys, values, headers], schema=RECORD_SCHEMA), offsets


def records_batch(registry, topic: str, partition: int, msgs: list) -> pa.RecordBatch:
    """What ``poll_batch`` returns: topic, partition, offset, then the payload columns."""
    data, offsets = payload_batch(registry, topic, msgs)
    return pa.RecordBatch.from_arrays([*_place_columns(topic, partition, offsets), *data.columns],
                                      names=["topic", "partition", "offset", *data.schema.names])
