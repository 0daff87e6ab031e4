"""The child programs of the ``groups`` workload (tidelog.bench.groups): what
each spawned worker (_child.WorkerPool) runs, one consumer-group member, a
feeder or a joiner per process. The parent side is in
contenders/tidelog_groups.py; it calls these through the contender's
``*_worker`` methods.

Every time is CLOCK_MONOTONIC (``time.monotonic_ns``), which all processes of
the machine share, so the parent compares a kill it made with a record a
survivor received. Messages to the parent, besides _child's ("ready", "done"):

* ("joined", {"pid", "member_id"}): the member's ``consumer()`` returned;
* ("first", ((topic, partition), ns)): the member received its first record
  of a partition it was just assigned (``on_assign``);
* ("progress", {partition: next offset}): how far a scaling member got.

A member stops when the parent sends "stop" (checked every few ms, never per
record). Concurrency: each function runs on the one thread of its worker
process (the group's watcher and commit threads aside).
"""
from __future__ import annotations

import array
import os
import time

from . import _child

CHECK_EVERY_NS = 5_000_000       # how often a member looks for the parent's "stop"
PROGRESS_EVERY_NS = 20_000_000   # how often a scaling member reports its positions


def _stop_asked(conn) -> bool:
    if not conn.poll():
        return False
    msg = conn.recv()
    if msg != "stop":
        raise RuntimeError(f"member expected 'stop', got {msg!r}")
    return True


def member(conn, path: str, topic: str, group: str, strategy: str, keep_times: bool) -> dict:
    """A member consuming until "stop": reports each first record of a newly
    assigned partition; with ``keep_times``, returns the receive time of every
    record (the join part's "others keep consuming")."""
    import tidelog

    log = tidelog.open(path)
    pending: set = set()

    def on_assign(consumer, tps) -> None:
        pending.update((tp.topic, tp.partition) for tp in tps)

    try:
        c = log.consumer(topic, group=group, partition_assignment_strategy=strategy, on_assign=on_assign)
        conn.send(("joined", {"pid": os.getpid(), "member_id": c.member_id}))
        times = array.array("q")
        note = times.append if keep_times else None
        poll, now_ns = c.poll, time.monotonic_ns
        count = 0
        next_check = 0
        while True:
            rec = poll(0.005)
            now = now_ns()
            if rec is not None:
                count += 1
                if note is not None:
                    note(now)
                if pending:
                    key = (rec.topic, rec.partition)
                    if key in pending:
                        pending.discard(key)
                        conn.send(("first", (key, now)))
            if now >= next_check:
                next_check = now + CHECK_EVERY_NS
                if _stop_asked(conn):
                    break
        c.close()
    finally:
        log.close()
    return {"count": count, "times": times.tobytes()}


def joiner(conn, path: str, topic: str, group: str, strategy: str) -> dict:
    """Opens the log, then on "go" joins the group and waits for its first
    record: the time from ``consumer()`` returning to that record. Leaves the
    group again before it returns."""
    import tidelog

    log = tidelog.open(path)
    try:
        _child.wait_go(conn)
        called = time.monotonic_ns()
        c = log.consumer(topic, group=group, partition_assignment_strategy=strategy)
        returned = time.monotonic_ns()
        rec = None
        while rec is None:
            rec = c.poll(10.0)
            if rec is None:
                raise RuntimeError("the new member got no record within 10 s")
        first = time.monotonic_ns()
        epoch = c.partition_epoch(rec.topic, rec.partition)
        assigned = len(c.assignment())
        c.close()
    finally:
        log.close()
    return {"called_ns": called, "returned_ns": returned, "first_ns": first, "assigned": assigned,
            "epoch": epoch}


def feeder(conn, path: str, topic: str, partitions: int, per_second: int, value_bytes: int) -> dict:
    """Sends one ``value_bytes`` record to every partition, ``per_second / partitions``
    times a second (``linger_ms=0``), until "stop"."""
    import tidelog

    log = tidelog.open(path)
    try:
        producer = log.producer(linger_ms=0, acks="written")
        send, value = producer.send, b"f" * value_bytes
        tick_ns = int(partitions * 1e9 / per_second)
        conn.send(("feeding", None))
        sent = 0
        due = time.monotonic_ns()
        while not _stop_asked(conn):
            for p in range(partitions):
                send(topic, value, partition=p)
            sent += partitions
            due += tick_ns
            left = due - time.monotonic_ns()
            if left > 0:
                time.sleep(left / 1e9)
        producer.close()
    finally:
        log.close()
    return {"sent": sent}


def scaler(conn, path: str, topic: str, group: str, strategy: str) -> dict:
    """On "go" joins the group and consumes until "stop", reporting how far it
    got; returns its start, the time of its last record, its count and the
    CPU time its process used."""
    import tidelog

    log = tidelog.open(path)
    try:
        _child.wait_go(conn)
        start = time.monotonic_ns()
        cpu0 = time.process_time()
        c = log.consumer(topic, group=group, partition_assignment_strategy=strategy)
        poll, now_ns = c.poll, time.monotonic_ns
        reached: dict[int, int] = {}
        count = stamped = 0
        last = start
        next_report = 0
        timeout = 0.0
        while True:
            rec = poll(timeout)
            if rec is not None:
                timeout = 0.0
                count += 1
                reached[rec.partition] = rec.offset + 1
                if count & 1023:
                    continue
                now = now_ns()
                if now < next_report:
                    continue
            else:
                # A poll(0) that finds nothing comes right after the last record
                # (no clock call per record); then wait a little for more.
                now = now_ns()
                if count != stamped:
                    last, stamped = now, count
                timeout = 0.002
            next_report = now + PROGRESS_EVERY_NS
            if reached:
                conn.send(("progress", reached))
                reached = {}
            if _stop_asked(conn):
                break
        cpu = time.process_time() - cpu0  # (including the idle polls after the last record: a few ms at most)
        c.close()
    finally:
        log.close()
    return {"start_ns": start, "last_ns": last, "count": count, "cpu_s": cpu}
