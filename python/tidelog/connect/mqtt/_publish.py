"""MqttPublisher: a topic's rows republished to MQTT, one JSON message a row (paho-mqtt)."""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import BrokerError, InvalidArgumentError
from ._wire import parse_broker_url

_ACK_TIMEOUT_S = 60.0
_FIELD = re.compile(r"\{([^{}]*)\}")


def import_paho():
    """paho.mqtt.client, or an ImportError that says what to install."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ImportError("publishing to MQTT needs paho-mqtt: pip install 'tidelog[mqtt]' "
                          "(or pip install 'paho-mqtt>=2.1')") from None
    return mqtt


class MqttPublisher:
    """Publishes every row of ``topic`` (from the log ``log_or_dir``, a
    ``tidelog.Log`` or a folder) to ``broker`` as a JSON object at QoS 1.

    ``mqtt_topic`` is a template: ``{column}`` is replaced by the row's value
    (``"sensors/{site}/{sensor_id}"``); default ``tidelog/<topic>``.
    Timestamps are published as integers in their column's unit (what the
    bridge's default mapping reads back), binary values as base64 text.

    Where it resumes is the consumer group ``group`` (default
    ``mqtt-publish-<topic>``): offsets are committed after the broker
    acknowledged (PUBACK) every message of a batch, so a publisher killed at
    any moment publishes again at most the batch in hand (at least once).
    ``start``: "earliest" or "latest", for a group without commits.
    """

    def __init__(self, log_or_dir: Any, *, topic: str, broker: str = "mqtt://127.0.0.1:1883",
                 mqtt_topic: str | None = None, group: str | None = None, start: str = "earliest",
                 client_id: str | None = None, batch_rows: int = 5_000, keepalive: int = 60):
        import tidelog

        self._mqtt = import_paho()
        self.address = parse_broker_url(broker)
        self.template = mqtt_topic or f"tidelog/{topic}"
        if not self.template or "+" in self.template or "#" in self.template:
            raise InvalidArgumentError(f"MQTT topic {self.template!r}: a topic to publish to has no '+' or '#'")
        self.group = group or f"mqtt-publish-{topic}"
        self.client_id = client_id or f"tidelog-publish-{topic}"
        self.batch_rows, self.keepalive = batch_rows, keepalive
        self._owns_log = not isinstance(log_or_dir, tidelog.Log)
        self.log = tidelog.open(log_or_dir) if self._owns_log else log_or_dir
        try:
            self.topic = self.log.topic(topic)
            fields = [m.group(1) for m in _FIELD.finditer(self.template)]
            missing = [f for f in fields if f not in self.topic.schema.names]
            if missing:
                raise InvalidArgumentError(f"MQTT topic {self.template!r} names {missing[0]!r}, which is not a "
                                           f"column of {topic!r} ({', '.join(self.topic.schema.names)})")
            self._fields = fields
            self._consumer = self.log.consumer([topic], group=self.group, start=start, enable_auto_commit=False)
        except BaseException:
            self.close()
            raise
        self.published = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ends ``run()`` after the batch in hand is acknowledged and committed."""
        self._stop.set()

    def run(self, until_end: bool = False) -> int:
        """Publishes until ``stop()`` (or, ``until_end``, until every row there
        when it finds nothing new is published); returns the messages published."""
        mqtt = self._mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        if self.address.username is not None:
            client.username_pw_set(self.address.username, self.address.password)
        try:
            client.connect(self.address.host, self.address.port, keepalive=self.keepalive)
        except OSError as e:
            raise BrokerError(f"cannot reach the MQTT broker at {self.address}: {e.strerror or e}") from None
        client.loop_start()
        try:
            while not self._stop.is_set():
                batch = self._consumer.poll_batch(max_records=self.batch_rows, timeout=0.25)
                if batch is None:
                    if until_end and not any(self._consumer.lag().values()):
                        break
                    continue
                self._publish(client, batch)
                self._consumer.commit()
        finally:
            client.disconnect()
            client.loop_stop()
        return self.published

    def _publish(self, client, batch: pa.RecordBatch) -> None:
        names = [n for n in batch.schema.names if n not in ("topic", "partition", "offset")]
        rows = _json_ready(batch.select(names)).to_pylist()
        template, fields = self.template, self._fields
        infos = []
        for row in rows:
            where = template
            for f in fields:
                where = where.replace("{" + f + "}", str(row[f]))
            infos.append(client.publish(where, json.dumps(row, separators=(",", ":"), default=_json_default), qos=1))
        deadline = time.monotonic() + _ACK_TIMEOUT_S
        for info in infos:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
            if not info.is_published():
                raise BrokerError(f"the MQTT broker at {self.address} did not acknowledge a message within "
                                  f"{_ACK_TIMEOUT_S:g} s (return code {info.rc})")
        self.published += len(infos)

    def close(self) -> None:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()
            self._consumer = None
        if self._owns_log and getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> "MqttPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Timestamp columns as their integers (in the column's unit)."""
    arrays = [pc.cast(col, pa.int64()) if pa.types.is_timestamp(col.type) else col for col in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


