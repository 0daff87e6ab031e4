"""tidelog.es projections: exactly-once checkpoints committed with the read
model (SQLite, DuckDB), thread and process runs, rebuild, lag, bad handlers,
and a projection process SIGKILLed repeatedly."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
from contextlib import closing
import subprocess
import sys
import threading
import time

import pytest

import tidelog
from tidelog.es import (DuckDBProjectionRunner, NewEvent, Projection, ProjectionError, Repository,
                        SqliteProjectionRunner, applies)

from _es_domain import Account, Deposited, Ledger, Opened, seen_counts

HERE = os.path.dirname(__file__)


@pytest.fixture
def store(log):
    return log.event_store("bank")


def _fill(store, accounts=5, deposits=20):
    repo = Repository(store, Account)
    for i in range(accounts):
        a = Account.open(f"o{i}", f"a{i}")
        for _ in range(deposits):
            a.deposit(1)
        repo.save(a)
    return accounts * (deposits + 1)


def _balances(path):
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT stream, balance FROM balances").fetchall())


def test_catch_up_applies_each_event_once_and_resumes(store, tmp_path):
    n = _fill(store)
    store.append("other-1", [NewEvent("Deposited", b'{"amount": 5}')])   # outside the prefix: skipped
    db = str(tmp_path / "rm.sqlite")
    runner = SqliteProjectionRunner(store, Ledger(), db, batch_size=7)
    assert runner.position == 0 and runner.lag == store.end_position
    assert runner.catch_up() == store.end_position
    assert seen_counts(db) == (n, n)
    assert _balances(db) == {f"acct-a{i}": 20 for i in range(5)}
    assert runner.lag == 0
    # New events; a new runner (a restart) resumes at the checkpoint.
    repo = Repository(store, Account)
    a = repo.get("a0")
    a.deposit(10)
    repo.save(a)
    again = SqliteProjectionRunner(store, Ledger(), db)
    again.catch_up()
    assert seen_counts(db) == (n + 1, n + 1) and _balances(db)["acct-a0"] == 30
    with closing(sqlite3.connect(db)) as c:
        assert c.execute("SELECT projection, position FROM tidelog_checkpoints").fetchall() == \
            [("Ledger", store.end_position)]


def test_the_filter_comes_from_the_handlers(store, tmp_path):
    runner = SqliteProjectionRunner(store, Ledger(), str(tmp_path / "f.sqlite"))
    assert set(runner._filter.event_types) == {"Opened", "Deposited", "Withdrawn"}
    assert runner._filter.stream_prefixes == ("acct-",)


def test_thread_follows_live_and_wait_for(store, tmp_path):
    db = str(tmp_path / "live.sqlite")
    repo = Repository(store, Account)
    with SqliteProjectionRunner(store, Ledger(), db, poll_interval_s=0.05) as runner:
        assert runner.running
        for i in range(30):
            res = repo.save(Account.open("x", f"live{i}"))
        assert runner.wait_for(res.positions[-1] + 1, timeout=30)
        assert seen_counts(db) == (30, 30)
        with pytest.raises(ProjectionError):
            runner.start()
        with pytest.raises(ProjectionError):
            runner.catch_up()          # the thread runs it in this process already
    assert not runner.running


def test_rebuild_replays_from_zero(store, tmp_path):
    n = _fill(store, 3, 4)
    db = str(tmp_path / "rb.sqlite")
    runner = SqliteProjectionRunner(store, Ledger(), db)
    runner.catch_up()
    with closing(sqlite3.connect(db)) as c:
        c.execute("UPDATE balances SET balance = -1")   # the read model went wrong
        c.commit()
    assert runner.rebuild() == store.end_position
    assert seen_counts(db) == (n, n) and set(_balances(db).values()) == {4}


class Fails(Ledger):
    name = "fails"
    fail_at = 0

    @applies(Deposited)
    def deposited(self, db, e, record):
        super().deposited(db, e, record)
        if record.position == self.fail_at:
            raise RuntimeError("handler bug")


def test_a_failing_handler_rolls_the_batch_back(store, tmp_path):
    n = _fill(store, 2, 10)
    db = str(tmp_path / "fail.sqlite")
    proj = Fails()
    proj.fail_at = 15
    runner = SqliteProjectionRunner(store, proj, db, batch_size=10)
    with pytest.raises(RuntimeError, match="handler bug") as exc:
        runner.catch_up()
    assert any("rolled back" in note for note in exc.value.__notes__)
    assert runner.position == 10 and seen_counts(db) == (10, 10)     # the first batch only
    proj.fail_at = -1                                                  # fixed: it goes on from 10
    runner.catch_up()
    assert seen_counts(db) == (n, n)
    # On a thread, the error stops the thread and stop() raises it.
    proj2 = Fails()
    proj2.fail_at = 3
    t = SqliteProjectionRunner(store, proj2, str(tmp_path / "fail2.sqlite")).start()
    with pytest.raises(ProjectionError) as exc2:
        t.wait_for(store.end_position, timeout=30)
    assert isinstance(exc2.value.__cause__, RuntimeError)
    with pytest.raises(ProjectionError):
        t.stop()


class Committer(Projection):
    @applies(Opened)
    def opened(self, db, e):
        db.commit()


class Scripter(Projection):
    @applies(Opened)
    def opened(self, db, e):
        db.executescript("create table if not exists x(a); insert into x values (1);")


@pytest.mark.parametrize("projection, call", [(Committer, "commit"), (Scripter, "executescript")])
def test_a_handler_may_not_end_the_transaction(store, tmp_path, projection, call):
    """(sqlite3's executescript() would commit the batch without its checkpoint.)"""
    _fill(store, 1, 0)
    runner = SqliteProjectionRunner(store, projection(), str(tmp_path / "c.sqlite"))
    with pytest.raises(ProjectionError, match=call):
        runner.catch_up()
    assert runner.position == 0


def test_undecodable_event_stops_the_projection_without_advancing(store, tmp_path):
    _fill(store, 1, 2)
    store.append("acct-bad", [NewEvent("Deposited", b"not json")])
    runner = SqliteProjectionRunner(store, Ledger(), str(tmp_path / "u.sqlite"), batch_size=2)
    with pytest.raises(tidelog.SerializationError):
        runner.catch_up()
    assert runner.position == 2      # the batches before it stand


def test_two_runners_of_one_projection_apply_each_event_once(store, tmp_path):
    n = _fill(store, 4, 30)
    db = str(tmp_path / "two.sqlite")
    a = SqliteProjectionRunner(store, Ledger(), db, batch_size=3, poll_interval_s=0.02)
    b = SqliteProjectionRunner(store, Ledger(), db, batch_size=5, poll_interval_s=0.02)
    a.start()
    b.start()
    try:
        assert a.wait_for(store.end_position, timeout=60) and b.wait_for(store.end_position, timeout=60)
    finally:
        a.stop()
        b.stop()
    assert seen_counts(db) == (n, n)


def test_runners_opening_one_new_database_together_all_connect(store, tmp_path):
    # Two connections switching a new file to WAL at once: SQLite answers one
    # of them "database is locked" at once (no busy wait); the runner retries.
    errors = []

    def connect(runner, barrier):
        try:
            barrier.wait()
            runner._connect().close()
        except Exception as e:  # noqa: BLE001 (collected and asserted below)
            errors.append(e)

    for i in range(300):
        db = str(tmp_path / f"new{i}.sqlite")
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=connect, args=(SqliteProjectionRunner(store, Ledger(), db), barrier))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_duckdb_runner(store, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    n = _fill(store, 3, 5)
    path = str(tmp_path / "rm.duckdb")
    runner = DuckDBProjectionRunner(store, Ledger(), path, batch_size=4)
    runner.catch_up()
    con = runner.connect()
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT position) FROM seen").fetchone() == (n, n)
    assert con.execute("SELECT SUM(balance) FROM balances").fetchone()[0] == 15
    con.close()
    # A failing handler: the whole batch rolls back, no checkpoint is written.
    proj = Fails()
    proj.fail_at = 3
    failing_path = str(tmp_path / "fails.duckdb")
    failing = DuckDBProjectionRunner(store, proj, failing_path, batch_size=100)
    with pytest.raises(RuntimeError, match="handler bug"):
        failing.catch_up()
    con = duckdb.connect(failing_path)
    assert con.execute("SELECT COUNT(*) FROM tidelog_checkpoints").fetchone() == (0,)
    assert con.execute("SELECT COUNT(*) FROM seen").fetchone() == (0,)
    con.close()
    assert failing.position == 0
    assert runner.rebuild() == store.end_position
    assert runner.lag == 0


def test_in_memory_databases_are_refused(store):
    with pytest.raises(ValueError):
        SqliteProjectionRunner(store, Ledger(), ":memory:")
    with pytest.raises(TypeError):
        SqliteProjectionRunner(store, Ledger, "x.sqlite")  # type: ignore[arg-type]


# ---------------------------------------------------------------- crashes
CHILD = r"""
import sys
import threading
sys.path.insert(0, sys.argv[3])
from _es_domain import run_ledger_forever
run_ledger_forever(sys.argv[1], sys.argv[2], batch_size=int(sys.argv[4]))
"""


@pytest.mark.slow
def test_projection_process_sigkilled_repeatedly_applies_each_event_exactly_once(log, log_dir, tmp_path):
    store = log.event_store("bank")
    db = str(tmp_path / "crash.sqlite")
    repo = Repository(store, Account)
    rnd = random.Random(7)
    accounts = [Account.open(f"o{i}", f"k{i}") for i in range(8)]
    repo.save_all(accounts)
    kills = 0

    def spawn():
        return subprocess.Popen([sys.executable, "-c", CHILD, str(log_dir), db, HERE, str(rnd.choice([1, 2, 5]))],
                                stderr=subprocess.PIPE)

    checker = SqliteProjectionRunner(store, Ledger(), db)   # reads the checkpoint only
    mid_run = 0

    def write(n, saves):
        """n deposits in ``saves`` atomic appends (each append waits for an fsync)."""
        for _ in range(saves):
            for _ in range(n // saves):
                rnd.choice(accounts).deposit(rnd.randint(1, 9))
            repo.save_all(accounts)

    child = spawn()
    try:
        for round_ in range(12):
            if round_ % 2:
                write(rnd.randint(40, 80), 10)   # while it runs: it follows live
            before = checker.position
            deadline = time.monotonic() + 30
            while checker.position == before and time.monotonic() < deadline:
                time.sleep(0.002)               # until this child made progress
            time.sleep(rnd.uniform(0, 0.02))
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            assert child.returncode == -signal.SIGKILL
            kills += 1
            mid_run += 0 < checker.position < store.end_position
            if round_ % 2 == 0:
                write(rnd.randint(400, 800), 2)  # while it is down: a backlog for the next one
            child = spawn()
        # The last child is killed too; a restart in this process finishes the work.
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    runner = SqliteProjectionRunner(store, Ledger(), db)
    runner.catch_up()
    assert kills == 12 and mid_run >= 3   # kills hit a projection with work left
    total = sum(len(store.read(f"acct-k{i}")) for i in range(8))
    assert runner.position == store.end_position
    assert seen_counts(db) == (total, total)
    expected = {a.stream_id: a.balance for a in accounts}
    assert _balances(db) == expected


def test_run_forever_in_a_process_stops_cleanly_on_sigterm(log, log_dir, tmp_path):
    store = log.event_store("bank")
    n = _fill(store, 2, 3)
    db = str(tmp_path / "term.sqlite")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(log_dir), db, HERE, "2"], stderr=subprocess.PIPE)
    try:
        checker = SqliteProjectionRunner(store, Ledger(), db)
        deadline = time.monotonic() + 60
        while checker.position < store.end_position and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checker.position == store.end_position        # caught up, now following live
        Repository(store, Account).save(Account.open("late", "late"))
        deadline = time.monotonic() + 60
        while checker.position < store.end_position and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert seen_counts(db) == (n + 1, n + 1)


def test_lag_reaches_zero_when_only_filtered_out_events_arrive(store, tmp_path):
    _fill(store, 1, 1)
    runner = SqliteProjectionRunner(store, Ledger(), str(tmp_path / "lag.sqlite"), poll_interval_s=0.02)
    with runner:
        assert runner.wait_for(store.end_position, timeout=30)
        store.append("elsewhere", [NewEvent("Unrelated", b"{}") for _ in range(5)])
        assert runner.wait_for(store.end_position, timeout=30)
        assert runner.lag == 0


class Everything(Projection):
    read_all_types = True

    def setup(self, db):
        db.execute("CREATE TABLE IF NOT EXISTS types (t TEXT)")

    @applies(object)
    def any_event(self, db, event, record):
        db.execute("INSERT INTO types VALUES (?)", (record.type,))


def test_read_all_types_and_a_base_class_handler(store, tmp_path):
    _fill(store, 1, 1)
    store.append("misc", [NewEvent("Unrelated", b'{"x": 1}')])
    runner = SqliteProjectionRunner(store, Everything(), str(tmp_path / "all.sqlite"))
    assert runner._filter.event_types == ()
    runner.catch_up()
    with closing(sqlite3.connect(runner.path)) as db:
        assert [r[0] for r in db.execute("SELECT t FROM types")] == ["Opened", "Deposited", "Unrelated"]
