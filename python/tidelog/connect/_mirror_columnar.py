"""The mirror's columnar (Arrow) topics: partition to partition, in source
order, between log folders and Kafka clusters (tidelog.connect.mirror).

A columnar row has no headers, so the dedupe key is kept per *batch*:

- **Into Kafka**, each record the mirror writes holds rows of consecutive
  source offsets of one source partition and carries
  ``tidelog.mirror.offset = "<source partition>:<first>-<last>"`` (inclusive;
  a Kafka source's rows share their record's offset, and a record is never
  split, so a range always covers whole source records). A restart collects
  the ranges found past the checkpoint and drops the source rows inside them:
  at least once (the idempotent producer adds no duplicate of its own).
- **Into a log folder**, destination partition p is written only from source
  partition p, in source order, so the rows past the checkpoint's end offset
  of p are exactly the next rows of source partition p after the
  checkpoint's position: a restart skips that many source rows, and checks
  that they are equal, row for row, to what the destination holds (anything
  else, such as another writer's rows, is an ``IntegrityError`` before a row
  is written). Exactly once, even across an append cut short by the crash.
"""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from .._types import OFFSET_BEGINNING, TopicPartition
from ..errors import IntegrityError, SchemaMismatchError, TidelogError

DEDUPE_HEADER = "tidelog.mirror.offset"
#: Rows a poll_batch takes (a Kafka source: records, each a batch).
BATCH_RECORDS = 10_000


def topic_shape(topic) -> dict:
    """What a columnar topic's copy must share: schema, key and timestamp columns, partitions."""
    return {"schema": topic.schema, "key": topic.config.key, "timestamp": topic.config.timestamp,
            "partitions": topic.partitions}


def prepare_topic(src_topic, dst, dst_topics: set[str]):
    """The destination of a columnar source topic: created with its settings
    when missing; SchemaMismatchError (nothing written) when it differs."""
    name = src_topic.name
    shape = topic_shape(src_topic)
    if name not in dst_topics:
        dst.create_topic(name, shape["schema"], partitions=shape["partitions"], key=shape["key"],
                         timestamp=shape["timestamp"])
    dtopic = dst.topic(name)
    if dtopic.config.records:
        raise SchemaMismatchError(f"mirror: topic {name!r} is columnar in the source and holds byte records in "
                                  f"the destination; nothing was written")
    there = topic_shape(dtopic)
    differ = [what for what in ("key", "timestamp", "partitions") if there[what] != shape[what]]
    if not there["schema"].equals(shape["schema"]):
        differ.insert(0, "schema")
    if differ:
        detail = "; ".join(f"{w}: source {shape[w]!s:.200} / destination {there[w]!s:.200}" for w in differ)
        raise SchemaMismatchError(f"mirror: the destination topic {name!r} differs from the source's "
                                  f"({detail}); a columnar topic is copied partition to partition with the same "
                                  f"settings: nothing was written")
    return dtopic


def parse_dedupe(value: bytes) -> tuple[int, int, int]:
    """(source partition, first, last) of a ``tidelog.mirror.offset`` value ("p:o" or "p:first-last")."""
    part, _, span = value.decode().partition(":")
    first, _, last = span.partition("-")
    return int(part), int(first), int(last or first)


def _spans(offsets: np.ndarray, nbytes: int) -> list[tuple[int, int]]:
    """[start, end) row ranges of at most ~MAX_RECORD_BYTES each, never
    splitting rows that share a source offset (one Kafka source record)."""
    from ..kafka._topic import MAX_RECORD_BYTES  # (the limit of a columnar append's records too)

    n = len(offsets)
    per = n if nbytes <= MAX_RECORD_BYTES else max(1, int(n * MAX_RECORD_BYTES / nbytes))
    out, i = [], 0
    while i < n:
        j = min(n, i + per)
        while j < n and offsets[j] == offsets[j - 1]:
            j += 1
        out.append((i, j))
        i = j
    return out


class _Tail:
    """The destination rows of one partition past the checkpoint, read in
    order, to compare with the source rows a restart skips."""

    def __init__(self, dtopic, partition: int, start: int, end: int):
        self.left = end - start
        self._batches = iter(dtopic.scan(start_offset=start, end_offset=end, partitions=[partition]))
        self._buffer: pa.Table | None = None

    def take(self, n: int) -> pa.Table:
        parts = [] if self._buffer is None else [self._buffer]
        have = 0 if self._buffer is None else self._buffer.num_rows
        while have < n:
            batch = next(self._batches)
            parts.append(pa.Table.from_batches([batch]))
            have += batch.num_rows
        table = pa.concat_tables(parts)
        self._buffer = table.slice(n)
        self.left -= n
        return table.slice(0, n)


class ColumnarCopier:
    """Copies the columnar ``topics`` from ``src`` to ``dst`` (each a ``Log`` or a ``KafkaLog``)."""

    def __init__(self, src, dst, dst_is_kafka: bool, topics: dict[str, object], producer, stats):
        self.src, self.dst, self.dst_is_kafka = src, dst, dst_is_kafka
        self.dtopics = topics                 # name -> destination topic
        self.producer = producer              # the mirror's KafkaProducer (Kafka destination)
        self.stats = stats
        self.positions: dict[tuple[str, int], int] = {}
        self._skip: dict[tuple[str, int], _Tail] = {}            # log folder: rows already there
        self._seen: dict[tuple[str, int], list[tuple[int, int]]] = {}  # Kafka: source ranges already there
        self._since: dict[tuple[str, int], int] = {}  # destination offsets the restart read its tail from
        self._failed: list = []
        self._consumer = None
        self._schemas = {name: src.topic(name).schema for name in topics}

    # ------------------------------------------------------------ resuming
    def resume(self, state: dict | None, key_of) -> None:
        """Reads what the destination holds past the checkpoint, then places the source consumer."""
        dst_ends = (state or {}).get("dst_ends", {})
        for name, dtopic in self.dtopics.items():
            starts, ends = dtopic.start_offsets(), dtopic.end_offsets()
            for p, end in ends.items():
                since = min(dst_ends.get(key_of(name, p), starts[p]), end)
                if since >= end:
                    continue
                self._since[(name, p)] = since
                if self.dst_is_kafka:
                    for key, ranges in self._kafka_ranges(name, p, since, end).items():
                        self._seen.setdefault(key, []).extend(ranges)
                else:
                    self._skip[(name, p)] = _Tail(dtopic, p, since, end)
        saved = (state or {}).get("positions", {})
        consumer = self._consumer = self.src.consumer()
        pairs = [(t, p) for t in self.dtopics for p in range(self.dtopics[t].partitions)]
        consumer.assign(pairs)
        for t, p in pairs:
            if key_of(t, p) in saved:
                consumer.seek(t, p, saved[key_of(t, p)])
            else:
                consumer.seek(TopicPartition(t, p, OFFSET_BEGINNING))
            self.positions[(t, p)] = consumer.position(t, p)

    def _kafka_ranges(self, name: str, partition: int, start: int, end: int) -> dict:
        """{(topic, source partition): [(first, last), ...]} of the destination records in [start, end)."""
        import uuid

        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as KTP

        found: dict[tuple[str, int], list[tuple[int, int]]] = {}
        c = Consumer({**self.dst.client_config, "group.id": f"tidelog-mirror-{uuid.uuid4().hex}",
                      "enable.auto.commit": False})
        try:
            c.assign([KTP(name, partition, start)])
            pos, deadline = start, time.monotonic() + 120
            while pos < end:
                if time.monotonic() > deadline:
                    raise TidelogError(f"mirror: reading the destination's tail timed out at {name}[{partition}]")
                for m in c.consume(1000, 1.0):
                    if m.error() is not None or m.offset() >= end:
                        continue
                    pos = m.offset() + 1
                    for hk, hv in m.headers() or ():
                        if hk == DEDUPE_HEADER:
                            sp, first, last = parse_dedupe(hv)
                            found.setdefault((name, sp), []).append((first, last))
        finally:
            c.close()
        return found

    # ------------------------------------------------------------ copying
    def step(self, timeout: float) -> None:
        """Copies one source batch (the rows of one partition), if one comes within ``timeout``."""
        got = self._consumer.poll_batch(BATCH_RECORDS, timeout)
        if got is None or got.num_rows == 0:
            return
        name = got.column(0)[0].as_py()
        partition = got.column(1)[0].as_py()
        offsets = got.column(2).to_numpy()
        key = (name, partition)
        self.positions[key] = int(offsets[-1]) + 1
        rows = pa.RecordBatch.from_arrays(got.columns[3:], schema=self._schemas[name])
        rows, offsets = self._unseen(key, rows, offsets)
        if rows.num_rows:
            self._write(name, partition, rows, offsets)
            self.stats.records += rows.num_rows
            self.stats.per_topic[name] = self.stats.per_topic.get(name, 0) + rows.num_rows

    def _unseen(self, key, rows: pa.RecordBatch, offsets: np.ndarray) -> tuple[pa.RecordBatch, np.ndarray]:
        """The rows not yet in the destination (a restart's first batches lose some)."""
        tail = self._skip.get(key)
        if tail is not None:
            n = min(tail.left, rows.num_rows)
            there = tail.take(n)
            if not there.equals(pa.Table.from_batches([rows.slice(0, n)]).cast(there.schema)):
                raise IntegrityError(
                    f"mirror: {key[0]}[{key[1]}] in the destination holds rows past the checkpoint that are not the "
                    f"source's next rows (another writer?); exactly once cannot be kept: nothing more was written")
            if not tail.left:
                del self._skip[key]
            self.stats.skipped_duplicates += n
            return rows.slice(n), offsets[n:]
        ranges = self._seen.get(key)
        if ranges:
            inside = np.zeros(len(offsets), dtype=bool)
            for first, last in ranges:
                inside |= (offsets >= first) & (offsets <= last)
            if inside.any():
                self.stats.skipped_duplicates += int(inside.sum())
                keep = np.flatnonzero(~inside)
                return rows.take(pa.array(keep)), offsets[keep]
        return rows, offsets

    def _write(self, name: str, partition: int, rows: pa.RecordBatch, offsets: np.ndarray) -> None:
        dtopic = self.dtopics[name]
        if not self.dst_is_kafka:
            dtopic.append(rows, partition=partition, durable=False)  # (durable at the checkpoint's flush)
            return
        for i, j in _spans(offsets, rows.nbytes):
            chunk = rows.slice(i, j - i)
            value, ts = dtopic.kafka_record(chunk)
            headers = [dtopic.schema_header,
                       (DEDUPE_HEADER, f"{partition}:{int(offsets[i])}-{int(offsets[j - 1])}".encode())]
            kwargs = {"partition": partition, "headers": headers, "on_delivery": self._delivered}
            if ts is not None:
                kwargs["timestamp"] = ts
            self.producer.produce_raw(name, value, None, **kwargs)

    def checkpoint_ends(self, dst_ends: dict[tuple[str, int], int]) -> None:
        """Moves the destination end offsets a checkpoint names back to where
        the source positions it names are: a partition whose rows already there
        have not all been met again yet (its source was not read that far) keeps
        the offset its tail was read from, less what was met (a log folder)."""
        for key, tail in self._skip.items():
            dst_ends[key] -= tail.left
        for key, ranges in list(self._seen.items()):
            if any(last >= self.positions[key] for _, last in ranges):
                dst_ends[key] = self._since[key]
            else:
                del self._seen[key]  # every range lies behind the position: none can match again

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self._failed.append(err)

    def flush(self) -> None:
        """Makes every row copied so far durable in the destination (before a checkpoint names it)."""
        if self.dst_is_kafka:
            self.producer.flush()
            if self._failed:
                from ..kafka._errors import from_kafka

                raise from_kafka(self._failed[0], f"mirror: {len(self._failed)} records were not delivered")
        else:
            for dtopic in self.dtopics.values():
                dtopic.flush()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
