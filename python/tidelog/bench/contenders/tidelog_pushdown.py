"""tidelog in the pushdown workload (tidelog.bench.pushdown), and its
baselines: the same DuckDB / Polars query over the whole ``topic.scan()``
stream, over the rows held in memory as a ``pa.Table``, and over only the rows
the query keeps, in memory (what no reader can beat).

Each side that reads a topic builds it itself from the workload's
deterministic rows (one partition, one frame per 64 Ki-row batch), so every
contender reads the same bytes. A round is one query; its answer goes out as
the round's ``check``, which every contender of a case must agree on.

Concurrency: one thread drives a contender (the runner's); DuckDB and Polars
use their own worker threads inside a query.
"""
from __future__ import annotations

import time

import pyarrow as pa

from ..core import SCHEMA, Contender, need_disk, need_memory, rmtree
from ._common import store_dir

TOPIC = "sensors"


def duckdb_query(case: dict, data, table: str = "sensors") -> str:
    if case["query"] == "window":
        t0, t1 = data.window
        return (f"select sensor_id, avg(value) as mean from {table} where ts >= {t0} and ts < {t1} "
                "group by sensor_id order by sensor_id")
    return f"select count(*) as n, avg(value) as mean from {table} where sensor_id = {data.sensor}"


def _kept(query: str, data):
    """The rows a query keeps, as a Polars predicate."""
    import polars as pl

    if query == "window":
        return (pl.col("ts") >= data.window[0]) & (pl.col("ts") < data.window[1])
    return pl.col("sensor_id") == data.sensor


def polars_query(case: dict, data, lf):
    import polars as pl

    if case["query"] == "window":
        t0, t1 = data.window
        return (lf.filter((pl.col("ts") >= t0) & (pl.col("ts") < t1)).group_by("sensor_id")
                .agg(pl.col("value").mean().alias("mean")).sort("sensor_id"))
    return lf.filter(pl.col("sensor_id") == data.sensor).select(pl.len().alias("n"),
                                                                pl.col("value").mean().alias("mean"))


class TidelogPushdown(Contender):
    """``role``: "pushdown" (tidelog.duckdb / tidelog.polars), "whole scan"
    (the engine over topic.scan()) or "memory" (the engine over a pa.Table)."""

    NAMES = {"pushdown": "tidelog pushdown", "whole scan": "tidelog, whole scan",
             "memory": "arrow in memory (query)", "needed": "only the rows needed, in memory"}
    KINDS = {"pushdown": "tidelog", "whole scan": "peer", "memory": "limit", "needed": "limit"}
    requires = ("duckdb", "polars")

    def __init__(self, role: str = "pushdown"):
        self.role = role
        self.name = self.NAMES[role]
        self.kind = self.KINDS[role]
        self.description = {
            "pushdown": "tidelog.duckdb.register / tidelog.polars.scan: columns and filters pushed into reads",
            "whole scan": "DuckDB / Polars over topic.scan(): every column of every frame, the engine filters",
            "memory": "DuckDB / Polars over the same rows held in memory as a pa.Table",
            "needed": "DuckDB / Polars over only the rows the query keeps, held in memory: the floor of pushdown",
        }[role]

    def available(self):
        reason = super().available()
        if reason is None and self.role == "pushdown":
            try:
                import tidelog.duckdb  # noqa: F401
                import tidelog.analytics._duckdb_source  # noqa: F401 - needs duckdb >= 2.0
            except ImportError as e:
                return str(e)
        return reason

    def pushdown_setup(self, tmpdir, params, data):
        import duckdb
        import polars as pl

        self.data = data
        self.log = None
        self.path = None
        self.con = duckdb.connect()
        if self.role in ("memory", "needed"):
            need_memory(data.nbytes, "the in-memory table")
            self.table = pa.Table.from_batches(list(data.rows.batches()), schema=SCHEMA)
            self.frame = pl.DataFrame(self.table).lazy()
            if self.role == "needed":  # a table per query: its rows alone (the window's, sensor 7's)
                self.needed = {q: (self.frame.filter(_kept(q, data)).collect().to_arrow()) for q in ("window", "sensor")}
                self.table = self.frame = None
            else:
                self.con.register(TOPIC, self.table)
            return
        import tidelog
        import tidelog.duckdb
        import tidelog.polars

        need_disk(tmpdir, data.nbytes * 2, "the topic")
        self.path = store_dir(tmpdir, self.name)
        self.log = tidelog.open(self.path)
        topic = self.log.create_topic(TOPIC, schema=SCHEMA, timestamp="ts", durability="none")
        for batch in data.rows.batches():
            topic.append(batch)
        self.log.flush()
        self.topic = topic
        describe = topic.describe()
        self.topic_bytes = describe["bytes"]
        self.topic_frames = sum(1 for _ in _frames(topic))
        if self.role == "pushdown":
            self.registered = tidelog.duckdb.register(self.con, topic, TOPIC)
            self.reads = tidelog.polars.Reads()
            self.frame = tidelog.polars.scan(topic, reads=self.reads)
        else:
            self.con.register(TOPIC, topic.scan())

    def pushdown_run(self, case):
        import polars as pl

        reads = None
        if self.role == "pushdown":
            reads = self.registered.reads if case["engine"] == "duckdb" else self.reads
            reads.clear()
        if self.role == "needed":
            needed = self.needed[case["query"]]
            self.con.register(TOPIC, needed)
            self.frame = pl.DataFrame(needed).lazy()
        t0 = time.perf_counter()
        if case["engine"] == "duckdb":
            answer = self.con.sql(duckdb_query(case, self.data, TOPIC)).fetchall()
        else:
            # without pushdown: every frame, as zero-copy chunks (pl.DataFrame(scan) would also copy them into one)
            frame = self.frame if self.role != "whole scan" else pl.from_arrow(pa.table(self.topic.scan()),
                                                                               rechunk=False).lazy()
            answer = polars_query(case, self.data, frame).collect().rows()
        seconds = time.perf_counter() - t0
        # The answer, rounded, as the check every contender of a case must agree on.
        numbers = [round(v, 6) for row in answer for v in row if isinstance(v, (int, float))]
        out = {"seconds": seconds, "check": f"{len(answer)} rows, sum {sum(numbers):.10g}"}
        if reads is not None:
            out.update(frames=reads.frames, bytes=reads.bytes, rows=reads.rows, topic_bytes=self.topic_bytes,
                       topic_frames=self.topic_frames)
        return out

    def pushdown_teardown(self):
        self.con.close()
        self.table = self.frame = self.needed = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.path is not None:
            rmtree(self.path)


def _frames(topic):
    """Every frame of every partition (the denominator of frames %)."""
    for p in range(topic.partitions):
        part = topic.partition(p)
        cursor, end = part.start_offset, part.end_offset
        while cursor < end:
            frames = part.frames(cursor, end, 1024)
            if not frames:
                break
            yield from frames
            cursor = frames[-1].next_offset
