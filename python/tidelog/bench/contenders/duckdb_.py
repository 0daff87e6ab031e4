"""DuckDB: Arrow ingest (``INSERT INTO t SELECT * FROM arrow_table``), scans in its
own engine, open after a crash. One class, no change to any workload: the
example of adding a contender."""
from __future__ import annotations

import os
import time

import pyarrow as pa

from ..core import MiB, Contender, need_disk, rmtree
from ._common import crash_writer_if_asked, fill_recovery_store, store_dir, timed_windows


class DuckDB(Contender):
    name = "duckdb"
    kind = "peer"
    requires = ("duckdb",)
    description = ("duckdb file database: INSERT INTO t SELECT * FROM arrow_table per batch (each statement a "
                   "transaction; DuckDB fdatasyncs its WAL on every commit); SQL aggregates in its engine")

    def _open(self, tmpdir: str, ddl: str | None = None):
        import duckdb

        self.dir = store_dir(tmpdir, self.name)
        self.con = duckdb.connect(os.path.join(self.dir, "bench.duckdb"))
        if ddl:
            self.con.execute(ddl)
        return self.con

    def _close(self):
        self.con.close()
        rmtree(self.dir)

    # ------------------------------------------------------------- ingest
    def ingest_supports(self, params):
        # every DuckDB commit is durable, there is no cheaper mode; a table has no partitions
        return bool(params["durable"]) and "partitions" not in params

    def ingest_setup(self, tmpdir, params, data):
        self._open(tmpdir, "create table readings (ts BIGINT, sensor_id INTEGER, value DOUBLE)")
        self.batches = data.take(1 << 22)

    def ingest_run(self, case):
        con = self.con
        t0 = time.perf_counter()
        for arrow_table in self.batches:
            con.register("arrow_table", arrow_table)
            con.execute("INSERT INTO readings SELECT * FROM arrow_table").fetchall()
        return {"seconds": time.perf_counter() - t0, "rows": sum(b.num_rows for b in self.batches)}

    def ingest_teardown(self):
        self._close()

    # -------------------------------------------------------------- scans
    def scans_supports(self, params):
        return "frame_rows" not in params     # a table has no frames to size

    def scans_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.nbytes * 1.5), "the DuckDB database")
        con = self._open(tmpdir, "create table readings (ts BIGINT, sensor_id INTEGER, value DOUBLE)")
        con.execute("begin")
        for arrow_table in data.sensors.batches():
            con.register("arrow_table", arrow_table)
            con.execute("INSERT INTO readings SELECT * FROM arrow_table").fetchall()
        con.execute("commit")
        con.unregister("arrow_table")
        con.execute("checkpoint")
        self.data = data

    def scans_run(self, case):
        q, con, data = case["query"], self.con, self.data
        if q == "scan":
            t0 = time.perf_counter()
            total = con.execute("select sum(value) from readings").fetchall()[0][0]
            return {"seconds": time.perf_counter() - t0, "rows": data.sensors.total_rows, "check": total}
        if q == "range":
            query = "select count(*), sum(value) from readings where ts >= ? and ts < ?"
            return timed_windows(data.range_ts, lambda t0, t1: con.execute(query, [t0, t1]).fetchall()[0])
        execute = con.execute
        total = 0.0
        t0 = time.perf_counter()
        for k in data.points:
            total += execute("select ts, sensor_id, value from readings where rowid = ?", [k]).fetchall()[0][2]
        return {"seconds": time.perf_counter() - t0, "lookups": len(data.points), "check": total}

    def scans_teardown(self):
        self._close()

    # ----------------------------------------------------------- recovery
    def recovery_writer(self, path, size, value_bytes, keep_writing, ready):
        import duckdb
        from ..core import make_values

        db = os.path.join(path, "bench.duckdb")
        con = duckdb.connect(db)
        con.execute("create table if not exists records (id BIGINT, value BLOB)")
        values = pa.array(make_values(max(1, MiB // value_bytes), value_bytes, seed=1), pa.binary())
        n = con.execute("select count(*) from records").fetchall()[0][0]

        def insert(vals):
            nonlocal n
            arrow_table = pa.table({"id": pa.array(range(n, n + len(vals)), pa.int64()), "value": vals})
            con.register("arrow_table", arrow_table)
            con.execute("INSERT INTO records SELECT * FROM arrow_table").fetchall()
            n += len(vals)

        def on_disk():
            return sum(os.path.getsize(db + s) for s in ("", ".wal") if os.path.exists(db + s))

        while on_disk() < size:
            insert(values)
        small = values.slice(0, 16)
        insert(small)
        ready()
        while keep_writing:
            insert(small)
        con.close()

    def recovery_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.size * 1.5), "the DuckDB database")
        self.data = data
        self.dir = fill_recovery_store(self, tmpdir, data)

    def recovery_supports(self, params):
        return not params.get("columnar")

    def recovery_run(self, case):
        import duckdb

        crash_writer_if_asked(self, case, self.dir, self.data)
        t0 = time.perf_counter()
        con = duckdb.connect(os.path.join(self.dir, "bench.duckdb"))
        con.execute("select count(*) from records").fetchall()[0]
        seconds = time.perf_counter() - t0
        con.close()
        return {"seconds": seconds}

    def recovery_teardown(self):
        rmtree(self.dir)
