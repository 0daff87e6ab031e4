"""The demo's comparison line: the same durable ingest into SQLite (WAL,
synchronous=FULL, one transaction per batch, ``executemany``) - what an
application that keeps readings in a local database would do."""
from __future__ import annotations

import sqlite3
import time
from typing import Iterable

import pyarrow as pa


def sqlite_ingest(path: str, batches: Iterable[pa.RecordBatch], rows: int) -> tuple[int, float]:
    """Inserts the first ``rows`` rows of ``batches``. Returns (rows, seconds)."""
    con = sqlite3.connect(path)
    try:
        con.execute("pragma journal_mode=wal")
        con.execute("pragma synchronous=full")
        con.execute("create table if not exists readings (ts integer, sensor_id integer, value real)")
        taken = 0
        start = time.perf_counter()
        for b in batches:
            if taken >= rows:
                break
            b = b.slice(0, rows - taken)
            taken += b.num_rows
            columns = (b.column(0).cast(pa.int64()).to_pylist(), b.column(1).to_pylist(), b.column(2).to_pylist())
            with con:
                con.executemany("insert into readings values (?, ?, ?)", zip(*columns))
        return taken, time.perf_counter() - start
    finally:
        con.close()
