"""``SqliteProjectionRunner``: a projection into an SQLite database file.

The runner's connection is in autocommit mode and opens every batch with
``BEGIN IMMEDIATE`` (the write lock first, so the checkpoint it re-reads cannot
change before its commit). The file is put in WAL mode: queries from other
connections and processes read the last committed batch while the runner
writes. ``synchronous=NORMAL``: a power cut may lose the last batches, but
never one without its checkpoint, so they are simply applied again.

Concurrency: as ``ProjectionRunner``; SQLite's lock serializes runners of
several processes over the same file.
"""
from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from ._projection import Projection, ProjectionRunner


class SqliteProjectionRunner(ProjectionRunner):
    """Runs ``projection`` into the SQLite database at ``path`` (created when
    missing; several projections may share one file). ``busy_timeout_s``: how
    long a write waits for another writer's lock."""

    def __init__(self, store: Any, projection: Projection, path: str | os.PathLike, *,
                 busy_timeout_s: float = 30.0, **kwargs: Any) -> None:
        path = os.fspath(path)
        if path == ":memory:" or path.startswith("file::memory:"):
            raise ValueError("a projection's SQLite database is a file (queries and restarts must see it)")
        super().__init__(store, projection, **kwargs)
        self.path = path
        self.busy_timeout_s = float(busy_timeout_s)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            _switch_to_wal(conn, self.busy_timeout_s)
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def connect(self) -> sqlite3.Connection:
        """A new connection for queries (default transaction handling)."""
        return sqlite3.connect(self.path, timeout=self.busy_timeout_s)

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")


def _switch_to_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the
    lock. SQLite answers a concurrent switch of a new file with "database is
    locked" at once, without its busy handler, so two runners starting
    together on one new file would otherwise fail one of them."""
    deadline = time.monotonic() + timeout_s
    pause_s = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.05)
