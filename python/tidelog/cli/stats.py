"""``tidelog stats``: what a log folder holds, at a glance: per topic its
partitions, records, bytes on disk, segments and time span of offsets; per
consumer group its state, members and lag; and the totals."""
from __future__ import annotations

import argparse
import json
import os

from ._errors import require_log_folder
from ._output import human_bytes, print_table

EXAMPLES = """\
examples:
  tidelog stats data/
  tidelog stats data/ --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("path", help="the log folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--plain", action="store_true", help="plain-text tables even on a terminal")


def folder_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass  # removed while walking (retention, compaction)
    return total


def collect(log) -> dict:
    topics = []
    for name in log.topics():
        d = log.topic(name).describe()
        topics.append({
            "topic": name, "kind": "bytes" if d["config"]["records"] else "columnar",
            "partitions": len(d["partitions"]), "records": d["records"], "bytes": d["bytes"],
            "segments": sum(p["segments"] for p in d["partitions"]),
            "offsets": {p["partition"]: [p["start_offset"], p["end_offset"]] for p in d["partitions"]},
            "cleanup_policy": d["config"]["cleanup_policy"], "compression": d["config"]["compression"],
            "durability": d["config"]["durability"]})
    groups = []
    for name in log.groups():
        g = log.describe_group(name)
        lag = [v for v in g.lag.values() if v is not None]
        groups.append({"group": name, "state": g.state, "members": sum(1 for m in g.members if not m.departed),
                       "partitions": len(g.offsets), "lag": sum(lag) if lag else None})
    return {"path": os.path.abspath(log.path), "disk_bytes": folder_bytes(log.path),
            "records": sum(t["records"] for t in topics), "segment_bytes": sum(t["bytes"] for t in topics),
            "topics": topics, "groups": groups}


def main(args: argparse.Namespace) -> int:
    import tidelog

    require_log_folder(args.path)
    with tidelog.open(args.path, read_only=True) as log:
        figures = collect(log)
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"{figures['path']}: {len(figures['topics'])} topics, {figures['records']:,} records, "
          f"{human_bytes(figures['disk_bytes'])} on disk, {len(figures['groups'])} consumer groups")
    if figures["topics"]:
        print()
        print_table(["TOPIC", "KIND", "PARTITIONS", "RECORDS", "BYTES", "SEGMENTS", "CLEANUP", "COMPRESSION"],
                    [[t["topic"], t["kind"], t["partitions"], f"{t['records']:,}", human_bytes(t["bytes"]),
                      t["segments"], t["cleanup_policy"], t["compression"]] for t in figures["topics"]],
                    right=("PARTITIONS", "RECORDS", "BYTES", "SEGMENTS"), plain=args.plain)
    if figures["groups"]:
        print()
        print_table(["GROUP", "STATE", "MEMBERS", "PARTITIONS", "LAG"],
                    [[g["group"], g["state"], g["members"], g["partitions"],
                      None if g["lag"] is None else f"{g['lag']:,}"] for g in figures["groups"]],
                    right=("MEMBERS", "PARTITIONS", "LAG"), plain=args.plain)
    return 0
