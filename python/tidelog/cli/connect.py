"""``tidelog connect``: bridges between a log and other messaging systems.

``tidelog connect mqtt DIR --broker URL --subscribe FILTER --to TOPIC [--map FILE]``
appends an MQTT subscription to a topic (tidelog.connect.mqtt.MqttBridge);
``--publish TOPIC`` republishes a topic to MQTT (MqttPublisher).
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import TextIO

from ._errors import CliError, usage_error

DESCRIPTION = """\
Bridges a log and an MQTT broker.

  tidelog connect mqtt data/ --broker mqtt://127.0.0.1:1883 --subscribe 'sensors/#' --to sensors --map map.toml
  tidelog connect mqtt data/ --broker mqtt://127.0.0.1:1883 --publish sensors --mqtt-topic 'out/{sensor_id}'

Ingest subscribes at QoS 1 with a persistent session and acknowledges each
message only once the batch holding it is durable in the topic (at least
once; exactly once when the mapping names an id column). It runs until
SIGINT/SIGTERM (or --max-messages / --idle-exit), appending and
acknowledging the batch in hand before it exits.

Exit status: 0 stopped as asked, 1 failed (broker unreachable or refusing,
a message that does not fit under --on-error stop, storage error, paho-mqtt
missing for --publish), 2 bad arguments (an unusable mapping or broker URL,
a log folder or topic that does not exist)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    systems = parser.add_subparsers(dest="verb", metavar="SYSTEM")
    mqtt = systems.add_parser("mqtt", help="MQTT: subscribe into a topic, or publish a topic",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    mqtt.add_argument("path", help="the log folder")
    mqtt.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://[user[:password]@]host[:port]")
    ingest = mqtt.add_argument_group("ingest (MQTT to a topic)")
    ingest.add_argument("--subscribe", action="append", metavar="FILTER",
                        help="an MQTT topic filter such as 'sensors/#' (repeatable)")
    ingest.add_argument("--to", metavar="TOPIC", help="the topic to append to")
    ingest.add_argument("--map", metavar="FILE", help="TOML mapping file (default: JSON keys = column names)")
    ingest.add_argument("--on-error", choices=["skip", "stop"],
                        help="messages that do not fit: count and skip them, or stop (default: the mapping's, "
                             "else skip)")
    ingest.add_argument("--client-id", help="MQTT client id, naming the persistent session (default: "
                                            "tidelog-<topic>, tidelog-publish-<topic> for --publish)")
    ingest.add_argument("--batch-rows", type=int, default=10_000, metavar="N", help="messages per append at most")
    ingest.add_argument("--linger-ms", type=float, default=100.0, metavar="MS",
                        help="longest wait for a batch to fill (default 100)")
    ingest.add_argument("--dedupe-window", type=int, default=100_000, metavar="N",
                        help="ids remembered per partition for dropping redelivered messages (default 100000)")
    ingest.add_argument("--max-messages", type=int, metavar="N", help="exit after N messages")
    ingest.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit when nothing arrived for SECONDS")
    publish = mqtt.add_argument_group("republish (a topic to MQTT)")
    publish.add_argument("--publish", metavar="TOPIC", help="the topic whose rows to publish")
    publish.add_argument("--mqtt-topic", metavar="TEMPLATE",
                         help="where each row goes, {column} replaced by its value (default tidelog/<topic>)")
    publish.add_argument("--group", help="consumer group keeping the position (default mqtt-publish-<topic>)")
    publish.add_argument("--start", choices=["earliest", "latest"], default="earliest",
                         help="where a new group starts (default earliest)")
    publish.add_argument("--until-end", action="store_true", help="exit once every row is published")
    mqtt.add_argument("--json", action="store_true", help="print the final counters as JSON")


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    problem = _argument_problem(args)
    if problem:
        raise usage_error(problem)
    try:
        if args.publish:
            return _publish(args, out, err)
        return _ingest(args, out, err)
    except ImportError as e:  # paho-mqtt, for --publish
        raise CliError(str(e)) from None


def _argument_problem(args: argparse.Namespace) -> str | None:
    if args.publish and (args.subscribe or args.to):
        return "--publish republishes a topic; --subscribe/--to ingest one: give one or the other"
    if not args.publish and not (args.subscribe and args.to):
        return "give --subscribe FILTER and --to TOPIC (ingest), or --publish TOPIC"
    for name in ("batch_rows", "dedupe_window", "max_messages"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if args.linger_ms < 0 or (args.idle_exit is not None and args.idle_exit <= 0):
        return "--linger-ms must not be negative and --idle-exit must be positive"
    return None


def _on_signals(stop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())


def _log_to(err: TextIO) -> None:
    """The bridge's warnings (skipped messages, reconnects) as lines on ``err``."""
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("tidelog connect mqtt: %(message)s"))
    log = logging.getLogger("tidelog.connect.mqtt")
    log.addHandler(handler)
    log.propagate = False


def _ingest(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..connect.mqtt import MqttBridge

    _log_to(err)

    with MqttBridge(args.path, topic=args.to, broker=args.broker, subscribe=args.subscribe, mapping=args.map,
                    client_id=args.client_id, batch_rows=args.batch_rows, linger_ms=args.linger_ms,
                    on_error=args.on_error, dedupe_window=args.dedupe_window) as bridge:
        _on_signals(bridge.stop)

        def subscribed() -> None:
            out.write(f"subscribed to {', '.join(args.subscribe)} on {bridge.address} as {bridge.client_id!r}, "
                      f"appending to {args.to!r}\n")
            out.flush()

        stats = bridge.run(max_messages=args.max_messages, idle_timeout=args.idle_exit, on_subscribed=subscribed)
    if args.json:
        out.write(json.dumps(stats.to_dict()) + "\n")
    else:
        rate = stats.handled / stats.seconds if stats.seconds > 0 else 0.0
        out.write(f"{stats.received:,} messages received: {stats.appended:,} appended in {stats.batches:,} "
                  f"batches, {stats.duplicates:,} duplicates dropped, {stats.skipped:,} skipped; "
                  f"{stats.seconds:.1f} s ({rate:,.0f} messages/s)\n")
    return 0


def _publish(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..connect.mqtt import MqttPublisher

    with MqttPublisher(args.path, topic=args.publish, broker=args.broker, mqtt_topic=args.mqtt_topic,
                       group=args.group, start=args.start, client_id=args.client_id) as publisher:
        _on_signals(publisher.stop)
        n = publisher.run(until_end=args.until_end)
    if args.json:
        out.write(json.dumps({"published": n}) + "\n")
    else:
        out.write(f"{n:,} rows of {args.publish!r} published to {publisher.template!r}\n")
    return 0
