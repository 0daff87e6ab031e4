"""A small CQRS bank on tidelog's event store.

Commands go to an ``Account`` aggregate, which checks the rules and records
events; a ``Repository`` saves them (optimistic concurrency, snapshots every
50 events). A projection keeps an SQLite read model (balances, movements)
exactly once, on a thread; queries read SQLite only.

Run it:  python examples/cqrs_bank.py [folder]
"""
from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
import sys
import tempfile
from typing import Any

import tidelog
from tidelog.es import Aggregate, Projection, Repository, SqliteProjectionRunner, applies


# ---------------------------------------------------------------- events
@dataclasses.dataclass(frozen=True)
class AccountOpened:
    owner: str


@dataclasses.dataclass(frozen=True)
class MoneyDeposited:
    amount: int            # cents
    transfer_id: str | None = None


@dataclasses.dataclass(frozen=True)
class MoneyWithdrawn:
    amount: int
    transfer_id: str | None = None


class InsufficientFunds(Exception):
    pass


# ---------------------------------------------------------------- write side
class Account(Aggregate):
    stream_prefix = "account-"

    @classmethod
    def open(cls, owner: str, account_id: str | None = None) -> "Account":
        account = cls(account_id)
        account.trigger(AccountOpened(owner))
        return account

    def deposit(self, amount: int, transfer_id: str | None = None) -> None:
        if amount <= 0:
            raise ValueError("a deposit is positive")
        self.trigger(MoneyDeposited(amount, transfer_id))

    def withdraw(self, amount: int, transfer_id: str | None = None) -> None:
        if amount <= 0:
            raise ValueError("a withdrawal is positive")
        if amount > self.balance:
            raise InsufficientFunds(f"account {self.id}: balance {self.balance}, asked {amount}")
        self.trigger(MoneyWithdrawn(amount, transfer_id))

    @applies(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner
        self.balance = 0

    @applies(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount

    @applies(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount


class Bank:
    """The command side: each method loads, decides, saves (one transaction)."""

    def __init__(self, store: Any) -> None:
        self.accounts = Repository(store, Account, snapshot_every=50)
        self.last_position = 0  # the store position after the last command (for read-your-writes)

    def _saved(self, result: Any) -> None:
        if result is not None:
            self.last_position = result.positions[-1] + 1

    def open_account(self, owner: str, account_id: str | None = None) -> str:
        account = Account.open(owner, account_id)
        self._saved(self.accounts.save(account))
        return account.id

    def deposit(self, account_id: str, amount: int) -> None:
        account = self.accounts.get(account_id)
        account.deposit(amount)
        self._saved(self.accounts.save(account))

    def withdraw(self, account_id: str, amount: int) -> None:
        account = self.accounts.get(account_id)
        account.withdraw(amount)
        self._saved(self.accounts.save(account))

    def transfer(self, source: str, target: str, amount: int, transfer_id: str) -> None:
        """Both accounts change in one atomic append, or neither."""
        a, b = self.accounts.get(source), self.accounts.get(target)
        a.withdraw(amount, transfer_id)
        b.deposit(amount, transfer_id)
        for result in self.accounts.save_all([a, b]):
            self._saved(result)


# ---------------------------------------------------------------- read side
class AccountBalances(Projection):
    stream_prefixes = ("account-",)

    def setup(self, db: Any) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, owner TEXT, "
                   "balance INTEGER NOT NULL, movements INTEGER NOT NULL)")

    def drop(self, db: Any) -> None:
        db.execute("DROP TABLE IF EXISTS balances")

    @staticmethod
    def _account(record: Any) -> str:
        return record.stream_id.removeprefix("account-")

    @applies(AccountOpened)
    def opened(self, db: Any, event: AccountOpened, record: Any) -> None:
        db.execute("INSERT INTO balances VALUES (?, ?, 0, 0)", (self._account(record), event.owner))

    @applies(MoneyDeposited)
    def deposited(self, db: Any, event: MoneyDeposited, record: Any) -> None:
        db.execute("UPDATE balances SET balance = balance + ?, movements = movements + 1 WHERE account = ?",
                   (event.amount, self._account(record)))

    @applies(MoneyWithdrawn)
    def withdrawn(self, db: Any, event: MoneyWithdrawn, record: Any) -> None:
        db.execute("UPDATE balances SET balance = balance - ?, movements = movements + 1 WHERE account = ?",
                   (event.amount, self._account(record)))


class Queries:
    """The query side: SQLite only, never the event store."""

    def __init__(self, path: str) -> None:
        self.path = path

    def balance(self, account_id: str) -> int | None:
        with closing(sqlite3.connect(self.path)) as db:
            row = db.execute("SELECT balance FROM balances WHERE account = ?", (account_id,)).fetchone()
        return None if row is None else row[0]

    def total(self) -> int:
        with closing(sqlite3.connect(self.path)) as db:
            return db.execute("SELECT COALESCE(SUM(balance), 0) FROM balances").fetchone()[0]

    def richest(self, n: int = 3) -> list[tuple[str, int]]:
        with closing(sqlite3.connect(self.path)) as db:
            return db.execute("SELECT owner, balance FROM balances ORDER BY balance DESC, owner LIMIT ?",
                              (n,)).fetchall()


def main(folder: str) -> dict:
    with tidelog.open(f"{folder}/log") as log:
        store = log.event_store("bank")
        bank = Bank(store)
        runner = SqliteProjectionRunner(store, AccountBalances(), f"{folder}/read.sqlite")
        queries = Queries(runner.path)
        with runner:                                     # the projection follows on a thread
            alice = bank.open_account("alice", "alice")
            bob = bank.open_account("bob", "bob")
            for _ in range(60):                          # crosses snapshot_every=50
                bank.deposit(alice, 100)
            bank.transfer(alice, bob, 2500, "t-1")
            try:
                bank.withdraw(bob, 10**6)
            except InsufficientFunds as e:
                print("refused:", e)
            runner.wait_for(bank.last_position, timeout=30)  # read your own writes
            out = {
                "alice": queries.balance(alice), "bob": queries.balance(bob), "total": queries.total(),
                "richest": queries.richest(), "lag": runner.lag,
                "snapshot_version": bank.accounts.latest_snapshot(alice).version,
            }
        print(out)
        return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="cqrs-bank-"))
