"""tidelog in the export workload (tidelog.bench.export): ``topic.to_parquet``,
and its limit, ``pyarrow.parquet.write_table`` of the same rows held in memory.

Both sides get the workload's rows (``ExportData.sensors``), write one
Parquet file per round with the same settings into a fresh folder, and delete
it after the round (outside the clock)."""
from __future__ import annotations

import os
import time

import pyarrow as pa

from ..core import SCHEMA, Contender, dir_bytes, need_disk, need_memory, rmtree
from ._common import store_dir


class TidelogExport(Contender):
    """``role``: "tidelog" (``topic.to_parquet``) or "arrow" (``pq.write_table`` from memory)."""

    def __init__(self, role: str = "tidelog"):
        self.role = role
        self.name = {"tidelog": "tidelog to_parquet", "arrow": "pq.write_table (in memory)"}[role]
        self.kind = "tidelog" if role == "tidelog" else "limit"
        self.description = {
            "tidelog": "topic.to_parquet(out, row_group_size, compression): a one-off export of a 1-partition "
                       "topic, streamed frame by frame, fsynced and renamed into place",
            "arrow": "pyarrow.parquet.write_table of the same rows as one in-memory pa.Table, same settings",
        }[role]

    def export_setup(self, tmpdir, params, data):
        self.data = data
        self.path = store_dir(tmpdir, self.name)
        need_disk(tmpdir, 2 * data.nbytes, "the export's topic and file")
        if self.role == "arrow":
            need_memory(data.nbytes, "the in-memory table")
            self.table = pa.Table.from_batches(list(data.sensors.batches()), schema=SCHEMA)
            return
        import tidelog

        self.log = tidelog.open(os.path.join(self.path, "log"))
        self.topic = self.log.create_topic("sensors", schema=SCHEMA, timestamp="ts", durability="none")
        for batch in data.sensors.batches():
            self.topic.append(batch)
        self.log.flush()
        self.topic.read()  # the segments in the page cache, as the other side's table is in memory

    def export_run(self, case):
        out = os.path.join(self.path, "out")
        rmtree(out)
        data = self.data
        if self.role == "arrow":
            import pyarrow.parquet as pq

            os.makedirs(out)
            t0 = time.perf_counter()
            pq.write_table(self.table, os.path.join(out, "data.parquet"), row_group_size=data.row_group_size,
                           compression=data.compression)
            seconds = time.perf_counter() - t0
            rows = self.table.num_rows
        else:
            t0 = time.perf_counter()
            result = self.topic.to_parquet(out, row_group_size=data.row_group_size, compression=data.compression)
            seconds = time.perf_counter() - t0
            rows = result.rows
        if rows != data.sensors.total_rows:
            raise AssertionError(f"{rows} rows exported of {data.sensors.total_rows}")
        file_bytes = dir_bytes(out)
        rmtree(out)
        return {"seconds": seconds, "rows": rows, "file_bytes": file_bytes}

    def export_teardown(self):
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
            self.log = None
        self.table = None
        rmtree(self.path)


__all__ = ["TidelogExport"]
