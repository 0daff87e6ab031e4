"""The ``compaction`` workload: the log cleaner of compacted topics
(``cleanup_policy="compact"``, tidelog.compaction).

Three parts, each its own parameter set:

* ``clean``: one ``topic.compact_now()`` over a 1-partition topic whose
  segments are all sealed and whose keys are updated many times each (most
  records go), beside reading the same segment files sequentially
  (``os.readv`` into a 1 MiB buffer): MB/s of segment bytes compacted. Two
  shapes: ``columnar`` (the sensor schema keyed by an int32 of ``keys``
  distinct values; 20-byte rows) and ``bytes`` (byte records, 16-byte keys,
  100-byte values). Two cases: ``cold`` (the segments evicted from the page
  cache first, on both sides; the target's case, since a cleaner mostly reads
  segments written long before) and ``warm`` (both sides read from the page
  cache: what the cleaner's own work costs). Every round compacts a fresh copy
  of the prepared log (copied outside the clock); the Log's own cleaner thread
  is stopped so that only the timed pass runs.
* ``appends``: ``topic.append`` of 4 Ki-row sensor batches to one compacted
  topic (durability="interval": a page-cache write, so the figure is CPU, not
  the disk) for as long as a cleaner thread of the same process takes to
  compact the other, pre-filled, compacted topics of the same log (one pass
  each: the code the Log's cleaner thread runs, ``Cleaner.clean``), beside the
  same appends for a fixed time with no cleaner: rows/s.
* ``table``: ``topic.table()`` (the latest row per key) over rows whose key
  has ``keys`` distinct values, about two rows a key, beside pyarrow computing
  the same from a ``pa.Table`` of the rows in memory (group_by key, max row
  number, take): input rows/s.

The contenders are in contenders/tidelog_compaction.py; benches/
test_bench_compaction.py checks the targets (C1-C3).
"""
from __future__ import annotations

import dataclasses

from .core import KiB, MB, MiB, Metric, Workload, human_bytes, human_count


@dataclasses.dataclass
class CompactionData:
    """One part's sizes."""

    part: str                        # "clean" | "appends" | "table"
    records: str = "columnar"        # clean: "columnar" (sensor rows) or "bytes" (byte records)
    size: int = 0                    # clean: segment bytes to compact; appends: bytes of every cleaner topic
    segment_bytes: int = 64 * MiB
    keys: int = 100_000              # distinct keys
    batch_rows: int = 64 * KiB       # rows (records) per append while filling
    value_bytes: int = 100           # clean, bytes: the value of a record (keys are 16 bytes)
    cleaner_topics: int = 0          # appends: compacted topics the cleaner goes round
    seconds: float = 1.0             # appends: the length of a round
    append_rows: int = 4 * KiB       # appends: rows per append
    rows: int = 0                    # table: rows of the topic


class Compaction(Workload):
    name = "compaction"
    title = "12. Log compaction"
    description = (
        "Compacted topics (`cleanup_policy=\"compact\"`). *clean*: `topic.compact_now()` over a 1-partition topic of "
        "sealed segments whose keys were updated many times each (sensor rows keyed by an int32 of 100 k values, "
        "or byte records with 16-byte keys and 100-byte values), a fresh copy every round, the Log's cleaner "
        "thread stopped; MB/s of segments compacted, beside reading the same files sequentially (1 MiB "
        "`os.readv`); *cold*: both sides start with the files out of the page cache, *warm*: in it. "
        "*appends*: `topic.append` of 4 Ki-row batches (durability=\"interval\") to a compacted topic while a "
        "cleaner thread compacts other topics of the same log (one pass each), beside no cleaner. "
        "*table*: `topic.table()` (latest row per key, about two rows a key) beside pyarrow's group_by + take "
        "over the same rows in memory."
    )
    param_names = ("part", "records")
    # clean: (segment bytes compacted, segment_bytes, keys)
    CLEAN = {"smoke": (2 * MiB, 256 * KiB, 2_000), "quick": (48 * MiB, 8 * MiB, 20_000),
             "full": (320 * MiB, 64 * MiB, 100_000)}
    # appends: (cleaner topics, bytes each, segment_bytes, round seconds)
    # (the no-cleaner side appends for the round seconds; the other for as long as one pass over every
    # cleaner topic takes, about as long at ~250 MB/s)
    APPENDS = {"smoke": (1, 1 * MiB, 256 * KiB, 0.05), "quick": (2, 32 * MiB, 8 * MiB, 0.3),
               "full": (4, 96 * MiB, 16 * MiB, 1.5)}
    # table: (rows, keys)
    TABLE = {"smoke": (4_000, 2_000), "quick": (400_000, 200_000), "full": (2_000_000, 1_000_000)}

    def grid(self, mode, opts):
        return [{"part": "clean", "records": "columnar"}, {"part": "clean", "records": "bytes"},
                {"part": "appends"}, {"part": "table"}]

    def cases(self, params):
        if params["part"] == "clean":
            return [{"cache": "cold"}, {"cache": "warm"}]
        return [{}]

    def make_data(self, params, mode):
        part = params["part"]
        if part == "clean":
            size, seg, keys = self.CLEAN[mode]
            rows = 64 * KiB if mode != "smoke" else 4 * KiB
            if params["records"] == "bytes":
                rows //= 8
            return CompactionData(part, records=params["records"], size=size, segment_bytes=seg, keys=keys,
                                  batch_rows=rows)
        if part == "appends":
            n, size, seg, seconds = self.APPENDS[mode]
            return CompactionData(part, size=size, segment_bytes=seg, keys=self.CLEAN[mode][2], cleaner_topics=n,
                                  seconds=seconds, batch_rows=64 * KiB if mode != "smoke" else 4 * KiB,
                                  append_rows=4 * KiB if mode != "smoke" else 256)
        rows, keys = self.TABLE[mode]
        return CompactionData(part, rows=rows, keys=keys, batch_rows=64 * KiB)

    def rounds(self, mode, opts):
        if mode == "full":
            return 1, opts.get("rounds") or 5
        return super().rounds(mode, opts)

    def limit(self, params, case):
        return {"clean": "sequential read", "appends": "tidelog appends, no cleaner",
                "table": "arrow last row per key"}[params["part"]]

    def primary(self, params, case):
        return {"clean": Metric("MB/s"), "appends": Metric("rows/s"), "table": Metric("rows/s")}[params["part"]]

    def metrics(self, params, case, m):
        s = m["seconds"]
        part = params["part"]
        if part == "clean":
            out = {"MB/s": m["bytes"] / s / MB}
            if m.get("records_removed") is not None:
                out["records removed/s"] = m["records_removed"] / s
                out["bytes after/before"] = m["bytes_after"] / m["bytes"]
            return out
        if part == "appends":
            out = {"rows/s": m["rows"] / s}
            if m.get("cleaner_bytes") is not None:
                out["cleaner MB/s"] = m["cleaner_bytes"] / s / MB
                out["cleaner passes"] = m["cleaner_passes"]
            return out
        return {"rows/s": m["rows"] / s, "ms": s * 1e3}

    def label(self, params, case):
        part = params["part"]
        cache = f", {case['cache']}" if case.get("cache") else ""
        if part == "clean":
            what = "sensor rows" if params["records"] == "columnar" else "byte records"
            return f"compact_now() of {what}{cache}"
        if part == "appends":
            return "appends to a compacted topic while a cleaner runs"
        return "table() of the latest row per key"

    @staticmethod
    def describe(data: CompactionData) -> str:
        """The sizes of one part, for a bench's printout."""
        if data.part == "clean":
            return (f"{human_bytes(data.size)} in {human_bytes(data.segment_bytes)} segments, "
                    f"{human_count(data.keys)} keys")
        if data.part == "appends":
            return f"{data.cleaner_topics} cleaner topics of {human_bytes(data.size)}, {data.seconds:g} s rounds"
        return f"{data.rows} rows, {data.keys} keys"


__all__ = ["Compaction", "CompactionData"]
