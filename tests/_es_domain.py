"""Domain classes shared by the tidelog.es domain-helper tests (imported as
``_es_domain``; child processes import it too, so it lives in a module)."""
from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from typing import Any

from tidelog.es import Aggregate, Projection, SqliteProjectionRunner, applies


@dataclasses.dataclass
class Opened:
    owner: str


@dataclasses.dataclass
class Deposited:
    amount: int


@dataclasses.dataclass
class Withdrawn:
    amount: int


class Account(Aggregate):
    stream_prefix = "acct-"

    @classmethod
    def open(cls, owner: str, id: str | None = None) -> "Account":
        a = cls(id)
        a.trigger(Opened(owner))
        return a

    def deposit(self, amount: int) -> None:
        self.trigger(Deposited(amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.trigger(Withdrawn(amount))

    @applies(Opened)
    def _opened(self, e: Opened) -> None:
        self.owner = e.owner
        self.balance = 0

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount

    @applies(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.balance -= e.amount


class Ledger(Projection):
    """Counts: one row per applied event in ``seen`` (no uniqueness, so a
    duplicate application shows), per-account balances."""

    stream_prefixes = ("acct-",)

    def setup(self, db: Any) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS seen (position INTEGER NOT NULL, stream TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS balances (stream TEXT PRIMARY KEY, balance INTEGER NOT NULL)")

    def drop(self, db: Any) -> None:
        db.execute("DROP TABLE IF EXISTS seen")
        db.execute("DROP TABLE IF EXISTS balances")

    def _seen(self, db: Any, record: Any) -> None:
        db.execute("INSERT INTO seen VALUES (?, ?)", (record.position, record.stream_id))

    @applies(Opened)
    def opened(self, db: Any, e: Opened, record: Any) -> None:
        self._seen(db, record)
        db.execute("INSERT INTO balances VALUES (?, 0)", (record.stream_id,))

    @applies(Deposited)
    def deposited(self, db: Any, e: Deposited, record: Any) -> None:
        self._seen(db, record)
        db.execute("UPDATE balances SET balance = balance + ? WHERE stream = ?", (e.amount, record.stream_id))

    @applies(Withdrawn)
    def withdrawn(self, db: Any, e: Withdrawn, record: Any) -> None:
        self._seen(db, record)
        db.execute("UPDATE balances SET balance = balance - ? WHERE stream = ?", (e.amount, record.stream_id))


def seen_counts(path: str) -> tuple[int, int]:
    """(rows in seen, distinct positions in seen) of a Ledger database."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT COUNT(*), COUNT(DISTINCT position) FROM seen").fetchone()


def run_ledger_forever(log_path: str, db_path: str, batch_size: int = 50) -> None:
    """A child process's body: the Ledger projection until killed or SIGTERM."""
    import tidelog

    with tidelog.open(log_path) as log:
        store = log.event_store("bank")
        SqliteProjectionRunner(store, Ledger(), db_path, batch_size=batch_size, poll_interval_s=0.05).run_forever()
