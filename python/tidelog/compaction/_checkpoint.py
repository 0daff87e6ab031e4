"""The cleaner's per-partition checkpoint (FORMAT.md, "Log compaction"):
``<partition>/cleaner-checkpoint``, JSON, replaced atomically.

It is advisory. ``clean_end`` says that the offsets below it were compacted
against every later key the cleaner had seen then (Kafka's
cleaner-offset-checkpoint); losing the file only costs one pass over data
already clean. Nothing the cleaner keeps or drops depends on it for
correctness: a record is removed only when a later record of its key is in
the map of the same pass, and a tombstone only when its frame's delete
horizon (in the frame itself) has passed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

from .._log import _write_atomically

FILE_NAME = "cleaner-checkpoint"
VERSION = 1


@dataclasses.dataclass
class CleanerCheckpoint:
    clean_end: int = 0                 # offsets below: compacted
    last_compaction_ns: int = 0        # CLOCK_REALTIME of the last pass that rewrote something
    bytes_reclaimed: int = 0           # over every pass since the partition was created
    passes: int = 0
    next_horizon_ns: int = 0           # the earliest delete horizon written (0: none): a pass is due then

    @classmethod
    def load(cls, partition_dir: str) -> "CleanerCheckpoint":
        """The stored checkpoint, or a new one when it is missing or unreadable."""
        try:
            with open(os.path.join(partition_dir, FILE_NAME), "rb") as f:
                raw = json.loads(f.read())
            if not isinstance(raw, dict) or raw.get("version") != VERSION:
                return cls()
            fields = {f.name for f in dataclasses.fields(cls)}
            values = {k: v for k, v in raw.items() if k in fields}
            if not all(type(v) is int and v >= 0 for v in values.values()):
                return cls()
            return cls(**values)
        except (OSError, ValueError):
            return cls()

    def store(self, partition_dir: str) -> None:
        data = {"version": VERSION, **dataclasses.asdict(self)}
        _write_atomically(os.path.join(partition_dir, FILE_NAME), json.dumps(data).encode())

    def describe(self) -> dict:
        return {
            "clean_end_offset": self.clean_end,
            "last_compaction": (self.last_compaction_ns / 1e9) if self.last_compaction_ns else None,
            "bytes_reclaimed": self.bytes_reclaimed,
            "compaction_passes": self.passes,
        }


def now_ns() -> int:
    return time.time_ns()


def describe_partition(partition_dir: str) -> dict:
    """describe()'s compaction fields of one partition: the dirty ratio (of
    the sealed segments, by the file sizes in the folder), the last
    compaction (Unix time, s, or None), the bytes reclaimed so far, the
    offset below which the partition is clean, and the passes run."""
    ckpt = CleanerCheckpoint.load(partition_dir)
    sealed = []
    try:
        names = sorted(n for n in os.listdir(partition_dir) if len(n) == 24 and n.endswith(".log") and n[:20].isdigit())
    except FileNotFoundError:
        names = []
    for name, nxt in zip(names, names[1:]):  # every segment but the active (last) one
        try:
            sealed.append({"base_offset": int(name[:20]), "end_offset": int(nxt[:20]),
                           "bytes": os.path.getsize(os.path.join(partition_dir, name))})
        except FileNotFoundError:
            continue
    total = sum(s["bytes"] for s in sealed)
    dirty = sum(s["bytes"] for s in sealed if s["end_offset"] > ckpt.clean_end)
    return {"dirty_ratio": dirty / total if total else 0.0, **ckpt.describe()}
