"""tidelog's MQTT bridge in the mqtt workload (tidelog.bench.mqtt), and its
limit, ``mosquitto_sub`` draining the same stream to /dev/null.

Each contender starts its own private Mosquitto at setup, with its
subscriber's persistent subscription already in place; each round publishes the
workload's messages (outside the clock), then times the drain.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pyarrow as pa

from ..core import Contender, rmtree
from ..mqtt import BRIDGE, MOSQUITTO_SUB
from ._common import store_dir

SUBSCRIBE = "bench/#"
MQTT_TOPIC = "bench/readings"
CLIENT_ID = "bench-subscriber"
DRAIN_TIMEOUT_S = 600
SCHEMA = pa.schema([("id", pa.int64()), ("site", pa.string()), ("sensor_id", pa.int32()), ("value", pa.float64()),
                    ("ts", pa.timestamp("ms"))])
MAPPING = {"id": "id", "columns": {name: name for name in SCHEMA.names}}


class TidelogMqtt(Contender):
    """``role``: "bridge" (``MqttBridge.run``, durable appends) or "sub"
    (``mosquitto_sub -q 1 -c -C M > /dev/null``)."""

    NAMES = {"bridge": BRIDGE, "sub": MOSQUITTO_SUB}

    def __init__(self, role: str = "bridge"):
        self.role = role
        self.name = self.NAMES[role]
        self.kind = "tidelog" if role == "bridge" else "limit"
        self.description = {
            "bridge": "MqttBridge.run(max_messages=M): QoS 1, mapped onto a 5-column topic, appended durably "
                      "before each batch's PUBACKs",
            "sub": "mosquitto_sub -q 1 -c -C M > /dev/null: C, a PUBACK per message, nothing kept",
        }[role]

    def available(self) -> str | None:
        from ...connect.mqtt.broker import find_mosquitto

        if find_mosquitto() is None:
            return "the mosquitto program is not installed (Debian: apt-get install mosquitto)"
        for tool in ("mosquitto_pub",) + (("mosquitto_sub",) if self.role == "sub" else ()):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (Debian: apt-get install mosquitto-clients)"
        return super().available()

    def mqtt_setup(self, tmpdir, params, data):
        from ...connect.mqtt._wire import Subscriber, parse_broker_url
        from ...connect.mqtt.broker import PrivateMosquitto

        self.data, self.path = data, store_dir(tmpdir, self.name)
        self.broker = PrivateMosquitto(max_inflight=1000, max_queued=data.messages + 1000, log=False)
        if self.role == "bridge":
            Subscriber(parse_broker_url(self.broker.url), CLIENT_ID, [SUBSCRIBE]).close()
        else:
            self._sub("-E")
        # the subscription is persistent: from now on the broker queues every message for it

    def _sub(self, *args: str, stdout=None) -> None:
        subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-c",
                        "-i", CLIENT_ID, "-t", SUBSCRIBE, *args], stdout=stdout, check=True,
                       timeout=DRAIN_TIMEOUT_S)

    def _publish(self) -> None:
        for chunk in self.data.chunks:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1",
                            "-t", MQTT_TOPIC, "-l"], input=chunk, check=True, timeout=DRAIN_TIMEOUT_S)

    def mqtt_run(self, case):
        n = self.data.messages
        self._publish()
        if self.role == "sub":
            t0 = time.perf_counter()
            self._sub("-C", str(n), stdout=subprocess.DEVNULL)
            return {"seconds": time.perf_counter() - t0, "messages": n}
        return self._bridge_round(n)

    def _bridge_round(self, n: int) -> dict:
        import tidelog
        from ...connect.mqtt import MqttBridge

        log_dir = os.path.join(self.path, "log")
        rmtree(log_dir)   # a fresh log each round
        with tidelog.open(log_dir) as log:
            log.create_topic("readings", schema=SCHEMA, timestamp="ts")
            with MqttBridge(log, topic="readings", broker=self.broker.url, subscribe=SUBSCRIBE,
                            client_id=CLIENT_ID, mapping=MAPPING) as bridge:
                t0 = time.perf_counter()
                stats = bridge.run(max_messages=n)
                seconds = time.perf_counter() - t0
            rows = sum(log.topic("readings").end_offsets().values())
        if rows != n or stats.appended != n:
            raise AssertionError(f"{rows} rows appended of {n} ({stats.appended} by the bridge)")
        return {"seconds": seconds, "messages": n, "batches": stats.batches}

    def mqtt_teardown(self):
        self.broker.stop()
        rmtree(self.path)


__all__ = ["MAPPING", "SCHEMA", "TidelogMqtt"]
