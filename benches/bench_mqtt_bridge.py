#!/usr/bin/env python3
"""Messages/s through the MQTT bridge beside ``mosquitto_sub`` reading the same stream.

A private Mosquitto broker (tests/_mqtt.py) holds two persistent QoS 1
sessions subscribed to ``bench/#``: the bridge's and mosquitto_sub's. Each
round publishes the same M JSON messages of about 100 bytes once (both
sessions queue every one), then times each subscriber draining its queue:

* ``mosquitto_sub -q 1 -c -C M > /dev/null``: C, a PUBACK per message, nothing kept;
* ``MqttBridge.run(max_messages=M)``: the messages mapped onto a 5-column topic
  (id int64, site string, sensor_id int32, value float64, ts timestamp[ms];
  the id mapped, so the dedupe record is kept), appended durably (fdatasync)
  in batches of 10,000, PUBACKs sent after each append.

The order of the two alternates between rounds; the figures are medians over
the rounds with their spread, and the ratio is of the medians (target >= 0.5).

    python benches/bench_mqtt_bridge.py [--messages 200000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow as pa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import tidelog  # noqa: E402
from _mqtt import Broker  # noqa: E402
from tidelog.connect.mqtt import MqttBridge  # noqa: E402
from tidelog.connect.mqtt._wire import Subscriber, parse_broker_url  # noqa: E402

SCHEMA = pa.schema([("id", pa.int64()), ("site", pa.string()), ("sensor_id", pa.int32()), ("value", pa.float64()),
                    ("ts", pa.timestamp("ms"))])
MAPPING = {"id": "id", "columns": {name: name for name in SCHEMA.names}}
CHUNK = 50_000  # mosquitto_pub -l gave up on much longer inputs


def message_files(directory: str, n: int) -> list[str]:
    paths = []
    for start in range(0, n, CHUNK):
        path = os.path.join(directory, f"messages-{start}.txt")
        with open(path, "w") as f:
            for i in range(start, min(n, start + CHUNK)):
                f.write(json.dumps({"id": i, "site": f"site-{i % 7}", "sensor_id": i % 1000,
                                    "value": round(i * 0.37, 2), "ts": 1_767_225_600_000 + i}) + "\n")
        paths.append(path)
    return paths


def publish(broker: Broker, paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t",
                            "bench/readings", "-l"], stdin=f, check=True)


def mosquitto_sub_seconds(broker: Broker, n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i", "bench-sub",
                    "-t", "bench/#", "-C", str(n)], stdout=subprocess.DEVNULL, check=True, timeout=600)
    return time.perf_counter() - t0


def bridge_seconds(broker: Broker, log_dir: str, n: int) -> tuple[float, int]:
    shutil.rmtree(log_dir, ignore_errors=True)
    with tidelog.open(log_dir) as log:
        log.create_topic("readings", schema=SCHEMA, timestamp="ts")
        with MqttBridge(log, topic="readings", broker=broker.url, subscribe="bench/#", client_id="bench-bridge",
                        mapping=MAPPING) as bridge:
            t0 = time.perf_counter()
            stats = bridge.run(max_messages=n)
            seconds = time.perf_counter() - t0
        rows = sum(log.topic("readings").end_offsets().values())
    if rows != n or stats.appended != n:
        raise AssertionError(f"{rows} rows appended of {n}")
    return seconds, stats.batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.messages
    root = tempfile.mkdtemp(prefix="tidelog-bench-mqtt-")
    broker = Broker(root, max_inflight=1000, max_queued=n + 1000)
    try:
        paths = message_files(root, n)
        size = os.path.getsize(paths[0]) / min(n, CHUNK)
        Subscriber(parse_broker_url(broker.url), "bench-bridge", ["bench/#"]).close()   # the sessions exist
        subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i",
                        "bench-sub", "-t", "bench/#", "-E"], check=True)
        sub_rates, bridge_rates = [], []
        for r in range(args.rounds):
            publish(broker, paths)
            runs = [("sub", lambda: mosquitto_sub_seconds(broker, n)),
                    ("bridge", lambda: bridge_seconds(broker, os.path.join(root, "log"), n)[0])]
            for name, run in (runs if r % 2 == 0 else runs[::-1]):
                seconds = run()
                (sub_rates if name == "sub" else bridge_rates).append(n / seconds)
            print(f"round {r + 1}: mosquitto_sub {sub_rates[-1]:,.0f} msg/s, bridge {bridge_rates[-1]:,.0f} msg/s",
                  flush=True)
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    sub, bridge = statistics.median(sub_rates), statistics.median(bridge_rates)
    print(f"{n:,} messages of {size:.0f} B, QoS 1, {args.rounds} rounds (medians, min-max):")
    print(f"  mosquitto_sub -q 1 > /dev/null : {sub:,.0f} msg/s ({min(sub_rates):,.0f}-{max(sub_rates):,.0f})")
    print(f"  tidelog connect mqtt (durable) : {bridge:,.0f} msg/s ({min(bridge_rates):,.0f}-{max(bridge_rates):,.0f})")
    print(f"  ratio {bridge / sub:.2f} (target >= 0.5)")
    return 0 if bridge / sub >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
