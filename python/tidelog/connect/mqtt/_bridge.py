"""MqttBridge: an MQTT subscription appended to a topic, acknowledged once durable."""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable

from ...errors import BrokerError, MappingError, MessageMappingError, UnknownTopicError
from ._dedupe import RecentIds
from ._mapping import Mapping, RowMapper
from ._wire import Subscriber, parse_broker_url

logger = logging.getLogger("tidelog.connect.mqtt")

_BAD_LOGGED_IN_FULL = 20          # bad messages logged one by one, then every _BAD_LOG_EVERY-th
_BAD_LOG_EVERY = 10_000
_RECONNECT_MAX_S = 5.0


@dataclasses.dataclass
class BridgeStats:
    """Counters since ``run()`` started: messages ``received``, rows
    ``appended``, ``duplicates`` dropped by id, ``skipped`` messages that did
    not fit (on_error="skip"), ``acked`` PUBACKs sent, ``batches`` appended,
    ``reconnects``, ``seconds`` run."""

    received: int = 0
    appended: int = 0
    duplicates: int = 0
    skipped: int = 0
    acked: int = 0
    batches: int = 0
    reconnects: int = 0
    seconds: float = 0.0

    @property
    def handled(self) -> int:
        return self.appended + self.duplicates + self.skipped

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_mapping(mapping: Any) -> Mapping:
    """A ``Mapping``, a path to a TOML mapping file, a dict of its settings, or None (the default)."""
    if mapping is None:
        return Mapping()
    if isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, dict):
        return Mapping.from_dict(mapping)
    if isinstance(mapping, (str, os.PathLike)):
        return Mapping.from_file(mapping)
    raise MappingError(f"a mapping is a Mapping, a TOML file path or a dict, not {type(mapping).__name__}")


class MqttBridge:
    """Subscribes to ``subscribe`` (an MQTT topic filter or a list of them) at
    QoS 1 on ``broker`` and appends what arrives to ``topic`` of the log
    ``log_or_dir`` (a ``tidelog.Log`` or a folder, opened and closed by the
    bridge), mapped by ``mapping`` (see ``Mapping``).

    Batches: the messages received are appended together once ``batch_rows``
    of them or ``batch_bytes`` of payload arrived, the first of them waited
    ``linger_ms``, or nothing more arrived for ``idle_ms`` (so a quiet broker,
    or one holding back because its in-flight window is full, gets its
    acknowledgements at once). Each batch is appended durably (fdatasync),
    and only then are its PUBACKs sent, in the order the messages came.

    ``client_id`` (default ``tidelog-<topic>``) names the broker session: it
    is persistent (clean session off), so the broker keeps the subscription
    and every unacknowledged message while the bridge is away. Run one bridge
    per client id.

    ``on_error`` (default: the mapping's, else "skip"): a message that does
    not fit is counted in ``stats.skipped``, logged and acknowledged
    ("skip"), or the bridge appends and acknowledges what came before it and
    raises ``MessageMappingError``, leaving it unacknowledged ("stop").

    When the mapping names an ``id`` column, a message whose id is among the
    last ``dedupe_window`` ids of each partition (read back from the topic
    at start), or among the last ``dedupe_window`` x partitions the bridge
    appended since is dropped as a
    duplicate (``stats.duplicates``) and acknowledged.
    """

    def __init__(self, log_or_dir: Any, *, topic: str, broker: str = "mqtt://127.0.0.1:1883",
                 subscribe: str | list[str] = "#", mapping: Any = None, client_id: str | None = None,
                 batch_rows: int = 10_000, batch_bytes: int = 8 << 20, linger_ms: float = 100.0,
                 idle_ms: float = 1.0, on_error: str | None = None, dedupe_window: int = 100_000,
                 keepalive: int = 60, reconnect: bool = True):
        import tidelog

        self.address = parse_broker_url(broker)
        self.filters = [subscribe] if isinstance(subscribe, str) else list(subscribe)
        if not self.filters or any(not isinstance(f, str) or not f for f in self.filters):
            raise MappingError("subscribe needs at least one MQTT topic filter such as 'sensors/#'")
        for name, value in (("batch_rows", batch_rows), ("batch_bytes", batch_bytes),
                            ("dedupe_window", dedupe_window), ("keepalive", keepalive)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MappingError(f"{name} must be a positive integer, not {value!r}")
        if linger_ms < 0 or idle_ms < 0:
            raise MappingError("linger_ms and idle_ms must not be negative")
        self.mapping = resolve_mapping(mapping)
        self.client_id = client_id or f"tidelog-{topic}"
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.linger_s, self.idle_s = linger_ms / 1000, idle_ms / 1000
        self.keepalive, self.reconnect = keepalive, reconnect
        self._owns_log = not isinstance(log_or_dir, tidelog.Log)
        self.log = tidelog.open(log_or_dir) if self._owns_log else log_or_dir
        try:
            self.topic = self._topic(topic)
            self._mapper: RowMapper = self.mapping.bind(self.topic.schema, on_error)
            self._seen: RecentIds | None = None
            if self.mapping.id is not None:
                self._seen = RecentIds(dedupe_window * self.topic.partitions)
                self._seen.load_tail(self.topic, self.mapping.id)
        except BaseException:
            self.close()
            raise
        self.stats = BridgeStats()
        self._stop = threading.Event()
        self._bad_seen = 0

    def _topic(self, name: str):
        try:
            return self.log.topic(name)
        except UnknownTopicError:
            schema = self.mapping.schema()
            if schema is None:
                raise UnknownTopicError(
                    f"topic {name!r} does not exist: create it, or give every column of the mapping a type "
                    "so that the bridge can") from None
            settings = dict(self.mapping.topic)
            return self.log.create_topic(name, schema=schema, **settings)

    # ------------------------------------------------------------- running
    def stop(self) -> None:
        """Ends ``run()`` (from another thread or a signal handler) after the
        batch in hand is appended and acknowledged."""
        self._stop.set()

    def run(self, max_messages: int | None = None, idle_timeout: float | None = None,
            on_subscribed: Callable[[], None] | None = None) -> BridgeStats:
        """Runs until ``stop()``, until ``max_messages`` messages were handled
        (appended, dropped as duplicates or skipped), or until nothing arrived
        for ``idle_timeout`` seconds; returns the counters. Raises
        ``BrokerError`` when the broker cannot be reached at the start (later
        losses are reconnected when ``reconnect``), ``MessageMappingError``
        under on_error="stop". ``on_subscribed`` is called once the broker
        confirmed the subscription (from then on the session holds every
        message published to it)."""
        started = time.monotonic()
        self.stats = BridgeStats()
        self._sub = Subscriber(self.address, self.client_id, self.filters, self.keepalive)
        pending: list[tuple] = []
        try:
            if on_subscribed is not None:
                on_subscribed()
            self._loop(pending, max_messages, idle_timeout)
            self._flush(self._sub, pending)
        finally:
            self.stats.seconds = time.monotonic() - started
            self._sub.close()
        return self.stats

    def _loop(self, pending: list, max_messages: int | None, idle_timeout: float | None) -> None:
        stats = self.stats
        sub = self._sub
        first_at = 0.0
        pending_bytes = 0
        last_message = time.monotonic()
        while not self._stop.is_set():
            if max_messages is not None and stats.handled + len(pending) >= max_messages:
                break
            now = time.monotonic()
            wait = min(self.idle_s, first_at + self.linger_s - now) if pending else 0.25
            try:
                if sub.wait(wait):
                    before = len(pending)
                    pending_bytes += sub.read(pending, time.time_ns())
                    if len(pending) > before:
                        stats.received += len(pending) - before
                        last_message = now
                        if not before:
                            first_at = now
                    if pending and (len(pending) >= self.batch_rows or pending_bytes >= self.batch_bytes
                                    or time.monotonic() - first_at >= self.linger_s):
                        self._flush(sub, pending)
                        pending_bytes = 0
                elif pending:
                    self._flush(sub, pending)
                    pending_bytes = 0
                elif idle_timeout is not None and now - last_message >= idle_timeout:
                    break
                sub.keep_alive()
            except BrokerError as e:
                if not self.reconnect or self._stop.is_set():
                    raise
                sub = self._sub = self._reconnect(sub, pending, e)
                pending_bytes = 0

    def _flush(self, sub: Subscriber | None, pending: list, ack: bool = True) -> None:
        """Appends ``pending`` durably, then acknowledges it, then empties it."""
        if not pending:
            return
        mapped = self._mapper.map(pending, self._seen.keep if self._seen is not None else None)
        if mapped.batch is not None:
            self.topic.append(mapped.batch, durable=True)
            self.stats.appended += mapped.batch.num_rows
            self.stats.batches += 1
        self.stats.duplicates += mapped.duplicates
        for index, source, reason in mapped.bad:
            if index != mapped.stopped_at:
                self._report_bad(source, reason)
        done = pending if mapped.stopped_at is None else pending[:mapped.stopped_at]
        self.stats.skipped += len(mapped.bad) - (mapped.stopped_at is not None)
        ids = [m[0] for m in done]
        pending.clear()
        if ack and sub is not None:
            sub.ack(ids)
            self.stats.acked += sum(1 for p in ids if p)
        if mapped.stopped_at is not None:
            _, source, reason = mapped.bad[-1]
            raise MessageMappingError(f"a message from MQTT topic {source!r} does not fit topic "
                                      f"{self.topic.name!r}: {reason} (on_error=\"stop\": it was not acknowledged)",
                                      source=source, reason=reason)

    def _report_bad(self, source: str, reason: str) -> None:
        self._bad_seen += 1
        if self._bad_seen <= _BAD_LOGGED_IN_FULL or self._bad_seen % _BAD_LOG_EVERY == 0:
            logger.warning("skipped a message from MQTT topic %r (%d skipped so far): %s", source,
                           self._bad_seen, reason)

    def _reconnect(self, sub: Subscriber, pending: list, error: BrokerError) -> Subscriber:
        """A new connection after a lost one. The messages received but not yet
        appended are dropped when the broker kept the session (it sends them
        again), appended (without acknowledgement) when it did not."""
        logger.warning("%s; reconnecting", error)
        sub.close(disconnect=False)
        delay = 0.05
        while True:
            if self._stop.is_set():
                raise error
            try:
                new = Subscriber(self.address, self.client_id, self.filters, self.keepalive)
                break
            except BrokerError as e:
                logger.warning("%s; retrying in %.1f s", e, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
        self.stats.reconnects += 1
        if new.session_present:
            self.stats.received -= len(pending)
            pending.clear()
        else:
            self._flush(None, pending, ack=False)
        return new

    # ------------------------------------------------------------- closing
    def close(self) -> None:
        """Closes the log when the bridge opened it."""
        if self._owns_log and getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> "MqttBridge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
