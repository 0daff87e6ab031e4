"""Crash torture (issue 5): SIGKILL a busy durable writer at random moments and
check that no acknowledged record is ever lost or changed.

Each cycle forks a child (from a multiprocessing forkserver that has tidelog,
pyarrow and numpy imported already, so a child starts in a fraction of a
second) that opens the log and works hard on three topics:

- ``cols``: columnar appends from 3 threads, 3 partitions split by a key column,
  ``durability="fsync"``, 64 KiB segments, ``retention_bytes`` 512 KiB;
- ``colsz``: columnar appends with a dictionary column (Arrow stream frames),
  zstd, ``durability="interval"``, 32 KiB segments, ``retention_bytes`` 256 KiB;
- ``recs``: byte records from 2 ``producer(acks="durable")`` threads, 2
  partitions, 16 KiB segments, ``retention_bytes`` 128 KiB;

plus a thread that applies retention at random moments. Every acknowledged
write is reported to the parent over a pipe as soon as it is acknowledged
(topic, partition, first/last offset, a checksum of the rows, the identity of
the batch). The parent SIGKILLs the child at a random moment (sometimes while it
is still opening the log, i.e. during recovery), then:

1. sometimes verifies the crashed folder as it is (``tidelog verify``): damage
   may only lie in a partition's last segment, after every acknowledged frame;
2. sometimes opens it ``read_only`` before any recovery: every acknowledged
   record is visible and intact;
3. opens it as a writer (recovery; its duration is recorded) and checks each
   partition: the start offset only moves forward; offsets are dense; every
   visible row decodes and is exactly what some writer wrote (no garbage, and a
   batch is either wholly visible in a partition or not at all); every
   acknowledged batch/record at or after the start offset is at its offsets with
   exactly its checksum; acknowledged data before the start offset was removed
   by retention, which deletes whole segments only and kept at least
   ``retention_bytes`` (minus one segment of slack);
4. closes the log and runs ``tidelog verify`` on it: no frame damage (index
   problems are counted as ``verify_index_problems``: derived data, but a wrong
   time index can make time reads skip records; the CI test requires 0).

Some cycles skip step 3 (only the read-only check) so that the next child
recovers the log itself, and crashes may follow each other without a clean
close in between.

Usage::

    python -m tests.torture.crash --cycles 1000            # from the project root
    python tests/torture/crash.py --cycles 50 --seed 7 --dir /tmp/t --keep

Exit status 0 when nothing was lost; the summary line gives cycles, acked
records checked, lost (must be 0) and recovery times (p50/max).
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field

# ----------------------------------------------------------------------------- the workload
COLS_PARTITIONS = 3
RECS_PARTITIONS = 2
TOPICS = {
    "cols": dict(partitions=COLS_PARTITIONS, key="k", durability="fsync", segment_bytes=64 << 10,
                 retention_bytes=512 << 10),
    "colsz": dict(partitions=1, durability="interval", compression="zstd", segment_bytes=32 << 10,
                  retention_bytes=256 << 10, flush_interval_ms=20),
    "recs": dict(partitions=RECS_PARTITIONS, durability="fsync", segment_bytes=16 << 10,
                 retention_bytes=128 << 10),
}
TAGS = ["alpha", "beta", "gamma", "delta"]
CHILD_MAX_SECONDS = 60  # a child that is never killed exits on its own


def _schemas():
    import pyarrow as pa

    cols = pa.schema([("wid", pa.int32()), ("seq", pa.int32()), ("row", pa.int32()), ("k", pa.int32()),
                      ("v", pa.float64()), ("payload", pa.binary())])
    colsz = pa.schema([("wid", pa.int32()), ("seq", pa.int32()), ("row", pa.int32()), ("k", pa.int32()),
                       ("v", pa.float64()), ("payload", pa.binary()),
                       ("tag", pa.dictionary(pa.int8(), pa.string()))])
    return {"cols": cols, "colsz": colsz}


def payload_of(wid: int, seq: int, row: int) -> bytes:
    n = (wid * 7 + seq * 13 + row * 31) % 97
    unit = b"%d.%d.%d|" % (wid, seq, row)
    return (unit * (n // len(unit) + 1))[:n]


def key_of(wid: int, seq: int, row: int) -> int:
    return (wid * 1_000_003 + seq * 7919 + row * 104_729) % 1000


def value_of(wid: int, seq: int, row: int) -> float:
    return wid + seq / 1e4 + row / 1e8


def rows_of(topic: str, wid: int, seq: int) -> int:
    rng = random.Random(wid * 1_000_000 + seq * 10 + (topic == "colsz"))
    return rng.randint(1, 120)


def make_batch(topic: str, wid: int, seq: int):
    """The batch a writer appends as (wid, seq): a pure function of them."""
    import pyarrow as pa

    schema = _schemas()[topic]
    n = rows_of(topic, wid, seq)
    rows = range(n)
    cols = [pa.array([wid] * n, pa.int32()), pa.array([seq] * n, pa.int32()), pa.array(list(rows), pa.int32()),
            pa.array([key_of(wid, seq, r) for r in rows], pa.int32()),
            pa.array([value_of(wid, seq, r) for r in rows], pa.float64()),
            pa.array([payload_of(wid, seq, r) for r in rows], pa.binary())]
    if topic == "colsz":
        cols.append(pa.array([TAGS[(wid + seq + r) % 4] for r in rows]).dictionary_encode().cast(schema.field("tag").type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def digest(table) -> int:
    """A checksum of a table's values (independent of chunking and encoding)."""
    return zlib.crc32(repr(sorted(table.to_pydict().items())).encode())


def record_value(wid: int, seq: int, i: int) -> bytes:
    head = b"R%d-%d-%d;" % (wid, seq, i)
    return head * ((wid + seq * 3 + i * 5) % 29 + 1)


def record_key(wid: int, seq: int, i: int) -> bytes | None:
    return None if (seq + i) % 5 == 0 else b"key-%d" % ((wid + i * 31) % 17)


def record_headers(wid: int, i: int) -> list:
    return [("w", b"%d" % wid)] if i % 3 else []


def partition_slices(batch, topic: str) -> dict[int, "object"]:
    """{partition: rows of ``batch`` that go there}: the library's own key partitioner."""
    import numpy as np
    import pyarrow as pa

    if topic != "cols":
        return {0: batch}
    from tidelog import _arrow

    ids = _arrow.key_partitions(batch.column(batch.schema.get_field_index("k")), COLS_PARTITIONS)
    return {int(p): batch.filter(pa.array(ids == p)) for p in np.unique(ids)}


def _ensure_topics(log):
    import tidelog

    schemas = _schemas()
    out = {}
    for name, cfg in TOPICS.items():
        try:
            out[name] = log.topic(name)
        except tidelog.UnknownTopicError:
            out[name] = log.create_topic(name, None if name == "recs" else schemas[name], **cfg)
    return out


def child_main(path: str, cycle: int, seed: int, conn) -> None:
    """The writer that gets killed: reports every acknowledged write on ``conn``."""
    import tidelog

    deadline = time.monotonic() + CHILD_MAX_SECONDS
    t0 = time.perf_counter()
    log = tidelog.open(path)
    open_s = time.perf_counter() - t0
    topics = _ensure_topics(log)
    out_lock = threading.Lock()

    def report(lines: list[str]) -> None:
        # One message per acknowledgement, each well under PIPE_BUF (4096 bytes):
        # a kill cannot tear a message, only stop the next one.
        with out_lock:
            msg = []
            size = 0
            for line in lines:
                if size + len(line) > 3000:
                    conn.send_bytes("\n".join(msg).encode())
                    msg, size = [], 0
                msg.append(line)
                size += len(line) + 1
            if msg:
                conn.send_bytes("\n".join(msg).encode())

    report([f"ready {open_s:.6f} {int(log.clean_shutdown)} {len(log.recovery_report)}"])

    def appender(tid: int) -> None:
        rng = random.Random(seed * 1000 + tid)
        wid = cycle * 16 + tid
        seq = 0
        while time.monotonic() < deadline:
            name = "cols" if rng.random() < 0.7 else "colsz"
            batch = make_batch(name, wid, seq)
            res = topics[name].append(batch)
            slices = partition_slices(batch, name)
            lines = []
            for p, (first, last) in sorted(res.offsets.items()):
                sub = slices[p]
                assert last - first + 1 == sub.num_rows, (name, p, first, last, sub.num_rows)
                lines.append(f"C {name} {p} {first} {last} {digest(pa_table(sub))} {wid} {seq}")
            report(lines)
            seq += 1

    def producer(tid: int) -> None:
        rng = random.Random(seed * 1000 + 100 + tid)
        wid = cycle * 16 + 8 + tid
        p = log.producer(linger_ms=rng.choice([0, 1, 3]), acks="durable")
        seq = 0
        while time.monotonic() < deadline:
            futures = []
            for i in range(rng.randint(1, 40)):
                futures.append((i, p.send("recs", value=record_value(wid, seq, i), key=record_key(wid, seq, i),
                                          headers=record_headers(wid, i))))
            lines = []
            for i, f in futures:
                m = f.result()
                lines.append(f"R recs {m.partition} {m.offset} {m.timestamp} {wid} {seq} {i}")
            report(lines)
            seq += 1

    def retention() -> None:
        rng = random.Random(seed * 1000 + 200)
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.005, 0.08))
            for t in topics.values():
                t.enforce_retention()

    threads = [threading.Thread(target=appender, args=(t,), daemon=True) for t in range(3)]
    threads += [threading.Thread(target=producer, args=(t,), daemon=True) for t in range(2)]
    threads.append(threading.Thread(target=retention, daemon=True))
    for t in threads:
        t.start()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if not all(t.is_alive() for t in threads):
            os._exit(4)  # a worker died: the parent reports the child's exit status
    os._exit(3)


@functools.lru_cache(maxsize=50_000)
def expected_slices(topic: str, wid: int, seq: int) -> dict[int, tuple[int, int]]:
    """{partition: (rows, digest)} of batch (wid, seq) of ``topic``."""
    return {p: (b.num_rows, digest(pa_table(b))) for p, b in partition_slices(make_batch(topic, wid, seq), topic).items()}


def pa_table(batch):
    import pyarrow as pa

    return pa.Table.from_batches([batch])


# ----------------------------------------------------------------------------- the parent
class TortureFailure(AssertionError):
    pass


@dataclass
class Stats:
    cycles: int = 0
    acked_batches: int = 0
    acked_rows: int = 0  # columnar rows acknowledged (records of cols/colsz)
    acked_records: int = 0  # producer records acknowledged
    checked_records: int = 0  # acknowledged records (rows + producer records) verified intact at least once
    record_checks: int = 0  # every check of an acknowledged record, over all cycles
    retired_records: int = 0  # acknowledged, later removed by retention (after >= 0 checks)
    retired_unchecked: int = 0  # ... before the parent ever saw them
    lost: int = 0
    visible_rows_checked: int = 0
    recoveries: list = field(default_factory=list)  # seconds, writer opens of a crashed log (parent)
    child_recoveries: list = field(default_factory=list)  # seconds, child opens of a crashed log
    recovery_events: int = 0
    kills_during_open: int = 0
    kills_without_ack: int = 0
    verify_runs: int = 0
    index_problems: int = 0  # index damage verify found in logs nobody damaged (a library bug)
    index_problem_samples: list = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        rec = sorted(self.recoveries + self.child_recoveries)
        return {
            "cycles": self.cycles,
            "acked_records": self.acked_rows + self.acked_records,
            "acked_records_checked": self.checked_records,
            "record_checks": self.record_checks,
            "retired_by_retention": self.retired_records,
            "retired_before_first_check": self.retired_unchecked,
            "lost": self.lost,
            "visible_rows_checked": self.visible_rows_checked,
            "recoveries": len(rec),
            "recovery_p50_ms": round(statistics.median(rec) * 1000, 2) if rec else None,
            "recovery_p99_ms": round(rec[min(len(rec) - 1, int(len(rec) * 0.99))] * 1000, 2) if rec else None,
            "recovery_max_ms": round(rec[-1] * 1000, 2) if rec else None,
            "recovery_events": self.recovery_events,
            "kills_during_open": self.kills_during_open,
            "kills_before_first_ack": self.kills_without_ack,
            "verify_runs": self.verify_runs,
            "verify_index_problems": self.index_problems,
            "verify_index_problem_samples": self.index_problem_samples,
            "seconds": round(self.seconds, 1),
        }


class Torture:
    def __init__(self, path: str, seed: int, max_delay: float = 0.5, verbose: bool = False):
        self.path = path
        self.seed = seed
        self.rng = random.Random(seed)
        self.max_delay = max_delay
        self.verbose = verbose
        self.stats = Stats()
        # (topic, partition) -> {first: (last, digest, wid, seq, checked)}
        self.col_acks: dict[tuple[str, int], dict[int, list]] = {}
        # partition -> {offset: [timestamp, wid, seq, i, checked]}
        self.rec_acks: dict[int, dict[int, list]] = {}
        self.prev_start: dict[tuple[str, int], int] = {}
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["numpy", "pyarrow", "tidelog", "tidelog._arrow", __name__])
        self.needs_recovery = False
        self._seen_index_problems: set = set()

    # ------------------------------------------------------------------ one cycle
    def cycle(self, n: int) -> None:
        import tidelog
        from tidelog import _verify

        rng = self.rng
        acks = self._run_child(n)
        self._record_acks(acks)
        # 1. the crashed folder as it is
        if rng.random() < 0.25:
            self._verify_crashed()
        # 2. a reader before anyone recovers
        ro_only = rng.random() < 0.2
        if ro_only or rng.random() < 0.2:
            with tidelog.open(self.path, read_only=True) as ro:
                self._check(ro, read_only=True)
        if ro_only:
            self.needs_recovery = True  # the next child recovers the log
            return
        # 3. recovery by a writer, timed, and the full check
        t0 = time.perf_counter()
        log = tidelog.open(self.path)
        elapsed = time.perf_counter() - t0
        try:
            if not log.clean_shutdown:
                self.stats.recoveries.append(elapsed)
            self.stats.recovery_events += len(log.recovery_report)
            self._check(log, read_only=False)
        finally:
            log.close()
        self.needs_recovery = False
        # 4. the cleanly closed log verifies without damage
        report = _verify.verify(self.path, progress="never")
        self.stats.verify_runs += 1
        if report.damaged:
            frames = [p for p in report.all_problems() if p.kind != "index"]
            if frames:
                raise TortureFailure("verify after a clean close found damage:\n" + _verify.format_report(report))
            self._index_problems(report.all_problems())

    def _run_child(self, n: int) -> list[str]:
        rng = self.rng
        r, w = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=child_main, args=(self.path, n, rng.randrange(2**31), w), daemon=True)
        proc.start()
        w.close()
        messages: list[str] = []
        got_ready = threading.Event()
        got_ack = threading.Event()

        def pump() -> None:
            while True:
                try:
                    data = r.recv_bytes()
                except (EOFError, OSError):
                    break
                for line in data.decode().split("\n"):
                    messages.append(line)
                    if line.startswith("ready"):
                        got_ready.set()
                    else:
                        got_ack.set()
            got_ready.set()
            got_ack.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        mode = rng.random()
        try:
            if mode < 0.08:
                # during open: recovery of the previous crash is killed half way
                got_ready.wait(rng.uniform(0, 0.3)) if rng.random() < 0.5 else time.sleep(rng.uniform(0, 0.3))
                if not got_ready.is_set():
                    self.stats.kills_during_open += 1
            else:
                if not got_ready.wait(120):
                    raise TortureFailure("the child never got ready")
                if mode < 0.15:
                    self.stats.kills_without_ack += 0 if got_ack.is_set() else 1
                else:
                    got_ack.wait(30)
                time.sleep(rng.uniform(0, self.max_delay))
            if proc.exitcode is not None:
                raise TortureFailure(f"the child exited by itself with status {proc.exitcode}")
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
        finally:
            if proc.exitcode is None:
                proc.kill()
                proc.join()
            reader.join(30)
            r.close()
        if proc.exitcode != -signal.SIGKILL:
            raise TortureFailure(f"child exit status {proc.exitcode}, expected SIGKILL")
        for m in messages:
            if m.startswith("ready"):
                _, open_s, clean, events = m.split()
                if clean == "0":
                    self.stats.child_recoveries.append(float(open_s))
                self.stats.recovery_events += int(events)
        return [m for m in messages if not m.startswith("ready")]

    def _record_acks(self, lines: list[str]) -> None:
        for line in lines:
            parts = line.split()
            if parts[0] == "C":
                _, topic, p, first, last, dig, wid, seq = parts
                p, first, last = int(p), int(first), int(last)
                acks = self.col_acks.setdefault((topic, p), {})
                if first in acks:
                    raise TortureFailure(f"{topic}/{p}: offset {first} acknowledged twice: {acks[first]} and {line}")
                acks[first] = [last, int(dig), int(wid), int(seq), False]
                self.stats.acked_batches += 1
                self.stats.acked_rows += last - first + 1
            elif parts[0] == "R":
                _, _topic, p, off, ts, wid, seq, i = parts
                acks = self.rec_acks.setdefault(int(p), {})
                if int(off) in acks:
                    raise TortureFailure(f"recs/{p}: offset {off} acknowledged twice")
                acks[int(off)] = [int(ts), int(wid), int(seq), int(i), False]
                self.stats.acked_records += 1
            else:
                raise TortureFailure(f"unexpected message from the child: {line!r}")

    # ------------------------------------------------------------------ checks
    def _verify_crashed(self) -> None:
        """Verify on a crashed, unrecovered log: damage only in a partition's last
        segment, after everything acknowledged there."""
        from tidelog import _verify

        report = _verify.verify(self.path, progress="never")
        self.stats.verify_runs += 1
        for rep in report.partitions:
            if not rep.problems:
                continue
            key = (rep.topic, rep.partition)
            if rep.topic == "recs":
                acked_end = max(self.rec_acks.get(rep.partition, {}), default=-1) + 1
            else:
                acked_end = max((v[0] for v in self.col_acks.get(key, {}).values()), default=-1) + 1
            segs = sorted(f for f in os.listdir(rep.directory) if f.endswith(".log") and len(f) == 24)
            last_stem = os.path.join(rep.directory, segs[-1][:-4]) if segs else None
            for prob in rep.problems:
                in_last = os.path.splitext(prob.file)[0] == last_stem
                if prob.kind == "index" and not in_last:
                    self._index_problems([prob])
                    continue
                ok = (prob.kind == "index" and in_last) or (
                    prob.kind == "frame" and not rep.first_bad_sealed and prob.offset is not None
                    and prob.offset >= acked_end)
                if not ok:
                    raise TortureFailure(f"verify of the crashed log: {rep.name}: {prob} (acknowledged up to "
                                         f"offset {acked_end - 1})\n" + _verify.format_report(report))

    def _index_problems(self, problems) -> None:
        """Index damage that verify finds in a log no one damaged: a library bug (derived
        data, so no record is lost, but reads by time can skip records). Counted and
        reported in the summary; the CI test asserts there are none."""
        for p in problems:
            key = (p.file, p.position, p.reason)
            if key in self._seen_index_problems:
                continue
            self._seen_index_problems.add(key)
            self.stats.index_problems += 1
            if len(self.stats.index_problem_samples) < 5:
                self.stats.index_problem_samples.append(f"cycle {self.stats.cycles + 1}: {p.topic}/{p.partition} {p}")

    def _check(self, log, read_only: bool) -> None:
        topics = {name: log.topic(name) for name in TOPICS} if set(TOPICS) <= set(log.topics()) else None
        if topics is None:
            if self.col_acks or self.rec_acks:
                raise TortureFailure(f"topics missing after the crash: {log.topics()}")
            return
        for name in ("cols", "colsz"):
            t = topics[name]
            for p in range(t.partitions):
                self._check_columnar(t, name, p, read_only)
        t = topics["recs"]
        for p in range(t.partitions):
            self._check_records(t, p, read_only)

    @staticmethod
    def _stable_read(topic, name: str, p: int):
        """(start, end, bytes, table of [start, end)): retried while the writer's own
        background retention moves the start during the read."""
        for _ in range(20):
            start = topic.start_offsets()[p]
            end = topic.end_offsets()[p]
            size = topic.describe()["partitions"][p]["bytes"]
            table = topic.read(start, end, partitions=p)
            if topic.start_offsets()[p] != start:
                continue  # retention ran meanwhile
            if table.num_rows != end - start:
                raise TortureFailure(f"{name}/{p}: read {table.num_rows} rows for offsets [{start}, {end})")
            return start, end, size, table
        raise TortureFailure(f"{name}/{p}: the start offset kept moving")

    def _check_start(self, name: str, p: int, start: int, end: int, size: int, read_only: bool) -> None:
        key = (name, p)
        prev = self.prev_start.get(key, 0)
        if start < prev:
            raise TortureFailure(f"{name}/{p}: start offset went back from {prev} to {start}")
        if not read_only:
            self.prev_start[key] = start
        if start > 0 and not read_only:
            # retention deletes a segment only while the rest holds retention_bytes
            limit = TOPICS[name]["retention_bytes"]
            slack = TOPICS[name]["segment_bytes"]
            if size + slack < limit:
                raise TortureFailure(f"{name}/{p}: retention kept {size} bytes (start {start}), less than "
                                     f"retention_bytes={limit} minus a segment")
        if end < start:
            raise TortureFailure(f"{name}/{p}: end {end} < start {start}")

    def _check_columnar(self, topic, name: str, p: int, read_only: bool) -> None:
        start, end, size, table = self._stable_read(topic, name, p)
        self._check_start(name, p, start, end, size, read_only)
        acks = self.col_acks.get((name, p), {})
        cols = table.to_pydict()
        wid, seq = cols["wid"], cols["seq"]
        self.stats.visible_rows_checked += table.num_rows
        # every visible row is exactly what its writer wrote, and batches are whole
        i = 0
        n = table.num_rows
        while i < n:
            w, s = wid[i], seq[i]
            j = i
            while j < n and wid[j] == w and seq[j] == s:
                j += 1
            expected = expected_slices(name, w, s).get(p)
            if expected is None:
                raise TortureFailure(f"{name}/{p}: batch ({w}, {s}) has no rows for partition {p} but shows up "
                                     f"at offset {start + i}")
            got = table.slice(i, j - i)
            if j - i != expected[0] or digest(got) != expected[1]:
                raise TortureFailure(f"{name}/{p}: offsets {start + i}..{start + j - 1} hold {j - i} rows of batch "
                                     f"({w}, {s}) that differ from what was written ({expected[0]} rows): "
                                     f"torn, garbled or half-visible")
            # acknowledged there?
            ack = acks.get(start + i)
            if ack is not None:
                last, dig, aw, aseq, checked = ack
                if (aw, aseq) != (w, s) or last != start + j - 1 or dig != digest(got):
                    self._lost(f"{name}/{p}: acknowledged batch ({aw}, {aseq}) at {start + i}..{last} is not there: "
                               f"found ({w}, {s}) at {start + i}..{start + j - 1}")
                self.stats.record_checks += last - start - i + 1
                if not checked:
                    ack[4] = True
                    self.stats.checked_records += last - start - i + 1
            i = j
        # acknowledged batches: present (checked above when at a batch start) or retired
        for first in sorted(acks):
            last, dig, aw, aseq, checked = acks[first]
            if last < start:
                if not read_only:
                    self.stats.retired_records += last - first + 1
                    if not checked:
                        self.stats.retired_unchecked += last - first + 1
                    del acks[first]
                continue
            if first < start:
                self._lost(f"{name}/{p}: start offset {start} falls inside acknowledged batch {first}..{last}")
            elif last >= end:
                self._lost(f"{name}/{p}: acknowledged batch ({aw}, {aseq}) at {first}..{last} is past the end {end}")
            else:
                # present at a batch start? the walk above checked it; if the walk
                # never met this offset as a batch start, the batch is gone
                i = first - start
                if not (wid[i] == aw and seq[i] == aseq and (i == 0 or (wid[i - 1], seq[i - 1]) != (aw, aseq))):
                    self._lost(f"{name}/{p}: acknowledged batch ({aw}, {aseq}) at {first}..{last} is not there")

    def _check_records(self, topic, p: int, read_only: bool) -> None:
        start, end, size, table = self._stable_read(topic, "recs", p)
        self._check_start("recs", p, start, end, size, read_only)
        acks = self.rec_acks.get(p, {})
        values = table.column("value").to_pylist()
        keys = table.column("key").to_pylist()
        stamps = table.column("timestamp").cast("int64").to_pylist()  # int ns, either record schema version
        headers = table.column("headers").to_pylist()
        self.stats.visible_rows_checked += table.num_rows
        for i, v in enumerate(values):
            head = v.split(b";", 1)[0] if v else b""
            try:
                w, s, k = (int(x) for x in head[1:].split(b"-"))
            except ValueError:
                raise TortureFailure(f"recs/{p}: offset {start + i} holds garbage {v[:60]!r}") from None
            if (v != record_value(w, s, k) or keys[i] != record_key(w, s, k)
                    or [(h["key"], h["value"]) for h in headers[i]] != record_headers(w, k)):
                raise TortureFailure(f"recs/{p}: offset {start + i} holds a record that differs from what was "
                                     f"written ({w}, {s}, {k})")
        for off in sorted(acks):
            ts, w, s, k, checked = acks[off]
            if off < start:
                if not read_only:
                    self.stats.retired_records += 1
                    self.stats.retired_unchecked += 0 if checked else 1
                    del acks[off]
                continue
            if off >= end:
                self._lost(f"recs/{p}: acknowledged record ({w}, {s}, {k}) at offset {off} is past the end {end}")
                continue
            i = off - start
            if values[i] != record_value(w, s, k) or keys[i] != record_key(w, s, k) or stamps[i] != ts:
                self._lost(f"recs/{p}: acknowledged record ({w}, {s}, {k}) at offset {off} is not there")
            self.stats.record_checks += 1
            if not checked:
                acks[off][4] = True
                self.stats.checked_records += 1

    def _lost(self, message: str) -> None:
        self.stats.lost += 1
        raise TortureFailure("LOST: " + message)


def run(cycles: int, seed: int | None = None, directory: str | None = None, keep: bool = False,
        max_delay: float = 0.5, verbose: bool = False, time_budget: float | None = None,
        out=None) -> dict:
    """Runs ``cycles`` kill/recover/check cycles; returns the summary. Raises
    TortureFailure (with the log folder kept) on the first violation."""
    out = out or sys.stdout
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    base = directory or tempfile.mkdtemp(prefix="tidelog-torture-")
    path = os.path.join(base, f"log-{seed}")
    if os.path.exists(path):
        shutil.rmtree(path)
    t = Torture(path, seed, max_delay=max_delay, verbose=verbose)
    t0 = time.monotonic()
    failed = False
    try:
        for n in range(cycles):
            if time_budget is not None and time.monotonic() - t0 > time_budget and n >= 1:
                break
            t.cycle(n)
            t.stats.cycles = n + 1
            if verbose or (n + 1) % max(1, cycles // 20) == 0:
                t.stats.seconds = time.monotonic() - t0
                out.write(f"cycle {n + 1}/{cycles}: {json.dumps(t.stats.summary())}\n")
                out.flush()
    except BaseException:
        failed = True
        out.write(f"FAILED at cycle {t.stats.cycles + 1} (seed {seed}); log kept at {path}\n")
        raise
    finally:
        t.stats.seconds = time.monotonic() - t0
        if not failed and not keep and directory is None:
            shutil.rmtree(base, ignore_errors=True)
    summary = t.stats.summary()
    summary["seed"] = seed
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", default=None, help="work folder (kept); default: a temporary one, removed on success")
    ap.add_argument("--keep", action="store_true", help="keep the log folder")
    ap.add_argument("--max-delay", type=float, default=0.5, help="kill at most this many seconds after the first ack")
    ap.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--json", default=None, help="also write the summary to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        summary = run(args.cycles, args.seed, args.dir, args.keep, args.max_delay, args.verbose, args.time_budget)
    except TortureFailure as e:
        print(f"TORTURE FAILURE: {e}", file=sys.stderr)
        return 1
    line = (f"crash torture: {summary['cycles']} cycles, {summary['acked_records']:,} acked records, "
            f"{summary['acked_records_checked']:,} checked ({summary['record_checks']:,} checks), "
            f"lost {summary['lost']}, recovery p50 {summary['recovery_p50_ms']} ms / max {summary['recovery_max_ms']} ms "
            f"over {summary['recoveries']} recoveries, {summary['seconds']} s (seed {summary['seed']})")
    print(line)
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0 if summary["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
