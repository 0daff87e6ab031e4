"""Connection URLs and settings: tidelog's producer/consumer settings (and the
Kafka names the local backend accepts, ``tidelog._kafka_config``) turned into
librdkafka properties. Other librdkafka properties pass through unchanged;
librdkafka itself rejects unknown ones (``InvalidArgumentError``)."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._kafka_config import CONSUMER_NAMES, GROUP_SETTINGS, PRODUCER_NAMES, consumer_settings, producer_settings
from ..errors import InvalidArgumentError

SCHEMES = ("kafka",)

#: tidelog producer setting -> librdkafka property.
PRODUCER_PROPERTIES = {"linger_ms": "linger.ms", "batch_bytes": "batch.size", "max_record_bytes": "message.max.bytes"}
#: tidelog acks -> Kafka acks.
ACKS = {"durable": "all", "written": "1"}
#: group setting (kafka-python's name, as tidelog's) -> librdkafka property.
GROUP_PROPERTIES = {"partition_assignment_strategy": "partition.assignment.strategy",
                    "group_instance_id": "group.instance.id", "max_poll_interval_ms": "max.poll.interval.ms",
                    "session_timeout_ms": "session.timeout.ms", "client_id": "client.id"}
#: Settings the local backend has and a Kafka client has no use for.
LOCAL_ONLY = {"wait", "spin_us", "on_corrupt"}


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """(bootstrap servers, librdkafka properties) of ``kafka://h:p[,h:p]?k=v&...``."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"a Kafka URL is a str such as 'kafka://127.0.0.1:9092', not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidArgumentError(f"{url!r} is not a Kafka URL: it starts with kafka://host:port")
    servers = parts.netloc
    hosts = [h for h in servers.split(",") if h]
    if not hosts or any(":" not in h or not h.rsplit(":", 1)[1].isdigit() for h in hosts):
        raise InvalidArgumentError(f"{url!r}: name the brokers as host:port[,host:port...] "
                                   f"(kafka://127.0.0.1:9092)")
    if parts.path not in ("", "/"):
        raise InvalidArgumentError(f"{url!r}: a Kafka URL has no path (settings go in the query: ?client.id=app)")
    props = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    return ",".join(hosts), props


def is_kafka_url(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(tuple(f"{s}://" for s in SCHEMES))


def _split(config: dict | None, kwargs: dict, known: dict, own: set[str]) -> tuple[dict, dict, dict]:
    """(Kafka-named settings tidelog maps, tidelog keywords, librdkafka pass-through)."""
    if config is not None and not isinstance(config, dict):
        raise InvalidArgumentError(f"a config is a dict of Kafka properties, not {type(config).__name__}")
    mapped: dict = {}
    passthrough: dict = {}
    for name, value in (config or {}).items():
        if name in known or name in own:
            mapped[name] = value
        elif isinstance(name, str) and "." in name:
            passthrough[name] = value
        else:
            mapped[name] = value  # the local table names the mistake
    return mapped, dict(kwargs), passthrough


def producer_properties(config: dict | None, kwargs: dict) -> tuple[dict, str]:
    """(librdkafka properties, tidelog acks) of a producer."""
    own = {"linger_ms", "batch_bytes", "acks", "max_record_bytes"}
    mapped, keywords, props = _split(config, kwargs, PRODUCER_NAMES, own)
    settings = producer_settings(mapped, {k: v for k, v in keywords.items() if k not in LOCAL_ONLY})
    out = {prop: settings[name] for name, prop in PRODUCER_PROPERTIES.items() if name in settings}
    acks = settings.get("acks", "durable")
    out["acks"] = ACKS[acks]
    out.update(props)
    return out, acks


def consumer_properties(config: dict | None, kwargs: dict) -> tuple[dict, dict]:
    """(librdkafka properties, tidelog settings: start, group, callbacks, enable_auto_commit, ...)."""
    own = {"start", "group", "on_corrupt", "wait", "spin_us", *GROUP_SETTINGS}
    mapped, keywords, props = _split(config, kwargs, CONSUMER_NAMES, own)
    settings = consumer_settings(mapped, keywords)
    for name in LOCAL_ONLY:
        settings.pop(name, None)
    out = {}
    for name, prop in GROUP_PROPERTIES.items():
        if settings.get(name) is not None:
            out[prop] = settings[name]
    out.update(props)
    return out, settings
