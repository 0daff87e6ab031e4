"""The ``export`` workload: ``topic.to_parquet`` (tidelog.export) of a topic
of sensor rows beside ``pyarrow.parquet.write_table`` of the same rows held
in memory as a ``pa.Table`` (the limit: the Parquet encoder alone, no read).

Both sides write one Parquet file with the same settings: zstd, 1 Mi-row row
groups, pyarrow's other defaults. The topic (one partition, the sensor rows
in 64 Ki-row frames, uncompressed) is read once before the clock, so its
segments are in the page cache, as the other side's table is in memory.
tidelog's figure includes everything an export does: the streaming read, the
hidden staging folder, the fsync of the file and the rename into place.
The in-memory side writes into the page cache without an fsync, so its
figure is the encoder's speed, not the disk's. Rows/s of input rows.

The contenders are in contenders/tidelog_export.py.
"""
from __future__ import annotations

import dataclasses

from .core import GB, KiB, MB, ROW_BYTES, Metric, SensorData, Target, Workload, available_memory, human_bytes

ROW_GROUP_SIZE = 1 << 20
COMPRESSION = "zstd"


@dataclasses.dataclass
class ExportData:
    sensors: SensorData
    row_group_size: int = ROW_GROUP_SIZE
    compression: str = COMPRESSION

    @property
    def nbytes(self) -> int:
        return self.sensors.nbytes


class Export(Workload):
    name = "export"
    title = "14. Export to Parquet"
    description = (
        "`topic.to_parquet(out)` of a 1-partition topic of sensor rows (64 Ki-row frames, in the page cache) "
        "beside `pyarrow.parquet.write_table` of the same rows held in memory as a `pa.Table`: one file each, "
        "zstd, 1 Mi-row row groups. tidelog's time includes the streaming read, the fsync of the file and its "
        "rename into place; the in-memory side is the Parquet encoder alone. Input rows/s."
    )
    param_names = ("size",)
    SIZES = {"smoke": [200_000], "quick": [20 * MB], "full": [100 * MB, 1 * GB]}
    FRAME_ROWS = {"smoke": 4 * KiB, "quick": 64 * KiB, "full": 64 * KiB}

    def grid(self, mode, opts):
        sizes = self.SIZES[mode]
        if opts.get("max_size"):
            sizes = [s for s in sizes if s <= opts["max_size"]] or sizes[:1]
        return [{"size": s} for s in sizes]

    def make_data(self, params, mode):
        rows = params["size"] // ROW_BYTES
        return ExportData(SensorData(rows, self.FRAME_ROWS[mode], seed=rows % 991),
                          row_group_size=ROW_GROUP_SIZE if mode != "smoke" else 16 * KiB)

    def interleaved(self, params):
        # the topic in the page cache, the table in memory, each side's output file
        return params["size"] * 4 <= available_memory() // 3

    def limit(self, params, case):
        return "pq.write_table (in memory)"

    def primary(self, params, case):
        return Metric("rows/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        return {"rows/s": m["rows"] / s, "MB/s": m["rows"] * ROW_BYTES / s / MB,
                "file MB": m["file_bytes"] / MB}

    def targets(self, mode, opts):
        return [Target(f"{human_bytes(g['size'])} to_parquet >= 0.8x pq.write_table of the same rows in memory",
                       "tidelog to_parquet", "pq.write_table (in memory)", {"size": g["size"]}, 0.8)
                for g in self.grid(mode, opts)]

    def label(self, params, case):
        return f"{human_bytes(params['size'])} to Parquet"


__all__ = ["Export", "ExportData", "ROW_GROUP_SIZE", "COMPRESSION"]
