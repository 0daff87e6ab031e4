"""``Topic.table()``: the current value per key of a topic, as a pa.Table."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _keys


def table(topic, columns: list[str] | None = None) -> pa.Table:
    """The latest row of every key (a KTable's view of the topic), tombstoned
    keys and null keys left out; rows in partition order, then offset order of
    each key's latest row. A key is expected in one partition (keyed appends
    put it there); if appends with an explicit partition put it in several,
    the row of the highest partition wins."""
    config = topic.config
    if config.key is None:
        raise ValueError(f"topic {topic.name!r} has no key column: table() keeps the latest row per key")
    names = topic.schema.names
    if columns is not None:
        columns = list(columns)
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise KeyError(f"topic {topic.name!r} has no column {unknown[0]!r}; its columns: {names}")
    data = topic.read()
    if data.num_rows == 0:
        return data.select(columns) if columns is not None else data
    data = data.combine_chunks()
    key = data.column(config.key)
    # The last occurrence of every key: group by key, the largest row number.
    order = pa.array(np.arange(data.num_rows, dtype=np.int64))
    grouped = pa.table({"k": key, "i": order}).group_by("k", use_threads=False).aggregate([("i", "max")])
    if key.null_count:
        grouped = grouped.filter(pc.is_valid(grouped.column("k")))
    latest = np.sort(np.asarray(grouped.column("i_max"), dtype=np.int64))
    out = data.take(pa.array(latest))
    stones = None
    for batch in out.to_batches():
        m = _keys.tombstones(batch, topic._key_index, topic._ts_index, config.records)
        part = np.zeros(batch.num_rows, dtype=bool) if m is None else m
        stones = part if stones is None else np.concatenate([stones, part])
    if stones is not None and stones.any():
        out = out.filter(pa.array(~stones))
    return out.select(columns) if columns is not None else out
