"""Consumer-group chaos test: member processes of one group consume while a
supervisor SIGKILLs them, restarts them, adds and removes members; every
record is processed at least once, ownership of a partition is exclusive,
and re-processing happens only where at-least-once allows it.

- a producer process writes ids 0..N-1 (value = the id) durably to random
  partitions of the 8-partition topic ``in``, in bursts spread over the run;
- ``--members`` member processes of group ``chaos`` (one assignment strategy
  per run) process each record by appending a line to ``out`` (one partition,
  ``acks="durable"``: ``out``'s order is the global order of processing) and
  commit in one of five modes (tests/torture/groups_chaos_member.py: after
  every record, every k records, ``commit_async``, auto-commit, and "lazy":
  no commit in ``on_revoke``), reading with ``poll`` or ``poll_batch``;
- the supervisor SIGKILLs a random member every 0-2x``--gap`` seconds and
  starts its replacement (one kill in ten also kills the replacement 0-30 ms
  after its start, while it joins), and now and then adds a member or removes
  one cleanly (``close()``); it samples ``describe_group`` between actions.

Checks (each failure is a violation; the exit status is 1 when there is any):

1. every id in 0..N-1 was processed at least once, each line names the id
   that really is at its input partition and offset;
2. exclusivity: in ``out``'s order, per input partition, the partition epoch
   only grows, each epoch belongs to one member, and within an epoch the
   offsets processed are contiguous from the committed offset the owner
   started from; nothing is processed after its owner gave it up;
3. re-processing only where at-least-once allows it: a new owner starts from
   the committed offset (never below a commit that returned, never past the
   last record processed: nothing is skipped), exactly at the offset its
   predecessor committed when giving the partition up; a member whose mode
   commits when giving a partition up re-delivers nothing after a clean
   hand-off; so a duplicate's second processing is in a higher epoch and at
   or above the committed offset its owner started from; re-processing is
   counted as after a kill or after a hand-off without a commit ("lazy");
4. committed offsets, sampled by the supervisor, never move backwards;
5. no child exited with an error or printed a traceback; after the drain the
   group's lag is 0 on every partition and the committed offsets are the ends.

Usage::

    python tests/torture/groups_chaos.py --kills 300 --seconds 900 --records 40000 --seed 7
    python tests/torture/groups_chaos.py --kills 20 --strategy range --dir /tmp/gc --keep -v
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import groups_chaos_member as gm  # noqa: E402

STRATEGIES = ("range", "roundrobin", "cooperative-sticky")
WAIT_S = 60.0    # what a process may take to start or stop (a slow build on 2 shared cores)
DRAIN_S = 180.0  # after the chaos, the group must have processed and committed everything within this
KILL_REPLACEMENT_EVERY = 10
KILL_ALL_EVERY = 15  # every 15th action that kills kills every member at once (no watcher survives)
MAX_MEMBERS_ABOVE = 2  # joins add at most this many members above --members


class ChaosFailure(AssertionError):
    pass


class Child:
    """A child process (a member or the producer) and its files."""

    def __init__(self, ctx, target, args: tuple, label: str, err_path: str, stop_path: str | None = None,
                 mode: str | None = None, slot: int = -1):
        self.label = label
        self.err_path = err_path
        self.stop_path = stop_path
        self.mode = mode
        self.slot = slot
        self.killed = False
        self.stopped = False
        self.started = time.monotonic()
        self.proc = ctx.Process(target=target, args=args, daemon=True)
        self.proc.start()

    @property
    def live(self) -> bool:
        return not self.killed and not self.stopped

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(WAIT_S)
        self.killed = True

    def stop(self) -> None:
        """Asks for a clean stop (the member closes its consumer and log) and waits for it."""
        with open(self.stop_path, "w"):
            pass
        self.proc.join(WAIT_S)
        self.stopped = True

    def errors(self) -> str:
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class Chaos:
    def __init__(self, path: str, work: str, strategy: str, records: int, members: int, seed: int,
                 gap_s: float, spread_s: float, static: int = 1, verbose: bool = False, out=None):
        self.path = path
        self.work = work
        self.strategy = strategy
        self.records = records
        self.members = members
        self.rnd = random.Random(seed)
        self.seed = seed
        self.gap_s = gap_s
        self.static = static  # member slots below this are static members (group_instance_id)
        self.spread_s = spread_s
        self.verbose = verbose
        self.out = out or sys.stdout
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["numpy", "pyarrow", "tidelog", gm.__name__])
        self.children: list[Child] = []
        self.incarnations: collections.Counter = collections.Counter()
        self.counts = collections.Counter()
        self.violations: list[str] = []
        self.committed_seen: dict[tuple[str, int], int] = {}
        self.samples = 0
        self.max_generation = 0
        self.log = None
        self.producer: Child | None = None
        self.done_path = os.path.join(work, "produced")

    # --------------------------------------------------------------- helpers
    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.out, flush=True)

    def violation(self, text: str) -> None:
        self.violations.append(text)
        self.say(f"VIOLATION: {text}")

    def live_members(self) -> list[Child]:
        return [c for c in self.children if c.mode is not None and c.live]

    # --------------------------------------------------------------- children
    def start_member(self, slot: int) -> Child:
        n = self.incarnations[slot]
        self.incarnations[slot] += 1
        mode = gm.MODES[(slot + n + self.seed) % len(gm.MODES)]
        batch = self.rnd.random() < 0.5
        instance_id = f"static-{slot}" if slot < self.static else None
        label = f"m{slot}.{n}-{mode}{'-batch' if batch else ''}{'-static' if instance_id else ''}"
        stop_path = os.path.join(self.work, f"stop-{label}")
        err_path = os.path.join(self.work, f"err-{label}.txt")
        child = Child(self.ctx, gm.member_main,
                      (self.path, label, mode, self.strategy, batch, stop_path, err_path, self.rnd.getrandbits(32),
                       instance_id),
                      label, err_path, stop_path, mode, slot)
        self.children.append(child)
        self.counts["starts"] += 1
        self.say(f"start {label} (pid {child.proc.pid})")
        return child

    def start_producer(self) -> None:
        err_path = os.path.join(self.work, "err-producer.txt")
        self.producer = Child(self.ctx, gm.producer_main,
                              (self.path, self.records, self.spread_s, self.done_path, err_path,
                               self.rnd.getrandbits(32)), "producer", err_path)
        self.children.append(self.producer)

    def kill(self, child: Child) -> None:
        child.kill()
        self.counts["kills"] += 1
        self.say(f"kill {child.label} after {time.monotonic() - child.started:.2f}s")

    def remove(self, child: Child) -> None:
        child.stop()
        self.counts["leaves"] += 1
        self.say(f"removed {child.label}: exit {child.proc.exitcode}")
        if child.proc.exitcode != 0:
            self.violation(f"{child.label} did not stop cleanly (exit {child.proc.exitcode}): {child.errors()[-2000:]}")

    def check_children(self) -> None:
        for c in self.children:
            if c.live and c.proc.exitcode is not None and not (c is self.producer and c.proc.exitcode == 0):
                self.violation(f"{c.label} exited on its own (exit {c.proc.exitcode}): {c.errors()[-2000:]}")
                c.stopped = True

    # --------------------------------------------------------------- sampling
    def sample(self) -> object | None:
        """describe_group: committed offsets never move backwards."""
        from tidelog.errors import UnknownGroupError

        try:
            d = self.log.describe_group(gm.GROUP)
        except UnknownGroupError:
            return None
        self.samples += 1
        self.max_generation = max(self.max_generation, d.generation)
        for key, om in d.offsets.items():
            before = self.committed_seen.get(key)
            if before is not None and om.offset < before:
                self.violation(f"committed offset of {key} moved backwards: {before} -> {om.offset}")
            self.committed_seen[key] = om.offset if before is None else max(before, om.offset)
        return d

    # --------------------------------------------------------------- phases
    def setup(self) -> None:
        import tidelog

        self.log = tidelog.open(self.path)
        self.log.create_topic(gm.IN_TOPIC, partitions=gm.IN_PARTITIONS, segment_bytes=1 << 20)
        self.log.create_topic(gm.OUT_TOPIC, partitions=1, segment_bytes=4 << 20)

    def chaos(self, kills: int, seconds: float) -> None:
        self.start_producer()
        for slot in range(self.members):
            self.start_member(slot)
        next_slot = self.members
        deadline = time.monotonic() + seconds
        while self.counts["kills"] < kills and time.monotonic() < deadline:
            time.sleep(self.rnd.uniform(0.0, 2 * self.gap_s))
            self.sample()
            self.check_children()
            live = self.live_members()
            r = self.rnd.random()
            if r < 0.1 and len(live) < self.members + MAX_MEMBERS_ABOVE:
                self.start_member(next_slot)
                next_slot += 1
                self.counts["joins"] += 1
            elif r < 0.2 and len(live) > 2:
                self.remove(self.rnd.choice(live))
            elif live and self.rnd.randrange(KILL_ALL_EVERY) == 0:
                for victim in live:
                    self.kill(victim)
                self.counts["all_member_kills"] += 1
                for victim in live[:self.members]:
                    self.start_member(victim.slot)
                    self.counts["restarts"] += 1
            elif live:
                victim = self.rnd.choice(live)
                self.kill(victim)
                if len(live) <= self.members:
                    replacement = self.start_member(victim.slot)
                    self.counts["restarts"] += 1
                    if self.rnd.randrange(KILL_REPLACEMENT_EVERY) == 0 and self.counts["kills"] < kills:
                        time.sleep(self.rnd.uniform(0.0, 0.03))
                        self.kill(replacement)
                        self.start_member(victim.slot)
                        self.counts["restarts"] += 1

    def drain(self) -> object:
        """Waits for the producer, then for the group to process and commit everything."""
        deadline = time.monotonic() + DRAIN_S
        while self.producer.proc.exitcode is None and time.monotonic() < deadline:
            self.producer.proc.join(0.2)
            self.sample()
            self.check_children()
        if self.producer.proc.exitcode != 0 or not os.path.exists(self.done_path):
            raise ChaosFailure(f"the producer failed (exit {self.producer.proc.exitcode}): {self.producer.errors()}")
        self.producer.stopped = True
        if not self.live_members():
            self.start_member(0)
        ends = {(gm.IN_TOPIC, p): self.log.topic(gm.IN_TOPIC).partition(p).end_offset
                for p in range(gm.IN_PARTITIONS)}
        while True:
            d = self.sample()
            self.check_children()
            if d is not None and all(d.offsets.get(key) is not None and d.offsets[key].offset == end
                                     for key, end in ends.items()):
                return d
            if time.monotonic() > deadline:
                raise ChaosFailure(f"the group did not drain in {DRAIN_S}s: committed "
                                   f"{None if d is None else {k: v.offset for k, v in d.offsets.items()}}, ends {ends}")
            time.sleep(0.1)

    def stop(self) -> None:
        for c in self.live_members():
            self.remove(c)
            self.counts["leaves"] -= 1  # the final stop is not a leave of the chaos
        d = self.sample()
        if d is not None and any(m for m in d.members if not m.departed):
            self.violation(f"members left in the group after every member closed: {d.members}")

    # --------------------------------------------------------------- final check
    def read_all(self):
        """(lines of out in order, {(partition, offset): id} of in)."""
        c = self.log.consumer()
        c.assign([(gm.OUT_TOPIC, 0)] + [(gm.IN_TOPIC, p) for p in range(gm.IN_PARTITIONS)])
        lines, ids = [], {}
        while True:
            b = c.poll_batch(100_000, timeout=0)
            if b is None:
                break
            topic = b.column("topic")[0].as_py()
            ps, offs, values = (b.column(n).to_pylist() for n in ("partition", "offset", "value"))
            if topic == gm.OUT_TOPIC:
                lines.extend(json.loads(v) for v in values)
            else:
                ids.update({(p, o): int(v) for p, o, v in zip(ps, offs, values)})
        c.close()
        return lines, ids

    def final_check(self) -> dict:
        lines, ids = self.read_all()
        modes = {c.label: c.mode for c in self.children}
        killed = {c.label for c in self.children if c.killed}
        result = check_lines(lines, ids, self.records, modes, killed, self.violation)
        for key, c in self.committed_seen.items():
            end = self.log.topic(key[0]).partition(key[1]).end_offset
            if c != end:
                self.violation(f"final committed offset of {key} is {c}, not the end {end}")
        return result

    def kill_everything(self) -> None:
        for c in self.children:
            if c.proc.exitcode is None:
                try:
                    os.kill(c.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.proc.join(5)

    def scan_errors(self) -> list[str]:
        """Tracebacks in any child's stderr are violations; other lines (warnings) are returned."""
        warnings = []
        for c in self.children:
            text = c.errors()
            if "Traceback" in text:
                self.violation(f"{c.label} printed a traceback: {text[-3000:]}")
            else:
                warnings += [f"{c.label}: {line}" for line in text.splitlines() if line.strip()]
        return warnings


def check_lines(lines: list[dict], ids: dict[tuple[int, int], int], records: int, modes: dict[str, str],
                killed: set[str], bad) -> dict:
    """Checks 1-3 over ``out``'s lines in order (``ids``: (partition, offset) ->
    id of ``in``; ``modes``: process label -> commit mode; ``killed``: labels of
    killed processes); calls ``bad(text)`` per violation; returns the counts."""
    if sorted(ids.values()) != list(range(records)):
        bad(f"the input topic does not hold ids 0..{records - 1} once each")
    Part = collections.namedtuple("Part", "epoch owner owner_label start next last floor revoked")
    parts = {p: Part(-1, None, None, 0, 0, -1, 0, None) for p in range(gm.IN_PARTITIONS)}
    epoch_owner: dict[tuple[int, int], str] = {}
    generation_of: dict[str, int] = {}
    processed = collections.defaultdict(list)  # id -> [(epoch, partition, offset)]
    reprocessed = collections.Counter()
    last_processing: dict[tuple[int, int], tuple[int, str]] = {}  # (partition, offset) -> (epoch, label)
    given_up: set[tuple[int, int]] = set()  # (partition, epoch) that ended with on_revoke
    for n, ln in enumerate(lines):
        k, p, m, x = ln["k"], ln["p"], ln["m"], ln["x"]
        where = f"out[{n}] {ln}"
        if ln["g"] < generation_of.get(m, -1):
            bad(f"{where}: the member's generation went backwards")
        generation_of[m] = ln["g"]
        st = parts[p]
        if k == "A":
            e, start = ln["e"], max(ln["c"], 0)  # OFFSET_INVALID (nothing committed): from the beginning
            if e <= st.epoch:
                bad(f"{where}: partition epoch did not grow (was {st.epoch})")
            if epoch_owner.setdefault((p, e), m) != m:
                bad(f"{where}: epoch {e} of partition {p} has two members")
            if start < st.floor:
                bad(f"{where}: starts below the offset {st.floor} committed before")
            if start > st.last + 1:
                bad(f"{where}: starts past the last record processed ({st.last}): records skipped")
            if st.revoked is not None and start != st.revoked:
                bad(f"{where}: starts at {start}, not at {st.revoked} committed when the partition was given up")
            parts[p] = Part(e, m, x, start, start, st.last, st.floor, None)
        elif k == "R":
            o, e = ln["o"], ln["e"]
            if e != st.epoch or m != st.owner:
                bad(f"{where}: processed by {m} in epoch {e}, but epoch {st.epoch} of partition {p} "
                    f"belongs to {st.owner}")
            if st.revoked is not None:
                bad(f"{where}: processed after its owner gave the partition up")
            if o != st.next:
                bad(f"{where}: offset {o}, expected {st.next} (contiguous from the start of the epoch)")
            if ids.get((p, o)) != ln["id"]:
                bad(f"{where}: in[{p}] offset {o} holds id {ids.get((p, o))}, not {ln['id']}")
            prior = processed[ln["id"]]
            if prior and not all(e > pe for pe, _, _ in prior) or o < st.start:
                bad(f"{where}: id {ln['id']} processed again, not in a higher epoch above its start: {prior}")
            if (p, o) in last_processing:  # delivered again: why?
                e_before, label = last_processing[(p, o)]
                if (p, e_before) in given_up:
                    if modes.get(label) in gm.COMMITS_ON_REVOKE:
                        bad(f"{where}: delivered again, but {label} committed it when it gave the partition "
                            f"up (epoch {e_before})")
                    reprocessed["after_handoff_without_commit"] += 1
                elif label in killed:
                    reprocessed["after_kill"] += 1
                else:
                    bad(f"{where}: delivered again, but {label} (epoch {e_before}) was not killed and did "
                        f"not give the partition up")
            prior.append((e, p, o))
            last_processing[(p, o)] = (e, x)
            parts[p] = st._replace(next=o + 1, last=max(st.last, o))
        elif k in ("C", "V"):
            e, c = ln["e"], max(ln["c"], 0)
            if e != st.epoch or m != st.owner:
                bad(f"{where}: a commit by {m} in epoch {e}, but epoch {st.epoch} belongs to {st.owner}")
            if c > st.next:
                bad(f"{where}: committed {c}, past what it processed ({st.next})")
            if k == "V":
                if modes.get(x) in gm.COMMITS_ON_REVOKE and c != st.next:
                    bad(f"{where}: gave the partition up with {c} committed, not its position {st.next}")
                st = st._replace(revoked=c)
                given_up.add((p, e))
            parts[p] = st._replace(floor=max(st.floor, c))
        else:
            bad(f"{where}: unknown line kind")
    missing = [i for i in range(records) if not processed.get(i)]
    if missing:
        bad(f"{len(missing)} ids never processed, the first {missing[:10]}")
    duplicates = sum(len(v) - 1 for v in processed.values() if len(v) > 1)
    return {"out_lines": len(lines), "processed": sum(len(v) for v in processed.values()),
            "reprocessed": duplicates, "reprocessed_after_kill": reprocessed["after_kill"],
            "reprocessed_after_handoff_without_commit": reprocessed["after_handoff_without_commit"],
            "epochs": len(epoch_owner)}


def run(kills: int, seconds: float, records: int = 2000, members: int = 4, strategy: str = "cooperative-sticky",
        seed: int | None = None, gap_s: float = 0.4, spread_s: float | None = None, static: int = 1,
        directory: str | None = None, keep: bool = False, verbose: bool = False, out=None) -> dict:
    seed = random.randrange(1 << 30) if seed is None else seed
    work = tempfile.mkdtemp(prefix="groups-chaos-", dir=directory)
    path = os.path.join(work, "log")
    if spread_s is None:
        spread_s = max(1.0, min(seconds, kills * gap_s) * 0.8)
    chaos = Chaos(path, work, strategy, records, members, seed, gap_s, spread_s, static, verbose, out)
    t0 = time.monotonic()
    failed = True
    try:
        chaos.setup()
        chaos.chaos(kills, seconds)
        chaos.drain()
        chaos.stop()
        result = chaos.final_check()
        warnings = chaos.scan_errors()
        failed = bool(chaos.violations)
    except ChaosFailure as e:
        chaos.violations.append(str(e))
        result, warnings = {}, chaos.scan_errors()
    finally:
        chaos.kill_everything()
        if chaos.log is not None:
            chaos.log.close()
        if not keep and not failed:
            shutil.rmtree(work, ignore_errors=True)
    return {"seed": seed, "strategy": strategy, "records": records, "members": members,
            "kills": chaos.counts["kills"], "all_member_kills": chaos.counts["all_member_kills"],
            "restarts": chaos.counts["restarts"], "starts": chaos.counts["starts"],
            "joins": chaos.counts["joins"], "leaves": chaos.counts["leaves"], "generations": chaos.max_generation,
            "samples": chaos.samples, "stderr_lines": len(warnings), "stderr_samples": warnings[:20], **result,
            "violations": len(chaos.violations), "violation_list": chaos.violations[:50],
            "elapsed_s": round(time.monotonic() - t0, 1), "dir": work if (keep or failed) else None}


def summary_line(s: dict) -> str:
    return (f"groups chaos ({s['strategy']}, seed {s['seed']}): {s['kills']} kills "
            f"({s['all_member_kills']} of every member at once), {s['restarts']} restarts, "
            f"{s['joins']} joins, {s['leaves']} leaves, {s['generations']} generations, {s['records']} records, "
            f"{s.get('processed', '?')} processed, {s.get('reprocessed', '?')} re-processed "
            f"({s.get('reprocessed_after_kill', '?')} after a kill, "
            f"{s.get('reprocessed_after_handoff_without_commit', '?')} after a hand-off without commit), "
            f"{s.get('epochs', '?')} epochs, {s['stderr_lines']} stderr lines, {s['violations']} violations, "
            f"{s['elapsed_s']}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="the chaos phase ends after this (or --kills)")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--strategy", choices=STRATEGIES, default="cooperative-sticky")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--gap", type=float, default=0.4, help="mean seconds between supervisor actions")
    ap.add_argument("--static", type=int, default=1, help="how many member slots are static (group_instance_id)")
    ap.add_argument("--dir", default=None, help="where to make the run's folder")
    ap.add_argument("--keep", action="store_true", help="keep the run's folder")
    ap.add_argument("--json", default=None, help="write the summary here")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    s = run(args.kills, args.seconds, args.records, args.members, args.strategy, args.seed, args.gap,
            static=args.static, directory=args.dir, keep=args.keep, verbose=args.verbose)
    print(summary_line(s))
    for line in s["stderr_samples"]:
        print("  stderr:", line[:500])
    for v in s["violation_list"]:
        print("  violation:", v[:2000])
    if s["dir"]:
        print("  files kept in", s["dir"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(s, f, indent=1)
    return 1 if s["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
