"""``tidelog topics``: list, describe, create, alter, delete and compact the
topics of a log (Kafka's ``kafka-topics.sh`` and ``kafka-configs.sh --alter``,
rpk's ``rpk topic``)."""
from __future__ import annotations

import argparse
import json
import re
import sys

from .._log import ALTERABLE_TOPIC_CONFIGS
from ._errors import CliError, require_log_folder, usage_error
from ._output import human_bytes, print_table

EXAMPLES = """\
examples:
  tidelog topics list data/
  tidelog topics create data/ orders --partitions 3
  tidelog topics create data/ sensors --partitions 4 --key sensor_id --timestamp ts \\
      --schema 'ts:timestamp[ns],sensor_id:int32,value:float64' --compression zstd
  tidelog topics describe data/ sensors
  tidelog topics alter data/ orders --set retention_ms=86400000
  tidelog topics delete data/ old-orders
  tidelog topics compact data/ accounts
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("list", help="the topics of a log, with partitions, records and bytes",
                          epilog="examples:\n  tidelog topics list data/\n  tidelog topics list data/ --names\n")
    ls.add_argument("path", help="the log folder")
    ls.add_argument("--names", action="store_true", help="topic names only, one a line (for scripts)")
    ls.add_argument("--plain", action="store_true", help="a plain-text table even on a terminal")
    describe = verbs.add_parser("describe", help="partitions, offsets, bytes, schema, configuration (and compaction)",
                                epilog="examples:\n  tidelog topics describe data/ sensors\n"
                                       "  tidelog topics describe data/ sensors --json\n")
    describe.add_argument("path", help="the log folder")
    describe.add_argument("topic")
    describe.add_argument("--json", action="store_true", help="print the description as JSON")
    create = verbs.add_parser(
        "create", help="create a topic: byte records (Kafka's) or, with --schema, columnar",
        epilog="The log folder is created if it does not exist.\n\n"
               "examples:\n  tidelog topics create data/ orders --partitions 3\n"
               "  tidelog topics create data/ sensors -p 4 --key sensor_id --timestamp ts \\\n"
               "      --schema 'ts:timestamp[ns],sensor_id:int32,value:float64'\n"
               "  tidelog topics create data/ accounts --set cleanup_policy=compact\n")
    create.add_argument("path", help="the log folder")
    create.add_argument("topic")
    create.add_argument("--partitions", "-p", type=int, default=1, metavar="N", help="default 1")
    create.add_argument("--schema", metavar="NAME:TYPE,...",
                        help="a columnar topic with these columns; types are Arrow's names: int8..int64, "
                             "uint8..uint64, float32, float64, bool, string, binary, date32, timestamp[s|ms|us|ns], "
                             "timestamp[ns, tz=UTC]. Without it: byte records (key, value, headers)")
    create.add_argument("--key", metavar="COLUMN", help="columnar: the column that picks the partition")
    create.add_argument("--timestamp", metavar="COLUMN", help="columnar: the column of the time index")
    create.add_argument("--durability", choices=["fsync", "interval", "none"], default="fsync")
    create.add_argument("--compression", choices=["none", "zstd"], default="none")
    create.add_argument("--set", metavar="NAME=VALUE", nargs="+", default=[],
                        help="other settings, e.g. retention_ms=86400000 cleanup_policy=compact segment_bytes=64M")
    alter = verbs.add_parser("alter", help="change retention and compaction settings, durably, for every process",
                             description="Settings it changes: " + ", ".join(ALTERABLE_TOPIC_CONFIGS),
                             epilog="examples:\n  tidelog topics alter data/ orders --set retention_ms=86400000\n"
                                    "  tidelog topics alter data/ accounts --set cleanup.policy=compact\n"
                                    "  tidelog topics alter data/ orders --set retention_ms=none\n")
    alter.add_argument("path", help="the log folder")
    alter.add_argument("topic")
    alter.add_argument("--set", metavar="NAME=VALUE", nargs="+", required=True,
                       help="for example cleanup_policy=compact delete_retention_ms=3600000 (Kafka's dotted "
                            "names work too: cleanup.policy=compact); 'none' clears retention_ms/retention_bytes")
    delete = verbs.add_parser("delete", help="delete topics and their data",
                              epilog="examples:\n  tidelog topics delete data/ old-orders\n"
                                     "  tidelog topics delete data/ a b c\n")
    delete.add_argument("path", help="the log folder")
    delete.add_argument("topics", nargs="+", metavar="topic")
    compact = verbs.add_parser("compact", help="run the log cleaner over a compacted topic now",
                               epilog="example:\n  tidelog topics compact data/ accounts\n")
    compact.add_argument("path", help="the log folder")
    compact.add_argument("topic")


_SIZE = re.compile(r"^(\d+)([kKmMgGtT])i?[bB]?$")
_FLOAT_SETTINGS = ("min_cleanable_dirty_ratio",)
_TEXT_SETTINGS = ("cleanup_policy", "durability", "compression", "key", "timestamp")


def parse_settings(items: list[str]) -> dict:
    """``NAME=VALUE`` pairs as keyword arguments (Kafka's dotted names too;
    sizes such as 64M; 'none' clears retention)."""
    out: dict = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace(".", "_")
        if not sep or not name:
            raise usage_error(f"--set takes NAME=VALUE, not {item!r}")
        value: object
        if name in _TEXT_SETTINGS:
            value = text
        elif text.lower() in ("none", "null", "-1") and name in ("retention_ms", "retention_bytes", "segment_ms"):
            value = None
        else:
            try:
                if name in _FLOAT_SETTINGS:
                    value = float(text)
                elif m := _SIZE.match(text.strip()):
                    value = int(m.group(1)) << (10 * "kmgt".index(m.group(2).lower()) + 10)
                else:
                    value = int(text)
            except ValueError:
                raise usage_error(f"{name} takes a number, not {text!r}") from None
        out[name] = value
    return out


def parse_schema(text: str):
    """``"ts:timestamp[ns],sensor_id:int32,value:float64"`` as a pa.Schema."""
    import pyarrow as pa

    fields = []
    for part in re.split(r",(?![^\[]*\])", text):
        name, sep, type_text = part.partition(":")
        name, type_text = name.strip(), type_text.strip()
        if not sep or not name or not type_text:
            raise usage_error(f"--schema takes NAME:TYPE,... (e.g. ts:timestamp[ns],value:float64), not {part!r}")
        fields.append(pa.field(name, _arrow_type(type_text)))
    return pa.schema(fields)


def _arrow_type(text: str):
    import pyarrow as pa

    m = re.fullmatch(r"timestamp\[(s|ms|us|ns)\s*,\s*tz\s*=\s*([^\]]+)\]", text)
    if m:
        return pa.timestamp(m.group(1), tz=m.group(2).strip())
    try:
        return pa.type_for_alias(text)
    except ValueError:
        raise usage_error(f"--schema: unknown type {text!r} (Arrow names such as int32, float64, string, "
                          "timestamp[ns])") from None


def main(args: argparse.Namespace) -> int:
    import tidelog

    if args.verb == "create":
        settings = parse_settings(args.set)
        schema = parse_schema(args.schema) if args.schema else None
        for option in ("key", "timestamp"):
            if getattr(args, option) is not None:
                settings[option] = getattr(args, option)
        settings.setdefault("durability", args.durability)
        settings.setdefault("compression", args.compression)
        if schema is None and ("key" in settings or "timestamp" in settings):
            raise usage_error("--key and --timestamp name columns of a --schema (byte records are keyed per record)")
        with tidelog.open(args.path) as log:
            try:
                topic = log.create_topic(args.topic, schema=schema, partitions=args.partitions, **settings)
            except (ValueError, TypeError) as e:  # a setting the topic refuses (not every check is typed)
                raise usage_error(str(e)) from None
            kind = f"columnar ({', '.join(topic.schema.names)})" if schema is not None else "byte records"
            print(f"created topic {args.topic!r}: {args.partitions} partition(s), {kind}")
        return 0
    require_log_folder(args.path)
    if args.verb == "alter":
        settings = parse_settings(args.set)
    with tidelog.open(args.path, read_only=args.verb in ("list", "describe")) as log:
        if args.verb == "list":
            _list(log, args)
        elif args.verb == "describe":
            d = log.topic(args.topic).describe()
            if args.json:
                print(json.dumps(d, indent=2, default=str))
            else:
                _print(d)
        elif args.verb == "alter":
            try:
                config = log.alter_topic(args.topic, **settings)
            except (ValueError, TypeError) as e:
                raise usage_error(str(e)) from None
            for name in ALTERABLE_TOPIC_CONFIGS:
                print(f"{name} = {config[name]}")
        elif args.verb == "delete":
            missing = [t for t in args.topics if t not in log.topics()]
            if missing:
                raise CliError(f"no topic {missing[0]!r} in {args.path} (nothing was deleted)", 2)
            for name in args.topics:
                log.delete_topic(name)
                print(f"deleted topic {name!r}")
        elif args.verb == "compact":
            totals = log.topic(args.topic).compact_now()
            print(", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def _list(log, args: argparse.Namespace) -> None:
    names = log.topics()
    if args.names:
        for name in names:
            print(name)
        return
    if not names:
        print(f"no topics in {log.path}", file=sys.stderr)
        return
    rows = []
    for name in names:
        d = log.topic(name).describe()
        kind = "bytes" if d["config"]["records"] else f"{len(d['schema'].splitlines())} columns"
        rows.append([name, len(d["partitions"]), f"{d['records']:,}", human_bytes(d["bytes"]), kind,
                     d["config"]["cleanup_policy"]])
    print_table(["TOPIC", "PARTITIONS", "RECORDS", "BYTES", "DATA", "CLEANUP"], rows,
                right=("PARTITIONS", "RECORDS", "BYTES"), plain=args.plain)


def _print(d: dict) -> None:
    c = d["config"]
    print(f"topic {d['name']}: {len(d['partitions'])} partitions, {d['records']} offsets, {d['bytes']} bytes, "
          f"cleanup_policy={c['cleanup_policy']}")
    if not c["records"]:
        print("  schema: " + ", ".join(d["schema"].splitlines())
              + (f"; key {c['key']}" if c["key"] else "") + (f"; time {c['timestamp']}" if c["timestamp"] else ""))
    for p in d["partitions"]:
        line = (f"  {p['partition']}: offsets {p['start_offset']}..{p['end_offset']}, {p['bytes']} bytes, "
                f"{p['segments']} segments")
        comp = p.get("compaction")
        if comp:
            line += (f", dirty ratio {comp['dirty_ratio']:.2f}, clean below {comp['clean_end_offset']}, "
                     f"{comp['bytes_reclaimed']} bytes reclaimed in {comp['compaction_passes']} passes")
        print(line)
    print("  config: " + ", ".join(f"{k}={v}" for k, v in c.items() if k != "name"))
