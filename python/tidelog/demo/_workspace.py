"""Where the demo writes: the log folder itself, so ``tidelog verify DIR`` and
every other verb work on it, with the demo's other files (the SQLite
comparison, the projection's read model, the Parquet export) in ``DIR/demo/``,
which a log ignores.

A folder the demo made carries a marker file; a second run replaces it. A
folder the demo did not make is never touched: non-empty, it is refused.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

from ..errors import InvalidArgumentError

SIDE_FOLDER = "demo"
MARKER = "made-by-tidelog-demo"


@dataclasses.dataclass(frozen=True)
class Workspace:
    log_dir: str
    side_dir: str          # DIR/demo: the SQLite files and the Parquet export
    replaced: bool         # an earlier demo's data was there and was removed

    def side(self, name: str) -> str:
        return os.path.join(self.side_dir, name)

    def mark(self) -> None:
        """Makes ``side_dir`` with the marker that lets a later demo replace the
        folder: once the log exists (a log is created in an empty folder only)."""
        os.makedirs(self.side_dir, exist_ok=True)
        with open(os.path.join(self.side_dir, MARKER), "w") as f:
            f.write("Made by `tidelog demo`; running the demo again with the same --dir replaces this folder.\n")


def prepare(directory: str | None) -> Workspace:
    """Makes the demo's (empty) folder: ``directory``, or a new temporary
    folder when None. Refuses (``InvalidArgumentError``, one line) a path that is a file, or
    a non-empty folder that an earlier demo did not make."""
    replaced = False
    if directory is None:
        log_dir = tempfile.mkdtemp(prefix="tidelog-demo-")
    else:
        log_dir = os.path.abspath(directory)
        if os.path.exists(log_dir) and not os.path.isdir(log_dir):
            raise InvalidArgumentError(f"{directory} is a file, not a folder")
        if os.path.isdir(log_dir) and os.listdir(log_dir):
            if not os.path.exists(os.path.join(log_dir, SIDE_FOLDER, MARKER)):
                what = "a tidelog log" if os.path.isdir(os.path.join(log_dir, "topics")) else "a folder"
                raise InvalidArgumentError(
                    f"{directory} is {what} that the demo did not make; give the demo a new or empty folder")
            shutil.rmtree(log_dir)   # an earlier demo's log: the demo owns it, and starts again
            replaced = True
        os.makedirs(log_dir, exist_ok=True)
    return Workspace(log_dir, os.path.join(log_dir, SIDE_FOLDER), replaced)
