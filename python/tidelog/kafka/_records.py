"""Kafka messages -> Arrow: the record schema's columns for byte topics, the
decoded batches for columnar ones, with topic/partition/offset columns."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .._topic import RECORD_SCHEMA
from ._columnar import decode

_TS = RECORD_SCHEMA.field("timestamp").type
_HEADERS = RECORD_SCHEMA.field("headers").type


def _place_columns(topic: str, partition: int, offsets: np.ndarray) -> list[pa.Array]:
    n = len(offsets)
    return [pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([topic])),
            pa.array(np.full(n, partition, dtype=np.int32)), pa.array(offsets)]


def payload_batch(registry, topic: str, msgs: list) -> tuple[pa.RecordBatch, np.ndarray]:
    """(the payload rows of ``msgs``, each row's Kafka offset)."""
    if registry.is_columnar(topic):
        batches = [decode(m.value(), m.headers(), registry) for m in msgs]
        counts = [b.num_rows for b in batches]
        offsets = np.repeat(np.fromiter((m.offset() for m in msgs), np.int64, len(msgs)), counts)
        data = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
        return data, offsets
    n = len(msgs)
    offsets = np.array([m.offset() for m in msgs], dtype=np.int64)
    ts = pa.array(np.array([m.timestamp()[1] for m in msgs], dtype=np.int64) * 1_000_000).cast(_TS)
    keys = pa.array([m.key() for m in msgs], pa.binary())
    values = pa.array([m.value() for m in msgs], pa.binary())
    found = [m.headers() for m in msgs]
    if any(found):
        headers = pa.array([[{"key": k, "value": v} for k, v in h or ()] for h in found], _HEADERS)
    else:  # no headers at all (the common case): empty lists, built without a Python object per record
        headers = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                           pa.array([], _HEADERS.value_type))
    return pa.RecordBatch.from_arrays([ts, keys, values, headers], schema=RECORD_SCHEMA), offsets


def records_batch(registry, topic: str, partition: int, msgs: list) -> pa.RecordBatch:
    """What ``poll_batch`` returns: topic, partition, offset, then the payload columns."""
    data, offsets = payload_batch(registry, topic, msgs)
    return pa.RecordBatch.from_arrays([*_place_columns(topic, partition, offsets), *data.columns],
                                      names=["topic", "partition", "offset", *data.schema.names])
