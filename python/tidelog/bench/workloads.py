"""The workloads of the suite (7-9, behind target benchmarks, in targets.py; 10, many processes on one log,
in many_processes.py; 11, consumer groups, in groups.py; 12, log compaction, in compaction.py; 13, the event
store against the eventsourcing library, in events.py; 14, exports to Parquet, in export.py; 15, the Arrow Flight endpoint, in flight.py; 16,
DuckDB and Polars with pushdown, in pushdown.py; 17, the MQTT bridge, in mqtt.py). Each builds
its data once per parameter set (every contender gets the same bytes), turns a contender's raw measure into
metrics, and names its physical-limit baseline.

Modes: ``smoke`` (CI: tiny data, one round), ``quick`` (under a minute),
``full`` (the published numbers; sizes capped by ``--max-size``).
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pyarrow as pa

from .core import (
    GB, KiB, MB, MiB, ROW_BYTES, Metric, SensorData, Target, Workload, available_memory, human_bytes, human_count,
    make_values, median, percentiles, sensor_batch,
)
from .compaction import Compaction
from .events import Events
from .export import Export
from .flight import Flight
from .mqtt import Mqtt
from .groups import Groups
from .many_processes import Processes
from .pushdown import Pushdown
from .targets import Copies, Damage, Records

# ---------------------------------------------------------------- 1 ingest


@dataclasses.dataclass
class IngestData:
    batches: list[pa.RecordBatch]
    batch_rows: int
    durable: bool
    slow_rows: int          # rows per round for slow contenders (SQLite: ~0.5 M rows/s)

    @property
    def rows(self) -> int:
        return sum(b.num_rows for b in self.batches)

    def take(self, max_rows: int | None = None) -> list[pa.RecordBatch]:
        """The first batches, at least one, holding at most ``max_rows`` rows
        (default ``slow_rows``): slow contenders do fewer batches per round
        (their figures are rates)."""
        max_rows = self.slow_rows if max_rows is None else max_rows
        k = max(1, min(len(self.batches), max_rows // max(self.batch_rows, 1)))
        return self.batches[:k]


class Ingest(Workload):
    name = "ingest"
    title = "1. Columnar ingest"
    description = (
        "Batches of sensor rows (int64 ts, int32 sensor_id, float64 value; 20 bytes a row) appended one batch "
        "at a time. Durable: each append/commit returns once the batch is on disk (fdatasync). Not durable: it "
        "returns once the batch is in the page cache (crash-safe for a process crash, not a power loss); every "
        "contender's round starts with no dirty pages (`os.sync()` outside the clock)."
    )
    param_names = ("batch_rows", "durable")
    SIZES = {"smoke": [1, 100], "quick": [1, 100, 64 * KiB],
             "full": [1, 100, 10 * KiB, 64 * KiB, 1 * MiB]}
    # rows per round, the cap on batches per round (durable, not durable: 1-row durable appends are one
    # fdatasync each), rows per round for slow contenders
    BUDGET = {"smoke": (512, 4, 16, 512), "quick": (128 * KiB, 12, 300, 64 * KiB),
              "full": (4 * MiB, 100, 3000, 256 * KiB)}

    def grid(self, mode, opts):
        grid = [{"batch_rows": b, "durable": d} for d in (True, False) for b in self.SIZES[mode]]
        # the same durable batches into 4 partitions keyed by sensor_id (tidelog and the raw limits only):
        # each batch split into 4 frames, made durable together
        keyed_rows = 100 if mode == "smoke" else 64 * KiB
        return grid + [{"batch_rows": keyed_rows, "durable": True, "partitions": 4}]

    def targets(self, mode, opts):
        out = []
        for rows in self.SIZES[mode]:
            if rows >= 64 * KiB:
                out.append(Target(f"durable {human_count(rows)}-row batches >= 0.8x write+fdatasync", "tidelog",
                                  "write+fdatasync", {"batch_rows": rows, "durable": True, "partitions": None}, 0.8))
            if rows >= 10 * KiB:
                out.append(Target(f"not durable {human_count(rows)}-row batches >= 0.5x os.write", "tidelog none",
                                  "os.write", {"batch_rows": rows, "durable": False}, 0.5))
        return out

    def make_data(self, params, mode):
        target, max_durable, max_fast, slow = self.BUDGET[mode]
        b = params["batch_rows"]
        n = max(1, min(max_durable if params["durable"] else max_fast, target // b))
        whole = sensor_batch(n * b, seed=b)
        return IngestData([whole.slice(i * b, b) for i in range(n)], b, params["durable"], slow)

    def limit(self, params, case):
        return "write+fdatasync" if params["durable"] else "os.write"

    def settle(self, params, case):
        # Not durable, a round's speed depends on the kernel's writeback state more than on the writer:
        # once dirty pages lag, every writer of new pages is throttled to the disk's speed, and a run's
        # rounds flipped between the two states (one contender measured throttled, the next not, 0.08x
        # against 0.55x for the same code). Every contender's round starts with no dirty pages.
        if not params["durable"]:
            os.sync()

    def primary(self, params, case):
        return Metric("rows/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        out = {"rows/s": m["rows"] / s, "MB/s": m["rows"] * ROW_BYTES / s / MB}
        if m.get("fdatasyncs") is not None:
            out["fdatasyncs/s"] = m["fdatasyncs"] / s
        return out

    def label(self, params, case):
        keyed = f", {params['partitions']} partitions keyed" if params.get("partitions") else ""
        return (f"{human_count(params['batch_rows'])}-row batches, {'durable' if params['durable'] else 'not durable'}"
                f"{keyed}")


# --------------------------------------------------------------- 2 produce


@dataclasses.dataclass
class ProduceData:
    values: list[bytes]
    value_bytes: int
    durable: bool
    slow_records: int       # records per round for slow contenders

    def take(self, max_records: int | None = None) -> list[bytes]:
        max_records = self.slow_records if max_records is None else max_records
        return self.values[:max(1, min(len(self.values), max_records))]


class Produce(Workload):
    name = "produce"
    title = "2. Per-record produce"
    description = (
        "One record at a time from a Python loop (tidelog: `producer.send()` then `flush()`, default linger 5 ms, "
        "1 MiB batches), values of 10 B to 64 KiB, distinct and incompressible. Durable: the round ends when "
        "every record is on disk; not durable: when every record is in the page cache."
    )
    param_names = ("value_bytes", "durable")
    SIZES = {"smoke": [10, 1024], "quick": [100, 64 * KiB], "full": [10, 100, 1024, 64 * KiB]}
    # (value bytes per round, max records per round, max records for slow contenders)
    BUDGET = {"smoke": (64 * KiB, 64, 64), "quick": (4 * MiB, 20_000, 10_000), "full": (64 * MiB, 200_000, 50_000)}

    def grid(self, mode, opts):
        return [{"value_bytes": v, "durable": d} for d in (True, False) for v in self.SIZES[mode]]

    def make_data(self, params, mode):
        total, cap, slow = self.BUDGET[mode]
        size = params["value_bytes"]
        n = max(16, min(cap, total // size))
        return ProduceData(make_values(n, size, seed=size), size, params["durable"], slow)

    def limit(self, params, case):
        return "write+fdatasync" if params["durable"] else "os.write"

    def primary(self, params, case):
        return Metric("records/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        return {"records/s": m["records"] / s, "MB/s": m["records"] * params["value_bytes"] / s / MB}

    def label(self, params, case):
        v = params["value_bytes"]
        size = f"{v // KiB} KiB" if v >= KiB and v % KiB == 0 else f"{v} B"
        return f"{size} values, {'durable' if params['durable'] else 'not durable'}"


# --------------------------------------------------------------- 3 threads


@dataclasses.dataclass
class ThreadsData:
    threads: int
    per_thread: int
    batches: list[pa.RecordBatch]      # one 1-row sensor batch per ack (columnar contenders)
    values: list[bytes]                # one 100-byte value per ack (record contenders)


class Threads(Workload):
    name = "threads"
    title = "3. Durable appends from many threads"
    description = (
        "N threads start together; each appends one small record (a 1-row sensor batch, or a 100-byte value) and "
        "waits for its own durable acknowledgement before the next. acks/s over the round; fdatasyncs/s where "
        "the contender can count them (tidelog: `log.stats()['fdatasyncs']`); ack latency percentiles over all "
        "acks of all rounds."
    )
    param_names = ("threads",)
    THREADS = {"smoke": [1, 4], "quick": [1, 4, 16], "full": [1, 2, 4, 8, 16, 32]}
    # (acks per round, min acks per thread)
    BUDGET = {"smoke": (8, 2), "quick": (40, 3), "full": (480, 24)}

    def grid(self, mode, opts):
        return [{"threads": n} for n in self.THREADS[mode]]

    def make_data(self, params, mode):
        total, least = self.BUDGET[mode]
        n = params["threads"]
        return self.data_for(n, max(least, math.ceil(total / n)))

    @staticmethod
    def data_for(threads: int, per_thread: int) -> ThreadsData:
        """``per_thread`` acks for each of ``threads`` threads (benches/ picks its own counts)."""
        acks = threads * per_thread
        big = sensor_batch(acks, seed=threads)
        return ThreadsData(threads, per_thread, [big.slice(i, 1) for i in range(acks)],
                           make_values(acks, 100, seed=threads))

    def limit(self, params, case):
        return "write+fdatasync"

    def primary(self, params, case):
        return Metric("acks/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        out = {"acks/s": m["acks"] / s}
        if m.get("fdatasyncs") is not None:
            out["fdatasyncs/s"] = m["fdatasyncs"] / s
            out["acks/fdatasync"] = m["acks"] / m["fdatasyncs"] if m["fdatasyncs"] else float("nan")
        p50, p99 = percentiles(m["latencies_ns"], (50, 99))
        out["p50 ms"], out["p99 ms"] = p50 / 1e6, p99 / 1e6
        return out

    def pooled(self, params, case, measures):
        lat = [x for m in measures for x in m["latencies_ns"]]
        p50, p99 = percentiles(lat, (50, 99))
        return {"p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6}

    def targets(self, mode, opts):
        n = 16 if 16 in self.THREADS[mode] else max(self.THREADS[mode])
        return [Target(f"{n} threads, each waiting for its durable ack ({how}): >= 0.8x the group commit floor",
                       subject, "group commit floor", {"threads": n}, 0.8)
                for subject, how in (("tidelog", "topic.append"), ("tidelog producer", "send().result()"))]

    def label(self, params, case):
        n = params["threads"]
        return f"{n} thread{'s' if n > 1 else ''}"


# ----------------------------------------------------------------- 4 scans


@dataclasses.dataclass
class ScanData:
    sensors: SensorData
    range_rows: list[tuple[int, int]]  # [lo, hi) row numbers of each 1 % time window, one round's worth
    range_ts: list[tuple[int, int]]    # the same as [t0, t1) timestamps
    points: list[int]                  # offsets looked up, one round's worth
    segment_bytes: int | None = None   # tidelog's segment size (None: the default)

    @property
    def nbytes(self) -> int:
        return self.sensors.nbytes


class Scans(Workload):
    name = "scans"
    title = "4. Scans, time ranges, point lookups"
    description = (
        "A topic/table of sensor rows in time order (64 Ki-row batches), written before timing and read once, "
        "so the page cache is warm. *scan*: every row into Arrow (peers: their native engine) and a sum over "
        "`value`. *range*: the rows of a 1 % time window, summed; 8 windows spread over the data per round, the "
        "time per window reported. *point*: the row at one offset (SQL stores: by primary key / rowid), many "
        "lookups per round at random offsets."
    )
    param_names = ("size",)
    SIZES = {"smoke": [200_000], "quick": [2 * MB, 10 * MB], "full": [100 * MB, 1 * GB, 5 * GB]}
    POINTS = {"smoke": 4, "quick": 50, "full": 200}
    # 1 % windows per round, spread from 5 % to 95 % of the data: one window is a 0.1-4 ms query whose time
    # was mostly the CPU-cache state the previous contender left (one window a round, 100 MB: tidelog and
    # in-memory Arrow alone 1.55-1.65x, with all five contenders 0.45-0.62x, each round's spread 2-4x)
    RANGE_WINDOWS = 8
    BATCH_ROWS = {"smoke": 4 * KiB, "quick": 64 * KiB, "full": 64 * KiB}

    # per-frame overhead: the same rows in 64 Ki-row and in 1 Mi-row frames (tidelog and plain Arrow only;
    # full: the 16 Mi rows of benches/test_bench_scan.py)
    FRAME_ROWS = {"smoke": [], "quick": [64 * KiB, 1 * MiB], "full": [64 * KiB, 1 * MiB]}
    FRAMES_SIZE = {"smoke": 0, "quick": 2 * MiB * ROW_BYTES, "full": 16 * MiB * ROW_BYTES}

    def grid(self, mode, opts):
        sizes = self.SIZES[mode]
        if opts.get("scan_sizes"):
            sizes = opts["scan_sizes"]
        if opts.get("max_size"):
            sizes = [s for s in sizes if s <= opts["max_size"]]
        frames_size = self.FRAMES_SIZE[mode]
        capped = opts.get("max_size") and frames_size > opts["max_size"]
        frames = [] if capped or opts.get("scan_sizes") else self.FRAME_ROWS[mode]
        return [{"size": s} for s in sizes] + [{"size": frames_size, "frame_rows": f} for f in frames]

    def cases(self, params):
        return [{"query": "scan"}, {"query": "range"}, {"query": "point"}]

    def interleaved(self, params):
        # round-robin while every contender's copy (files in the page cache, the in-memory table) fits in a
        # third of the available memory; larger sizes run one contender at a time
        return params["size"] * 6 <= available_memory() // 3

    def rounds(self, mode, opts):
        if mode == "full":
            return 1, opts.get("rounds") or 9   # a scan round is short; more rounds tame the noise
        return super().rounds(mode, opts)

    def make_data(self, params, mode):
        rows = params["size"] // ROW_BYTES
        sensors = SensorData(rows, params.get("frame_rows", self.BATCH_ROWS[mode]), seed=rows % 997)
        width = max(1, rows // 100)
        k = self.RANGE_WINDOWS
        windows = [(lo, lo + width) for lo in (int(rows * (0.05 + 0.89 * i / (k - 1))) for i in range(k))]
        points = [int(x) for x in np.random.default_rng(rows).integers(0, rows, self.POINTS[mode])]
        return ScanData(sensors, windows, [(sensors.ts_of_row(lo), sensors.ts_of_row(hi)) for lo, hi in windows],
                        points)

    def limit(self, params, case):
        return "arrow (in memory)"

    def targets(self, mode, opts):
        # Point lookups within 1.2x SQLite's primary-key lookup; a 1 % time range at
        # >= 0.6x the speed of the same search over the batches held in memory.
        out = []
        for g in self.grid(mode, opts):
            if "frame_rows" in g:
                continue
            size, where = g["size"], human_bytes(g["size"])
            out.append(Target(f"{where} point lookup <= 1.2x sqlite NORMAL's time", "tidelog", "sqlite NORMAL",
                              {"size": size, "frame_rows": None, "query": "point"}, 1 / 1.2))
            out.append(Target(f"{where} 1% time range >= 0.6x arrow (in memory)", "tidelog", "arrow (in memory)",
                              {"size": size, "frame_rows": None, "query": "range"}, 0.6))
        return out

    def primary(self, params, case):
        return {"scan": Metric("rows/s"), "range": Metric("ms/query", False),
                "point": Metric("µs/lookup", False)}[case["query"]]

    def metrics(self, params, case, m):
        s = m["seconds"]
        q = case["query"]
        if q == "scan":
            return {"rows/s": m["rows"] / s, "GB/s": m["rows"] * ROW_BYTES / s / GB}
        if q == "range":
            return {"ms/query": s * 1e3 / m["queries"], "first ms": m["first_seconds"] * 1e3, "rows/s": m["rows"] / s}
        return {"µs/lookup": s / m["lookups"] * 1e6}

    def label(self, params, case):
        frames = f" in {human_count(params['frame_rows'])}-row frames" if params.get("frame_rows") else ""
        return f"{human_bytes(params['size'])}{frames} {case.get('query', '')}".rstrip()


# ---------------------------------------------------------------- 5 recovery


@dataclasses.dataclass
class RecoveryData:
    size: int
    value_bytes: int
    linger_s: float       # how long the crashing writer appends before SIGKILL


class Recovery(Workload):
    name = "recovery"
    title = "5. Open / recovery time"
    description = (
        "A store filled with 1 KiB records by a child process. *clean*: open after a clean close. *sigkill*: a "
        "child opens the store, appends small durable transactions and is SIGKILLed mid-append; then the open "
        "is timed. Open = what it takes until the store answers its first query (tidelog: `tidelog.open` + end "
        "offsets; SQLite: connect + `max(rowid)`; DuckDB: connect + `count(*)`; LMDB: open + stat), in the "
        "benchmark process (modules already imported), page cache warm."
    )
    param_names = ("size",)
    SIZES = {"smoke": [100_000], "quick": [1 * MB, 10 * MB], "full": [10 * MB, 100 * MB, 1 * GB]}
    LINGER = {"smoke": 0.02, "quick": 0.03, "full": 0.3}

    # a columnar topic of sensor rows (tidelog columnar and open+mmap only; full: benches/test_bench_recovery.py)
    COLUMNAR = {"smoke": 4 * MiB, "quick": 64 * MiB, "full": 1 << 30}

    def grid(self, mode, opts):
        sizes = self.SIZES[mode]
        columnar = [self.COLUMNAR[mode]]
        if opts.get("max_size"):
            sizes = [s for s in sizes if s <= opts["max_size"]]
            columnar = [s for s in columnar if s <= opts["max_size"]]
        return [{"size": s} for s in sizes] + [{"size": s, "columnar": True} for s in columnar]

    def cases(self, params):
        return [{"after": "sigkill"}, {"after": "clean"}]

    def rounds(self, mode, opts):
        if mode == "quick":
            return 0, 3      # the fill has just warmed the page cache
        return super().rounds(mode, opts)

    def make_data(self, params, mode):
        return RecoveryData(params["size"], 1024, self.LINGER[mode])

    def limit(self, params, case):
        return "open+mmap"

    def primary(self, params, case):
        return Metric("ms", False)

    def metrics(self, params, case, m):
        return {"ms": m["seconds"] * 1e3}

    def label(self, params, case):
        kind = " columnar" if params.get("columnar") else ""
        return f"{human_bytes(params['size'])}{kind}" + (f" after {case['after']}" if case else "")


# ----------------------------------------------------------------- 6 latency


@dataclasses.dataclass
class LatencyData:
    where: str
    per_round: int
    pace_s: float
    value_bytes: int = 100


class Latency(Workload):
    name = "latency"
    title = "6. Produce-to-consume latency"
    description = (
        "One 100-byte record at a time, its first 8 bytes the sender's `time.time_ns()`; the sender waits for its "
        "ack (tidelog: `linger_ms=0`; `acks=\"written\"` on the interval topic, `acks=\"durable\"` on the fsync "
        "topic, whose records consumers see only once durable) and sleeps 250 µs between records, so the figure is "
        "latency, not queueing. A consumer blocked on the log (a thread, or another process that opened it "
        "`read_only`) takes the difference on receipt. Percentiles over every sample of every measured round."
    )
    param_names = ("where",)
    pause_others = True  # the Kafka broker's idle threads are stopped while the others run (see core.Workload)
    PER_ROUND = {"smoke": 10, "quick": 150, "full": 500}

    def grid(self, mode, opts):
        return [{"where": "thread"}, {"where": "process"}]

    def make_data(self, params, mode):
        return LatencyData(params["where"], self.PER_ROUND[mode], 250e-6)

    def limit(self, params, case):
        return "os.pipe"

    def primary(self, params, case):
        return Metric("p50 µs", False)

    def metrics(self, params, case, m):
        p50, p99, p999 = percentiles(m["latencies_ns"])
        return {"p50 µs": p50 / 1e3, "p99 µs": p99 / 1e3, "p99.9 µs": p999 / 1e3}

    def pooled(self, params, case, measures):
        p50, p99, p999 = percentiles([x for m in measures for x in m["latencies_ns"]])
        return {"p50 µs": p50 / 1e3, "p99 µs": p99 / 1e3, "p99.9 µs": p999 / 1e3}

    def targets(self, mode, opts):
        # Blocking consumers: p50 within 1.5x the os.pipe wake-up measured in the same run.
        return [Target(f"blocking consumer in {where}, p50 <= 1.5x os.pipe", "tidelog interval", "os.pipe",
                       {"where": key}, 1 / 1.5)
                for key, where in (("thread", "a thread"), ("process", "another process"))]

    def label(self, params, case):
        return "consumer in a thread" if params["where"] == "thread" else "consumer in another process"


WORKLOADS: list[Workload] = [Ingest(), Produce(), Threads(), Scans(), Recovery(), Latency(), Records(), Copies(),
                             Damage(), Processes(), Groups(), Compaction(), Events(), Export(), Flight(),
                             Pushdown(), Mqtt()]


def find(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(f"no workload {name!r}; there are {[w.name for w in WORKLOADS]}")


__all__ = ["WORKLOADS", "find", "Ingest", "Produce", "Threads", "Scans", "Recovery", "Latency", "Records", "Copies",
           "Damage", "Processes", "Groups", "Compaction", "Events", "Export", "Flight", "Pushdown", "Mqtt", "median"]
