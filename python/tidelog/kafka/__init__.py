"""tidelog's API on a real Apache Kafka cluster: ``tidelog.connect("kafka://...")``.

Contract:

- ``connect(url, **config)`` returns a ``KafkaLog``: the local ``Log``'s API for
  topics (``create_topic``/``topic``/``topics``/``delete_topic``, through Kafka's
  admin API), ``producer()``, ``consumer()`` (with ``group=``), the group
  admin calls and ``topic.read``/``topic.scan``/``topic.append`` into and out of
  Arrow. ``url`` is ``kafka://host:port[,host:port...][?property=value&...]``;
  the query's librdkafka properties (``client.id``, ``security.protocol``, ...)
  go to every client it makes.
- Semantics follow the local backend and Kafka's, which agree by design
  (murmur2 partitioning, offsets, committed offset = next record to read,
  rebalance callbacks ``fn(consumer, partitions)``). Where Kafka differs by
  nature it is documented in docs/kafka.md ("Two backends") and marked in
  tests/conformance: durability is ``acks=all`` plus replication (not an
  fdatasync), timestamps are whole milliseconds, rebalances take the broker's
  time, and a columnar record holds a whole Arrow batch (its rows share one
  offset).
- Byte topics map one tidelog record to one Kafka record. Columnar topics hold
  one Arrow IPC record-batch message per Kafka record, with the schema's id in
  the ``tidelog.schema`` header and the schema itself in the compacted topic
  ``_tidelog_schemas`` (see ``_columnar.py`` and docs/kafka.md, "Columnar
  topics on Kafka", for decoding them without tidelog).
- Errors are tidelog's (``tidelog.errors``), mapped from librdkafka's codes in
  ``_errors.py``; the Kafka error name is kept in ``kafka_code``. librdkafka's
  own log lines go to Python's ``logging``, logger ``tidelog.kafka``
  (``_log.KAFKA_LOGGER``), never straight to stderr.

Arrows point down: this package uses tidelog's public types and errors and the
shared Arrow helpers (``tidelog._arrow``), and confluent-kafka (librdkafka) from
PyPI (``pip install tidelog[kafka]``), imported on first use.
"""
from __future__ import annotations

from ._consumer import KafkaConsumer
from ._log import KafkaLog, connect
from ._producer import KafkaDeliveryFuture, KafkaProducer
from ._topic import KafkaScan, KafkaTopic

__all__ = ["KafkaConsumer", "KafkaDeliveryFuture", "KafkaLog", "KafkaProducer", "KafkaScan", "KafkaTopic", "connect"]
