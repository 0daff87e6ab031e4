"""A private Mosquitto broker for tests (Debian's ``mosquitto``, installed when
missing and we are root), and a real publisher (paho-mqtt)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tidelog.connect.mqtt.broker import PrivateMosquitto, find_mosquitto, free_port

__all__ = ["Broker", "Collector", "Publisher", "ensure_mosquitto", "free_port"]


def ensure_mosquitto() -> str | None:
    """The path of ``mosquitto`` (apt-installed once when missing and we are root), or None."""
    path = find_mosquitto()
    if path and shutil.which("mosquitto_pub"):
        return path
    if os.geteuid() != 0:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mosquitto", "mosquitto-clients"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            return None
    return find_mosquitto()


class Broker(PrivateMosquitto):
    """tidelog's private Mosquitto (tidelog.connect.mqtt.broker) with its
    config and log in ``directory``; the test is skipped when mosquitto is
    missing and cannot be installed."""

    def __init__(self, directory, max_inflight: int = 1000, max_queued: int = 1_000_000, port: int | None = None):
        if ensure_mosquitto() is None:
            pytest.skip("mosquitto is not installed and could not be (apt-get install mosquitto needs root)")
        super().__init__(directory, max_inflight=max_inflight, max_queued=max_queued, port=port)


class Publisher:
    """A paho-mqtt client publishing at QoS 1 and waiting for every PUBACK."""

    def __init__(self, broker: Broker, client_id: str = ""):
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, messages, timeout: float = 60) -> None:
        """``messages``: (MQTT topic, payload bytes or str) pairs."""
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
            assert info.is_published(), "the broker did not acknowledge a message"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """A paho-mqtt subscriber collecting (topic, payload) pairs of ``filter``."""

    def __init__(self, broker: Broker, topic_filter: str):
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK"

    def wait_for(self, n: int, timeout: float = 30) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
