"""``tidelog groups``: list, describe, reset the offsets of, and delete
consumer groups (Kafka's ``kafka-consumer-groups.sh``)."""
from __future__ import annotations

import argparse
import json

from ._errors import require_log_folder, usage_error
from ._output import print_table

EXAMPLES = """\
examples:
  tidelog groups list data/
  tidelog groups describe data/ billing
  tidelog groups reset-offsets data/ billing --to-earliest
  tidelog groups reset-offsets data/ billing --to-datetime 2026-05-01T00:00 --topic orders
  tidelog groups reset-offsets data/ billing --to-offset orders:0=42 orders:1=40
  tidelog groups delete data/ billing
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("list", help="the consumer groups of a log", epilog="example:\n  tidelog groups list data/\n")
    ls.add_argument("path", help="the log folder")
    describe = verbs.add_parser("describe", help="members, assignment, committed offsets and lag of a group",
                                epilog="examples:\n  tidelog groups describe data/ billing\n"
                                       "  tidelog groups describe data/ billing --json\n")
    describe.add_argument("path", help="the log folder")
    describe.add_argument("group")
    describe.add_argument("--json", action="store_true", help="print the description as JSON")
    reset = verbs.add_parser("reset-offsets", help="set a group's committed offsets (refused while it has "
                                                   "live members)",
                             epilog="examples:\n  tidelog groups reset-offsets data/ billing --to-earliest\n"
                                    "  tidelog groups reset-offsets data/ billing --to-latest --topic orders\n"
                                    "  tidelog groups reset-offsets data/ billing --to-datetime 2026-05-01T00:00\n"
                                    "  tidelog groups reset-offsets data/ billing --to-offset orders:0=42\n")
    reset.add_argument("path", help="the log folder")
    reset.add_argument("group")
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-datetime", metavar="ISO8601", help="the first offset at or after this time")
    to.add_argument("--to-offset", metavar="TOPIC:PARTITION=OFFSET", nargs="+",
                    help="explicit offsets, for example orders:0=42")
    reset.add_argument("--topic", action="append", help="only these topics (default: the group's)")
    delete = verbs.add_parser("delete", help="delete a group and its offsets (refused while it has live members)",
                              epilog="example:\n  tidelog groups delete data/ billing\n")
    delete.add_argument("path", help="the log folder")
    delete.add_argument("group")


def _parse_offsets(items: list[str]) -> dict[tuple[str, int], int]:
    out = {}
    for item in items:
        try:
            where, offset = item.rsplit("=", 1)
            topic, partition = where.rsplit(":", 1)
            out[(topic, int(partition))] = int(offset)
        except ValueError:
            raise usage_error(f"--to-offset takes TOPIC:PARTITION=OFFSET, not {item!r}") from None
    return out


def main(args: argparse.Namespace) -> int:
    import tidelog

    require_log_folder(args.path)
    with tidelog.open(args.path) as log:
        if args.verb == "list":
            for name in log.groups():
                print(name)
        elif args.verb == "describe":
            d = log.describe_group(args.group)
            if args.json:
                print(json.dumps(_as_json(d), indent=2))
            else:
                _print(d)
        elif args.verb == "reset-offsets":
            to = ("earliest" if args.to_earliest else "latest" if args.to_latest else args.to_datetime
                  if args.to_datetime else _parse_offsets(args.to_offset))
            done = log.reset_group_offsets(args.group, to=to, topics=args.topic)
            for (topic, partition), offset in sorted(done.items()):
                print(f"{topic}:{partition} -> {offset}")
        elif args.verb == "delete":
            log.delete_group(args.group)
            print(f"deleted group {args.group!r}")
    return 0


def _as_json(d) -> dict:
    return {"group": d.group_id, "state": d.state, "assignor": d.partition_assignor, "generation": d.generation,
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "client_id": m.client_id, "host": m.host, "pid": m.pid, "departed": m.departed,
                         "assignment": [[tp.topic, tp.partition] for tp in m.assignment],
                         "owned": [[tp.topic, tp.partition] for tp in m.owned]} for m in d.members],
            "offsets": [{"topic": t, "partition": p, "offset": om.offset, "metadata": om.metadata,
                         "lag": d.lag.get((t, p))} for (t, p), om in sorted(d.offsets.items())]}


def _print(d) -> None:
    print(f"group {d.group_id}: {d.state}, assignor {d.partition_assignor}, generation {d.generation}, "
          f"{len(d.members)} member(s)")
    for m in d.members:
        parts = ", ".join(f"{tp.topic}:{tp.partition}" for tp in m.assignment) or "-"
        print(f"  {m.member_id}  pid {m.pid}  {m.host}{'  (departed)' if m.departed else ''}  [{parts}]")
    if d.offsets:
        print_table(["TOPIC", "PARTITION", "COMMITTED", "LAG"],
                    [[t, p, om.offset, d.lag.get((t, p))] for (t, p), om in sorted(d.offsets.items())],
                    right=("PARTITION", "COMMITTED", "LAG"))
