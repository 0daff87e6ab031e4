"""Connectors: bridges between a tidelog log and other messaging systems.

Each connector is a subpackage of its own (``tidelog.connect.mqtt``), built
on the log's public API only, with its own contract in its docstring. What
they share, by contract:

* **Nothing acknowledged is lost.** A connector that ingests tells the other
  system a message was taken only after the rows it became are durable in
  the log (fdatasync), so a crash of the connector or of the machine loses
  nothing the other side handed over: delivery is at least once, and exactly
  once where the message carries an id the mapping names.
* **Bad input is typed.** Unusable settings raise ``tidelog.MappingError``
  (or another ``InvalidArgumentError``) before anything is read or written;
  an unreachable or refusing peer ``BrokerError``; the command line prints
  one line for either and exits with status 2 (bad settings) or 1 (the peer).
* **Optional dependencies** are imported when a connector needs them, and
  their absence is an ``ImportError`` naming the package to install.

Connectors here:

- ``mqtt``: ``tidelog connect mqtt``, an MQTT subscription into a columnar
  topic (PUBACK once durable), and a topic republished to MQTT.
- ``mirror``: ``tidelog mirror SRC DST --topics ...`` copies byte and
  columnar topics between log folders and Kafka clusters (either side either kind), one-shot
  or continuous, resumable from a durable checkpoint: exactly once into a
  local log, at least once into Kafka.

This package is also the function ``tidelog.connect("kafka://...")`` (the
Kafka backend, ``tidelog.kafka``): see ``_ConnectModule``.
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
