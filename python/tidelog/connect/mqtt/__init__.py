"""The MQTT bridge: an MQTT subscription appended to a columnar topic, and a
topic republished to MQTT (``tidelog connect mqtt``).

Contract:

* **Ingest** (``MqttBridge``, ``tidelog connect mqtt DIR --subscribe F --to
  TOPIC``): subscribes at QoS 1 with a persistent session (a fixed client
  id, clean session off), maps each message's JSON payload, MQTT topic
  levels, constants and arrival time onto the topic's columns as the
  mapping says (``Mapping``; TOML, docs/guide/mqtt.md), and appends them in
  batches (by count, payload bytes, a linger time, or as soon as nothing
  more is arriving). A batch is acknowledged to the broker (PUBACK, in the
  order the messages came) only after its append is durable (fdatasync): a
  crash of the bridge or of the machine loses nothing the broker delivered,
  since the broker sends every unacknowledged message again to the session.
  Delivery is at least once.
* **Duplicates.** What a crash can repeat is what was appended but not yet
  acknowledged: at most the broker's in-flight window (mosquitto's
  ``max_inflight_messages``). When the mapping names an ``id`` column, the
  bridge reads back the ids of the last ``dedupe_window`` rows of each
  partition at start and remembers those it appends, and drops (and
  acknowledges) a message whose id it holds: exactly once while the window
  is at least the in-flight window, as it is by default (100,000 ids).
  Ids older than the window are forgotten; a message re-published with an
  old id after that is appended again.
* **Messages that do not fit** (not JSON, wrong types, a required value
  missing, an MQTT topic outside the mapping's pattern): ``on_error="skip"``
  counts (``stats.skipped``), logs and acknowledges them; ``"stop"`` appends
  and acknowledges the messages before it and raises
  ``MessageMappingError``, leaving it with the broker.
* **Broker limits matter.** A broker drops QoS 1 messages for a session
  whose queue is full (mosquitto: ``max_queued_messages``, 1000 by default),
  whether the bridge is away or just slower than the publishers; size it
  for the longest outage to ride out. Its in-flight window (mosquitto:
  ``max_inflight_messages``, 20 by default) is how many messages it sends
  before it waits for PUBACKs, so it can bound a batch: the bridge appends
  as soon as nothing more arrives, and a larger window makes larger batches.
* **Republishing** (``MqttPublisher``, ``--publish TOPIC``): every row as a
  JSON object at QoS 1 to an MQTT topic made from the row (a template), the
  position kept in a consumer group committed after the broker acknowledged
  the batch (at least once). Needs paho-mqtt (``pip install
  'tidelog[mqtt]'``); the ingest side speaks MQTT 3.1.1 itself (_wire.py
  says why) and needs nothing beyond tidelog's own dependencies.
* **A private broker** (``broker.PrivateMosquitto``, ``find_mosquitto``):
  the installed ``mosquitto`` started on a free loopback port with a config
  of its own, for the demo, the ``mqtt`` benchmark and the tests; a clear
  ``BrokerError`` when the program is missing or does not start.
"""
from __future__ import annotations

from ...errors import BrokerError, MappingError, MessageMappingError
from ._bridge import BridgeStats, MqttBridge
from ._mapping import Mapping
from ._publish import MqttPublisher

__all__ = ["BridgeStats", "BrokerError", "Mapping", "MappingError", "MessageMappingError", "MqttBridge",
           "MqttPublisher"]
