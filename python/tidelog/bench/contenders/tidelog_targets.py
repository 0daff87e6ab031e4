"""tidelog's side of the records, copies and damage workloads (targets.py): a
mixin of ``Tidelog`` (tidelog_.py), which picks the durability mode each takes
part in: records with "interval" (the promise of acks="written"), copies with
"none" (nothing but the copy into the page cache), damage with the plain
"tidelog". ``TidelogIntact`` is the damage workload's baseline: the same log,
undamaged.

Concurrency: like every contender, one thread drives it (the runner's or a
bench's); the producers it opens run their own sender threads.
"""
from __future__ import annotations

import os
import shutil
import time
import tracemalloc
import warnings

import pyarrow as pa
import pyarrow.compute as pc

from ..core import SCHEMA, Contender, need_disk, rmtree, sensor_batch
from ..targets import DAMAGE_KINDS
from ._common import store_dir


class TidelogTargets:
    """Mixin: needs ``self.durability``, ``self._open(tmpdir)`` and ``self._close()`` from Tidelog."""

    # ------------------------------------------------------------ records
    def records_supports(self, params):
        return self.durability == "interval"

    def records_setup(self, tmpdir, params, data):
        log = self._open(tmpdir)
        self.data, self.round_no = data, 0
        if data.op == "send":
            self.producer = log.producer(linger_ms=5, batch_bytes=1 << 20, acks="written")
        elif data.op == "send_many":
            self.producer = log.producer(acks="written")
            self.payload = data.values if data.form == "list" else data.arrow
        else:
            self.topic = log.create_topic("events", partitions=1, durability="interval")
            with log.producer(acks="written") as p:
                for k, v in zip(data.keys, data.values):
                    p.send("events", v, k)
            log.flush()
            self.topic.read()  # warm the page cache and the mapping
            self.consumer = log.consumer("events", start="earliest")
            self.producer = None

    def _fresh_topic(self, partitions: int) -> str:
        self.round_no += 1
        name = f"t{self.round_no}"
        self.log.create_topic(name, partitions=partitions, durability="interval")
        return name

    def _records_in(self, name: str) -> int:
        n = sum(p["end_offset"] for p in self.log.topic(name).describe()["partitions"])
        self.log.delete_topic(name)
        return n

    def records_run(self, case):
        data, log = self.data, self.log
        if data.op == "consume":
            return self._consume_round(case["how"])
        if data.op == "send":
            name = self._fresh_topic(4)
            frames0 = log.stats()["frames"]
            p, send = self.producer, self.producer.send
            if case.get("keys"):
                t0 = time.perf_counter()
                for k, v in zip(data.keys, data.values):
                    send(name, v, k)
            else:
                t0 = time.perf_counter()
                for v in data.values:
                    send(name, v)
            p.flush()
            seconds = time.perf_counter() - t0
            frames = log.stats()["frames"] - frames0
        else:
            name = self._fresh_topic(1)
            p, payload = self.producer, self.payload
            t0 = time.perf_counter()
            p.send_many(name, payload)
            p.flush()
            seconds = time.perf_counter() - t0
            frames = None
        written = self._records_in(name)
        if written != data.records:
            raise AssertionError(f"{written} records in the topic, {data.records} sent")
        return {"seconds": seconds, "records": written, "frames": frames}

    def _consume_round(self, how: str) -> dict:
        n_want, c = self.data.records, self.consumer
        if how == "read":
            t0 = time.perf_counter()
            n = self.topic.read().num_rows
            seconds = time.perf_counter() - t0
        else:
            c.seek_to_beginning()
            n = 0
            if how == "iterate":
                t0 = time.perf_counter()
                for _ in c:
                    n += 1
                    if n == n_want:
                        break
            else:
                poll = c.poll_batch
                t0 = time.perf_counter()
                while n < n_want:
                    n += poll(100_000).num_rows
            seconds = time.perf_counter() - t0
        if n != n_want:
            raise AssertionError(f"read {n} records of {n_want}")
        return {"seconds": seconds, "records": n}

    def records_frames(self) -> int:
        """Frames of the consume topic (a bench's context figure)."""
        return len(self.topic._partitions[0].frames(0, self.data.records, -(2**63), 2**63 - 1, 1 << 30))

    def records_teardown(self):
        if getattr(self, "consumer", None) is not None:
            self.consumer.close()
            self.consumer = None
        if self.producer is not None:
            self.producer.close()
        self._close()

    # ------------------------------------------------------------- copies
    def copies_supports(self, params):
        return self.durability == "none"

    def copies_setup(self, tmpdir, params, data):
        self._open(tmpdir)
        self.data, self.round_no, self.topic = data, 0, None

    def copies_run(self, case):
        """One append of the batch to a fresh topic; the previous topic deleted
        and every file flushed outside the clock, so no round pays for another's
        writeback. ``case["allocations"]``: also the bytes allocated during the
        append (tracemalloc peak, Arrow pool), which a copy would show."""
        log, batch = self.log, self.data.batch
        if self.topic is not None:
            log.delete_topic(self.topic.name)
        self.round_no += 1
        self.topic = log.create_topic(f"big{self.round_no}", schema=SCHEMA, partitions=1, timestamp=None,
                                      durability="none")
        log.flush()
        out = {"bytes": self.data.nbytes}
        if case.get("allocations"):
            pool = pa.default_memory_pool()
            before, peak = pool.bytes_allocated(), pool.max_memory()
            tracemalloc.start()
            self.topic.append(batch)
            _, py_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out.update(seconds=float("nan"), python_alloc_peak_bytes=py_peak,
                       arrow_pool_bytes_delta=pool.bytes_allocated() - before,
                       arrow_pool_peak_increase=pool.max_memory() - peak, arrow_pool_in_use_before=before)
        else:
            append = self.topic.append
            c0, t0 = time.thread_time(), time.perf_counter()
            append(batch)
            out.update(seconds=time.perf_counter() - t0, cpu_seconds=time.thread_time() - c0)
        log.flush()
        return out

    def copies_teardown(self):
        self._close()

    # ------------------------------------------------------------- damage
    def damage_supports(self, params):
        return self.durability == "fsync"

    def damage_setup(self, tmpdir, params, data):
        need_disk(tmpdir, 5 * data.size, "the damaged copies")
        self.path = store_dir(tmpdir, self.name)
        self.data = data
        intact = os.path.join(self.path, "intact")
        build_damage_log(intact, data)
        self.bytes = log_bytes(intact)
        self.copies = {}
        for how in DAMAGE_KINDS:
            self.copies[how] = os.path.join(self.path, how)
            shutil.copytree(intact, self.copies[how])
            damage_log(self.copies[how], how, data)
        rmtree(intact)

    def _damage_path(self, case) -> str:
        return self.copies[case["damage"]]

    def damage_run(self, case):
        path = self._damage_path(case)
        if case["op"] == "reopen":
            import tidelog

            t0 = time.perf_counter()
            log = tidelog.open(path)
            seconds = time.perf_counter() - t0
            log.close()
            return {"seconds": seconds}
        seconds, rows = scan_sum(path, skip=path != getattr(self, "intact_path", None))
        return {"seconds": seconds, "rows": rows, "bytes": self.bytes}

    def damage_teardown(self):
        rmtree(self.path)


class TidelogIntact(Contender):
    """The damage workload's baseline: the same log as ``tidelog`` builds, undamaged,
    opened and scanned (with the default ``on_corrupt="raise"``) in every case."""

    name = "tidelog intact"
    kind = "tidelog"
    description = "the damage workload's log, undamaged: reopen, and a scan + sum with on_corrupt=\"raise\""

    def supports(self, workload, params):
        return workload == "damage"

    def damage_setup(self, tmpdir, params, data):
        self.path = store_dir(tmpdir, self.name)
        self.intact_path = os.path.join(self.path, "intact")
        build_damage_log(self.intact_path, data)
        self.bytes = log_bytes(self.intact_path)

    def _damage_path(self, case) -> str:
        return self.intact_path

    damage_run = TidelogTargets.damage_run
    damage_teardown = TidelogTargets.damage_teardown


# --------------------------------------------------------- damage helpers

def build_damage_log(path: str, data) -> None:
    """A 1-partition columnar topic "readings" of at least ``data.size`` bytes, closed cleanly."""
    import tidelog

    with tidelog.open(path) as log:
        t = log.create_topic("readings", schema=SCHEMA, timestamp="ts", durability="none",
                             segment_bytes=data.segment_bytes)
        batch = sensor_batch(data.batch_rows, 1)
        size = 0
        while size < data.size:
            t.append(batch)
            size += batch.nbytes


def segments(path: str) -> list[str]:
    part = os.path.join(path, "topics", "readings", "0")
    return sorted(os.path.join(part, n) for n in os.listdir(part) if n.endswith(".log"))


def log_bytes(path: str) -> int:
    return sum(os.path.getsize(s) for s in segments(path))


def damage_log(path: str, how: str, data) -> None:
    segs = segments(path)
    if how == "bitrot-tail":
        seg = segs[-1]
        at = int(os.path.getsize(seg) * 0.98)
    else:
        seg = segs[len(segs) // 2 - 1]
        at = os.path.getsize(seg) // 4 // 4096 * 4096
    with open(seg, "r+b") as f:
        f.seek(at)
        if how == "bitrot-tail":
            b = f.read(1)[0]
            f.seek(at)
            f.write(bytes([b ^ 0x10]))
        else:
            f.write(bytes(4096 if how == "lost-4k" else data.lost_span))


def scan_sum(path: str, skip: bool) -> tuple[float, int]:
    """Seconds of a full scan + sum over ``value`` of a read_only open, and the rows seen."""
    import tidelog

    with tidelog.open(path, read_only=True) as log:
        t = log.topic("readings")
        t0 = time.perf_counter()
        rows, total = 0, 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tidelog.CorruptionWarning)
            for batch in t.scan(on_corrupt="skip" if skip else "raise"):
                total += pc.sum(batch.column("value")).as_py() or 0.0
                rows += batch.num_rows
        return time.perf_counter() - t0, rows


__all__ = ["TidelogTargets", "TidelogIntact", "build_damage_log", "damage_log", "scan_sum", "segments", "log_bytes"]
