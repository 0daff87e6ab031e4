"""SIGKILL of processes recording through tidelog.eventsourcing: no partial insert is
visible afterwards, no notification is lost or doubled, every acknowledged insert is
there, and a process recorder's events and tracking agree (exactly-once processing)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

pytest.importorskip("eventsourcing")

from eventsourcing.persistence import InfrastructureFactory, StoredEvent  # noqa: E402
from eventsourcing.utils import Environment  # noqa: E402

from _eventsourcing_env import close_logs_under  # noqa: E402

NS = uuid.UUID(int=1)      # downstream originators: uuid5(NS, upstream id)
TALLY = uuid.UUID(int=2)   # one downstream aggregate whose version is the upstream id
UPSTREAM_EVENTS = 300

COMMON = r"""
import sys, uuid
from eventsourcing.persistence import InfrastructureFactory, StoredEvent, Tracking
from eventsourcing.utils import Environment

def factory(path, name):
    return InfrastructureFactory.construct(
        Environment(name, {"PERSISTENCE_MODULE": "tidelog.eventsourcing", "TIDELOG_PATH": path}))
"""

# A processing loop: each upstream notification becomes three downstream events (two
# on its own originator, one on the shared tally) recorded with its tracking object.
# It resumes from the recorded tracking id, so a non-atomic insert would make a restart
# record an event twice (IntegrityError: the child dies with an error, not SIGKILL).
PROCESS_CHILD = COMMON + r"""
path = sys.argv[1]
NS, TALLY = uuid.UUID(int=1), uuid.UUID(int=2)
up = factory(path, "Upstream").application_recorder()
down = factory(path, "Downstream").process_recorder()
print("ready", flush=True)
while True:
    last = down.max_tracking_id("Upstream") or 0
    batch = up.select_notifications(last, 10, inclusive_of_start=False)
    if not batch:
        break
    for n in batch:
        events = [StoredEvent(uuid.uuid5(NS, str(n.id)), v, "Processed", n.state) for v in (1, 2)]
        events.append(StoredEvent(TALLY, n.id, "Tallied", b"%d" % n.id))
        ids = down.insert_events(events, tracking=Tracking("Upstream", n.id))
        print(n.id, *ids, flush=True)
"""

# An application saving two aggregates together (one insert across two originators).
APP_CHILD = COMMON + r"""
from uuid import NAMESPACE_URL, uuid5
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

class Counter(Aggregate):
    def __init__(self, name):
        self.name = name
        self.batches = []

    @classmethod
    def create_id(cls, name):
        return uuid5(NAMESPACE_URL, "/counters/" + name)

    @event("Incremented")
    def incr(self, batch):
        self.batches.append(batch)

class Writer(Application):
    pass

path = sys.argv[1]
app = Writer(env={"PERSISTENCE_MODULE": "tidelog.eventsourcing", "TIDELOG_PATH": path})
print("ready", flush=True)
while True:
    try:
        a = app.repository.get(Counter.create_id("a"))
        b = app.repository.get(Counter.create_id("b"))
        batch = len(a.batches) // 3
    except AggregateNotFoundError:
        a, b, batch = Counter("a"), Counter("b"), 0
    for agg in (a, b):
        for _ in range(3):
            agg.incr(batch)
    recordings = app.save(a, b)
    print(batch, *[r.notification.id for r in recordings], flush=True)
"""


def factory(path: str, name: str):
    return InfrastructureFactory.construct(
        Environment(name, {"PERSISTENCE_MODULE": "tidelog.eventsourcing", "TIDELOG_PATH": path}))


def run_child(code: str, path: str, kill_after_acks: int | None,
              rng: random.Random | None = None) -> tuple[list[list[int]], int]:
    """Runs a child; SIGKILLs it a random 0-3 ms after its ``kill_after_acks``-th
    acknowledged line (None: lets it end), so the kill lands at a random point of an
    insert, however fast the machine. Returns its acknowledged lines (as ints) and its
    return code."""
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()
    enough = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == "ready\n":
                ready.set()
                continue
            lines.append(line)
            if kill_after_acks is not None and len(lines) >= kill_after_acks:
                enough.set()
        ready.set()
        enough.set()

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        assert ready.wait(60), "child never got ready"
        if kill_after_acks is not None:
            assert enough.wait(60), "the child acknowledged too little"
            time.sleep((rng or random).uniform(0, 0.003))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode in (0, -signal.SIGKILL), f"child failed ({proc.returncode}): {err}"
    # a line cut by the kill (no newline) was never acknowledged
    return [[int(x) for x in line.split()] for line in lines if line.endswith("\n")], proc.returncode


def test_process_recorder_killed_repeatedly_processes_each_notification_once(tmp_path) -> None:
    path = str(tmp_path / "log")
    up_factory = factory(path, "Upstream")
    up = up_factory.application_recorder()
    for i in range(UPSTREAM_EVENTS):
        up.insert_events([StoredEvent(uuid.uuid4(), 1, "Happened", b"up-%d" % i)])
    up_factory.close()

    rng = random.Random(20240917)
    acked: list[list[int]] = []
    for _ in range(6):  # at most 6 x 40 of the 300: every child is killed mid-way
        lines, rc = run_child(PROCESS_CHILD, path, rng.randint(5, 40), rng)
        assert rc == -signal.SIGKILL
        acked += lines
    lines, rc = run_child(PROCESS_CHILD, path, None)  # finishes the work
    acked += lines
    assert rc == 0

    try:
        down_factory = factory(path, "Downstream")
        down = down_factory.process_recorder()
        assert down.max_tracking_id("Upstream") == UPSTREAM_EVENTS
        notes = down.select_notifications(None, 10 * UPSTREAM_EVENTS)
        ids = [n.id for n in notes]
        assert ids == sorted(set(ids)), "a notification id appears twice or out of order"
        assert len(notes) == 3 * UPSTREAM_EVENTS, "an upstream notification was processed twice or not at all"
        # per upstream id: its two events and the tally's event, all together
        tally = down.select_events(TALLY)
        assert [e.originator_version for e in tally] == list(range(1, UPSTREAM_EVENTS + 1))
        for n_id in range(1, UPSTREAM_EVENTS + 1):
            got = down.select_events(uuid.uuid5(NS, str(n_id)))
            assert [e.originator_version for e in got] == [1, 2]
            assert got[0].state == got[1].state == b"up-%d" % (n_id - 1)
        # every acknowledged insert is there, at the ids it was given
        by_id = {n.id: n for n in notes}
        for n_id, *event_ids in acked:
            assert [by_id[i].originator_id for i in event_ids] == [uuid.uuid5(NS, str(n_id))] * 2 + [TALLY]
            assert by_id[event_ids[-1]].originator_version == n_id
        assert len({a[0] for a in acked}) == len(acked), "an upstream notification was acknowledged twice"
        down_factory.close()
    finally:
        close_logs_under(str(tmp_path))


def test_application_killed_repeatedly_keeps_whole_saves(tmp_path) -> None:
    path = str(tmp_path / "log")
    rng = random.Random(77)
    acked: list[list[int]] = []
    for _ in range(5):
        lines, rc = run_child(APP_CHILD, path, rng.randint(1, 20), rng)
        assert rc == -signal.SIGKILL
        acked += lines
    assert acked, "no save was acknowledged before the kills"

    try:
        f = factory(path, "Writer")
        rec = f.application_recorder()
        max_id = rec.max_notification_id()
        notes = rec.select_notifications(None, (max_id or 0) + 10)
        assert [n.id for n in notes] == list(range(1, len(notes) + 1)), "notification ids are not dense"
        by_originator: dict = {}
        for n in notes:
            by_originator.setdefault(n.originator_id, []).append(n.originator_version)
        assert len(by_originator) == 2
        va, vb = by_originator.values()
        # both aggregates saved in every insert: the same versions, contiguous from 1
        assert va == vb == list(range(1, len(va) + 1))
        assert (len(va) - 1) % 3 == 0  # Created, then whole batches of three
        # every acknowledged save is there, at its ids
        by_id = {n.id: n for n in notes}
        for batch, *ids in acked:
            assert len(ids) == 6 + 2 * (batch == 0)
            assert all(i in by_id for i in ids)
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # one contiguous block
        f.close()
    finally:
        close_logs_under(str(tmp_path))


WRITER_CHILD = COMMON + r"""
path, n = sys.argv[1], 5
rec = factory(path, "Shared").application_recorder()
print("ready", flush=True)
for i in range(n):
    print(*rec.insert_events([StoredEvent(uuid.uuid4(), 1, "FromChild", b"%d" % i)]), flush=True)
"""


def test_subscription_follows_another_process(tmp_path) -> None:
    path = str(tmp_path / "log")
    f = factory(path, "Shared")
    try:
        rec = f.application_recorder()
        rec.insert_events([StoredEvent(uuid.uuid4(), 1, "FromParent", b"p")])
        got: list = []
        with rec.subscribe(gt=None) as sub:
            def consume() -> None:
                for n in sub:
                    got.append(n)
                    if len(got) == 6:
                        break
            t = threading.Thread(target=consume)
            t.start()  # blocks in the subscription until the child writes
            lines, rc = run_child(WRITER_CHILD, path, None)
            t.join(timeout=30)
            assert not t.is_alive(), f"the subscription saw {len(got)} of 6 notifications"
        assert rc == 0
        assert [n.id for n in got] == [1, 2, 3, 4, 5, 6]
        assert [n.state for n in got] == [b"p", b"0", b"1", b"2", b"3", b"4"]
        assert [line[0] for line in lines] == [2, 3, 4, 5, 6]
    finally:
        f.close()
        close_logs_under(str(tmp_path))
