"""Many-writers torture: several processes write one log at once while a
supervisor SIGKILLs them at random moments; nothing acknowledged may be lost.

- 3 writer processes, 4 threads each: 2 threads append columnar batches
  (``topic.append(..., durable=True)``, topic ``cols``), 2 threads send byte
  records through a ``log.producer(acks="durable")`` (topic ``recs``); 2
  partitions each, 256 KiB segments and ``retention_bytes`` of 1 MiB, so segments
  roll and retention deletes them about every second (the first columnar thread
  also calls ``enforce_retention()`` every 0.1-0.6 s: a writer killed within a
  second may never see its housekeeper run). Every row/record carries
  its writer, thread and sequence number and a payload that is a pure function
  of them; its checksum is the payload's CRC-32. Each writer appends a line per
  acknowledged row or record to its own journal file, (topic, partition,
  offset, writer, thread, seq, crc, time), written straight to the file after
  the acknowledgement returned: a SIGKILL keeps every line whose write returned.
- 2 reader processes consume every partition of both topics (one
  ``read_only=True``, one read-write handle) and record (topic, partition,
  offset, crc) of everything they were shown, after checking that it is well formed.
- the supervisor SIGKILLs a random writer 0-500 ms after the previous kill's
  replacement got ready (one kill in ten: the replacement itself, 0-30 ms after
  its start, while it opens the log), and starts the replacement (a new writer id: writer slot * 1000 + incarnation).
  Every 20th kill kills every writer and the read-write reader at once: the
  read-write handles of the log are all gone, so the next opener starts from a
  crashed log (the recovery path). After each single kill, a ``read_only``
  handle of the supervisor checks that the killed writer's acknowledged
  records are all there.
- after ``--kills`` kills (or ``--seconds``), a clean stop: writers, then
  readers, close their logs. The final check: every journaled
  acknowledgement is in the log once, at its offset, with its checksum, unless
  retention removed it (offset < start offset); offsets are dense from each
  partition's start offset; every row in the log is exactly what its writer
  wrote; per (writer, thread) the sequence numbers increase in offset order; no
  (writer, thread, seq) is there twice; everything a reader was shown is in the
  log at the same offset with the same checksum; ``tidelog verify`` finds no
  damage; a read-write open after it (recovery, when kills left the session
  unclean) keeps every record.

The summary gives kills, acknowledged records, elapsed time and the longest
survivor stall after a kill (from a kill to the next acknowledgement of each
writer that was live and ready at the kill).

Usage::

    python tests/torture/many_writers.py --kills 1000 --seconds 3600 --seed 7
    python tests/torture/many_writers.py --kills 60 --dir /tmp/mw --keep -v

Exit status 0 when every check passed.
"""
from __future__ import annotations

import argparse
import bisect
import collections
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
import traceback
import zlib

WRITERS = 3
COLUMNAR_THREADS = (0, 1)
PRODUCER_THREADS = (2, 3)
PARTITIONS = 2
SEGMENT_BYTES = 256 << 10
RETENTION_BYTES = 1 << 20
ALL_KILL_EVERY = 20
MAX_KILL_DELAY = 0.5
TOPIC_SETTINGS = dict(partitions=PARTITIONS, segment_bytes=SEGMENT_BYTES, retention_bytes=RETENTION_BYTES,
                      durability="fsync")
WAIT_S = 60.0   # what a process may take to start, stop or answer (a slow sanitized build on 2 cores)
HANG_S = 20.0   # no acknowledgement from any writer for this long: a hang
CHILD_MAX_S = 3600.0  # a writer nobody stops exits on its own


def cols_schema():
    import pyarrow as pa

    return pa.schema([("writer", pa.int32()), ("thread", pa.int32()), ("seq", pa.int64()),
                      ("payload", pa.binary())])


def payload_of(wid: int, tid: int, seq: int) -> bytes:
    """The payload of row/record (wid, tid, seq): its identity, then filler (16-400 bytes)."""
    head = b"%d.%d.%d|" % (wid, tid, seq)
    n = 16 + (seq * 7919 + wid * 31 + tid * 101) % 385
    return (head * (n // len(head) + 1))[:max(n, len(head))]


def identity_of(payload: bytes) -> tuple[int, int, int] | None:
    """(wid, tid, seq) of a well-formed payload, else None."""
    try:
        head = payload[:payload.index(b"|")]
        wid, tid, seq = (int(x) for x in head.split(b"."))
    except ValueError:
        return None
    return (wid, tid, seq) if payload == payload_of(wid, tid, seq) else None


class Journal:
    """Lines appended straight to a file (O_APPEND, no user-space buffer), one
    write per call, from any thread."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode()
        with self.lock:
            os.write(self.fd, data)


def read_journal(path: str) -> list[list[str]]:
    """The complete lines of a journal (a line cut by a kill was never acknowledged)."""
    try:
        with open(path, "rb") as f:
            data = f.read().decode()
    except FileNotFoundError:
        return []
    return [line.split() for line in data.split("\n")[:-1]]


def _watch_stop(stop_path: str, stop: threading.Event) -> None:
    while not stop.is_set():
        if os.path.exists(stop_path):
            stop.set()
        time.sleep(0.05)


# ----------------------------------------------------------------------------- the writer process
def writer_main(path: str, wid: int, journal_path: str, stop_path: str, seed: int) -> None:
    import pyarrow as pa

    import tidelog

    journal = Journal(journal_path)
    t0 = time.monotonic()
    try:
        log = tidelog.open(path)
        cols, recs = log.topic("cols"), log.topic("recs")
    except BaseException:  # noqa: BLE001 - reported, then the process ends
        journal.write(["E open " + traceback.format_exc().replace("\n", " | ")])
        os._exit(4)
    journal.write([f"ready {time.monotonic()} {time.monotonic() - t0:.6f} {int(log.clean_shutdown)}"])
    stop = threading.Event()
    failed = threading.Event()
    schema = cols_schema()

    def columnar(tid: int) -> None:
        rng = random.Random(seed * 10 + tid)
        seq = 0
        retention_at = time.monotonic() + rng.uniform(0.1, 0.6)
        while not stop.is_set():
            if tid == 0 and time.monotonic() > retention_at:
                # also now and then by hand: writers killed within a second may never see their housekeeper run it
                cols.enforce_retention()
                recs.enforce_retention()
                retention_at = time.monotonic() + rng.uniform(0.1, 0.6)
            n = rng.randint(1, 8)
            seqs = list(range(seq, seq + n))
            payloads = [payload_of(wid, tid, s) for s in seqs]
            batch = pa.RecordBatch.from_arrays(
                [pa.array([wid] * n, pa.int32()), pa.array([tid] * n, pa.int32()), pa.array(seqs, pa.int64()),
                 pa.array(payloads, pa.binary())], schema=schema)
            ((p, (first, last)),) = cols.append(batch, durable=True).offsets.items()
            now = time.monotonic()
            if last - first + 1 != n:
                raise AssertionError(f"cols/{p}: {n} rows acknowledged at offsets {first}..{last}")
            journal.write([f"cols {p} {first + i} {wid} {tid} {s} {zlib.crc32(pl)} {now}"
                           for i, (s, pl) in enumerate(zip(seqs, payloads))])
            seq += n

    def producing(tid: int) -> None:
        rng = random.Random(seed * 10 + tid)
        producer = log.producer(acks="durable", linger_ms=rng.choice([0, 1, 3]))
        seq = 0
        try:
            while not stop.is_set():
                n = rng.randint(1, 16)
                sent = []
                for s in range(seq, seq + n):
                    value = payload_of(wid, tid, s)
                    sent.append((s, value, producer.send("recs", value=value)))
                lines = []
                for s, value, future in sent:
                    m = future.result(WAIT_S)
                    lines.append(f"recs {m.partition} {m.offset} {wid} {tid} {s} {zlib.crc32(value)}")
                now = time.monotonic()
                journal.write([f"{line} {now}" for line in lines])
                seq += n
        finally:
            producer.close()

    def guarded(fn, tid: int) -> None:
        try:
            fn(tid)
        except BaseException:  # noqa: BLE001 - reported, then the process ends
            journal.write([f"E thread {tid} " + traceback.format_exc().replace("\n", " | ")])
            failed.set()
            stop.set()

    threads = [threading.Thread(target=guarded, args=(columnar, t), daemon=True) for t in COLUMNAR_THREADS]
    threads += [threading.Thread(target=guarded, args=(producing, t), daemon=True) for t in PRODUCER_THREADS]
    threading.Thread(target=_watch_stop, args=(stop_path, stop), daemon=True).start()
    for t in threads:
        t.start()
    deadline = time.monotonic() + CHILD_MAX_S
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.1)
    stop.set()
    for t in threads:
        t.join()
    if failed.is_set():
        os._exit(4)
    log.close()
    journal.write([f"closed {time.monotonic()}"])


# ----------------------------------------------------------------------------- the reader process
def reader_main(path: str, read_only: bool, seen_path: str, stop_path: str) -> None:
    """Consumes every partition; records "topic partition first_offset crc,crc,..."
    of each batch it was shown, after checking every row is well formed. At the
    stop file, drains to the end and exits."""
    import tidelog

    journal = Journal(seen_path)
    try:
        log = tidelog.open(path, read_only=read_only)
        consumer = log.consumer(["cols", "recs"], start="earliest")
        stop = threading.Event()
        threading.Thread(target=_watch_stop, args=(stop_path, stop), daemon=True).start()
        journal.write([f"ready {time.monotonic()}"])
        while True:
            stopping = stop.is_set()
            batch = consumer.poll_batch(max_records=2000, timeout=0.2)
            if batch is None:
                if stopping and not consumer.has_data():
                    break
                continue
            topic = batch.column("topic")[0].as_py()
            p = batch.column("partition")[0].as_py()
            first = batch.column("offset")[0].as_py()
            payloads = batch.column("payload" if topic == "cols" else "value").to_pylist()
            for i, pl in enumerate(payloads):
                if pl is None or identity_of(pl) is None:
                    raise AssertionError(f"{topic}/{p}: offset {first + i} holds garbage: {pl!r:.80}")
            journal.write([f"{topic} {p} {first} " + ",".join(str(zlib.crc32(pl)) for pl in payloads)])
        consumer.close()
        log.close()
        journal.write([f"closed {time.monotonic()}"])
    except BaseException:  # noqa: BLE001 - reported, then the process ends
        journal.write(["E " + traceback.format_exc().replace("\n", " | ")])
        os._exit(4)


# ----------------------------------------------------------------------------- the supervisor
class TortureFailure(AssertionError):
    pass


class Proc:
    """A writer or reader process and its journal."""

    def __init__(self, ctx, target, args: tuple, journal: str, wid: int | None = None):
        self.journal = journal
        self.wid = wid
        self.proc = ctx.Process(target=target, args=args, daemon=True)
        self.proc.start()
        self.killed_at: float | None = None
        self._ready_at: float | None = None
        self._final_lines: list[list[str]] | None = None

    def lines(self) -> list[list[str]]:
        """The journal's complete lines (read once the process has ended: it is final then)."""
        if self._final_lines is not None:
            return self._final_lines
        ended = self.proc.exitcode is not None
        lines = read_journal(self.journal)
        if ended:
            self._final_lines = lines
        return lines

    def ready_at(self) -> float | None:
        """When the process had the log open (its journal's first line), else None."""
        if self._ready_at is None:
            try:
                with open(self.journal, "rb") as f:
                    first = f.readline().decode()
            except FileNotFoundError:
                return None
            if first.startswith("ready ") and first.endswith("\n"):
                self._ready_at = float(first.split()[1])
        return self._ready_at

    def errors(self) -> str:
        return "\n".join(" ".join(line) for line in self.lines() if line and line[0] == "E")

    def kill(self) -> float:
        at = time.monotonic()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(WAIT_S)
        if self.proc.exitcode != -signal.SIGKILL:
            raise TortureFailure(f"{self.journal}: exit status {self.proc.exitcode} after SIGKILL\n{self.errors()}")
        self.killed_at = at
        return at

    def check_alive(self) -> None:
        if not self.proc.is_alive():
            raise TortureFailure(f"{self.journal}: exited by itself with status {self.proc.exitcode}\n"
                                 f"{self.errors()}")


class ManyWriters:
    def __init__(self, path: str, work: str, seed: int, verbose: bool = False, out=None):
        self.path, self.work, self.seed = path, work, seed
        self.rng = random.Random(seed)
        self.verbose = verbose
        self.out = out or sys.stdout
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["numpy", "pyarrow", "tidelog", __name__])
        self.writers: list[Proc] = []
        self.all_writers: list[Proc] = []
        self.readers: dict[str, Proc] = {}
        self.all_readers: list[Proc] = []
        self.incarnations = collections.Counter()
        self.kills: list[tuple[float, int]] = []   # (time, slot) of single kills
        self.all_kills = 0
        self.kills_before_ready = 0
        self.killed_checked = 0
        self.journal_bytes, self.progress_at = 0, time.monotonic()
        self.stop_writers = os.path.join(work, "stop-writers")
        self.stop_readers = os.path.join(work, "stop-readers")

    # ------------------------------------------------------------------ processes
    def start_writer(self, slot: int) -> Proc:
        inc = self.incarnations[slot]
        self.incarnations[slot] += 1
        wid = slot * 1000 + inc
        w = Proc(self.ctx, writer_main, (self.path, wid, os.path.join(self.work, f"writer-{wid}.txt"),
                                         self.stop_writers, self.rng.randrange(2**31)),
                 os.path.join(self.work, f"writer-{wid}.txt"), wid)
        self.all_writers.append(w)
        return w

    def start_reader(self, kind: str) -> Proc:
        n = sum(1 for r in self.all_readers if f"reader-{kind}-" in r.journal)
        seen = os.path.join(self.work, f"reader-{kind}-{n}.txt")
        r = Proc(self.ctx, reader_main, (self.path, kind == "ro", seen, self.stop_readers), seen)
        self.all_readers.append(r)
        self.readers[kind] = r
        return r

    def wait_ready(self, procs: list[Proc]) -> None:
        deadline = time.monotonic() + WAIT_S
        for p in procs:
            while p.ready_at() is None:
                p.check_alive()
                if time.monotonic() > deadline:
                    raise TortureFailure(f"{p.journal}: not ready after {WAIT_S} s")
                time.sleep(0.005)

    def check_progress(self) -> None:
        """Some writer acknowledged something within HANG_S (else a hang)."""
        size = sum(os.path.getsize(w.journal) for w in self.all_writers if os.path.exists(w.journal))
        now = time.monotonic()
        if size != self.journal_bytes:
            self.journal_bytes, self.progress_at = size, now
        elif now - self.progress_at > HANG_S:
            raise TortureFailure(f"no writer acknowledged anything for {HANG_S} s: a hang")

    # ------------------------------------------------------------------ the run
    def setup(self) -> None:
        import tidelog

        with tidelog.open(self.path) as log:
            log.create_topic("cols", cols_schema(), **TOPIC_SETTINGS)
            log.create_topic("recs", **TOPIC_SETTINGS)

    def run(self, kills: int, seconds: float) -> dict:
        import tidelog

        t0 = time.monotonic()
        self.setup()
        self.start_reader("ro")
        self.start_reader("rw")
        self.writers = [self.start_writer(slot) for slot in range(WRITERS)]
        self.wait_ready(self.writers + list(self.readers.values()))
        fresh = self.writers
        with tidelog.open(self.path, read_only=True) as ro:
            while len(self.kills) + self.all_kills < kills and time.monotonic() - t0 < seconds:
                during_open = self.rng.random() < 0.1 and len(fresh) == 1
                if during_open:  # the replacement, while it opens the log (and may recover a partition)
                    time.sleep(self.rng.uniform(0, 0.03))
                else:
                    self.wait_ready(fresh)
                    time.sleep(self.rng.uniform(0, MAX_KILL_DELAY))
                for p in self.writers + list(self.readers.values()):
                    p.check_alive()
                self.check_progress()
                n = len(self.kills) + self.all_kills + 1
                if n % ALL_KILL_EVERY == 0:
                    for w in self.writers:
                        w.kill()
                    self.readers["rw"].kill()
                    self.all_kills += 1
                    self.writers = [self.start_writer(slot) for slot in range(WRITERS)]
                    self.start_reader("rw")
                    fresh = self.writers + [self.readers["rw"]]
                else:
                    slot = fresh[0].wid // 1000 if during_open else self.rng.randrange(WRITERS)
                    victim = self.writers[slot]
                    self.kills_before_ready += victim.ready_at() is None
                    self.kills.append((victim.kill(), slot))
                    self.writers[slot] = self.start_writer(slot)
                    fresh = [self.writers[slot]]
                    self.check_acknowledged(ro, victim)
                if self.verbose:
                    self.out.write(f"kill {n}: {time.monotonic() - t0:.1f} s\n")
                    self.out.flush()
        self.wait_ready(self.writers + list(self.readers.values()))
        self.stop()
        summary = self.final_check()
        summary["seconds"] = round(time.monotonic() - t0, 1)
        return summary

    def stop(self) -> None:
        open(self.stop_writers, "w").close()
        for w in self.writers:
            w.proc.join(WAIT_S)
            if w.proc.exitcode != 0:
                if w.proc.exitcode is None:
                    w.proc.kill()
                raise TortureFailure(f"{w.journal}: did not stop cleanly ({w.proc.exitcode})\n{w.errors()}")
        open(self.stop_readers, "w").close()
        for r in self.readers.values():
            r.proc.join(WAIT_S)
            if r.proc.exitcode != 0:
                if r.proc.exitcode is None:
                    r.proc.kill()
                raise TortureFailure(f"{r.journal}: did not stop cleanly ({r.proc.exitcode})\n{r.errors()}")

    # ------------------------------------------------------------------ checks
    @staticmethod
    def acks_of(proc: Proc) -> list[tuple]:
        """(topic, partition, offset, wid, tid, seq, crc, time) of each acknowledgement in a writer's journal."""
        out = []
        for line in proc.lines():
            if line[0] in ("cols", "recs"):
                t, p, off, wid, tid, seq, crc, at = line
                out.append((t, int(p), int(off), int(wid), int(tid), int(seq), int(crc), float(at)))
        return out

    @staticmethod
    def stable_read(topic, p: int, start: int, end: int):
        """(start, rows of [start, end)) with start moved up past what retention removed meanwhile."""
        for _ in range(50):
            start = max(start, topic.start_offsets()[p])
            if start >= end:
                return start, None
            try:
                table = topic.read(start, end, partitions=p)
            except Exception:  # noqa: BLE001 - retention removed the segment under the read: again
                if topic.start_offsets()[p] > start:
                    continue
                raise
            if topic.start_offsets()[p] > start:
                continue
            if table.num_rows != end - start:
                raise TortureFailure(f"{topic.name}/{p}: read {table.num_rows} rows for offsets [{start}, {end})")
            return start, table
        raise TortureFailure(f"{topic.name}/{p}: the start offset kept moving")

    def check_acknowledged(self, ro, victim: Proc) -> None:
        """Right after a kill: each acknowledgement of the killed writer is visible
        at its offset with its checksum (or removed by retention since)."""
        by_partition: dict[tuple[str, int], list[tuple]] = collections.defaultdict(list)
        for ack in self.acks_of(victim):
            by_partition[ack[0], ack[1]].append(ack)
        for (name, p), acks in by_partition.items():
            topic = ro.topic(name)
            need = max(a[2] for a in acks) + 1
            deadline = time.monotonic() + 5
            while topic.end_offsets()[p] < need:
                if time.monotonic() > deadline:
                    raise TortureFailure(f"{name}/{p}: offset {need - 1}, acknowledged to writer {victim.wid} "
                                         f"before it was killed, is not visible after 5 s "
                                         f"(end offset {topic.end_offsets()[p]})")
                time.sleep(0.005)
            start, table = self.stable_read(topic, p, min(a[2] for a in acks), need)
            if table is None:
                continue
            payloads = table.column("payload" if name == "cols" else "value").to_pylist()
            for _, _, off, wid, tid, seq, crc, _ in acks:
                if off < start:
                    continue
                pl = payloads[off - start]
                if identity_of(pl) != (wid, tid, seq) or zlib.crc32(pl) != crc:
                    raise TortureFailure(f"LOST: {name}/{p}: offset {off}, acknowledged to writer {wid} thread "
                                         f"{tid} as seq {seq}, holds {pl[:40]!r} after the writer was killed")
                self.killed_checked += 1

    def survivor_stalls(self) -> list[float]:
        """For each single kill: the longest time from the kill to the next
        acknowledgement of a writer that was live and ready at the kill."""
        acks_at = {w.wid: sorted(a[7] for a in self.acks_of(w)) for w in self.all_writers}
        stalls = []
        for killed_at, slot in self.kills:
            worst = None
            for w in self.all_writers:
                ready = w.ready_at()
                if w.wid // 1000 == slot or ready is None or ready >= killed_at:
                    continue
                if w.killed_at is not None and w.killed_at <= killed_at:
                    continue
                times = acks_at[w.wid]
                i = bisect.bisect_right(times, killed_at)
                if i < len(times):  # (else it was itself killed or stopped before its next ack)
                    worst = max(worst or 0.0, times[i] - killed_at)
            if worst is not None:
                stalls.append(worst)
        return stalls

    def final_check(self) -> dict:
        import tidelog
        from tidelog import _verify

        acked = retired = 0
        with tidelog.open(self.path, read_only=True) as log:
            content: dict[tuple[str, int], tuple[int, list]] = {}
            seen_ids: set = set()
            for name in ("cols", "recs"):
                topic = log.topic(name)
                for p in range(topic.partitions):
                    start, end = topic.start_offsets()[p], topic.end_offsets()[p]
                    table = topic.read(start, end, partitions=p, with_offsets=True)
                    offsets = table.column("_offset").to_pylist()
                    if offsets != list(range(start, end)):
                        raise TortureFailure(f"{name}/{p}: offsets of [{start}, {end}) are not dense")
                    payloads = table.column("payload" if name == "cols" else "value").to_pylist()
                    last_seq: dict[tuple[int, int], int] = {}
                    crcs = []
                    for i, pl in enumerate(payloads):
                        ident = identity_of(pl) if pl is not None else None
                        if ident is None:
                            raise TortureFailure(f"{name}/{p}: offset {start + i} holds garbage {pl!r:.60}")
                        if ident in seen_ids:
                            raise TortureFailure(f"{name}/{p}: {ident} is in the log twice (offset {start + i})")
                        seen_ids.add(ident)
                        key = ident[:2]
                        if last_seq.get(key, -1) >= ident[2]:
                            raise TortureFailure(f"{name}/{p}: writer {key[0]} thread {key[1]}: seq {ident[2]} at "
                                                 f"offset {start + i} after seq {last_seq[key]}")
                        last_seq[key] = ident[2]
                        crcs.append(zlib.crc32(pl))
                    if name == "cols":
                        cols = table.to_pydict()
                        idents = [identity_of(pl) for pl in payloads]
                        if [(w, t, s) for w, t, s in zip(cols["writer"], cols["thread"], cols["seq"])] != idents:
                            raise TortureFailure(f"cols/{p}: the writer/thread/seq columns disagree with the payloads")
                    content[name, p] = (start, crcs)
            rows = sum(len(c) for _, c in content.values())
        # the next session's recovery (kills leave the session unclean) keeps all of it
        with tidelog.open(self.path) as log:
            clean = log.clean_shutdown  # (False when handles died in the run's last session)
            for (name, p), (start, crcs) in content.items():
                topic = log.topic(name)
                new_start, end = topic.start_offsets()[p], topic.end_offsets()[p]
                if end != start + len(crcs) or new_start < start:
                    raise TortureFailure(f"{name}/{p}: offsets [{start}, {start + len(crcs)}) before recovery, "
                                         f"[{new_start}, {end}) after")
                if new_start < end:
                    table = topic.read(new_start, end, partitions=p)
                    after = [zlib.crc32(v) for v in table.column("payload" if name == "cols" else "value").to_pylist()]
                    if after != crcs[new_start - start:]:
                        raise TortureFailure(f"{name}/{p}: recovery changed records")
        with tidelog.open(self.path, read_only=True) as log:
            clean_after = log.clean_shutdown  # that session had no deaths
        # every acknowledgement
        for w in self.all_writers:
            for name, p, off, wid, tid, seq, crc, _ in self.acks_of(w):
                acked += 1
                start, crcs = content[name, p]
                if off < start:
                    retired += 1
                elif off >= start + len(crcs) or crcs[off - start] != crc:
                    raise TortureFailure(f"LOST: {name}/{p}: offset {off}, acknowledged to writer {wid} thread "
                                         f"{tid} as seq {seq}, is not there")
        # everything a reader was shown
        shown = shown_checked = 0
        for r in self.all_readers:
            for line in r.lines():
                if line[0] not in ("cols", "recs"):
                    continue
                name, p, first, crc_list = line[0], int(line[1]), int(line[2]), line[3].split(",")
                start, crcs = content[name, p]
                for i, c in enumerate(crc_list):
                    off = first + i
                    shown += 1
                    if off < start:
                        continue
                    if off >= start + len(crcs) or crcs[off - start] != int(c):
                        raise TortureFailure(f"{name}/{p}: offset {off} was shown to reader {r.journal} with crc {c}, "
                                             f"the log holds " + (str(crcs[off - start]) if off < start + len(crcs)
                                                                   else "nothing there"))
                    shown_checked += 1
        report = _verify.verify(self.path, progress="never")
        if report.damaged:
            raise TortureFailure("verify after the clean stop found damage:\n" + _verify.format_report(report))
        stalls = self.survivor_stalls()
        opens = sorted(float(w.lines()[0][2]) for w in self.all_writers if w.ready_at() is not None)
        return {
            "kills": len(self.kills) + self.all_kills,
            "all_writer_kills": self.all_kills,
            "kills_before_ready": self.kills_before_ready,
            "writer_processes": len(self.all_writers),
            "acked_records": acked,
            "acked_retired_by_retention": retired,
            "acked_checked_after_their_writers_kill": self.killed_checked,
            "records_in_log": rows,
            "shown_to_readers": shown,
            "shown_checked": shown_checked,
            "max_survivor_stall_ms": round(max(stalls) * 1000, 1) if stalls else None,
            "p50_survivor_stall_ms": round(statistics.median(stalls) * 1000, 1) if stalls else None,
            "writer_open_p50_ms": round(statistics.median(opens) * 1000, 1) if opens else None,
            "writer_open_max_ms": round(opens[-1] * 1000, 1) if opens else None,
            "run_ended_clean": clean,
            "clean_after_a_session_without_deaths": clean_after,
        }

    def kill_everything(self) -> None:
        for p in self.all_writers + self.all_readers:
            if p.proc.is_alive():
                p.proc.kill()
                p.proc.join(WAIT_S)


def run(kills: int, seconds: float, seed: int | None = None, directory: str | None = None, keep: bool = False,
        verbose: bool = False, out=None) -> dict:
    """Runs the torture; returns the summary. Raises TortureFailure (the folder
    kept) at the first violation."""
    out = out or sys.stdout
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    base = directory or tempfile.mkdtemp(prefix="tidelog-many-writers-")
    work = os.path.join(base, f"many-writers-{seed}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    t = ManyWriters(os.path.join(work, "log"), work, seed, verbose, out)
    failed = False
    try:
        summary = t.run(kills, seconds)
    except BaseException:
        failed = True
        out.write(f"FAILED (seed {seed}); journals and log kept in {work}\n")
        raise
    finally:
        t.kill_everything()
        if not failed and not keep:
            shutil.rmtree(work if directory else base, ignore_errors=True)
    summary["seed"] = seed
    return summary


def summary_line(s: dict) -> str:
    return (f"many-writers torture: {s['kills']} kills ({s['all_writer_kills']} of every writer), "
            f"{s['acked_records']:,} acked records ({s['acked_retired_by_retention']:,} retired by retention), "
            f"{s['shown_checked']:,} reader-shown records checked, {s['seconds']} s, "
            f"max survivor stall after a kill {s['max_survivor_stall_ms']} ms (seed {s['seed']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="kills to make (default 100)")
    ap.add_argument("--seconds", type=float, default=600, help="stop killing after this many seconds (default 600)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", default=None, help="work folder; default: a temporary one, removed on success")
    ap.add_argument("--keep", action="store_true", help="keep the journals and the log")
    ap.add_argument("--json", default=None, help="also write the summary to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        summary = run(args.kills, args.seconds, args.seed, args.dir, args.keep, args.verbose)
    except TortureFailure as e:
        print(f"TORTURE FAILURE: {e}", file=sys.stderr)
        return 1
    print(summary_line(summary))
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
