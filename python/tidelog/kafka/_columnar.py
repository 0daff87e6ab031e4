"""Columnar topics on Kafka: one Arrow IPC record-batch message per Kafka
record, its schema named by the ``tidelog.schema`` header and kept in the
compacted topic ``_tidelog_schemas``.

The schema topic's records (one partition, compacted):

- key ``schema:<id>``: value = the schema as an Arrow IPC schema message
  (``pyarrow.Schema.serialize()``); ``<id>`` = the first 16 hex digits of the
  SHA-256 of those bytes.
- key ``topic:<name>``: value = JSON ``{"schema_id": ..., "key": column or
  null, "timestamp": column or null}``; a tombstone when the topic is deleted.

A data record's value is ``pyarrow.RecordBatch.serialize()`` (an encapsulated
IPC record-batch message): ``pyarrow.ipc.read_record_batch(value, schema)``
decodes it (docs/kafka.md shows a whole consumer without tidelog)."""
from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

import pyarrow as pa

from ..errors import SchemaMismatchError, TidelogError
from ._errors import raise_from_kafka

SCHEMA_TOPIC = "_tidelog_schemas"
SCHEMA_HEADER = "tidelog.schema"


def schema_id(schema: pa.Schema) -> str:
    return hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()[:16]


class SchemaRegistry:
    """This connection's view of the schema topic: read whole on refresh
    (it holds one record per schema and per columnar topic)."""

    def __init__(self, log):
        self._log = log
        self._lock = threading.Lock()
        self._schemas: dict[str, pa.Schema] = {}
        self._topics: dict[str, dict] = {}
        #: The columnar topics' names (the consumer's per-record check: empty, it costs one truth test).
        self.columnar: dict[str, dict] = self._topics
        self._loaded = False

    # ------------------------------------------------------------ reading
    def refresh(self) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as KTP

        with self._lock:
            if SCHEMA_TOPIC not in self._log.metadata().topics:
                self._loaded = True
                return
            c = Consumer({**self._log.client_config, "group.id": f"tidelog-schemas-{uuid.uuid4().hex}",
                          "enable.auto.commit": False, "fetch.queue.backoff.ms": 1, "fetch.wait.max.ms": 10})
            try:
                with raise_from_kafka("reading the schema topic"):
                    lo, hi = c.get_watermark_offsets(KTP(SCHEMA_TOPIC, 0), timeout=30, cached=False)
                    topics: dict[str, dict] = {}
                    if hi > lo:
                        c.assign([KTP(SCHEMA_TOPIC, 0, lo)])
                        pos = lo
                        while pos < hi:
                            for m in c.consume(1000, 1.0):
                                if m.error() is not None:
                                    continue
                                pos = m.offset() + 1
                                self._apply(m.key().decode(), m.value(), topics)
                    self._topics = self.columnar = topics
            finally:
                c.close()
            self._loaded = True

    def _apply(self, key: str, value: bytes | None, topics: dict) -> None:
        kind, _, name = key.partition(":")
        if kind == "schema" and value is not None:
            self._schemas[name] = pa.ipc.read_schema(pa.py_buffer(value))
        elif kind == "topic":
            if value is None:
                topics.pop(name, None)
            else:
                topics[name] = json.loads(value)

    def _ensure(self) -> None:
        if not self._loaded:
            self.refresh()

    def known_topics(self) -> set[str]:
        self._ensure()
        return set(self._topics)

    def is_columnar(self, topic: str) -> bool:
        return topic in self._topics

    def topic_schema(self, topic: str) -> dict | None:
        """{"schema": pa.Schema, "key": ..., "timestamp": ...} of a columnar topic, None for a byte topic."""
        self.refresh()
        entry = self._topics.get(topic)
        if entry is None:
            return None
        return {"schema": self.schema(entry["schema_id"]), "key": entry.get("key"),
                "timestamp": entry.get("timestamp"), "schema_id": entry["schema_id"]}

    def schema(self, sid: str) -> pa.Schema:
        if sid not in self._schemas:
            self.refresh()
        try:
            return self._schemas[sid]
        except KeyError:
            raise SchemaMismatchError(f"schema {sid} is not in {SCHEMA_TOPIC!r}") from None

    # ------------------------------------------------------------ writing
    def _write(self, items: list[tuple[str, bytes | None]]) -> None:
        from confluent_kafka import Producer

        self._ensure_topic()
        p = Producer({**self._log.client_config, "acks": "all", "enable.idempotence": True})
        errors: list = []
        for key, value in items:
            p.produce(SCHEMA_TOPIC, value, key.encode(), on_delivery=lambda err, msg: errors.append(err) if err else None)
        left = p.flush(30)
        if left or errors:
            raise TidelogError(f"writing the schema topic failed: {errors[0] if errors else 'timed out'}")

    def _ensure_topic(self) -> None:
        from confluent_kafka.admin import NewTopic

        if SCHEMA_TOPIC in self._log.metadata().topics:
            return
        fut = self._log._admin.create_topics([NewTopic(SCHEMA_TOPIC, 1, -1, config={"cleanup.policy": "compact"})])
        try:
            fut[SCHEMA_TOPIC].result(60)
        except Exception as e:  # noqa: BLE001 - another client created it meanwhile
            if "TOPIC_ALREADY_EXISTS" not in str(e) and "already exists" not in str(e):
                raise
        self._log._wait_for_leaders(SCHEMA_TOPIC)

    def register_topic(self, topic: str, schema: pa.Schema, key: str | None, timestamp: str | None) -> None:
        sid = schema_id(schema)
        entry = json.dumps({"schema_id": sid, "key": key, "timestamp": timestamp}).encode()
        self._write([(f"schema:{sid}", schema.serialize().to_pybytes()), (f"topic:{topic}", entry)])
        with self._lock:
            self._schemas[sid] = schema
            self._topics[topic] = json.loads(entry)
            self.columnar = self._topics

    def forget_topic(self, topic: str) -> None:
        if topic in self._topics:
            self._write([(f"topic:{topic}", None)])
            with self._lock:
                self._topics.pop(topic, None)


def decode(value: bytes, headers: Any, registry: SchemaRegistry) -> pa.RecordBatch:
    """The Arrow batch one columnar Kafka record holds."""
    sid = None
    for k, v in headers or ():
        if k == SCHEMA_HEADER:
            sid = v.decode()
    if sid is None:
        raise SchemaMismatchError(f"a columnar record without the {SCHEMA_HEADER!r} header")
    return pa.ipc.read_record_batch(pa.py_buffer(value), registry.schema(sid))

