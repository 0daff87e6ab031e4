"""The processes of the consumer-group chaos test (tests/torture/groups_chaos.py):
a member of group ``chaos`` and the producer of the input topic.

A member "processes" each record of ``in`` by appending a line about it to
``out`` (one partition, written with ``acks="durable"``, so ``out``'s order is
the global order of processing), then commits as its commit mode says. It also
appends markers the final check needs: ``A`` when it takes a partition (the
committed offset it starts from), ``C`` after a synchronous commit returned
(the offset committed), ``V`` when it gives a partition up (``on_revoke``,
after committing when its mode commits there). Each line of ``out`` is JSON:
``{"k": kind, "m": member id, "x": process label, "g": generation,
"p": input partition, "o": input offset, "e": partition epoch,
"id": record id, "c": committed offset}``.

Commit modes:

- ``each``: ``commit(message=record)`` after every record (``commit(offsets=)`` per batch);
- ``every_k``: ``commit(offsets=positions)`` every k records, when idle and in ``on_revoke``;
- ``async``: ``commit_async()`` after every record or batch, ``commit()`` in ``on_revoke``;
- ``auto``: ``enable_auto_commit=True`` with a short interval, no commit call;
- ``lazy``: as ``every_k`` but nothing in ``on_revoke``: a clean hand-off re-delivers
  what it processed since its last commit (at-least-once, without a crash).

Both functions run in their own processes (forkserver children) and report
unexpected errors as a traceback in their error file and exit status 1.
"""
from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback

GROUP = "chaos"
IN_TOPIC = "in"
OUT_TOPIC = "out"
IN_PARTITIONS = 8
MODES = ("each", "every_k", "async", "auto", "lazy")
COMMITS_ON_REVOKE = frozenset({"each", "every_k", "async", "auto"})
CHILD_MAX_S = 3600.0  # a child nobody stops exits on its own
STATIC_SESSION_TIMEOUT_MS = 1500  # a static member that left keeps its place this long


def _redirect_stderr(err_path: str) -> None:
    """Everything the child writes to stderr (logging warnings, tracebacks) goes to its own file."""
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _stop_watch(stop_path: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + CHILD_MAX_S
    while not stop.is_set():
        if os.path.exists(stop_path) or time.monotonic() > deadline:
            stop.set()
        time.sleep(0.02)


class Member:
    """One member process's consumer and its writes to ``out`` (single-threaded: the consumer's thread)."""

    def __init__(self, log, label: str, mode: str, strategy: str, batch: bool, rnd: random.Random,
                 instance_id: str | None = None):
        self.log = log
        self.label = label
        self.mode = mode
        self.batch = batch
        self.rnd = rnd
        self.k = rnd.randint(2, 12)
        self.since_commit = 0
        self.producer = log.producer(acks="durable", linger_ms=0)
        auto = mode == "auto"
        self.consumer = log.consumer(
            IN_TOPIC, group=GROUP, partition_assignment_strategy=strategy, enable_auto_commit=auto,
            auto_commit_interval_ms=rnd.choice((10, 50, 200)) if auto else 5000, client_id=label,
            group_instance_id=instance_id, session_timeout_ms=STATIC_SESSION_TIMEOUT_MS,
            on_assign=self.on_assign, on_revoke=self.on_revoke)

    # ------------------------------------------------------------ out lines
    def emit(self, lines: list[dict]) -> None:
        """Appends the lines to ``out`` and returns once they are durable."""
        if not lines:
            return
        for line in lines:
            self.producer.send(OUT_TOPIC, value=json.dumps(line, separators=(",", ":")).encode(), partition=0)
        self.producer.flush()

    def line(self, consumer, kind: str, p: int, **fields) -> dict:
        return {"k": kind, "m": consumer.member_id, "x": self.label, "g": consumer.generation, "p": p, **fields}

    # ------------------------------------------------------------ callbacks
    def on_assign(self, c, tps) -> None:
        keys = [(tp.topic, tp.partition) for tp in tps]
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(keys)}
        self.emit([self.line(c, "A", p, e=c.partition_epoch(t, p), c=committed[(t, p)]) for t, p in keys])

    def on_revoke(self, c, tps) -> None:
        keys = [(tp.topic, tp.partition) for tp in tps]
        if self.mode in ("every_k", "async", "each"):
            c.commit(offsets={key: c.position(*key) for key in keys})
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(keys)}
        self.emit([self.line(c, "V", p, e=c.partition_epoch(t, p), c=committed[(t, p)]) for t, p in keys])

    # ------------------------------------------------------------ the loop
    def commit_positions(self) -> None:
        c = self.consumer
        offsets = {key: c.position(*key) for key in c.assignment()}
        if not offsets:
            return
        c.commit(offsets=offsets)
        self.emit([self.line(c, "C", p, e=c.partition_epoch(t, p), c=off) for (t, p), off in offsets.items()])
        self.since_commit = 0

    def step(self) -> None:
        c = self.consumer
        if self.batch:
            b = c.poll_batch(self.rnd.randint(1, 16), timeout=0.05)
            records = [] if b is None else list(zip(b.column("partition").to_pylist(),
                                                    b.column("offset").to_pylist(),
                                                    b.column("value").to_pylist()))
        else:
            r = c.poll(0.05)
            records = [] if r is None else [(r.partition, r.offset, r.value)]
        if not records:
            if self.mode in ("every_k", "lazy") and self.since_commit:
                self.commit_positions()
            return
        self.emit([self.line(c, "R", p, o=off, e=c.partition_epoch(IN_TOPIC, p), id=int(value))
                   for p, off, value in records])
        p, last = records[-1][0], records[-1][1]
        if self.mode == "each":
            c.commit(offsets={(IN_TOPIC, p): last + 1})
            self.emit([self.line(c, "C", p, e=c.partition_epoch(IN_TOPIC, p), c=last + 1)])
        elif self.mode in ("every_k", "lazy"):
            self.since_commit += len(records)
            if self.since_commit >= self.k:
                self.commit_positions()
        elif self.mode == "async":
            c.commit_async(callback=self.on_async_done)

    @staticmethod
    def on_async_done(offsets, error) -> None:
        if error is not None:
            raise RuntimeError(f"an asynchronous commit failed: {error!r}")

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush()
        self.producer.close()


def member_main(path: str, label: str, mode: str, strategy: str, batch: bool, stop_path: str, err_path: str,
                seed: int, instance_id: str | None = None) -> None:
    _redirect_stderr(err_path)
    try:
        import tidelog

        stop = threading.Event()
        threading.Thread(target=_stop_watch, args=(stop_path, stop), daemon=True).start()
        log = tidelog.open(path)
        member = Member(log, label, mode, strategy, batch, random.Random(seed), instance_id)
        while not stop.is_set():
            member.step()
        member.close()
        log.close()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def producer_main(path: str, records: int, spread_s: float, done_path: str, err_path: str, seed: int) -> None:
    """Writes ids 0..records-1 (value = the id) to random partitions of ``in``,
    durably, in bursts spread over about ``spread_s`` seconds."""
    _redirect_stderr(err_path)
    try:
        import tidelog

        rnd = random.Random(seed)
        log = tidelog.open(path)
        producer = log.producer(acks="durable", linger_ms=1)
        bursts = max(1, int(spread_s / 0.1))
        per_burst = max(1, records // bursts)
        start = time.monotonic()
        sent = 0
        while sent < records:
            n = min(records - sent, rnd.randint(1, 2 * per_burst))
            for i in range(sent, sent + n):
                producer.send(IN_TOPIC, value=b"%d" % i, partition=rnd.randrange(IN_PARTITIONS))
            producer.flush()
            sent += n
            ahead = start + spread_s * sent / records - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        producer.close()
        log.close()
        with open(done_path, "w") as f:
            f.write(f"{records}\n")
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
