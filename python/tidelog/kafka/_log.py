"""``KafkaLog``: a Kafka cluster behind the local ``Log``'s API (topics, producers,
consumers, groups)."""
from __future__ import annotations

import logging
import time
from typing import Any

import pyarrow as pa

from .._log import validate_topic_name
from ..errors import InvalidArgumentError, LogClosedError, UnknownGroupError, UnknownTopicError
from ._config import parse_url
from ._errors import from_kafka, raise_from_kafka, retrying, timed_out

#: Where librdkafka's own log lines go (every client this package makes is
#: given it as confluent-kafka's ``logger``): Python's logging, not stderr.
#: Its NullHandler keeps them off stderr unless the application configures
#: logging (Python's last-resort handler would print warnings and errors).
KAFKA_LOGGER = logging.getLogger("tidelog.kafka")
KAFKA_LOGGER.addHandler(logging.NullHandler())


#: Topics of the cluster itself, and tidelog's schema topic: not listed by ``topics()``.
def _internal(name: str) -> bool:
    return name.startswith("__") or name.startswith("_tidelog")


#: tidelog topic setting -> Kafka topic config.
TOPIC_CONFIGS = {"retention_ms": "retention.ms", "retention_bytes": "retention.bytes",
                 "segment_bytes": "segment.bytes", "segment_ms": "segment.ms", "cleanup_policy": "cleanup.policy",
                 "min_compaction_lag_ms": "min.compaction.lag.ms", "delete_retention_ms": "delete.retention.ms",
                 "min_cleanable_dirty_ratio": "min.cleanable.dirty.ratio"}
#: durability -> Kafka topic configs. Kafka's own durability is acks=all plus
#: replication; "fsync" also fsyncs every appended batch (flush.messages=1).
DURABILITY = {None: {}, "none": {}, "fsync": {"flush.messages": "1"}}


def connect(url: str, **config: Any) -> "KafkaLog":
    """A ``KafkaLog`` on the cluster ``url`` names (``kafka://host:port,...?prop=value``);
    ``config``: more librdkafka properties for every client (dots as in Kafka's names)."""
    return KafkaLog(url, config)


class KafkaLog:
    """A Kafka cluster with the local ``tidelog.Log``'s API. Thread-safe as
    the admin client is; producers are thread-safe, consumers are not."""

    def __init__(self, url: str, config: dict | None = None):
        from confluent_kafka.admin import AdminClient

        self.url = url
        self.bootstrap, props = parse_url(url)
        props.update({k: str(v) if not isinstance(v, (int, float, bool)) else v for k, v in (config or {}).items()})
        # (every client made from client_config logs through KAFKA_LOGGER, not librdkafka's stderr)
        self.client_config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": KAFKA_LOGGER, **props}
        with raise_from_kafka("connecting to Kafka", InvalidArgumentError):
            self._admin = AdminClient(dict(self.client_config))
        self._closed = False
        self._topics: dict[str, Any] = {}
        self._schemas = None  # _columnar.SchemaRegistry, made on first use
        self._clients: list = []

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in list(reversed(self._clients)):  # (each close removes itself from the list)
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                pass
        self._clients.clear()
        for topic in self._topics.values():
            topic.close()
        self._topics.clear()
        self._admin = None  # destroyed now (it would go on reconnecting)

    def __enter__(self) -> "KafkaLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the Kafka connection is closed")

    @property
    def read_only(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<tidelog.KafkaLog {self.url}>"

    # ------------------------------------------------------------ metadata
    def metadata(self, topic: str | None = None, timeout: float = 30):
        with raise_from_kafka("Kafka metadata"):
            return self._admin.list_topics(topic, timeout=timeout)

    def partition_count(self, name: str) -> int:
        """The partitions of topic ``name``; UnknownTopicError when it does not exist."""
        md = self.metadata().topics.get(name)
        if md is None or (md.error is not None and md.error.name() == "UNKNOWN_TOPIC_OR_PART"):
            raise UnknownTopicError(f"topic {name!r} does not exist")
        if md.error is not None:
            raise from_kafka(md.error, f"topic {name!r}")
        return len(md.partitions)

    @property
    def schemas(self):
        """The columnar topics' schemas (``_columnar.SchemaRegistry``)."""
        registry = self._schemas
        if registry is None:
            from ._columnar import SchemaRegistry

            registry = self._schemas = SchemaRegistry(self)
        return registry

    # ------------------------------------------------------------ topics
    def create_topic(self, name: str, schema: pa.Schema | None = None, partitions: int = 1, *,
                     key: str | None = None, timestamp: str | None = None, durability: str | None = None,
                     compression: str = "none", replication_factor: int = -1, config: dict | None = None,
                     **settings: Any):
        """Creates a topic through the admin API and waits until every partition has a leader.

        Without ``schema``: byte records (key, value, headers, timestamp), one
        per Kafka record. With one: a columnar topic (one Arrow batch per Kafka
        record; ``key``/``timestamp`` name columns as in the local log).
        ``replication_factor``: -1 = the broker's default. ``durability``:
        None (Kafka's: acks=all and replication) or ``"fsync"`` (also
        ``flush.messages=1``: an fsync per appended batch). tidelog's retention
        and compaction settings map to Kafka's topic configs (no retention
        given: ``retention.ms=-1``, kept forever, as on the local log);
        ``config`` adds raw Kafka topic configs."""
        from confluent_kafka.admin import NewTopic

        self._check_open()
        validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidArgumentError(f"partitions must be an int >= 1, not {partitions!r}")
        if durability not in DURABILITY:
            raise InvalidArgumentError(f"durability on Kafka is None (acks=all + replication) or 'fsync', "
                                       f"not {durability!r} (see docs/kafka.md, 'Two backends')")
        if compression not in ("none", "zstd", "lz4", "gzip", "snappy"):
            raise InvalidArgumentError(f"compression must be 'none' or 'zstd' (or lz4/gzip/snappy), not {compression!r}")
        # As the local log: kept forever unless retention is asked for (Kafka's own default is 7 days,
        # by record timestamp, which would delete old-dated records soon after they land).
        topic_config: dict[str, str] = {"retention.ms": "-1", **DURABILITY[durability]}
        if compression != "none":
            topic_config["compression.type"] = compression
        for setting, value in settings.items():
            if setting == "flush_interval_ms":
                continue  # the local log's interval durability: Kafka has none to set here
            if setting not in TOPIC_CONFIGS:
                raise InvalidArgumentError(f"unknown topic setting {setting!r} for Kafka; tidelog maps "
                                           f"{', '.join(sorted(TOPIC_CONFIGS))} (config= takes Kafka's own)")
            if value is not None:
                topic_config[TOPIC_CONFIGS[setting]] = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
        for k, v in (config or {}).items():
            topic_config[k] = str(v)
        if schema is not None:
            if not isinstance(schema, pa.Schema):
                raise TypeError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
            for col in (key, timestamp):
                if col is not None and col not in schema.names:
                    raise InvalidArgumentError(f"column {col!r} is not in the schema ({', '.join(schema.names)})")
        elif key not in (None, "key") or timestamp not in (None, "timestamp"):
            raise InvalidArgumentError("key= and timestamp= name columns of a columnar topic (give a schema)")
        new = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=topic_config)
        with raise_from_kafka(f"creating topic {name!r}", InvalidArgumentError):
            self._admin.create_topics([new], operation_timeout=30)[name].result(60)
        self._wait_for_leaders(name)
        if schema is not None:
            self.schemas.register_topic(name, schema, key=key, timestamp=timestamp)
        self._topics.pop(name, None)
        return self.topic(name)

    def _wait_for_leaders(self, name: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            md = self.metadata(name, timeout=5).topics.get(name)
            if md is not None and md.error is None and md.partitions and \
                    all(p.leader >= 0 for p in md.partitions.values()):
                return
            time.sleep(0.05)
        raise from_kafka(timed_out(), f"topic {name!r} has no leader after {timeout_s:.0f} s")

    def topic(self, name: str):
        """The topic ``name`` (UnknownTopicError when it does not exist)."""
        from ._topic import KafkaTopic

        self._check_open()
        partitions = self.partition_count(name)
        topic = self._topics.get(name)
        if topic is None or topic.partitions != partitions:
            topic = self._topics[name] = KafkaTopic(self, name, partitions, self.schemas.topic_schema(name))
        return topic

    def topics(self) -> list[str]:
        """The cluster's topics (its internal ones and tidelog's schema topic left out), sorted."""
        self._check_open()
        return sorted(t for t in self.metadata().topics if not _internal(t))

    def delete_topic(self, name: str) -> None:
        self._check_open()
        validate_topic_name(name)
        with raise_from_kafka(f"deleting topic {name!r}"):
            self._admin.delete_topics([name], operation_timeout=30)[name].result(60)
        self._topics.pop(name, None)
        if self._schemas is not None or name in self.schemas.known_topics():
            self.schemas.forget_topic(name)
        deadline = time.monotonic() + 30  # gone from metadata, so a create of the same name can follow
        while name in self.metadata().topics and time.monotonic() < deadline:
            time.sleep(0.05)

    def alter_topic(self, name: str, **settings: Any) -> dict:
        """Changes retention and compaction settings (incremental alter configs)."""
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

        self._check_open()
        self.partition_count(name)
        entries = []
        for setting, value in settings.items():
            if setting not in TOPIC_CONFIGS:
                raise InvalidArgumentError(f"alter_topic: unknown setting {setting!r}; tidelog maps "
                                           f"{', '.join(sorted(TOPIC_CONFIGS))}")
            op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
            entries.append(ConfigEntry(TOPIC_CONFIGS[setting], None if value is None else str(value),
                                       incremental_operation=op))
        res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        with raise_from_kafka(f"altering topic {name!r}", InvalidArgumentError):
            self._admin.incremental_alter_configs([res])[res].result(30)
        return self.topic(name).describe()["config"]

    def topic_configs(self, name: str) -> dict[str, str]:
        from confluent_kafka.admin import ConfigResource

        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        with raise_from_kafka(f"describing topic {name!r}"):
            entries = self._admin.describe_configs([res])[res].result(30)
        return {k: e.value for k, e in entries.items()}

    # ------------------------------------------------------------ clients
    def producer(self, config: dict | None = None, **settings: Any):
        """A thread-safe producer with the local producer's API (see ``KafkaProducer``)."""
        from ._producer import KafkaProducer

        self._check_open()
        producer = KafkaProducer(self, config, settings)
        self._clients.append(producer)
        return producer

    def consumer(self, topics=None, **settings: Any):
        """A consumer with the local consumer's API; ``group=`` makes it a group member."""
        from ._consumer import KafkaConsumer

        self._check_open()
        config = None
        if isinstance(topics, dict):
            config, topics = topics, None
        consumer = KafkaConsumer(self, topics, config, settings)
        self._clients.append(consumer)
        return consumer

    def _forget(self, client: Any) -> None:
        try:
            self._clients.remove(client)
        except ValueError:
            pass

    # ------------------------------------------------------------ groups
    def groups(self) -> list[str]:
        self._check_open()
        with raise_from_kafka("listing groups"):
            result = self._admin.list_consumer_groups(request_timeout=30).result(30)
        return sorted(g.group_id for g in result.valid)

    def describe_group(self, name: str):
        """Kafka's ``ConsumerGroupDescription`` (state, members, assignments),
        with ``committed``: {(topic, partition): offset}."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        self._check_open()
        with raise_from_kafka(f"describing group {name!r}"):
            desc = self._admin.describe_consumer_groups([name], request_timeout=30)[name].result(30)
            offsets = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(name)],
                                                              request_timeout=30)[name].result(30)
        if desc.state.name == "DEAD" and not offsets.topic_partitions:
            raise UnknownGroupError(f"group {name!r} does not exist")
        desc.committed = {(tp.topic, tp.partition): tp.offset for tp in offsets.topic_partitions}
        return desc

    def delete_group(self, name: str) -> None:
        self._check_open()
        with raise_from_kafka(f"deleting group {name!r}", UnknownGroupError):
            self._admin.delete_consumer_groups([name], request_timeout=30)[name].result(30)

    def reset_group_offsets(self, name: str, to: Any, topics=None) -> dict[tuple[str, int], int]:
        """Sets a group's committed offsets: ``to`` = "earliest", "latest" or
        {(topic, partition): offset}; refused while the group has members."""
        from confluent_kafka import ConsumerGroupTopicPartitions
        from confluent_kafka import TopicPartition as KTP

        self._check_open()
        if isinstance(to, dict):
            target = {tuple(k): int(v) for k, v in to.items()}
        elif to in ("earliest", "latest"):
            names = [topics] if isinstance(topics, str) else list(topics or [])
            if not names:
                raise InvalidArgumentError("reset_group_offsets(to='earliest'|'latest') on Kafka needs topics=")
            target = {}
            for t in names:
                for p, (lo, hi) in self.watermarks(t).items():
                    target[(t, p)] = lo if to == "earliest" else hi
        else:
            raise InvalidArgumentError(f"to must be 'earliest', 'latest' or {{(topic, partition): offset}}, not {to!r}")
        request = ConsumerGroupTopicPartitions(name, [KTP(t, p, o) for (t, p), o in target.items()])
        with raise_from_kafka(f"resetting group {name!r}"):
            self._admin.alter_consumer_group_offsets([request], request_timeout=30)[name].result(30)
        return target

    def watermarks(self, name: str) -> dict[int, tuple[int, int]]:
        """{partition: (first kept offset, end offset)} of a topic."""
        from confluent_kafka.admin import OffsetSpec

        n = self.partition_count(name)
        lows = self._list_offsets(name, {p: OffsetSpec.earliest() for p in range(n)})
        highs = self._list_offsets(name, {p: OffsetSpec.latest() for p in range(n)})
        return {p: (lows[p], highs[p]) for p in range(n)}

    def _list_offsets(self, name: str, specs: dict) -> dict[int, int]:
        """Kafka's ListOffsets for ``{partition: OffsetSpec}``."""
        from confluent_kafka import TopicPartition as KTP

        def call() -> dict[int, int]:
            result = self._admin.list_offsets({KTP(name, p): spec for p, spec in specs.items()}, request_timeout=30)
            return {tp.partition: fut.result(30).offset for tp, fut in result.items()}

        return retrying(call, f"offsets of {name!r}")

    def offsets_for_time(self, name: str, partitions: list[int], ts_ns: int) -> dict[int, int]:
        """{partition: first offset whose timestamp >= ts_ns} (the end offset when none)."""
        from confluent_kafka.admin import OffsetSpec

        ts_ms = -(-ts_ns // 1_000_000)  # ceil: a record at ts_ms*1e6 >= ts_ns
        found = self._list_offsets(name, {p: OffsetSpec.for_timestamp(ts_ms) for p in partitions})
        if any(offset < 0 for offset in found.values()):
            ends = self.watermarks(name)
            found = {p: ends[p][1] if offset < 0 else offset for p, offset in found.items()}
        return found
