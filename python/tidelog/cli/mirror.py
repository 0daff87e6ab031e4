"""``tidelog mirror SRC DST --topics ...``: byte and columnar topics between
log folders and Kafka clusters, one-shot or continuous (``--follow``), resumable
(tidelog.connect.mirror)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from ._errors import CliError

DESCRIPTION = """\
Copies topics from SRC to DST; each is a log folder or a Kafka URL
(kafka://host:9092[,host2:9092][?client.id=...]). Byte topics keep keys,
headers, timestamps and (when the partition counts match) partitions; each
copy carries one more header, tidelog.mirror.offset (the source partition and
offset). Columnar (Arrow) topics are copied partition to partition into a
topic with the same schema, key and timestamp columns and partition count (a
destination that differs is refused before anything is written). Missing
destination topics are created like the source's. A resumed run skips what a
killed one already wrote: exactly once into a log folder, at least once into
Kafka (idempotent producer). Progress is checkpointed durably every
--checkpoint-interval seconds.

Exit status: 0 done, 1 failed (the checkpoint stays valid: run it again), 2 bad arguments."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="log folder or kafka:// URL to read")
    parser.add_argument("dst", help="log folder or kafka:// URL to write")
    parser.add_argument("--topics", nargs="+", required=True, metavar="TOPIC")
    parser.add_argument("--follow", action="store_true",
                        help="keep copying new records until SIGINT/SIGTERM (default: stop at the source's end)")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="the durable checkpoint (default: one per SRC/DST/topics under ~/.cache/tidelog/mirror)")
    parser.add_argument("--checkpoint-interval", type=float, default=1.0, metavar="S",
                        help="seconds between checkpoints (default 1)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ..connect.mirror import mirror

    out = out or sys.stdout
    try:     # other errors: the command's one error path (cli._errors)
        stats = mirror(args.src, args.dst, args.topics, follow=args.follow, checkpoint=args.checkpoint,
                       checkpoint_interval_s=args.checkpoint_interval)
    except ImportError as e:
        raise CliError(f"{e} (Kafka needs: pip install tidelog[kafka])") from None
    result = {"records": stats.records, "skipped_duplicates": stats.skipped_duplicates,
              "checkpoints": stats.checkpoints, "per_topic": stats.per_topic}
    if args.json:
        print(json.dumps(result), file=out)
    else:
        topics = ", ".join(f"{t}: {n}" for t, n in sorted(stats.per_topic.items())) or "nothing new"
        print(f"mirrored {stats.records} records ({topics}); {stats.skipped_duplicates} already there", file=out)
    return 0
