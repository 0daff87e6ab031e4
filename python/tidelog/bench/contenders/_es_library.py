"""The ``eventsourcing`` library's side of the events workload: its domain
model (an ``Account`` aggregate), the application, and a durable SQLite
infrastructure factory. The library resolves classes by their module path
(its "topics"), so they live at module level here; without the library
installed this module defines nothing (the contender says why it is skipped).
"""
from __future__ import annotations

try:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.sqlite import SQLiteConnectionPool, SQLiteFactory
except ImportError:  # pragma: no cover - the contender is "not available" then
    Application = None  # type: ignore[assignment,misc]

POOL_SIZE = 16          # the create part's 16 threads each get a connection

if Application is not None:

    class Account(Aggregate):
        """The aggregate every side creates, loads and projects."""

        @event("Opened")
        def __init__(self, name: str) -> None:
            self.name = name
            self.balance = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

    class DurablePool(SQLiteConnectionPool):
        """The library's pool (it sets journal_mode=WAL) with ``synchronous=FULL``
        on every connection: a commit returns once the WAL is fsynced, whatever the
        SQLite build's default."""

        def _create_connection(self):
            conn = super()._create_connection()
            raw = conn._sqlite_conn
            raw.execute("PRAGMA synchronous=FULL")
            assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2
            return conn

    class DurableSQLiteFactory(SQLiteFactory):
        """``eventsourcing.sqlite`` with DurablePool (and POOL_SIZE connections)."""

        def __init__(self, env):
            super().__init__(env)
            old = self.datastore.pool
            self.datastore.pool = DurablePool(db_name=old.db_name, lock_timeout=old.lock_timeout,
                                              pool_size=POOL_SIZE, max_overflow=POOL_SIZE, pool_timeout=60.0)
            old.close()

    class BenchApp(Application):
        """The application (no snapshots, no aggregate cache: every get reads the events)."""

    def pragmas(app) -> dict:
        """journal_mode and synchronous of a connection of ``app``'s SQLite datastore."""
        with app.factory.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA journal_mode")
            mode = c.fetchone()[0]
            c.execute("PRAGMA synchronous")
            sync = c.fetchone()[0]
        return {"journal_mode": mode, "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[sync]}


__all__ = ["Account", "BenchApp", "DurableSQLiteFactory", "DurablePool", "pragmas", "POOL_SIZE"]
