"""tidelog in the processes workload (many_processes.py): several spawned
processes on one log, and the one-process sides it is compared with.

The parent only coordinates: it creates each round's log, starts the workers
in step (_child.run_together) and merges what they report. Each worker times
itself on CLOCK_MONOTONIC, which every process on the machine shares, so a
round lasts from the earliest start to the latest finish.
"""
from __future__ import annotations

import inspect
import os
import tempfile
import time

from ..core import SCHEMA, Contender, make_values, rmtree, run_threads, sensor_batch
from .. import _child
from ._common import STOP, consume_loop, paced_round, stamp_value, store_dir

TOPIC = "events"
COLUMNAR_TOPIC = "sensors"
LATENCY_TOPIC = "latency"


def shared_mode_available() -> bool:
    """Whether this build lets several processes open one log read-write
    (``tidelog.open(path, exclusive=...)``, the shared mode as its default)."""
    import tidelog

    return "exclusive" in inspect.signature(tidelog.open).parameters


def _now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _sync_counts(before: dict, after: dict) -> dict:
    """A worker's fdatasyncs over its timed part, and the log-wide counter
    (every read-write handle's, where the build keeps one) at both ends."""
    out = {"fdatasyncs": after["fdatasyncs"] - before["fdatasyncs"]}
    if "log_fdatasyncs" in after:
        out["log_fdatasyncs_at"] = (before["log_fdatasyncs"], after["log_fdatasyncs"])
    return out


def _merged(parts: list[dict]) -> dict:
    """The round of several workers: from the earliest start to the latest
    finish; fdatasyncs summed over them, and the log-wide count over that span."""
    out = {"seconds": (max(p["end_ns"] for p in parts) - min(p["start_ns"] for p in parts)) / 1e9,
           "fdatasyncs": sum(p["fdatasyncs"] for p in parts)}
    if all("log_fdatasyncs_at" in p for p in parts):
        out["log_fdatasyncs"] = (max(p["log_fdatasyncs_at"][1] for p in parts)
                                 - min(p["log_fdatasyncs_at"][0] for p in parts))
    return out


class TidelogProcesses(Contender):
    """``role``: "many" (several processes, shared opens), "one" (the same work
    from one process and one thread, shared open), "exclusive" (one process
    that opened the log ``exclusive=True``: the single-writer mode; in the
    latency part the latency workload's setup, consumer ``read_only``) or
    "threads" (acks only: every thread of the many-process side in one process,
    what the processes cost beside threads).

    Concurrency: the parent side runs in the benchmark's one thread; each
    worker-side method runs in its own spawned process."""

    kind = "tidelog"

    def __init__(self, role: str = "many"):
        self.role = role
        self.name = {"many": "tidelog processes", "one": "tidelog 1 process",
                     "exclusive": "tidelog 1 process exclusive", "threads": "tidelog 1 process, all threads"}[role]
        self.description = {
            "many": "shared read-write opens from spawned processes: acks 4 processes × 4 threads of "
                    "producer(acks=\"durable\", linger_ms=0); columnar 2 processes; latency: the consumer's "
                    "process opened the log read-write",
            "one": "the same from one spawned process, 1 thread (acks) or all the rows (columnar), shared open",
            "exclusive": "as tidelog 1 process, the log opened exclusive=True (single writer); latency: "
                         "writer exclusive, consumer read_only (workload 6's setup)",
            "threads": "acks: the 16 threads of the 4 processes in one spawned process, shared open",
        }[role]

    # ------------------------------------------------------------ helpers
    def _open_kwargs(self) -> dict:
        if self.role == "exclusive" and shared_mode_available():
            return {"exclusive": True}
        return {}

    def _records_in(self, path: str, topic: str) -> int:
        """How many records (rows) the topic of a finished round holds: the check
        that every acknowledged append of every process is there."""
        import tidelog

        log = tidelog.open(path, read_only=True)
        try:
            return sum(log.topic(topic).end_offsets().values())
        finally:
            log.close()

    def _fresh_log(self, create) -> str:
        """A new folder with a new log whose topic ``create(log)`` makes, closed again."""
        import tidelog

        path = tempfile.mkdtemp(prefix="round-", dir=self.tmpdir)
        log = tidelog.open(path, **self._open_kwargs())
        try:
            create(log)
        finally:
            log.close()
        return path

    # ------------------------------------------------------------ workload
    def processes_supports(self, params):
        if self.role == "one" and params["part"] == "latency":
            return False
        if self.role == "threads" and params["part"] != "acks":
            return False
        if self.role == "many" and not shared_mode_available():
            return "needs the shared read-write mode (tidelog.open(path, exclusive=False)), not in this build"
        return True

    def processes_setup(self, tmpdir, params, data):
        os.makedirs(tmpdir, exist_ok=True)
        self.tmpdir, self.data = tmpdir, data
        if data.part == "latency":
            self._latency_setup()

    def processes_run(self, case):
        return {"acks": self._acks_round, "columnar": self._columnar_round,
                "latency": self._latency_round}[self.data.part]()

    def processes_teardown(self):
        if self.data.part == "latency":
            self._latency_teardown()

    # ---------------------------------------------------------------- acks
    def _acks_round(self) -> dict:
        d = self.data
        procs, threads, per_thread = {"many": (d.processes, d.threads, d.per_thread),
                                      "threads": (1, d.processes * d.threads, d.per_thread)}.get(
                                          self.role, (1, 1, d.single_acks))
        path = self._fresh_log(lambda log: log.create_topic(TOPIC, durability="fsync"))
        try:
            parts = _child.run_together(self, "acks_worker", [
                {"path": path, "open_kwargs": self._open_kwargs(), "threads": threads, "per_thread": per_thread,
                 "value_bytes": d.value_bytes, "seed": k} for k in range(procs)])
            records = self._records_in(path, TOPIC)
        finally:
            rmtree(path)
        return {**_merged(parts), "acks": sum(p["acks"] for p in parts),
                "latencies_ns": [x for p in parts for x in p["latencies_ns"]],
                "processes": procs, "threads": threads, "check": records}

    def acks_worker(self, conn, path, open_kwargs, threads, per_thread, value_bytes, seed) -> dict:
        """Worker side: ``threads`` threads, each sending ``per_thread`` records and waiting for each ack."""
        import tidelog

        log = tidelog.open(path, **open_kwargs)
        try:
            producer = log.producer(linger_ms=0, acks="durable")
            values = make_values(threads * per_thread, value_bytes, seed=seed)
            send = producer.send

            def make_op(k: int):
                mine = values[k * per_thread:]
                return lambda i: send(TOPIC, mine[i]).result()

            _child.wait_go(conn)
            s0 = log.stats()
            m = run_threads(threads, per_thread, make_op)
            end = _now_ns()
            s1 = log.stats()
            producer.close()
        finally:
            log.close()
        return {"start_ns": end - int(m["seconds"] * 1e9), "end_ns": end, "acks": m["acks"],
                "latencies_ns": m["latencies_ns"], **_sync_counts(s0, s1)}

    # ------------------------------------------------------------ columnar
    def _columnar_round(self) -> dict:
        d = self.data
        path = self._fresh_log(lambda log: log.create_topic(COLUMNAR_TOPIC, schema=SCHEMA, timestamp="ts",
                                                            durability="fsync", partitions=1))
        # slice k of the data: batches k*batches .. (k+1)*batches; the one-process side appends all slices
        slices = [[k] for k in range(d.processes)] if self.role == "many" else [list(range(d.processes))]
        try:
            parts = _child.run_together(self, "columnar_worker", [
                {"path": path, "open_kwargs": self._open_kwargs(), "slices": s, "batch_rows": d.batch_rows,
                 "batches": d.batches} for s in slices])
            rows = self._records_in(path, COLUMNAR_TOPIC)
        finally:
            rmtree(path)
        return {**_merged(parts), "rows": sum(p["rows"] for p in parts),
                "appends": sum(p["appends"] for p in parts), "processes": len(slices), "check": rows}

    def columnar_worker(self, conn, path, open_kwargs, slices, batch_rows, batches) -> dict:
        """Worker side: appends the batches of ``slices`` (the same bytes whichever process appends them)."""
        import tidelog

        mine = []
        for k in slices:
            whole = sensor_batch(batches * batch_rows, seed=k, start_row=k * batches * batch_rows)
            mine += [whole.slice(i * batch_rows, batch_rows) for i in range(batches)]
        log = tidelog.open(path, **open_kwargs)
        try:
            append = log.topic(COLUMNAR_TOPIC).append
            _child.wait_go(conn)
            s0 = log.stats()
            start = _now_ns()
            for b in mine:
                append(b)
            end = _now_ns()
            s1 = log.stats()
        finally:
            log.close()
        return {"start_ns": start, "end_ns": end, "rows": len(mine) * batch_rows, "appends": len(mine),
                **_sync_counts(s0, s1)}

    # ------------------------------------------------------------- latency
    def _latency_setup(self) -> None:
        import tidelog

        d = self.data
        self.path = store_dir(self.tmpdir, self.name)
        self.log = tidelog.open(self.path, **self._open_kwargs())
        self.log.create_topic(LATENCY_TOPIC, durability=d.durability)
        # fsync topics: the sender waits for its record to be durable (consumers see it only then anyway)
        self.producer = self.log.producer(linger_ms=0, acks="durable" if d.durability == "fsync" else "written")
        consumer_open = {"read_only": True} if self.role == "exclusive" else {}
        self.consumer = _child.SpawnedConsumer(self, "latency_worker", path=self.path, open_kwargs=consumer_open)

    def latency_worker(self, conn, path, open_kwargs) -> None:
        """Worker side: a consumer blocked on the topic (the latency workload's consume_loop)."""
        import tidelog

        log = tidelog.open(path, **open_kwargs)
        try:
            c = log.consumer(LATENCY_TOPIC, start="earliest")
            it = iter(c)
            consume_loop(lambda: next(it).value, conn)
            c.close()
        finally:
            log.close()

    def _latency_round(self) -> dict:
        d, send = self.data, self.producer.send
        paced_round(lambda v: send(LATENCY_TOPIC, v).result(), d.per_round, d.pace_s, d.value_bytes)
        return {"latencies_ns": self.consumer.samples()}

    def _latency_teardown(self) -> None:
        try:
            consumer = getattr(self, "consumer", None)
            if consumer is not None:
                self.producer.send(LATENCY_TOPIC, stamp_value(self.data.value_bytes)(STOP)).result()
                consumer.close()
                self.consumer = None
        finally:
            producer, log = getattr(self, "producer", None), getattr(self, "log", None)
            if producer is not None:
                producer.close()
            if log is not None:
                log.close()
            self.producer = self.log = None
            rmtree(self.path)


__all__ = ["TidelogProcesses", "shared_mode_available"]
