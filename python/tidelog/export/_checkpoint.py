"""The checkpoint of a file export (docs/FORMAT.md, "Export checkpoints"):
``<out>/_tidelog_export.json``, replaced atomically (temporary name, fsync,
rename, folder fsync) as the last step of every run that exported something.

It is the export's commit record: the data files of partition ``p`` whose
first offset is below ``end_offsets[p]`` are the exported ones; every other
data file in the folder is the leftover of a run that died before its
commit, and the next run deletes it before it writes anything.
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import time

from .._log import _fsync_dir, _write_atomically
from ..errors import CorruptionError, InvalidArgumentError, LogLockedError

NAME = "_tidelog_export.json"
LOCK_NAME = ".tidelog-export.lock"
VERSION = 1
#: p<partition>-<first offset>-<end offset>[-<n>].<ext>: a data file of the
#: offsets [first, end) of one partition (its rows in one hive folder).
DATA_FILE = re.compile(r"^p(\d+)-(\d{20})-(\d{20})(?:-(\d+))?\.(parquet|csv|arrow)$")
#: The temporary name a data file is written under.
TEMP_FILE = re.compile(r"^\.p\d+-\d{20}-\d{20}(?:-\d+)?\.(parquet|csv|arrow)\.tmp$")


@dataclasses.dataclass
class Checkpoint:
    topic: dict                     # _spec.topic_identity() of the topic exported
    format: str                     # "parquet" | "csv" | "arrow"
    spec: dict                      # Selection.spec(): columns, partition_by, start_time, end_time
    end_offsets: dict[int, int]     # per partition: offsets below are exported
    runs: int = 0                   # runs that exported something
    rows: int = 0                   # rows exported over every run
    updated_ns: int = 0             # CLOCK_REALTIME of the last commit

    def to_json(self) -> dict:
        return {"version": VERSION, "topic": self.topic, "format": self.format, "spec": self.spec,
                "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
                "runs": self.runs, "rows": self.rows, "updated_ns": self.updated_ns}

    @classmethod
    def load(cls, folder: str) -> "Checkpoint | None":
        """The folder's checkpoint, None when it has none; CorruptionError when it is not one."""
        path = os.path.join(folder, NAME)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version') if isinstance(doc, dict) else None!r}")
            ends = {int(p): o for p, o in doc["end_offsets"].items()}
            if not all(type(o) is int and o >= 0 for o in ends.values()):
                raise ValueError("end_offsets must be non-negative ints")
            if not isinstance(doc["topic"], dict) or not isinstance(doc["spec"], dict):
                raise ValueError("topic and spec must be objects")
            return cls(doc["topic"], str(doc["format"]), doc["spec"], ends, int(doc.get("runs", 0)),
                       int(doc.get("rows", 0)), int(doc.get("updated_ns", 0)))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CorruptionError(f"export checkpoint {path} is damaged ({type(e).__name__}: {e}); "
                                  "export to a new folder") from None

    def store(self, folder: str) -> None:
        self.updated_ns = time.time_ns()
        _write_atomically(os.path.join(folder, NAME), json.dumps(self.to_json(), indent=1).encode())


class OutputLock:
    """An exclusive flock on ``<out>/.tidelog-export.lock`` for one run: two
    runs into one folder would commit each other's files. The kernel releases
    it when its holder dies."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd = -1

    def __enter__(self) -> "OutputLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            pid = int(holder) if holder.isdigit() else None
            raise LogLockedError(f"another export is writing to {os.path.dirname(self.path)}"
                                 f"{f' (pid {pid})' if pid else ''}: one run at a time", pid,
                                 os.path.dirname(self.path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # releases the flock
        self.fd = -1


def clean_leftovers(folder: str, checkpoint: Checkpoint | None) -> int:
    """Deletes what runs that died left in ``folder``: temporary files, and
    data files past the checkpoint (a run renamed them into place, then died
    before its commit); every folder touched is fsynced before the next run
    writes anything, so a deleted leftover cannot come back beside its
    replacement. Returns the number of files deleted. Refuses a folder that
    holds other files before its first commit (it is not an export)."""
    ends = checkpoint.end_offsets if checkpoint is not None else {}
    doomed = []
    if checkpoint is None:
        check_no_foreign_files(folder)
    for directory, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            full = os.path.join(directory, name)
            if TEMP_FILE.match(name):
                doomed.append(full)
                continue
            m = DATA_FILE.match(name)
            if m is None:
                continue
            partition, first, end = int(m.group(1)), int(m.group(2)), int(m.group(3))
            committed_end = ends.get(partition, 0)
            if first >= committed_end:
                doomed.append(full)
            elif end > committed_end:
                raise CorruptionError(f"{full} holds offsets [{first}, {end}) of partition {partition}, past the "
                                      f"end its checkpoint records ({committed_end}): the checkpoint is older "
                                      "than the files; export to a new folder")
    for full in doomed:
        os.unlink(full)
    for directory in {os.path.dirname(full) for full in doomed}:
        _fsync_dir(directory)
    return len(doomed)


def check_no_foreign_files(folder: str) -> None:
    """Refuses a folder without a checkpoint that holds anything but what an
    export writes (data files, hive folders, hidden files): it is not an
    export, and a run would mix its files with someone else's."""
    foreign = [name for name in os.listdir(folder) if not name.startswith(".") and not DATA_FILE.match(name)
               and not (os.path.isdir(os.path.join(folder, name)) and "=" in name)]
    if foreign:
        raise InvalidArgumentError(f"{folder} holds files that are not a tidelog export ({sorted(foreign)[:3]}): "
                                   "export to an empty or new folder")
