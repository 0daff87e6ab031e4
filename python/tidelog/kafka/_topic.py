"""``KafkaTopic``: describe, offsets, ``append`` (columnar topics) and
``read``/``scan`` into Arrow, as the local ``Topic``'s."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _arrow
from .._topic import RECORD_SCHEMA, AppendResult
from ..errors import InvalidArgumentError, SchemaMismatchError
from ._columnar import SCHEMA_HEADER
from ._errors import from_kafka, raise_from_kafka, timed_out
from ._records import payload_batch

#: A columnar record stays below Kafka's default message.max.bytes (1 MB).
MAX_RECORD_BYTES = 900_000


@dataclass
class KafkaTopicConfig:
    name: str
    partitions: int
    records: bool
    key: str | None
    timestamp: str | None


class KafkaTopic:
    def __init__(self, log, name: str, partitions: int, columnar: dict | None):
        self._log = log
        self.name = name
        self.partitions = partitions
        self._producer = None
        self._sticky = 0
        if columnar is None:
            self.schema = RECORD_SCHEMA
            self.config = KafkaTopicConfig(name, partitions, True, "key", "timestamp")
            self._schema_id = None
        else:
            self.schema = columnar["schema"]
            self.config = KafkaTopicConfig(name, partitions, False, columnar["key"], columnar["timestamp"])
            self._schema_id = columnar["schema_id"]

    def __repr__(self) -> str:
        kind = "records" if self.config.records else "columnar"
        return f"<tidelog.KafkaTopic {self.name!r} partitions={self.partitions} {kind}>"

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None

    # ------------------------------------------------------------ offsets
    def end_offsets(self) -> dict[int, int]:
        return {p: hi for p, (lo, hi) in self._log.watermarks(self.name).items()}

    def start_offsets(self) -> dict[int, int]:
        return {p: lo for p, (lo, hi) in self._log.watermarks(self.name).items()}

    def offset_for_time(self, partition: int, timestamp: Any) -> int:
        return self._log.offsets_for_time(self.name, [partition], _arrow.to_ns(timestamp))[partition]

    def describe(self) -> dict:
        marks = self._log.watermarks(self.name)
        parts = [{"partition": p, "start_offset": lo, "end_offset": hi} for p, (lo, hi) in sorted(marks.items())]
        return {"name": self.name, "partitions": parts, "records": sum(hi - lo for lo, hi in marks.values()),
                "config": self._log.topic_configs(self.name), "schema": str(self.schema),
                "columnar": not self.config.records}

    # ------------------------------------------------------------ appending
    def append(self, data: Any, *, partition: int | None = None, durable: bool | None = None) -> AppendResult:
        """Appends Arrow data to a columnar topic: rows go to their key's
        partition (murmur2, as the local log), one Kafka record per
        partition's rows (split below ~900 KB); returns when acknowledged
        (acks=all)."""
        if self.config.records:
            raise TypeError(f"topic {self.name!r} holds byte records: send them with log.producer()")
        batch = _as_batch(data, self.schema)
        if partition is not None:
            groups = {int(partition): batch}
        elif self.config.key is not None:
            parts = _arrow.key_partitions(batch.column(self.config.key), self.partitions)
            parts[parts < 0] = 0
            groups = {int(p): batch.take(pa.array(np.flatnonzero(parts == p))) for p in np.unique(parts)}
        else:
            groups = {self._sticky: batch}
            self._sticky = (self._sticky + 1) % self.partitions
        producer = self._append_producer()
        offsets: dict[int, list[int]] = {}
        errors: list = []

        def delivered(err, msg) -> None:
            if err is not None:
                errors.append(err)
            else:
                span = offsets.setdefault(msg.partition(), [msg.offset(), msg.offset()])
                span[0], span[1] = min(span[0], msg.offset()), max(span[1], msg.offset())

        headers = [self.schema_header]
        for p, rows in groups.items():
            for chunk in _chunks(rows):
                kwargs: dict = {"partition": p, "headers": headers, "on_delivery": delivered}
                value, ts = self.kafka_record(chunk)
                if ts is not None:
                    kwargs["timestamp"] = ts
                with raise_from_kafka(f"append to {self.name!r}"):
                    producer.produce(self.name, value, None, **kwargs)
        producer.flush(60)
        if errors:
            raise from_kafka(errors[0], f"append to {self.name!r}")
        return AppendResult({p: (lo, hi) for p, (lo, hi) in offsets.items()}, batch.num_rows)

    @property
    def schema_header(self) -> tuple[str, bytes]:
        """The header naming this columnar topic's schema, carried by each of its Kafka records."""
        return (SCHEMA_HEADER, self._schema_id.encode())

    def kafka_record(self, rows: pa.RecordBatch) -> tuple[Any, int | None]:
        """(value, timestamp ms or None) of the Kafka record holding ``rows``
        (rows of this topic's schema, at most ``MAX_RECORD_BYTES`` or one row)."""
        return rows.serialize(), self._timestamp_ms(rows)

    def _timestamp_ms(self, chunk: pa.RecordBatch) -> int | None:
        """The record's timestamp: the chunk's latest time (so Kafka's time index finds it for any of its rows)."""
        col = self.config.timestamp
        if col is None or chunk.num_rows == 0:
            return None
        unit = _arrow.timestamp_unit_ns(chunk.schema.field(col).type)
        r = _arrow.column_ns_range(chunk.column(col), unit)
        return None if r is None else r[1] // 1_000_000

    def _append_producer(self):
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer({**self._log.client_config, "acks": "all", "enable.idempotence": True,
                                       "linger.ms": 1, "message.max.bytes": 1_000_000})
        return self._producer

    # ------------------------------------------------------------ reading
    def scan(self, start_offset=None, end_offset=None, *, start_time=None, end_time=None, partitions=None,
             columns=None, filter=None, with_offsets: bool = False, on_corrupt: str = "raise"  # noqa: A002
             ) -> "KafkaScan":
        """A streaming read (as ``Topic.scan``): the end of each partition is
        fixed when the scan is made; rows come partition by partition."""
        return KafkaScan(self, start_offset, end_offset, start_time, end_time, partitions, columns, filter,
                         with_offsets)

    def read(self, start_offset=None, end_offset=None, *, start_time=None, end_time=None, partitions=None,
             columns=None, filter=None, with_offsets: bool = False, on_corrupt: str = "raise"  # noqa: A002
             ) -> pa.Table:
        return self.scan(start_offset, end_offset, start_time=start_time, end_time=end_time, partitions=partitions,
                         columns=columns, filter=filter, with_offsets=with_offsets).to_table()


def _as_batch(data: Any, schema: pa.Schema) -> pa.RecordBatch:
    if isinstance(data, dict):
        data = pa.RecordBatch.from_pydict({k: data[k] for k in schema.names} if set(data) == set(schema.names)
                                          else data)
    if isinstance(data, pa.Table):
        data = data.combine_chunks().to_batches()[0] if data.num_rows else pa.RecordBatch.from_pylist([], schema)
    if not isinstance(data, pa.RecordBatch):
        raise TypeError(f"append takes a pa.RecordBatch, pa.Table or dict of columns, not {type(data).__name__}")
    if data.schema.names != schema.names:
        raise SchemaMismatchError(f"columns {data.schema.names} do not match the topic's {schema.names}")
    try:
        return data.cast(schema) if not data.schema.equals(schema) else data
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaMismatchError(f"the data does not match the topic's schema: {e}") from None


def _chunks(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    size = batch.nbytes
    if size <= MAX_RECORD_BYTES or batch.num_rows <= 1:
        yield batch
        return
    per = max(1, int(batch.num_rows * MAX_RECORD_BYTES / size))
    for start in range(0, batch.num_rows, per):
        yield batch.slice(start, per)


def _partition_map(value: Any, default: dict[int, int], what: str) -> dict[int, int]:
    if value is None:
        return dict(default)
    if isinstance(value, dict):
        return {p: int(value.get(p, d)) for p, d in default.items()}
    return {p: _arrow.as_offset(value, what) for p in default}


class KafkaScan:
    """Batches of a Kafka topic's range (``to_table``, ``to_reader``, ``__arrow_c_stream__``)."""

    def __init__(self, topic: KafkaTopic, start_offset, end_offset, start_time, end_time, partitions, columns,
                 filter_, with_offsets: bool):
        self.topic = topic
        log = topic._log
        if partitions is None:
            parts = list(range(topic.partitions))
        elif isinstance(partitions, int):
            parts = [partitions]
        else:
            parts = sorted(int(p) for p in partitions)
        marks = {p: v for p, v in log.watermarks(topic.name).items() if p in parts}
        starts = _partition_map(start_offset, {p: lo for p, (lo, hi) in marks.items()}, "start_offset")
        ends = _partition_map(end_offset, {p: hi for p, (lo, hi) in marks.items()}, "end_offset")
        self._start_ns = None if start_time is None else _arrow.to_ns(start_time)
        self._end_ns = None if end_time is None else _arrow.to_ns(end_time)
        if self._start_ns is not None:
            by_time = log.offsets_for_time(topic.name, parts, self._start_ns)
            starts = {p: max(starts[p], by_time[p]) for p in parts}
        self._ranges = [(p, max(starts[p], marks[p][0]), min(ends[p], marks[p][1])) for p in parts]
        for name in columns or ():
            if name not in topic.schema.names:
                raise InvalidArgumentError(f"column {name!r} is not in topic {topic.name!r} "
                                           f"({', '.join(topic.schema.names)})")
        self._columns = list(columns) if columns is not None else list(topic.schema.names)
        self._filter = filter_
        self._with_offsets = with_offsets
        fields = [topic.schema.field(c) for c in self._columns]
        if with_offsets:
            fields += [pa.field("_partition", pa.int32()), pa.field("_offset", pa.int64())]
        self.schema = pa.schema(fields)

    def _time_column(self) -> str | None:
        return "timestamp" if self.topic.config.records else self.topic.config.timestamp

    def _shape(self, data: pa.RecordBatch, partition: int, offsets: np.ndarray) -> pa.RecordBatch | None:
        mask = None
        col = self._time_column()
        if col is not None and (self._start_ns is not None or self._end_ns is not None):
            ts = data.column(col)
            unit = _arrow.timestamp_unit_ns(ts.type)
            ns = pc.multiply(ts.cast(pa.int64()), unit)
            if self._start_ns is not None:
                mask = pc.greater_equal(ns, self._start_ns)
            if self._end_ns is not None:
                upper = pc.less(ns, self._end_ns)
                mask = upper if mask is None else pc.and_(mask, upper)
        table = pa.Table.from_batches([data])
        if self._with_offsets:
            table = table.append_column("_partition", pa.array(np.full(data.num_rows, partition, dtype=np.int32)))
            table = table.append_column("_offset", pa.array(offsets))
        if mask is not None:
            table = table.filter(mask)
        if self._filter is not None:
            table = table.filter(self._filter)  # (over every column, asked for or not, as the local scan)
        table = table.select(self.schema.names)
        if not table.num_rows:
            return None
        return table.combine_chunks().to_batches()[0].cast(self.schema) if table.num_rows else None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as KTP

        log = self.topic._log
        registry = log.schemas
        c = Consumer({**log.client_config, "group.id": f"tidelog-scan-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "fetch.queue.backoff.ms": 1, "fetch.wait.max.ms": 10})
        try:
            for p, lo, hi in self._ranges:
                if lo >= hi:
                    continue
                c.assign([KTP(self.topic.name, p, lo)])
                pos = lo
                idle_since = time.monotonic()
                while pos < hi:
                    msgs = [m for m in c.consume(10_000, 1.0)
                            if m.error() is None and m.partition() == p and pos <= m.offset() < hi]
                    if not msgs:
                        if time.monotonic() - idle_since > 60:
                            raise from_kafka(timed_out(), f"scan of {self.topic.name}[{p}] stalled at {pos}")
                        continue
                    idle_since = time.monotonic()
                    pos = msgs[-1].offset() + 1
                    data, offsets = payload_batch(registry, self.topic.name, msgs)
                    out = self._shape(data, p, offsets)
                    if out is not None:
                        yield out
        finally:
            c.close()

    def to_reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, iter(self))

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(list(self), schema=self.schema)

    def to_pandas(self, **kwargs):
        return self.to_table().to_pandas(**kwargs)

    def __arrow_c_stream__(self, requested_schema=None):
        return self.to_reader().__arrow_c_stream__(requested_schema)

