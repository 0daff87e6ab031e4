"""The ``groups`` workload: consumer groups (``log.consumer(topics, group=...)``).

Five parts, each its own parameter set; the members are spawned processes
(_child.WorkerPool, kept between rounds) unless said otherwise, all with
``partition_assignment_strategy="cooperative-sticky"``, on an 8-partition
topic of 64-byte records:

* ``failover``: 3 members consume the topic while a feeder process sends 4,000
  records/s; ``kills`` times a round one member is SIGKILLed (in turn) and
  replaced once the group is steady again. The figure: from the kill to the
  first record of a partition the dead member owned received by a survivor
  (percentiles over every kill); also until every such partition had one, and
  until the dead process's pidfd was readable (the kernel's part: the process
  torn down, its locks released).
* ``join``: 2 members consume the fed topic; a new member joins (a pool
  worker that opened the log beforehand): from its ``consumer()`` returning
  to its first record; and the others' records/s while it joins (from the
  ``consumer()`` call to that first record) beside the second before.
* ``commit``: one member in the benchmark's process polls a record, then
  ``commit()`` (durable: returns after an fdatasync; the 8 partitions'
  positions), beside ``os.pwrite`` of 128 bytes + ``os.fdatasync`` into a
  preallocated file, measured in the same run.
* ``autocommit``: three members of fresh groups in the benchmark's process,
  with auto-commit every 5 s, every 100 ms and off, each poll every record of
  the pre-filled topic, taking turns of 4,096 records (so that the machine's
  noise falls on the three alike): records/s of each, and the ratios to off.
* ``scaling``: 4 members of a fresh group consume the pre-filled topic, beside
  one member alone: from the earliest start (joins included) to the last
  record received.

The contenders are in contenders/tidelog_groups.py, the members' programs in
group_members.py; benches/test_bench_groups.py checks the targets.
"""
from __future__ import annotations

import dataclasses

from .core import Metric, Workload, percentiles

PARTITIONS = 8


@dataclasses.dataclass
class GroupsData:
    """One part's sizes."""

    part: str                    # "failover" | "join" | "commit" | "autocommit" | "scaling"
    members: int = 1
    partitions: int = PARTITIONS
    per_partition: int = 0       # records pre-filled in every partition (commit, autocommit, scaling)
    value_bytes: int = 64
    feed_per_second: int = 4000  # failover, join: records/s the feeder sends (over all partitions)
    kills: int = 0               # failover: kills a round
    joins: int = 0               # join: joins a round
    before_s: float = 1.0        # join: the window before a join the others' rate is taken over
    commits: int = 0             # commit: commits a round
    slice_records: int = 4096    # autocommit: records a member polls in its turn


class Groups(Workload):
    name = "groups"
    title = "11. Consumer groups"
    description = (
        "Members of one group (`log.consumer(topic, group=...)`, cooperative-sticky) on an 8-partition topic of "
        "64-byte records, in spawned processes. *failover*: 3 members consume while a feeder process sends 4,000 "
        "records/s; one member is SIGKILLed (in turn, many times a round) and replaced: from the kill to the first "
        "record of one of its partitions received by a survivor. *join*: 2 members consume the fed topic; a new "
        "member joins: from its `consumer()` returning to its first record, and the others' records/s meanwhile. "
        "*commit*: durable `commit()` after each polled record, beside `os.pwrite` of 128 bytes + `os.fdatasync`. "
        "*autocommit*: polling every record of a pre-filled topic with auto-commit every 5 s / 100 ms / off "
        "(three members taking turns of 4,096 records, so that noise falls on the three alike). "
        "*scaling*: 4 members of a group consume a pre-filled topic, beside one member alone (2 cores)."
    )
    param_names = ("part", "members")
    FAILOVER = {"smoke": (2, 1), "quick": (3, 4), "full": (3, 12)}      # members, kills a round
    JOIN = {"smoke": (2, 1), "quick": (2, 3), "full": (2, 6)}           # members, joins a round
    COMMITS = {"smoke": 10, "quick": 100, "full": 300}
    AUTOCOMMIT = {"smoke": 1000, "quick": 25_000, "full": 50_000}      # records per partition
    SCALING = {"smoke": (4, 1000), "quick": (4, 25_000), "full": (4, 250_000)}

    def grid(self, mode, opts):
        return [{"part": "failover", "members": self.FAILOVER[mode][0]},
                {"part": "join", "members": self.JOIN[mode][0]},
                {"part": "commit", "members": 1},
                {"part": "autocommit", "members": 1},
                {"part": "scaling", "members": self.SCALING[mode][0]}]

    def make_data(self, params, mode):
        part = params["part"]
        if part == "failover":
            return GroupsData(part, members=params["members"], kills=self.FAILOVER[mode][1])
        if part == "join":
            return GroupsData(part, members=params["members"], joins=self.JOIN[mode][1],
                              before_s=0.3 if mode == "smoke" else 1.0)
        if part == "commit":
            return GroupsData(part, per_partition=1000, commits=self.COMMITS[mode])
        if part == "autocommit":
            return GroupsData(part, per_partition=self.AUTOCOMMIT[mode])
        return GroupsData(part, members=params["members"], per_partition=self.SCALING[mode][1])

    def rounds(self, mode, opts):
        if mode == "full":
            return 1, opts.get("rounds") or 7
        return super().rounds(mode, opts)

    def limit(self, params, case):
        return {"commit": "pwrite+fdatasync 128 B", "scaling": "tidelog group, 1 member"}.get(params["part"])

    def primary(self, params, case):
        return {"failover": Metric("p50 ms", False), "join": Metric("p50 ms", False),
                "commit": Metric("p50 µs", False), "autocommit": Metric("records/s"),
                "scaling": Metric("records/s")}[params["part"]]

    def metrics(self, params, case, m):
        part = params["part"]
        if part == "failover":
            p50, p99 = percentiles(m["failover_ns"], (50, 99))
            return {"p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6, "max ms": max(m["failover_ns"]) / 1e6,
                    "all moved p50 ms": percentiles(m["all_moved_ns"], (50,))[0] / 1e6,
                    "exit p50 ms": percentiles(m["exit_ns"], (50,))[0] / 1e6}
        if part == "join":
            p50, = percentiles(m["join_ns"], (50,))
            before, during = m["others_before_per_s"], m["others_during_per_s"]
            return {"p50 ms": p50 / 1e6, "max ms": max(m["join_ns"]) / 1e6,
                    "consumer() ms": percentiles(m["consumer_call_ns"], (50,))[0] / 1e6,
                    "others records/s before": before, "others records/s during": during,
                    "others during/before": during / before if before else float("nan"),
                    "others max gap ms before": m["max_gap_before_ns"] / 1e6,
                    "others max gap ms during": m["max_gap_during_ns"] / 1e6}
        if part == "commit":
            p50, p99 = percentiles(m["latencies_ns"], (50, 99))
            return {"p50 µs": p50 / 1e3, "p99 µs": p99 / 1e3}
        if part == "autocommit":
            n = m["records"]
            return {"records/s": n / m["seconds"], "records/s 100 ms": n / m["seconds_100ms"],
                    "records/s off": n / m["seconds_off"], "5 s vs off": m["seconds_off"] / m["seconds"],
                    "100 ms vs off": m["seconds_off"] / m["seconds_100ms"],
                    "5 s vs off, CPU": m["cpu_seconds_off"] / m["cpu_seconds"],
                    "100 ms vs off, CPU": m["cpu_seconds_off"] / m["cpu_seconds_100ms"]}
        return {"records/s": m["records"] / m["seconds"], "cores busy": m["cpu_s"] / m["seconds"],
                "records/CPU-s": m["records"] / m["cpu_s"]}

    def pooled(self, params, case, measures):
        part = params["part"]
        if part == "failover":
            xs = [x for m in measures for x in m["failover_ns"]]
            every = [x for m in measures for x in m["all_moved_ns"]]
            p50, p99 = percentiles(xs, (50, 99))
            return {"p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6, "max ms": max(xs) / 1e6, "kills": len(xs),
                    "all moved p50 ms": percentiles(every, (50,))[0] / 1e6, "all moved max ms": max(every) / 1e6,
                    "exit p50 ms": percentiles([x for m in measures for x in m["exit_ns"]], (50,))[0] / 1e6}
        if part == "join":
            xs = [x for m in measures for x in m["join_ns"]]
            return {"p50 ms": percentiles(xs, (50,))[0] / 1e6, "max ms": max(xs) / 1e6, "joins": len(xs)}
        if part == "commit":
            p50, p99 = percentiles([x for m in measures for x in m["latencies_ns"]], (50, 99))
            return {"p50 µs": p50 / 1e3, "p99 µs": p99 / 1e3}
        return {}

    def label(self, params, case):
        part = params["part"]
        if part == "failover":
            return f"failover after SIGKILL, {params['members']} members"
        if part == "join":
            return f"a member joins {params['members']} consuming"
        if part == "commit":
            return "durable commit() latency"
        if part == "autocommit":
            return "poll loop, auto-commit every 5 s (100 ms, off beside)"
        return f"{params['members']} members consume 8 partitions"


__all__ = ["Groups", "GroupsData"]
