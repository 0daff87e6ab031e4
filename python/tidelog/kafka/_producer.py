"""``KafkaProducer``: the local producer's API (send, send_many, flush, futures,
acks) on librdkafka's producer (idempotent, murmur2 partitioning)."""
from __future__ import annotations

import threading
import time
from typing import Any

from .. import _arrow
from .._topic import AppendResult
from ..errors import DeliveryError, InvalidArgumentError, LogClosedError
from ._config import producer_properties
from ._errors import from_kafka, raise_from_kafka
from ._fastpath import KafkaDeliveryFuture, SendPath

__all__ = ["KafkaDeliveryFuture", "KafkaProducer"]

#: send() serves delivery reports itself every this many records ...
SERVE_EVERY = 1000
#: ... and the delivery thread when none did for this long (the latest a future resolves after its ack).
IDLE_SERVE_S = 0.005


def _headers(headers: Any) -> list | None:
    if headers is None:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    out = []
    for k, v in items:
        if not isinstance(k, str):
            raise TypeError(f"header keys are str, not {type(k).__name__}")
        out.append((k, v.encode() if isinstance(v, str) else v))
    return out


def _bytes(value: Any, what: str) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    try:
        return memoryview(value).tobytes()
    except TypeError:
        raise TypeError(f"a record's {what} must be bytes, str or a buffer, not {type(value).__name__}") from None


class KafkaProducer:
    """A thread-safe producer: ``send`` returns a future; records gather in
    librdkafka's queue for ``linger_ms`` (default 5) and are acknowledged as
    ``acks`` says ("durable" = Kafka's ``acks=all``, the default; "written" =
    ``acks=1``). Idempotence is on: a retried batch is never written twice."""

    def __init__(self, log, config: dict | None, settings: dict):
        from confluent_kafka import Producer

        props, self.acks = producer_properties(config, settings)
        conf = {**log.client_config, "linger.ms": 5, "enable.idempotence": True, "partitioner": "murmur2_random",
                "allow.auto.create.topics": False, **props}
        if self.acks != "durable" and "enable.idempotence" not in props:
            conf["enable.idempotence"] = False  # idempotence needs acks=all
        self.linger_ms = float(conf["linger.ms"])
        self.max_record_bytes = int(conf.get("message.max.bytes", 1_000_000))
        with raise_from_kafka("a Kafka producer", InvalidArgumentError):
            self._p = self._client = Producer(conf)
        self._log = log
        self._closed = False
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fast = SendPath(self._p, self._known, self._send_general, SERVE_EVERY)
        #: The compiled send (tidelog.kafka._fastpath), without a Python frame per record.
        self.send = self._fast.send
        self._poller = threading.Thread(target=self._deliveries, name="tidelog-kafka-deliveries", daemon=True)
        self._poller.start()

    def _deliveries(self) -> None:
        """Serves delivery reports when no ``send`` did lately (librdkafka runs
        callbacks only inside poll). While records stream, ``send`` serves them
        itself every ``SERVE_EVERY`` records, in its own thread: two threads
        taking turns at the GIL per callback cost more than the callbacks."""
        p, stop, fast = self._p, self._stop, self._fast
        while not stop.wait(IDLE_SERVE_S):
            if len(p) and time.monotonic() - fast.served_at >= IDLE_SERVE_S:
                p.poll(0)
                fast.served_at = time.monotonic()

    def _check_topic(self, topic: str) -> None:
        if self._closed:
            raise LogClosedError("the producer is closed")
        if topic in self._known:
            return
        self._log.partition_count(topic)  # UnknownTopicError, as the local producer's send
        self._known.add(topic)

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None, timestamp: Any = None,
             partition: int | None = None, on_delivery: Any = None, timestamp_ms: int | None = None
             ) -> KafkaDeliveryFuture:
        """Queues one record; the future resolves to its ``RecordMetadata``.
        ``timestamp``: ns (or a datetime, ...), kept to the millisecond;
        ``timestamp_ms``: Kafka's milliseconds. (An instance's ``send`` is
        the compiled ``SendPath.send``, which takes the common call itself.)"""
        return self._fast.send(topic, value, key, headers, timestamp, partition, on_delivery, timestamp_ms)

    def _send_general(self, topic: str, value: Any, key: Any, headers: Any, timestamp: Any, partition: int | None,
                      on_delivery: Any, timestamp_ms: int | None) -> KafkaDeliveryFuture:
        """The calls ``SendPath`` does not take: other types, headers, a
        partition or timestamp, a topic not checked yet, a full queue."""
        if topic not in self._known:  # (emptied by close)
            self._check_topic(topic)
        if timestamp_ms is not None:
            ts = int(timestamp_ms)
        elif timestamp is not None:
            ts = _arrow.to_ns(timestamp) // 1_000_000
        else:
            ts = 0
        fut = self._fast.future(on_delivery)
        value = value if value is None or type(value) is bytes else _bytes(value, "value")
        key = key if key is None or type(key) is bytes else _bytes(key, "key")
        kwargs: dict = {"on_delivery": fut}
        if headers:
            kwargs["headers"] = _headers(headers)
        if partition is not None:
            kwargs["partition"] = partition
        if ts:
            kwargs["timestamp"] = ts
        self._produce(topic, value, key, kwargs)
        self._fast.sent()
        return fut

    def _produce(self, topic: str, value: Any, key: Any, kwargs: dict) -> None:
        from confluent_kafka import KafkaException

        while True:
            try:
                self._p.produce(topic, value, key, **kwargs)
                return
            except BufferError:  # librdkafka's queue is full: wait for deliveries, as the local producer blocks
                self._p.flush(0.1)
            except KafkaException as e:
                raise from_kafka(e, f"send to {topic!r}", DeliveryError) from None
            except (TypeError, ValueError) as e:
                raise InvalidArgumentError(f"send to {topic!r}: {e}") from None

    def send_many(self, topic: str, values: Any, keys: Any = None, headers: Any = None,
                  partition: int | None = None) -> AppendResult:
        """Sends many records and waits until all are acknowledged: an
        ``AppendResult`` with each partition's (first, last) offsets. One
        delivery callback for all, no future per record."""
        if self._closed:
            raise LogClosedError("the producer is closed")
        self._check_topic(topic)
        values = list(values)
        if keys is not None:
            keys = list(keys)
            if len(keys) != len(values):
                raise InvalidArgumentError(f"send_many: {len(keys)} keys for {len(values)} values")
        offsets: dict[int, list[int]] = {}
        errors: list = []

        def delivered(err, msg) -> None:
            if err is not None:
                errors.append(err)
                return
            p, o = msg.partition(), msg.offset()
            span = offsets.get(p)
            if span is None:
                offsets[p] = [o, o]
            elif o < span[0]:
                span[0] = o
            elif o > span[1]:
                span[1] = o

        kwargs: dict = {"on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = _headers(headers)
        for i, v in enumerate(values):
            self._produce(topic, _bytes(v, "value"), None if keys is None else _bytes(keys[i], "key"), kwargs)
        self.flush()
        if errors:
            raise from_kafka(errors[0], f"send_many to {topic!r} ({len(errors)} failed)", DeliveryError)
        return AppendResult({p: (lo, hi) for p, (lo, hi) in offsets.items()}, len(values))

    def produce_raw(self, topic: str, value: Any, key: Any = None, **kwargs: Any) -> None:
        """librdkafka's produce (no future, no checks): for code that wants
        Kafka's own call, such as the mirror's preserved timestamps."""
        self._produce(topic, value, key, kwargs)

    def flush(self, timeout: float | None = None) -> int:
        """Waits until every queued record is acknowledged (or ``timeout``
        passes); returns how many are still waiting."""
        if self._p is None:
            return 0  # closed: close() flushed
        return self._p.flush(-1 if timeout is None else timeout)

    def poll(self, timeout: float = 0) -> int:
        return self._p.poll(timeout)

    def __len__(self) -> int:
        return len(self._p)

    def close(self, timeout: float | None = None) -> None:
        """Flushes, then stops the delivery thread. Records not acknowledged by
        then fail their futures (as the local producer's close)."""
        if self._closed:
            return
        self._closed = True
        self._known.clear()  # (the set SendPath checks: every send now takes the general path, which refuses)
        left = self.flush(timeout)
        self._stop.set()
        self._poller.join()
        if left:
            self._p.purge()
            self._p.poll(0)
            self._p.flush(1)
        self._fast.detach()
        self._p = self._client = None  # destroyed now: a client left alive reconnects to a broker that went away
        self._log._forget(self)

    def __enter__(self) -> "KafkaProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tidelog.KafkaProducer {self._log.bootstrap} acks={self.acks!r}>"

