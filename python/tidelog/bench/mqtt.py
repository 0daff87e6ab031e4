"""The ``mqtt`` workload: messages/s through tidelog's MQTT bridge
(``tidelog connect mqtt``, tidelog.connect.mqtt) beside ``mosquitto_sub``
draining the same stream.

Each contender has a private Mosquitto (tidelog.connect.mqtt.broker) holding
a persistent QoS 1 subscription to ``bench/#``. Each round first
publishes the same M JSON messages of about 100 bytes (``mosquitto_pub -q 1
-l``, outside the clock; the broker queues every one), then times the
subscriber draining its queue:

* ``mosquitto_sub -q 1 -c -C M > /dev/null`` (the limit): C, a PUBACK per
  message, nothing kept;
* ``MqttBridge.run(max_messages=M)``: the messages mapped onto a 5-column
  topic (id int64, site string, sensor_id int32, value float64, ts
  timestamp[ms]; the id mapped, so the dedupe record is kept), appended
  durably (fdatasync) in batches, PUBACKs sent after each append, into a
  fresh log each round.

The broker's in-flight window is 1000 messages, its queue M + 1000. Target:
the bridge at >= 0.5x mosquitto_sub's messages/s. The contenders are in
contenders/tidelog_mqtt.py; benches/bench_mqtt_bridge.py runs this workload
with a chosen M and number of rounds.
"""
from __future__ import annotations

import dataclasses
import json

from .core import Metric, Target, Workload

BRIDGE = "tidelog connect mqtt"
MOSQUITTO_SUB = "mosquitto_sub -q 1"
CHUNK = 50_000   # lines per mosquitto_pub -l call: it gave up on much longer inputs


@dataclasses.dataclass
class MqttData:
    messages: int
    chunks: list[bytes]           # mosquitto_pub -l inputs: one JSON message a line

    @property
    def message_bytes(self) -> float:
        return (sum(len(c) for c in self.chunks) - self.messages) / self.messages   # without the newlines


def message_lines(start: int, stop: int) -> bytes:
    """Messages ``start`` to ``stop`` - 1, one JSON object a line (about 100 bytes each)."""
    return b"".join(json.dumps({"id": i, "site": f"site-{i % 7}", "sensor_id": i % 1000,
                                "value": round(i * 0.37, 2), "ts": 1_767_225_600_000 + i}).encode() + b"\n"
                    for i in range(start, stop))


class Mqtt(Workload):
    name = "mqtt"
    title = "17. MQTT bridge"
    description = (
        "A private Mosquitto per contender, a persistent QoS 1 subscription to `bench/#`; each round publishes the "
        "same M JSON messages of ~100 B (`mosquitto_pub -q 1 -l`, outside the clock), then times draining "
        "the queue: `MqttBridge.run(max_messages=M)` mapping them onto a 5-column topic and appending durably "
        "(fdatasync) before each batch's PUBACKs, beside `mosquitto_sub -q 1 -c -C M > /dev/null`. Messages/s."
    )
    param_names = ("messages",)
    MESSAGES = {"smoke": 300, "quick": 20_000, "full": 200_000}

    def __init__(self, messages: int | None = None):
        self.messages = messages    # a fixed M (benches/bench_mqtt_bridge.py) instead of the mode's

    def grid(self, mode, opts):
        return [{"messages": self.messages or self.MESSAGES[mode]}]

    def make_data(self, params, mode):
        n = params["messages"]
        return MqttData(n, [message_lines(s, min(n, s + CHUNK)) for s in range(0, n, CHUNK)])

    def limit(self, params, case):
        return MOSQUITTO_SUB

    def primary(self, params, case):
        return Metric("msgs/s")

    def metrics(self, params, case, m):
        out = {"msgs/s": m["messages"] / m["seconds"]}
        if m.get("batches"):
            out["msgs/batch"] = m["messages"] / m["batches"]
        return out

    def targets(self, mode, opts):
        return [Target(f"{g['messages']:,} QoS 1 messages, durable, >= 0.5x {MOSQUITTO_SUB} > /dev/null",
                       BRIDGE, MOSQUITTO_SUB, {"messages": g["messages"]}, 0.5) for g in self.grid(mode, opts)]

    def label(self, params, case):
        return f"{params['messages']:,} messages, QoS 1"


__all__ = ["BRIDGE", "CHUNK", "MOSQUITTO_SUB", "Mqtt", "MqttData", "message_lines"]
