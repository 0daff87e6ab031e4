"""SQLite (stdlib sqlite3), WAL, synchronous=NORMAL (not durable per commit), FULL (durable per commit) or
OFF (nothing synced: the records workload, the promise of acks="written")."""
from __future__ import annotations

import os
import sqlite3
import time

from ..core import GB, MiB, Contender, need_disk, rmtree, run_threads
from ._common import crash_writer_if_asked, fill_recovery_store, store_dir, timed_windows


class Sqlite(Contender):
    kind = "peer"
    MAX_SCAN_BYTES = 1 * GB          # loading 5 GB of rows takes tens of minutes

    def __init__(self, synchronous: str = "FULL"):
        self.synchronous = synchronous
        self.name = f"sqlite {synchronous}"
        self.description = (f"sqlite3, journal_mode=WAL, synchronous={synchronous}, executemany in one transaction "
                            f"per batch/round" + {"FULL": " (durable per commit)",
                                                  "NORMAL": " (a commit is durable only at the next checkpoint)",
                                                  "OFF": " (nothing synced); reads: select over the same rows"}
                            [synchronous])

    def supports(self, workload, params):
        if (self.synchronous == "OFF") != (workload == "records"):
            return False      # OFF is the records workload's peer, and only its
        return super().supports(workload, params)

    def _connect(self, path: str, synchronous: str | None = None) -> sqlite3.Connection:
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        mode = con.execute("pragma journal_mode=WAL").fetchone()[0]
        assert mode.lower() == "wal", mode
        con.execute(f"pragma synchronous={synchronous or self.synchronous}")
        return con

    def _open(self, tmpdir: str, ddl: str) -> sqlite3.Connection:
        self.dir = store_dir(tmpdir, self.name)
        self.db = os.path.join(self.dir, "bench.db")
        self.con = self._connect(self.db)
        self.con.execute(ddl)
        return self.con

    def _close(self):
        self.con.close()
        rmtree(self.dir)

    def _matches(self, params) -> bool:
        return (self.synchronous == "FULL") == bool(params["durable"])

    # ------------------------------------------------------------- ingest
    def ingest_supports(self, params):
        return self._matches(params) and "partitions" not in params

    def ingest_setup(self, tmpdir, params, data):
        self._open(tmpdir, "create table readings (ts integer, sensor_id integer, value real)")
        self.rows = [list(zip(*(c.to_pylist() for c in b.columns))) for b in data.take()]

    def ingest_run(self, case):
        con = self.con
        t0 = time.perf_counter()
        for rows in self.rows:
            con.execute("begin")
            con.executemany("insert into readings values (?, ?, ?)", rows)
            con.execute("commit")
        return {"seconds": time.perf_counter() - t0, "rows": sum(len(r) for r in self.rows)}

    def ingest_teardown(self):
        self._close()

    # ------------------------------------------------------------ produce
    def produce_supports(self, params):
        return self._matches(params)

    def produce_setup(self, tmpdir, params, data):
        self._open(tmpdir, "create table records (id integer primary key, value blob)")
        self.rows = [(v,) for v in data.take()]

    def produce_run(self, case):
        con = self.con
        t0 = time.perf_counter()
        con.execute("begin")
        con.executemany("insert into records (value) values (?)", self.rows)
        con.execute("commit")
        return {"seconds": time.perf_counter() - t0, "records": len(self.rows)}

    def produce_teardown(self):
        self._close()

    # ------------------------------------------------------------ records
    def records_supports(self, params):
        return params["op"] in ("send", "consume")

    def records_setup(self, tmpdir, params, data):
        self._open(tmpdir, "create table records (key blob, value blob)")
        self.op, self.rows = data.op, data.take()    # (key, value) tuples, prepared before the clock
        if data.op == "consume":
            con = self.con
            con.execute("begin")
            con.executemany("insert into records values (?, ?)", self.rows)
            con.execute("commit")

    def records_run(self, case):
        con = self.con
        if self.op == "send":
            t0 = time.perf_counter()
            con.execute("begin")
            con.executemany("insert into records values (?, ?)", self.rows)
            con.execute("commit")
            return {"seconds": time.perf_counter() - t0, "records": len(self.rows)}
        how = case["how"]
        n = 0
        t0 = time.perf_counter()
        cur = con.execute("select key, value from records")
        if how == "iterate":
            for _ in cur:
                n += 1
        elif how == "poll_batch":
            while rows := cur.fetchmany(100_000):
                n += len(rows)
        else:
            n = len(cur.fetchall())
        seconds = time.perf_counter() - t0
        if n != len(self.rows):
            raise AssertionError(f"selected {n} rows of {len(self.rows)}")
        return {"seconds": seconds, "records": n}

    def records_teardown(self):
        self._close()

    # ------------------------------------------------------------ threads
    def threads_supports(self, params):
        return self.synchronous == "FULL"

    def threads_setup(self, tmpdir, params, data):
        self._open(tmpdir, "create table records (id integer primary key, value blob)")
        self.data = data
        self.cons = [self._connect(self.db) for _ in range(data.threads)]

    def _thread_op(self, k: int):
        con, mine = self.cons[k], self.data.values[k * self.data.per_thread:]
        execute = con.execute
        return lambda i: execute("insert into records (value) values (?)", (mine[i],))  # autocommit: 1 txn

    def threads_run(self, case):
        return run_threads(self.data.threads, self.data.per_thread, self._thread_op)

    def threads_teardown(self):
        for c in self.cons:
            c.close()
        self._close()

    # -------------------------------------------------------------- scans
    def scans_supports(self, params):
        if self.synchronous != "NORMAL" or "frame_rows" in params:
            return False
        if params["size"] > self.MAX_SCAN_BYTES:
            return "SQLite loads about 1 M rows/s: sizes above 1 GB are skipped"
        return True

    def scans_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.nbytes * 2.5), "the SQLite database")
        # ts is the rowid (INTEGER PRIMARY KEY): the table is clustered in time order, the best layout for
        # time ranges; offset k is the row with ts = ts_of_row(k).
        con = self._open(tmpdir, "create table readings (ts integer primary key, sensor_id integer, value real)")
        con.execute("pragma synchronous=OFF")
        for b in data.sensors.batches():
            con.execute("begin")
            con.executemany("insert into readings values (?, ?, ?)", zip(*(c.to_pylist() for c in b.columns)))
            con.execute("commit")
        con.execute("pragma wal_checkpoint(TRUNCATE)")
        self.data = data

    def scans_run(self, case):
        q, con, data = case["query"], self.con, self.data
        if q == "scan":
            t0 = time.perf_counter()
            total = con.execute("select sum(value) from readings").fetchone()[0]
            return {"seconds": time.perf_counter() - t0, "rows": data.sensors.total_rows, "check": total}
        if q == "range":
            query = "select count(*), sum(value) from readings where ts >= ? and ts < ?"
            return timed_windows(data.range_ts, lambda t0, t1: con.execute(query, (t0, t1)).fetchone())
        ts_of = data.sensors.ts_of_row
        execute = con.execute
        total = 0.0
        t0 = time.perf_counter()
        for k in data.points:
            total += execute("select ts, sensor_id, value from readings where ts = ?", (ts_of(k),)).fetchone()[2]
        return {"seconds": time.perf_counter() - t0, "lookups": len(data.points), "check": total}

    def scans_teardown(self):
        self._close()

    # ----------------------------------------------------------- recovery
    def recovery_supports(self, params):
        return self.synchronous == "FULL" and not params.get("columnar")

    def recovery_writer(self, path, size, value_bytes, keep_writing, ready):
        from ..core import make_values

        db = os.path.join(path, "bench.db")
        con = self._connect(db)
        con.execute("create table if not exists records (id integer primary key, value blob)")
        rows = [(v,) for v in make_values(max(1, MiB // value_bytes), value_bytes, seed=1)]

        def on_disk():
            return sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))

        while on_disk() < size:
            con.execute("begin")
            con.executemany("insert into records (value) values (?)", rows)
            con.execute("commit")
        small = rows[:16]
        con.execute("begin")
        con.executemany("insert into records (value) values (?)", small)
        con.execute("commit")
        ready()
        while keep_writing:
            con.execute("begin")
            con.executemany("insert into records (value) values (?)", small)
            con.execute("commit")
        con.close()

    def recovery_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.size * 1.5), "the SQLite database")
        self.data = data
        self.dir = fill_recovery_store(self, tmpdir, data)

    def recovery_run(self, case):
        crash_writer_if_asked(self, case, self.dir, self.data)
        t0 = time.perf_counter()
        con = sqlite3.connect(os.path.join(self.dir, "bench.db"), isolation_level=None)
        con.execute("select max(id) from records").fetchone()
        seconds = time.perf_counter() - t0
        con.close()
        return {"seconds": seconds}

    def recovery_teardown(self):
        rmtree(self.dir)
