"""tidelog itself, in each durability mode where it matters."""
from __future__ import annotations

import time

import pyarrow.compute as pc

from ..core import SCHEMA, Contender, need_disk, rmtree, run_threads
from .. import _child
from ._common import (
    STOP, LocalConsumer, consume_loop, crash_writer_if_asked, fill_recovery_store, paced_round, stamp_value,
    store_dir, timed_windows,
)
from .tidelog_targets import TidelogTargets


class Tidelog(TidelogTargets, Contender):
    """``durability``: "fsync" (the contender named plain "tidelog"), "interval" or "none"."""

    kind = "tidelog"
    wait = "block"          # the latency workload's consumers' wait strategy

    def __init__(self, durability: str = "fsync"):
        self.durability = durability
        self.name = "tidelog" if durability == "fsync" else f"tidelog {durability}"
        self.description = {
            "fsync": "durability=\"fsync\": append/ack once fdatasync'd, group commit",
            "interval": "durability=\"interval\": append returns after the write, fdatasync every 100 ms",
            "none": "durability=\"none\": no fdatasync but at segment roll and close",
        }[durability]

    # ------------------------------------------------------------ helpers
    def _open(self, tmpdir: str):
        import tidelog

        self.path = store_dir(tmpdir, self.name)
        self.log = tidelog.open(self.path)
        return self.log

    def _close(self):
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
            self.log = None
        rmtree(self.path)

    def _durable_mode(self, params) -> bool:
        return self.durability == "fsync" if params["durable"] else self.durability != "fsync"

    # ------------------------------------------------------------- ingest
    def ingest_supports(self, params):
        return self._durable_mode(params)

    def ingest_setup(self, tmpdir, params, data):
        log = self._open(tmpdir)
        partitions = params.get("partitions", 1)
        # more than one partition: keyed by sensor_id, each batch split into one frame per partition
        self.topic = log.create_topic("sensors", schema=SCHEMA, timestamp="ts", durability=self.durability,
                                      partitions=partitions, key="sensor_id" if partitions > 1 else None)
        self.batches = data.batches

    def ingest_run(self, case):
        append, batches = self.topic.append, self.batches
        s0 = self.log.stats()
        t0 = time.perf_counter()
        for b in batches:
            append(b)
        seconds = time.perf_counter() - t0
        s1 = self.log.stats()
        return {"seconds": seconds, "rows": sum(b.num_rows for b in batches),
                "fdatasyncs": s1["fdatasyncs"] - s0["fdatasyncs"], "appends": len(batches),
                "frames": s1["frames"] - s0["frames"]}

    def ingest_teardown(self):
        self._close()

    # ------------------------------------------------------------ produce
    def produce_supports(self, params):
        return self._durable_mode(params)

    def produce_setup(self, tmpdir, params, data):
        log = self._open(tmpdir)
        log.create_topic("records", durability=self.durability)
        self.producer = log.producer(linger_ms=5, batch_bytes=1 << 20,
                                     acks="durable" if self.durability == "fsync" else "written")
        self.values = data.values

    def produce_run(self, case):
        p, values = self.producer, self.values
        send = p.send
        t0 = time.perf_counter()
        for v in values:
            send("records", v)
        p.flush()
        return {"seconds": time.perf_counter() - t0, "records": len(values)}

    def produce_teardown(self):
        self.producer.close()
        self._close()

    # ------------------------------------------------------------ threads
    def threads_supports(self, params):
        return self.durability == "fsync"

    def threads_setup(self, tmpdir, params, data):
        log = self._open(tmpdir)
        self.topic = log.create_topic("events", schema=SCHEMA, timestamp="ts", durability="fsync")
        self.data = data

    def _thread_op(self, k: int):
        append, mine = self.topic.append, self.data.batches[k * self.data.per_thread:]
        return lambda i: append(mine[i])

    def threads_run(self, case):
        s0 = self.log.stats()["fdatasyncs"]
        m = run_threads(self.data.threads, self.data.per_thread, self._thread_op)
        m["fdatasyncs"] = self.log.stats()["fdatasyncs"] - s0
        return m

    def threads_teardown(self):
        self._close()

    # -------------------------------------------------------------- scans
    def scans_supports(self, params):
        return self.durability == "fsync"

    def scans_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.nbytes * 1.1), "the tidelog topic")
        log = self._open(tmpdir)
        # Written with durability="none" and one flush at the end (quicker to fill); how data was written
        # does not change how it is read.
        self.topic = log.create_topic("sensors", schema=SCHEMA, timestamp="ts", durability="none",
                                      **({"segment_bytes": data.segment_bytes} if data.segment_bytes else {}))
        for b in data.sensors.batches():
            self.topic.append(b)
        log.flush()
        self.data = data

    def scans_run(self, case):
        q, topic, data = case["query"], self.topic, self.data
        if q == "scan":
            t0 = time.perf_counter()
            table = topic.read()
            total = pc.sum(table["value"]).as_py()
            return {"seconds": time.perf_counter() - t0, "rows": table.num_rows, "check": total}
        if q == "stream":   # not a case of the suite: benches/test_bench_scan.py's streaming context figure
            t0 = time.perf_counter()
            total, rows = 0.0, 0
            for batch in topic.scan(columns=["value"]):
                total += pc.sum(batch.column(0)).as_py()
                rows += batch.num_rows
            return {"seconds": time.perf_counter() - t0, "rows": rows, "check": total}
        if q == "read":     # the read alone, no sum (benches: the per-frame cost)
            t0 = time.perf_counter()
            rows = topic.read().num_rows
            return {"seconds": time.perf_counter() - t0, "rows": rows}
        if q == "range":
            def window(start, end):
                table = topic.read(start_time=start, end_time=end)
                return table.num_rows, pc.sum(table["value"]).as_py()
            return timed_windows(data.range_ts, window)
        read = topic.read
        total = 0.0
        t0 = time.perf_counter()
        for k in data.points:
            total += read(k, k + 1).column(2)[0].as_py()
        return {"seconds": time.perf_counter() - t0, "lookups": len(data.points), "check": total}

    def scans_teardown(self):
        self._close()

    # ----------------------------------------------------------- recovery
    def recovery_supports(self, params):
        return self.durability == "fsync" and not params.get("columnar")

    def recovery_writer(self, path, size, value_bytes, keep_writing, ready):
        """Child side: fill ``path`` to ``size`` bytes of records, or append small durable batches until killed."""
        import tidelog
        from ..core import make_values

        log = tidelog.open(path)
        if "events" not in log.topics():
            log.create_topic("events", durability="fsync")
        topic = log.topic("events")
        p = log.producer(linger_ms=0, acks="durable")
        chunk = make_values(max(1, (1 << 20) // value_bytes), value_bytes, seed=1)
        while topic.describe()["bytes"] < size:
            p.send_many("events", chunk)
            p.flush()
        small = chunk[:16]
        p.send_many("events", small)
        p.flush()
        ready()
        while keep_writing:
            p.send_many("events", small)
            p.flush()
        p.close()
        log.close()

    def recovery_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.size * 1.2), "the tidelog log")
        self.data = data
        self.path = fill_recovery_store(self, tmpdir, data)

    def recovery_run(self, case):
        import tidelog

        crash_writer_if_asked(self, case, self.path, self.data)
        t0 = time.perf_counter()
        log = tidelog.open(self.path)
        log.topic("events").end_offsets()
        seconds = time.perf_counter() - t0
        clean = log.clean_shutdown
        log.close()
        return {"seconds": seconds, "clean_shutdown": clean}

    def recovery_teardown(self):
        rmtree(self.path)

    # ------------------------------------------------------------ latency
    def latency_supports(self, params):
        return self.durability in ("fsync", "interval")

    def latency_setup(self, tmpdir, params, data):
        log = self._open(tmpdir)
        log.create_topic("latency", durability=self.durability)
        # fsync topics: the sender waits for its record to be durable (consumers see it only then anyway)
        self.producer = log.producer(linger_ms=0, acks="durable" if self.durability == "fsync" else "written")
        self.data = data
        if data.where == "process":
            self.consumer = _child.RemoteConsumer(self, {"path": self.path, "topic": "latency", "wait": self.wait})
        else:
            c = log.consumer("latency", start="earliest", wait=self.wait)
            it = iter(c)
            self._local = c
            self.consumer = LocalConsumer(lambda conn: consume_loop(lambda: next(it).value, conn))

    def latency_consume(self, info, conn):
        """Child side: a consumer of a read_only log in another process."""
        import tidelog

        log = tidelog.open(info["path"], read_only=True)
        c = log.consumer(info["topic"], start="earliest", wait=info["wait"])
        it = iter(c)
        consume_loop(lambda: next(it).value, conn)
        c.close()
        log.close()

    def latency_run(self, case):
        p, d = self.producer, self.data
        send = p.send
        paced_round(lambda v: send("latency", v).result(), d.per_round, d.pace_s, d.value_bytes)
        return {"latencies_ns": self.consumer.samples()}

    def latency_teardown(self):
        try:
            self.producer.send("latency", stamp_value(self.data.value_bytes)(STOP)).result()
            self.consumer.close()
            if getattr(self, "_local", None) is not None:
                self._local.close()
                self._local = None
            self.producer.close()
        finally:
            self._close()


class TidelogSpin(Tidelog):
    """The latency workload with consumers that spin (``wait="spin"``: they
    busy-poll the log's shared publish counter, no system call, a core at
    100 % while waiting), on the interval topic."""

    wait = "spin"

    def __init__(self):
        super().__init__("interval")
        self.name = "tidelog spin"
        self.description = "consumer(wait=\"spin\"): busy-polls the publish counter; durability=\"interval\""

    def supports(self, workload, params):
        return workload == "latency"


class TidelogColumnar(Tidelog):
    """The recovery workload's columnar case (benches/test_bench_recovery.py): a
    writer child appends 1 Mi-row sensor batches to a 1-partition
    durability="fsync" topic until it holds ``size`` bytes, then 4 Ki-row
    batches until it is killed."""

    TOPIC = "readings"

    def __init__(self):
        super().__init__("fsync")
        self.name = "tidelog columnar"
        self.description = "a columnar topic filled with 1 Mi-row batches, durability=\"fsync\"; open + end offsets"

    def supports(self, workload, params):
        return workload == "recovery" and bool(params.get("columnar"))

    def recovery_writer(self, path, size, value_bytes, keep_writing, ready):
        """Child side: fill ``path`` to ``size`` bytes of sensor rows, or append small batches until killed."""
        import tidelog
        from ..core import TS0, readings

        log = tidelog.open(path)
        if self.TOPIC in log.topics():
            topic = log.topic(self.TOPIC)
        else:
            topic = log.create_topic(self.TOPIC, schema=SCHEMA, partitions=1, timestamp="ts", durability="fsync")
        big = readings(1 << 20, 1, TS0)
        small = readings(4096, 2, TS0 + (1 << 40))
        filled = topic.describe()["bytes"]
        while filled < size:
            topic.append(big)
            filled += big.nbytes
        ready()
        while keep_writing:
            topic.append(small)
        log.close()

    def recovery_run(self, case):
        """The timed open; also what the open saw (outside the clock)."""
        import tidelog

        crash_writer_if_asked(self, case, self.path, self.data)
        t0 = time.perf_counter()
        log = tidelog.open(self.path)
        log.topic(self.TOPIC).end_offsets()
        seconds = time.perf_counter() - t0
        try:
            return {"seconds": seconds, "clean_shutdown": log.clean_shutdown,
                    "recovery_events": len(log.recovery_report), "topic_bytes": log.topic(self.TOPIC).describe()["bytes"]}
        finally:
            log.close()


class TidelogProducer(Tidelog):
    """The threads workload through ``log.producer(acks="durable", linger_ms=0)``:
    every thread calls ``send(...).result()`` on one shared producer."""

    def __init__(self):
        super().__init__("fsync")
        self.name = "tidelog producer"
        self.description = "producer(acks=\"durable\", linger_ms=0), send().result() per record, shared by the threads"

    def supports(self, workload, params):
        return workload == "threads"

    def threads_setup(self, tmpdir, params, data):
        log = self._open(tmpdir)
        log.create_topic("events", durability="fsync")
        self.producer = log.producer(linger_ms=0, acks="durable")
        self.data = data

    def _thread_op(self, k: int):
        send, mine = self.producer.send, self.data.values[k * self.data.per_thread:]
        return lambda i: send("events", mine[i]).result()

    def threads_teardown(self):
        self.producer.close()
        self._close()
