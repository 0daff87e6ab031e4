"""``tidelog topics``: list, describe, alter and compact the topics of a log
(Kafka's ``kafka-topics.sh --describe`` and ``kafka-configs.sh --alter``)."""
from __future__ import annotations

import argparse
import json
import sys

from .._log import ALTERABLE_TOPIC_CONFIGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("list", help="the topics of a log")
    ls.add_argument("path", help="the log folder")
    describe = verbs.add_parser("describe", help="partitions, offsets, bytes, configuration (and compaction)")
    describe.add_argument("path", help="the log folder")
    describe.add_argument("topic")
    describe.add_argument("--json", action="store_true", help="print the description as JSON")
    alter = verbs.add_parser("alter", help="change retention and compaction settings, durably, for every process",
                             description="Settings it changes: " + ", ".join(ALTERABLE_TOPIC_CONFIGS))
    alter.add_argument("path", help="the log folder")
    alter.add_argument("topic")
    alter.add_argument("--set", metavar="NAME=VALUE", nargs="+", required=True,
                       help="for example cleanup_policy=compact delete_retention_ms=3600000 (Kafka's dotted "
                            "names work too: cleanup.policy=compact); 'none' clears retention_ms/retention_bytes")
    compact = verbs.add_parser("compact", help="run the log cleaner over a compacted topic now")
    compact.add_argument("path", help="the log folder")
    compact.add_argument("topic")


def _parse_settings(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace(".", "_")
        if not sep or not name:
            raise SystemExit(f"tidelog topics alter: --set takes NAME=VALUE, not {item!r}")
        value: object = text
        if name == "cleanup_policy":
            value = text
        elif text.lower() in ("none", "null", "-1") and name in ("retention_ms", "retention_bytes"):
            value = None
        else:
            try:
                value = float(text) if name == "min_cleanable_dirty_ratio" else int(text)
            except ValueError:
                raise SystemExit(f"tidelog topics alter: {name} takes a number, not {text!r}") from None
        out[name] = value
    return out


def main(args: argparse.Namespace) -> int:
    import tidelog

    try:
        with tidelog.open(args.path, read_only=args.verb in ("list", "describe")) as log:
            if args.verb == "list":
                for name in log.topics():
                    print(name)
            elif args.verb == "describe":
                d = log.topic(args.topic).describe()
                if args.json:
                    print(json.dumps(d, indent=2, default=str))
                else:
                    _print(d)
            elif args.verb == "alter":
                config = log.alter_topic(args.topic, **_parse_settings(args.set))
                for name in ALTERABLE_TOPIC_CONFIGS:
                    print(f"{name} = {config[name]}")
            elif args.verb == "compact":
                totals = log.topic(args.topic).compact_now()
                print(", ".join(f"{k} {v}" for k, v in totals.items()))
    except tidelog.TidelogError as e:
        print(f"tidelog topics: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def _print(d: dict) -> None:
    c = d["config"]
    print(f"topic {d['name']}: {len(d['partitions'])} partitions, {d['records']} offsets, {d['bytes']} bytes, "
          f"cleanup_policy={c['cleanup_policy']}")
    for p in d["partitions"]:
        line = (f"  {p['partition']}: offsets {p['start_offset']}..{p['end_offset']}, {p['bytes']} bytes, "
                f"{p['segments']} segments")
        comp = p.get("compaction")
        if comp:
            line += (f", dirty ratio {comp['dirty_ratio']:.2f}, clean below {comp['clean_end_offset']}, "
                     f"{comp['bytes_reclaimed']} bytes reclaimed in {comp['compaction_passes']} passes")
        print(line)
    print("  config: " + ", ".join(f"{k}={v}" for k, v in c.items() if k != "name"))
