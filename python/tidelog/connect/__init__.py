"""Moving records between tidelog and other systems.

Contract: each connector is its own module here, using only tidelog's public
API (``tidelog.open``, ``tidelog.connect``, producers, consumers) and errors.

- ``mirror``: ``tidelog mirror SRC DST --topics ...`` copies byte topics
  between log folders and Kafka clusters (either side either kind), one-shot
  or continuous, resumable from a durable checkpoint: exactly once into a
  local log, at least once into Kafka.
"""
import sys
import types


class _ConnectModule(types.ModuleType):
    """``tidelog.connect`` is this package *and* the function
    ``tidelog.connect("kafka://...")``: importing the package makes it the
    attribute of ``tidelog``, so the package itself is callable (the same call)."""

    def __call__(self, url: str, **config):
        """The same API on a real Kafka cluster: ``tidelog.connect("kafka://host:9092,host2:9092?client.id=app")``
        returns a ``tidelog.kafka.KafkaLog`` (topics, producer, consumer, groups,
        Arrow reads). ``config``: more librdkafka properties. Needs confluent-kafka
        (``pip install tidelog[kafka]``); see docs/kafka.md, "Two backends"."""
        from ..kafka import connect as connect_kafka

        return connect_kafka(url, **config)


sys.modules[__name__].__class__ = _ConnectModule
