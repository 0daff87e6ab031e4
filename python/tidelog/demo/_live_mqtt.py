"""How the live readings reach the topic: through an MQTT broker and
tidelog's MQTT bridge, or appended directly.

``--mqtt auto`` (the default) starts a private Mosquitto on a free loopback
port when the ``mosquitto`` program is installed (and paho-mqtt, the sensors'
client, is importable), and stops it at the end; otherwise the readings are
appended directly. ``--mqtt URL`` uses that broker (its queue and in-flight
limits are its own: see the MQTT guide), ``--mqtt off`` appends directly.

Through MQTT, every reading is one message: the sensors (a paho-mqtt client,
QoS 1) publish ``{"ts": <ns>, "value": <float>}`` to
``tidelog-demo/site-<n>/<sensor_id>``; the bridge (in this process, on a
thread) maps the topic level and the JSON onto the topic's columns, appends
in batches and acknowledges each message once its batch is durable.
"""
from __future__ import annotations

import collections
import contextlib
import json
import queue
import threading
import time
from typing import Any, Callable

import pyarrow as pa

from ..connect.mqtt.broker import PrivateMosquitto, find_mosquitto
from ..errors import InvalidArgumentError

MQTT_TOPIC_ROOT = "tidelog-demo"
SITES = 10
MAPPING = {
    "mqtt_topic": MQTT_TOPIC_ROOT + "/{site}/{sensor_id}",
    "columns": {
        "ts": {"json": "ts", "unit": "ns", "type": "timestamp[ns]"},
        "sensor_id": {"level": "sensor_id", "type": "int32"},
        "value": {"json": "value", "type": "float64"},
    },
}


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        return None
    return mqtt


def plan(mqtt: str) -> tuple[str, str | None]:
    """("direct" | "private" | "url", why direct / the URL)."""
    if mqtt == "off":
        return "direct", "--mqtt off"
    if mqtt != "auto":
        if not mqtt.startswith("mqtt://"):
            raise InvalidArgumentError(f"--mqtt takes mqtt://host:port, auto or off, not {mqtt!r}")
        if _paho() is None:
            raise InvalidArgumentError("--mqtt needs paho-mqtt for the simulated sensors: pip install 'tidelog[mqtt]'")
        return "url", mqtt
    if find_mosquitto() is None:
        return "direct", "no mosquitto installed"
    if _paho() is None:
        return "direct", "paho-mqtt not installed"
    return "private", None


class _Sensors:
    """The sensors' MQTT client: each tick's readings as QoS 1 messages.

    Flow control: a QoS 1 message holds its 16-bit packet id from publish() to
    its PUBACK, queued in the client or in flight, so at most 65,535 can be
    outstanding; past that paho reuses an id still held and drops the message
    (``MQTT_ERR_QUEUE_SIZE``). When the broker or the bridge falls behind (a
    busy machine), send() waits for the oldest PUBACKs instead, so that every
    reading counted is delivered; the feed's later ticks then go out late."""

    MAX_OUTSTANDING = 30_000  # well under the 65,535 packet ids

    def __init__(self, url: str, max_outstanding: int = MAX_OUTSTANDING):
        mqtt = _paho()
        self._mqtt = mqtt
        host, _, port = url[len("mqtt://"):].rstrip("/").rpartition(":")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.max_outstanding = max_outstanding
        self.pending: collections.deque[Any] = collections.deque()
        self.waits = 0  # how often send() waited for PUBACKs

    def _wait_below(self, limit: int, timeout_s: float = 60.0) -> None:
        """Waits until fewer than ``limit`` messages await their PUBACK."""
        pending = self.pending
        while pending and pending[0].is_published():
            pending.popleft()
        if len(pending) < limit:
            return
        self.waits += 1
        deadline = time.monotonic() + timeout_s
        while len(pending) >= limit:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the MQTT broker acknowledged none of {len(pending):,} messages "
                                   f"in {timeout_s:.0f} s")
            pending[0].wait_for_publish(left)
            while pending and pending[0].is_published():
                pending.popleft()

    def send(self, batch: pa.RecordBatch) -> None:
        ts = batch.column("ts").cast(pa.int64()).to_pylist()
        ids = batch.column("sensor_id").to_pylist()
        values = batch.column("value").to_pylist()
        publish, pending, limit = self.client.publish, self.pending, self.max_outstanding
        queue_full = self._mqtt.MQTT_ERR_QUEUE_SIZE
        for t, sensor, v in zip(ts, ids, values):
            if len(pending) >= limit:
                self._wait_below(limit)
            topic = f"{MQTT_TOPIC_ROOT}/site-{sensor % SITES}/{sensor}"
            payload = json.dumps({"ts": t, "value": v}).encode()
            info = publish(topic, payload, qos=1)
            while info.rc == queue_full:  # an id still held after all (a PUBACK overtaken): wait, send again
                if not pending:
                    raise RuntimeError("the MQTT client refused a message with none outstanding")
                self._wait_below(len(pending))
                info = publish(topic, payload, qos=1)
            pending.append(info)

    def close(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        for p in self.pending:
            p.wait_for_publish(max(0.001, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()


def _sensors_process(url: str, sensors: int, seconds: float, ticks_done: Any, result: Any) -> None:
    """The sensors as a process of their own (devices are not in the bridge's
    process): publishes the live feed, waits for every PUBACK."""
    from ._feed import LiveSensors

    client = _Sensors(url)
    feed = LiveSensors(sensors, seconds)

    def tick(i: int, n: int) -> None:
        ticks_done.value = i

    rows, took = feed.run(client.send, tick)
    client.close()
    result.put((rows, took))


def run_live(mqtt: str, log: Any, topic: Any, sensors: int, seconds: float,
             on_tick: Callable[[int, int], None]) -> tuple[int, float, str]:
    """Runs the live feed for ``seconds``. Returns (rows, seconds, how the
    readings travelled). Through MQTT it returns once the bridge has appended
    every reading the sensors published; nothing it started is left running."""
    from ._feed import LiveSensors

    how, detail = plan(mqtt)
    if how == "direct":
        rows, took = LiveSensors(sensors, seconds).run(topic.append, on_tick)
        return rows, took, f"appended directly ({detail})"
    import multiprocessing

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(PrivateMosquitto(max_inflight=1000, max_queued=0, log=False)).url \
            if how == "private" else detail
        from ..connect.mqtt import Mapping, MqttBridge

        bridge = stack.enter_context(MqttBridge(log, topic=topic.name, broker=url,
                                                subscribe=f"{MQTT_TOPIC_ROOT}/#", mapping=Mapping.from_dict(MAPPING),
                                                client_id="tidelog-demo-bridge", linger_ms=20))
        subscribed = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                bridge.run(on_subscribed=subscribed.set)
            except BaseException as e:  # reported below
                failure.append(e)
                subscribed.set()

        thread = threading.Thread(target=run, name="tidelog-demo-mqtt-bridge", daemon=True)
        thread.start()
        stack.callback(thread.join, 30)
        stack.callback(bridge.stop)
        subscribed.wait(30)
        if failure:
            raise failure[0]
        ctx = multiprocessing.get_context("spawn")
        ticks_done, result = ctx.Value("i", 0), ctx.Queue()
        proc = ctx.Process(target=_sensors_process, args=(url, sensors, seconds, ticks_done, result), daemon=True,
                           name="tidelog-demo-sensors")
        proc.start()
        stack.callback(lambda: (proc.kill(), proc.join()) if proc.is_alive() else None)
        total = max(1, int(round(seconds * 10)))
        while proc.is_alive() and result.empty():
            on_tick(ticks_done.value, total)
            time.sleep(0.1)
        try:
            rows, took = result.get(timeout=60)
        except queue.Empty:
            proc.join(10)
            raise RuntimeError(f"the simulated sensors' process ended (exit code {proc.exitcode}) without "
                               "reporting what it published: see its traceback above") from None
        proc.join(10)
        deadline = time.monotonic() + 60
        while bridge.stats.appended + bridge.stats.duplicates < rows and time.monotonic() < deadline and not failure:
            time.sleep(0.02)
        if failure:
            raise failure[0]
        where = "a private Mosquitto" if how == "private" else url
        return rows, took, f"through MQTT ({where}, QoS 1, from a sensors process) and the MQTT bridge"
