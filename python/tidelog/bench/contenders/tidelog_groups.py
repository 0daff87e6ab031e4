"""tidelog in the groups workload (tidelog.bench.groups): consumer-group
members in spawned processes (failover, join, scaling) or in this process
(commit, auto-commit), and the small-fdatasync floor the commit is compared
with.

The parent coordinates: it creates the log, starts the members, feeder and
joiners in pool workers (_child.WorkerPool; their programs are in
bench/group_members.py), reads what they report, SIGKILLs members and merges
the measures. Times are CLOCK_MONOTONIC in every process.

Concurrency: the parent side runs in the benchmark's one thread; each
``*_worker`` method runs in its own spawned process.
"""
from __future__ import annotations

import multiprocessing.connection
import os
import select
import signal
import time

import numpy as np

from .. import _child, group_members
from ..core import Contender, make_values, rmtree
from ._common import store_dir

TOPIC = "orders"
STRATEGY = "cooperative-sticky"
STEADY_TIMEOUT_S = 30.0
FILL_FRAME_RECORDS = 8192


def groups_available() -> str | None:
    """None when this build has consumer groups with their durable table, else why not."""
    import tidelog._core as core

    if not hasattr(core, "DurableTable"):
        return "needs the consumer groups' durable table (tidelog._core.DurableTable), not in this build"
    return None


def _now_ns() -> int:
    return time.monotonic_ns()


def _fill(log, topic: str, partitions: int, per_partition: int, value_bytes: int) -> None:
    """``per_partition`` records of ``value_bytes`` in every partition, in frames of
    FILL_FRAME_RECORDS (about what a producer's default 1 MiB batches hold): a
    member follows its group between frames, so one huge frame would hold up a
    rebalance until the member has read all of it."""
    producer = log.producer()
    values = make_values(per_partition, value_bytes, seed=7)
    for p in range(partitions):
        for at in range(0, per_partition, FILL_FRAME_RECORDS):
            producer.send_many(topic, values[at:at + FILL_FRAME_RECORDS], partition=p)
    producer.flush()
    producer.close()


class _Crew:
    """The spawned workers of one round and their messages. ``on_message(worker,
    kind, payload)`` sees every message but "done", which ``finish`` collects."""

    def __init__(self, contender, on_message):
        self.contender, self.on_message = contender, on_message
        self.workers: list[_child.Worker] = []
        self.results: dict[int, object] = {}
        self.killed: set[int] = set()

    def start(self, method: str, first: str, **kwargs):
        """A pool worker running ``contender.<method>``; returns (worker, payload
        of its first message ``first``)."""
        (w,) = _child.POOL.take(1)
        self.workers.append(w)
        w.call(self.contender, method, **kwargs)
        return w, w.expect(first, 120)

    def pump(self, timeout: float) -> None:
        """Delivers the messages that arrive within ``timeout`` seconds (at least one wait)."""
        conns = {w.conn: w for w in self.workers if id(w) not in self.results and id(w) not in self.killed}
        for conn in multiprocessing.connection.wait(list(conns), timeout):
            w = conns[conn]
            try:
                kind, payload = conn.recv()
            except EOFError:
                continue  # a worker killed on purpose
            if kind == "error":
                raise RuntimeError(f"group worker failed: {payload}")
            if kind == "done":
                self.results[id(w)] = payload
            else:
                self.on_message(w, kind, payload)

    def kill(self, w) -> int:
        """SIGKILLs a worker; returns the CLOCK_MONOTONIC time just before the signal."""
        self.killed.add(id(w))
        t = _now_ns()
        os.kill(w.proc.pid, signal.SIGKILL)
        return t

    def reap(self, w) -> None:
        w.kill()
        self.workers.remove(w)
        self.killed.discard(id(w))

    def finish(self, w, stop: bool = True, timeout: float = 60) -> object:
        """Sends "stop" to ``w`` (a member, feeder or scaler; not a joiner, which
        stops by itself) and returns its result."""
        if stop and id(w) not in self.results:
            w.send("stop")
        deadline = time.monotonic() + timeout
        while id(w) not in self.results:
            if time.monotonic() > deadline or not w.alive():
                raise RuntimeError("a group worker did not finish")
            self.pump(0.1)
        self.workers.remove(w)
        _child.POOL.give([w])
        return self.results.pop(id(w))

    def close(self) -> None:
        """After a failure: kills whatever is left."""
        for w in self.workers:
            w.kill()
        self.workers = []


class TidelogGroups(Contender):
    """``role``: "group" (every part: failover, join, commit, auto-commit,
    4 members scaling) or "one" (scaling with one member alone)."""

    kind = "tidelog"

    NAMES = {"group": "tidelog group", "one": "tidelog group, 1 member"}

    def __init__(self, role: str = "group"):
        self.role = role
        self.name = self.NAMES[role]
        self.description = {
            "group": "consumer group members (cooperative-sticky) in spawned processes; commit and auto-commit "
                     "from members in the benchmark's process",
            "one": "scaling: one member consuming the whole topic alone",
        }[role]

    def available(self) -> str | None:
        return groups_available()

    # --------------------------------------------------------------- suite
    def groups_supports(self, params):
        part = params["part"]
        if self.role == "group":
            return True
        return part == "scaling"

    def groups_setup(self, tmpdir, params, data):
        import tidelog

        self.data = data
        self.round_no = 0
        self.path = store_dir(tmpdir, self.name)
        self.log = tidelog.open(self.path)
        self.log.create_topic(TOPIC, partitions=data.partitions, durability="interval")
        if data.part in ("commit", "autocommit", "scaling"):
            _fill(self.log, TOPIC, data.partitions, data.per_partition, data.value_bytes)
        self.consumer = None
        if data.part == "commit":
            self.consumer = self.log.consumer(TOPIC, group="commit", enable_auto_commit=False,
                                              partition_assignment_strategy=STRATEGY)

    def groups_run(self, case):
        self.round_no += 1
        return {"failover": self._failover_round, "join": self._join_round, "commit": self._commit_round,
                "autocommit": self._autocommit_round, "scaling": self._scaling_round}[self.data.part]()

    def groups_teardown(self):
        try:
            if getattr(self, "consumer", None) is not None:
                self.consumer.close()
                self.consumer = None
        finally:
            if getattr(self, "log", None) is not None:
                self.log.close()
                self.log = None
            rmtree(self.path)

    # ------------------------------------------------------ worker methods
    def member_worker(self, conn, **kwargs):
        return group_members.member(conn, **kwargs)

    def joiner_worker(self, conn, **kwargs):
        return group_members.joiner(conn, **kwargs)

    def feeder_worker(self, conn, **kwargs):
        return group_members.feeder(conn, **kwargs)

    def scaler_worker(self, conn, **kwargs):
        return group_members.scaler(conn, **kwargs)

    # ------------------------------------------------------------ helpers
    def _wait_steady(self, group: str, crew: _Crew, members: int, settle_s: float = 0.2) -> dict:
        """Waits until ``members`` members own every partition, as assigned
        (describe_group: "Stable"), then ``settle_s`` more; returns {pid: [(topic, partition)]} owned."""
        deadline = time.monotonic() + STEADY_TIMEOUT_S
        while True:
            crew.pump(0.01)
            d = self.log.describe_group(group)
            owned = {m.pid: [(tp.topic, tp.partition) for tp in m.owned] for m in d.members}
            if (d.state == "Stable" and len(d.members) == members
                    and sum(len(v) for v in owned.values()) == self.data.partitions):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"group {group!r} not steady within {STEADY_TIMEOUT_S:.0f} s: {d}")
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            crew.pump(0.01)
        return owned

    def _start_feeder(self, crew: _Crew):
        d = self.data
        w, _ = crew.start("feeder_worker", "feeding", path=self.path, topic=TOPIC, partitions=d.partitions,
                          per_second=d.feed_per_second, value_bytes=d.value_bytes)
        return w

    def _start_member(self, crew: _Crew, group: str, keep_times: bool = False):
        w, info = crew.start("member_worker", "joined", path=self.path, topic=TOPIC, group=group,
                             strategy=STRATEGY, keep_times=keep_times)
        return w, info["pid"]

    # ------------------------------------------------------------ failover
    def _failover_round(self) -> dict:
        """Members consume the fed topic; ``kills`` times: SIGKILL one (in
        turn), time until a survivor receives its first record of a partition
        the dead one owned (and all of them), then start a replacement."""
        d = self.data
        group = "failover"
        firsts: list[tuple[object, tuple, int]] = []
        crew = _Crew(self, lambda w, kind, payload: firsts.append((w, *payload)) if kind == "first" else None)
        first_ns, all_ns, exit_ns = [], [], []
        try:
            feeder = self._start_feeder(crew)
            members = [self._start_member(crew, group) for _ in range(d.members)]
            for k in range(d.kills):
                owned = self._wait_steady(group, crew, d.members)
                victim, pid = members[k % len(members)]
                moved = set(owned.get(pid, ()))
                if not moved:
                    raise RuntimeError("the member to kill owns no partition")
                del firsts[:]
                pidfd = os.pidfd_open(pid)
                try:
                    t_kill = crew.kill(victim)
                    # when the kernel has torn the dead process down (its locks released, its pidfd readable)
                    select.select([pidfd], [], [], 10)
                    exit_ns.append(_now_ns() - t_kill)
                finally:
                    os.close(pidfd)
                deadline = time.monotonic() + 10
                seen: dict = {}
                while len(seen) < len(moved):
                    crew.pump(0.05)
                    for w, key, t in firsts:
                        if w is not victim and key in moved and t >= t_kill:
                            seen.setdefault(key, t)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"failover: {len(moved) - len(seen)} of {len(moved)} partitions of the "
                                           f"killed member not consumed by a survivor within 10 s")
                first_ns.append(min(seen.values()) - t_kill)
                all_ns.append(max(seen.values()) - t_kill)
                crew.reap(victim)
                members[k % len(members)] = self._start_member(crew, group)
            counts = [crew.finish(w)["count"] for w, _ in members]
            sent = crew.finish(feeder)["sent"]
        except BaseException:
            crew.close()
            raise
        return {"failover_ns": first_ns, "all_moved_ns": all_ns, "exit_ns": exit_ns, "kills": len(first_ns),
                "records": sum(counts), "sent": sent}

    # ---------------------------------------------------------------- join
    def _join_round(self) -> dict:
        """Members consume the fed topic; ``joins`` times a new member joins:
        from its ``consumer()`` returning to its first record, and the others'
        records/s while it joins beside the second before."""
        d = self.data
        group = "join"
        crew = _Crew(self, lambda w, kind, payload: None)
        joins = []
        try:
            feeder = self._start_feeder(crew)
            members = [self._start_member(crew, group, keep_times=True) for _ in range(d.members)]
            for _ in range(d.joins):
                self._wait_steady(group, crew, d.members, settle_s=d.before_s)
                w, _ = crew.start("joiner_worker", "ready", path=self.path, topic=TOPIC, group=group,
                                  strategy=STRATEGY)
                w.send("go")
                joins.append(crew.finish(w, stop=False))
            self._wait_steady(group, crew, d.members, settle_s=0.0)
            times = [np.frombuffer(crew.finish(w)["times"], dtype=np.int64) for w, _ in members]
            crew.finish(feeder)
        except BaseException:
            crew.close()
            raise
        others = np.sort(np.concatenate(times)) if times else np.zeros(0, np.int64)
        before_n = during_n = 0
        before_s = during_s = 0.0
        gaps_before, gaps_during = [0], [0]
        for j in joins:
            t0, t1 = j["called_ns"], j["first_ns"]
            lo, mid, hi = np.searchsorted(others, [t0 - int(d.before_s * 1e9), t0, t1])
            before_n += mid - lo
            during_n += hi - mid
            before_s += d.before_s
            during_s += (t1 - t0) / 1e9
            gaps_before.append(int(np.diff(others[lo:mid + 1]).max(initial=0)))
            gaps_during.append(int(np.diff(others[max(mid - 1, 0):hi + 1]).max(initial=0)))
        return {"join_ns": [j["first_ns"] - j["returned_ns"] for j in joins],
                "consumer_call_ns": [j["returned_ns"] - j["called_ns"] for j in joins],
                "others_before_per_s": before_n / before_s if before_s else float("nan"),
                "others_during_per_s": during_n / during_s if during_s else float("nan"),
                "max_gap_before_ns": max(gaps_before), "max_gap_during_ns": max(gaps_during),
                "joins": len(joins)}

    # -------------------------------------------------------------- commit
    def _commit_round(self) -> dict:
        """``commits`` times: poll one record (untimed), then ``commit()`` (durable, every owned partition)."""
        c, now = self.consumer, time.perf_counter_ns
        lat = []
        for _ in range(self.data.commits):
            if c.poll(5.0) is None:
                raise RuntimeError("commit round: no record to poll")
            t0 = now()
            c.commit()
            lat.append(now() - t0)
        return {"latencies_ns": lat, "partitions": len(c.assignment())}

    # ---------------------------------------------------------- auto-commit
    AUTOCOMMIT = {"5 s": {"auto_commit_interval_ms": 5000}, "100 ms": {"auto_commit_interval_ms": 100},
                  "off": {"enable_auto_commit": False}}

    def _autocommit_round(self) -> dict:
        """Three members of three fresh groups in this process, auto-commit every
        5 s, every 100 ms and off, each polling every record of the pre-filled
        topic, in turns of ``slice_records`` (the order rotating): noise from
        the rest of the machine then falls on the three alike, as a 2 % target
        needs. Wall and CPU seconds summed per member over its turns."""
        d = self.data
        total = d.partitions * d.per_partition
        names = list(self.AUTOCOMMIT)
        consumers = {n: self.log.consumer(TOPIC, group=f"auto-{self.round_no}-{k}",
                                          partition_assignment_strategy=STRATEGY, **self.AUTOCOMMIT[n])
                     for k, n in enumerate(names)}
        wall = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        done = dict.fromkeys(names, 0)
        clock, cpu_clock = time.perf_counter, time.thread_time
        try:
            turn = 0
            while done[names[0]] < total:
                turn += 1
                for n in names[turn % 3:] + names[:turn % 3]:
                    poll, want = consumers[n].poll, min(d.slice_records, total - done[n])
                    c0, t0 = cpu_clock(), clock()
                    for _ in range(want):
                        if poll(5.0) is None:
                            raise RuntimeError(f"auto-commit round: {done[n]} of {total} records")
                    wall[n] += clock() - t0
                    cpu[n] += cpu_clock() - c0
                    done[n] += want
        finally:
            for c in consumers.values():
                c.close()
        for k in range(len(names)):
            self.log.delete_group(f"auto-{self.round_no}-{k}")
        return {"seconds": wall["5 s"], "records": total, "seconds_100ms": wall["100 ms"], "seconds_off": wall["off"],
                "cpu_seconds": cpu["5 s"], "cpu_seconds_100ms": cpu["100 ms"], "cpu_seconds_off": cpu["off"]}

    # ------------------------------------------------------------- scaling
    def _scaling_round(self) -> dict:
        """``members`` spawned members (1 for the "one" role) of a fresh group
        consume the pre-filled topic; from the earliest start to the last
        record any of them received."""
        d = self.data
        group = f"scale-{self.round_no}"
        n = 1 if self.role == "one" else d.members
        reached: dict[int, int] = {}

        def on_message(w, kind, payload):
            if kind == "progress":
                for p, off in payload.items():
                    reached[p] = max(reached.get(p, 0), off)

        crew = _Crew(self, on_message)
        try:
            workers = [crew.start("scaler_worker", "ready", path=self.path, topic=TOPIC, group=group,
                                  strategy=STRATEGY)[0] for _ in range(n)]
            for w in workers:
                w.send("go")
            deadline = time.monotonic() + 600
            while len(reached) < d.partitions or min(reached.values()) < d.per_partition:
                crew.pump(0.05)
                if time.monotonic() > deadline:
                    raise RuntimeError("scaling round: the group did not reach the end in 600 s")
            parts = [crew.finish(w) for w in workers]
        except BaseException:
            crew.close()
            raise
        self.log.delete_group(group)
        seconds = (max(p["last_ns"] for p in parts) - min(p["start_ns"] for p in parts)) / 1e9
        return {"seconds": seconds, "records": d.partitions * d.per_partition,
                "received": sum(p["count"] for p in parts), "members": n, "cpu_s": sum(p["cpu_s"] for p in parts)}


class SmallFdatasync(Contender):
    """The floor of a durable commit: ``os.pwrite`` of a small record then
    ``os.fdatasync``, measured in the same run as the commits. ``append=False``
    (the named limit): into a preallocated, zero-filled file, so each sync
    flushes data only; ``append=True``: appending to a growing file, so each
    sync also commits the new size (what an appending journal pays)."""

    kind = "limit"
    RECORD = 128
    FILE_BYTES = 1 << 20

    def __init__(self, append: bool = False):
        self.append = append
        self.name = "append+fdatasync 128 B" if append else "pwrite+fdatasync 128 B"
        self.description = ("os.write of 128 bytes + os.fdatasync appending to a growing file, per commit" if append
                            else "os.pwrite of 128 bytes + os.fdatasync into a preallocated, zero-filled 1 MiB file, "
                                 "per commit")

    def groups_supports(self, params):
        return params["part"] == "commit"

    def groups_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = store_dir(tmpdir, self.name)
        self.path = os.path.join(self.dir, "floor.bin")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if not self.append:
            os.pwrite(self.fd, bytes(self.FILE_BYTES), 0)
            os.fsync(self.fd)
        self.at = 0

    def groups_run(self, case):
        fd, pwrite, sync, now = self.fd, os.pwrite, os.fdatasync, time.perf_counter_ns
        payload = b"c" * self.RECORD
        lat = []
        for _ in range(self.data.commits):
            t0 = now()
            pwrite(fd, payload, self.at)
            sync(fd)
            lat.append(now() - t0)
            self.at += self.RECORD
            if not self.append:
                self.at %= self.FILE_BYTES
        return {"latencies_ns": lat}

    def groups_teardown(self):
        os.close(self.fd)
        rmtree(self.dir)


__all__ = ["SmallFdatasync", "TidelogGroups", "groups_available"]
