"""Kafka's configuration vocabulary, mapped onto tidelog's settings.

Users of confluent-kafka pass a dict of librdkafka properties
(``{"linger.ms": 5, "acks": "all"}``); users of kafka-python pass keywords
(``batch_size=...``, ``acks="all"``, ``group_id=...``). Both are accepted by
``log.producer()`` and ``log.consumer()`` beside tidelog's own names; this
module is the one table that says what each one means here (docs/kafka.md
shows it to users). Properties about a network cluster (``bootstrap.servers``,
``client.id``, timeouts, ...) are accepted and have no effect on a local log.
Anything else is an ``InvalidArgumentError`` naming it, never silently dropped.
"""
from __future__ import annotations

from typing import Any

from .errors import InvalidArgumentError

#: Kafka name (confluent dict key or kafka-python keyword) -> tidelog producer setting.
PRODUCER_NAMES = {
    "linger.ms": "linger_ms",
    "queue.buffering.max.ms": "linger_ms",
    "batch.size": "batch_bytes",
    "batch_size": "batch_bytes",
    "acks": "acks",
    "request.required.acks": "acks",
    "message.max.bytes": "max_record_bytes",
    "max.request.size": "max_record_bytes",
    "max_request_size": "max_record_bytes",
}

#: Kafka name -> tidelog consumer setting.
CONSUMER_NAMES = {
    "group.id": "group",
    "group_id": "group",
    "auto.offset.reset": "start",
    "auto_offset_reset": "start",
    "partition.assignment.strategy": "partition_assignment_strategy",
    "group.instance.id": "group_instance_id",
    "enable.auto.commit": "enable_auto_commit",
    "auto.commit.interval.ms": "auto_commit_interval_ms",
    "max.poll.interval.ms": "max_poll_interval_ms",
    "session.timeout.ms": "session_timeout_ms",
    "client.id": "client_id",
}

#: Group settings (tidelog's names are kafka-python's keywords) and how a string value (librdkafka) converts.
GROUP_SETTINGS = {"partition_assignment_strategy": str, "group_instance_id": str, "enable_auto_commit": bool,
                  "auto_commit_interval_ms": int, "max_poll_interval_ms": int, "session_timeout_ms": int,
                  "client_id": str, "on_assign": None, "on_revoke": None, "on_lost": None, "listener": None}

#: Accepted for compatibility; nothing to configure on a local log.
NO_EFFECT = {
    "bootstrap.servers", "bootstrap_servers", "enable.idempotence",
    "enable_idempotence", "retries", "delivery.timeout.ms", "request.timeout.ms", "request_timeout_ms",
    "socket.timeout.ms", "security.protocol", "security_protocol", "compression.type", "compression_type",
    "heartbeat.interval.ms", "heartbeat_interval_ms",
    "fetch.min.bytes", "fetch_min_bytes", "fetch.wait.max.ms", "fetch_max_wait_ms", "api_version",
    "fetch.queue.backoff.ms",
}

#: acks: Kafka's values -> tidelog's. "all" (-1) waits for the group commit's
#: fdatasync; 1 and 0 resolve once the record is written (in the page cache):
#: a local log has no fire-and-forget weaker than that.
ACKS = {"all": "durable", "-1": "durable", -1: "durable", "1": "written", 1: "written", "0": "written",
        0: "written", "durable": "durable", "written": "written"}

#: auto.offset.reset values -> tidelog's start.
OFFSET_RESET = {"earliest": "earliest", "smallest": "earliest", "beginning": "earliest",
                "latest": "latest", "largest": "latest", "end": "latest"}


def _merge(kind: str, config: dict | None, kwargs: dict, names: dict, own: set) -> tuple[dict, set[str]]:
    """The settings under tidelog's names, and which of them were given under a Kafka name."""
    out: dict[str, Any] = {}
    from_kafka: set[str] = set()  # settings given under a Kafka name (librdkafka passes numbers as strings)
    items = list((config or {}).items()) + list(kwargs.items())
    if config is not None and not isinstance(config, dict):
        raise InvalidArgumentError(f"a {kind} config is a dict of Kafka properties, not {type(config).__name__}")
    for name, value in items:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"{kind} config keys are strings, not {name!r}")
        if name in own:
            target = name
        elif name in names:
            target = names[name]
            from_kafka.add(target)
        elif name in NO_EFFECT:
            continue
        else:
            known = sorted(own | set(names))
            raise InvalidArgumentError(f"unknown {kind} setting {name!r}; tidelog understands {', '.join(known)} "
                                       f"(and accepts Kafka's connection settings, which change nothing here)")
        if target in out and out[target] != value:
            raise InvalidArgumentError(f"{kind} setting {target!r} given twice with different values "
                                       f"({out[target]!r} and {value!r})")
        out[target] = value
    return out, from_kafka


def producer_settings(config: dict | None, kwargs: dict) -> dict:
    """tidelog producer keywords from a confluent-style dict and/or keywords."""
    own = {"linger_ms", "batch_bytes", "acks", "max_record_bytes"}
    out, from_kafka = _merge("producer", config, kwargs, PRODUCER_NAMES, own)
    if "acks" in out:
        acks = out["acks"]
        if acks not in ACKS or isinstance(acks, bool):
            raise InvalidArgumentError(f"acks must be 'all', 1 or 0 (Kafka) or 'durable'/'written', not {acks!r}")
        out["acks"] = ACKS[acks]
    for name in ("linger_ms", "batch_bytes", "max_record_bytes"):
        # librdkafka properties arrive as strings too ({"linger.ms": "5"}); tidelog's own keywords take numbers
        if name in from_kafka and isinstance(out.get(name), str):
            try:
                out[name] = float(out[name]) if name == "linger_ms" else int(out[name])
            except ValueError:
                raise InvalidArgumentError(f"{name} must be a number, not {out[name]!r}") from None
    return out


def consumer_settings(config: dict | None, kwargs: dict) -> dict:
    """tidelog consumer keywords (start, group, on_corrupt, and the group
    settings) from Kafka's names."""
    own = {"start", "group", "on_corrupt", "wait", "spin_us", *GROUP_SETTINGS}
    out, _ = _merge("consumer", config, kwargs, CONSUMER_NAMES, own)
    for name, kind in GROUP_SETTINGS.items():
        value = out.get(name)
        if kind is int and isinstance(value, str):
            try:
                out[name] = int(value)
            except ValueError:
                raise InvalidArgumentError(f"{name} must be an integer, not {value!r}") from None
        elif kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise InvalidArgumentError(f"{name} must be true or false, not {value!r}")
            out[name] = value.lower() == "true"
        elif name == "partition_assignment_strategy" and isinstance(value, (list, tuple)) and len(value) == 1:
            out[name] = value[0]  # kafka-python takes a list of assignors
    if out.get("group") is None:
        for name in GROUP_SETTINGS:  # as Kafka's clients: group settings do nothing without a group
            out.pop(name, None)
    if "start" in out:
        start = out["start"]
        if start not in OFFSET_RESET:
            raise InvalidArgumentError(f"auto.offset.reset / start must be 'earliest' or 'latest', not {start!r}")
        out["start"] = OFFSET_RESET[start]
    return out
