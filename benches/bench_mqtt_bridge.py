#!/usr/bin/env python3
"""Messages/s through the MQTT bridge beside ``mosquitto_sub`` reading the same stream.

The ``mqtt`` workload of ``tidelog bench`` (tidelog/bench/mqtt.py says how it
measures; contenders in tidelog/bench/contenders/tidelog_mqtt.py) with a
chosen number of messages and rounds: the bridge's durable appends beside
``mosquitto_sub -q 1 -c -C M > /dev/null``, medians over the rounds with
their spread, the ratio of the medians (target >= 0.5). Exits 1 when the
target is not met. The same as ``tidelog bench -w mqtt --rounds N``, whose
default M is 200,000.

    python benches/bench_mqtt_bridge.py [--messages 200000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import sys

from tidelog.bench import Options, run_suite
from tidelog.bench.contenders.tidelog_mqtt import TidelogMqtt
from tidelog.bench.mqtt import Mqtt
from tidelog.bench.table import print_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=Mqtt.MESSAGES["full"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    contenders = [TidelogMqtt("bridge"), TidelogMqtt("sub")]
    for c in contenders:
        reason = c.available()
        if reason is not None:
            print(f"bench_mqtt_bridge: {c.name} cannot run: {reason}", file=sys.stderr)
            return 2
    doc = run_suite(Options(mode="full", rounds=args.rounds, log=lambda line: print(line, flush=True)),
                    contenders=contenders, workloads=[Mqtt(args.messages)])
    print_table(doc, plain=True)
    targets = doc["targets"]
    return 0 if targets and all(t["met"] for t in targets) and not doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
