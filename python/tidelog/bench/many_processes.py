"""The ``processes`` workload: many processes, one log (shared read-write opens).

Three parts, each its own parameter set:

* ``acks``: 4 processes x 4 threads, every thread appending one 100-byte
  record at a time through its process's producer (``acks="durable"``,
  ``linger_ms=0``, the cheapest durable single-record path, as the ``tidelog
  producer`` contender of the threads workload) and waiting for its own ack;
  beside 1 process x 1 thread doing the same. acks/s over the round (first
  start to last finish, all processes), and acks per fdatasync: the sum of every
  process's ``log.stats()["fdatasyncs"]`` delta (stats are per process); and,
  as a check, per the log-wide ``log_fdatasyncs`` over the round's span.
* ``columnar``: 2 processes appending 64 Ki-row sensor batches durably to one
  1-partition topic, beside 1 process appending the same rows alone.
* ``latency``: produce-to-consume latency with the consumer in another process,
  the latency workload's method (paced 100-byte stamped records, ``linger_ms=0``),
  the consumer having opened the log read-write (shared) beside the latency
  workload's setup (writer ``exclusive=True``, consumer ``read_only``).

Every child is started with the "spawn" method (never fork) and kept between
rounds (_child.WorkerPool); the parent merges what they measured. Every acks
and columnar round writes a fresh log in a fresh folder. The contenders are in
contenders/tidelog_processes.py.
"""
from __future__ import annotations

import dataclasses

from .core import KiB, MB, ROW_BYTES, Metric, Workload, human_count, percentiles


@dataclasses.dataclass
class ProcessesData:
    """One part's sizes. The many-process side runs ``processes`` writers (acks:
    ``threads`` threads each, ``per_thread`` acks a thread; columnar:
    ``batches`` batches each); the one-process side does ``single_acks`` acks
    from one thread, or appends all ``processes * batches`` batches alone."""

    part: str                       # "acks" | "columnar" | "latency"
    processes: int = 1
    threads: int = 1
    per_thread: int = 0
    single_acks: int = 0
    batch_rows: int = 0
    batches: int = 0
    value_bytes: int = 100
    per_round: int = 0              # latency: samples per round
    pace_s: float = 250e-6          # latency: pause between records
    durability: str = "fsync"       # latency: the topic's durability

    @property
    def rows(self) -> int:
        """Columnar: the rows of one round, either side."""
        return self.processes * self.batches * self.batch_rows


class Processes(Workload):
    name = "processes"
    title = "10. Many processes, one log"
    description = (
        "Processes started with the \"spawn\" method open one log read-write at once (the shared mode). "
        "*acks*: 4 processes × 4 threads, each thread sends one 100-byte record (producer `acks=\"durable\"`, "
        "`linger_ms=0`) and waits for its ack; acks/s from the first start to the last finish over all "
        "processes; acks per fdatasync from the sum of every process's `log.stats()['fdatasyncs']`. "
        "*columnar*: 2 processes append 64 Ki-row sensor batches durably to one 1-partition topic. Both "
        "beside one process (1 thread) doing the same, and one that opened the log `exclusive=True`; acks also "
        "beside the 16 threads in one process. A fresh "
        "log in a fresh folder every round. *latency*: the latency workload's paced records with the consumer "
        "in another process that opened the log read-write, beside a writer `exclusive=True` and a consumer "
        "`read_only` (as in workload 6)."
    )
    param_names = ("part", "processes", "threads", "batch_rows", "durability")
    # acks: (processes, threads) and (acks per thread, acks of the 1x1 side) per round
    ACKS_SHAPE = (4, 4)
    ACKS = {"smoke": (2, 4), "quick": (15, 40), "full": (150, 500)}
    # columnar: processes, and (batch rows, batches per process) per round
    COLUMNAR_PROCESSES = 2
    COLUMNAR = {"smoke": (4 * KiB, 1), "quick": (64 * KiB, 4), "full": (64 * KiB, 32)}
    LATENCY = {"smoke": 10, "quick": 150, "full": 500}

    def grid(self, mode, opts):
        p, t = self.ACKS_SHAPE
        durabilities = ["interval"] if mode == "smoke" else ["interval", "fsync"]
        return ([{"part": "acks", "processes": p, "threads": t},
                 {"part": "columnar", "processes": self.COLUMNAR_PROCESSES, "batch_rows": self.COLUMNAR[mode][0]}]
                + [{"part": "latency", "durability": d} for d in durabilities])

    def make_data(self, params, mode):
        part = params["part"]
        if part == "acks":
            n, single = self.ACKS[mode]
            return ProcessesData(part, processes=params["processes"], threads=params["threads"], per_thread=n,
                                 single_acks=single)
        if part == "columnar":
            return ProcessesData(part, processes=params["processes"], batch_rows=params["batch_rows"],
                                 batches=self.COLUMNAR[mode][1])
        return ProcessesData(part, processes=2, per_round=self.LATENCY[mode], durability=params["durability"])

    def rounds(self, mode, opts):
        if mode == "full":
            return 1, opts.get("rounds") or 9   # rounds of a fraction of a second on a noisy disk: more of them
        return super().rounds(mode, opts)

    def limit(self, params, case):
        """The figure each row is compared with: one process doing the same
        (acks, columnar); the single-writer setup of the latency workload."""
        return "tidelog 1 process exclusive" if params["part"] == "latency" else "tidelog 1 process"

    def primary(self, params, case):
        return {"acks": Metric("acks/s"), "columnar": Metric("rows/s"),
                "latency": Metric("p50 µs", False)}[params["part"]]

    def metrics(self, params, case, m):
        part = params["part"]
        if part == "latency":
            p50, p99, p999 = percentiles(m["latencies_ns"])
            return {"p50 µs": p50 / 1e3, "p99 µs": p99 / 1e3, "p99.9 µs": p999 / 1e3}
        s = m["seconds"]
        syncs = m["fdatasyncs"]
        if part == "acks":
            p50, p99 = percentiles(m["latencies_ns"], (50, 99))
            out = {"acks/s": m["acks"] / s, "fdatasyncs/s": syncs / s,
                   "acks/fdatasync": m["acks"] / syncs if syncs else float("nan"),
                   "p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6}
            if m.get("log_fdatasyncs"):  # the log-wide counter over the round: a check of the sum
                out["acks/log fdatasync"] = m["acks"] / m["log_fdatasyncs"]
            return out
        return {"rows/s": m["rows"] / s, "MB/s": m["rows"] * ROW_BYTES / s / MB, "fdatasyncs/s": syncs / s,
                "appends/fdatasync": m["appends"] / syncs if syncs else float("nan")}

    def pooled(self, params, case, measures):
        part = params["part"]
        lat = [x for m in measures for x in m.get("latencies_ns", ())]
        if part == "latency":
            p50, p99, p999 = percentiles(lat)
            return {"p50 µs": p50 / 1e3, "p99 µs": p99 / 1e3, "p99.9 µs": p999 / 1e3}
        if part == "acks":
            p50, p99 = percentiles(lat, (50, 99))
            return {"p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6}
        return {}

    def label(self, params, case):
        part = params["part"]
        if part == "acks":
            return f"durable acks, {params['processes']} processes × {params['threads']} threads (1 process: 1 thread)"
        if part == "columnar":
            return (f"durable {human_count(params['batch_rows'])}-row appends to 1 partition, "
                    f"{params['processes']} processes (1 process: the same rows alone)")
        return f"produce→consume, consumer in another process, {params['durability']} topic"


__all__ = ["Processes", "ProcessesData"]
