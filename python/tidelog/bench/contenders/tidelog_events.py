"""tidelog's event store (``tidelog.es``) in the events workload
(tidelog.bench.events), on its own API: ``append`` / ``append_many``,
``read`` + ``decode``, ``read_all``.

The domain events are two dataclasses registered with the store's
JsonSerializer (``Opened``, ``Deposited``): what an application on the API
appends and decodes. The store is durable the default way (durability
"fsync": ``append`` returns once the event is on disk).

Concurrency: one thread drives it (the runner's or a bench's); the create
part with 16 threads runs that many threads of its own on one store object
(thread-safe, see EventStore).
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid

from ..core import Contender, need_disk, rmtree, run_threads
from ..events import ProjectionView
from ._common import store_dir

STORE = "bench"


@dataclasses.dataclass
class Opened:
    name: str


@dataclasses.dataclass
class Deposited:
    amount: int


class Account:
    """The aggregate a load folds the events into."""

    def __init__(self) -> None:
        self.name, self.balance, self.version = "", 0, -1

    def apply(self, event) -> None:
        if isinstance(event, Deposited):
            self.balance += event.amount
        else:
            self.name = event.name
        self.version += 1


def serializer():
    from ...es import JsonSerializer

    s = JsonSerializer()
    s.register(Opened)
    s.register(Deposited)
    return s


def filler_events(count: int, start: int = 0) -> list:
    """``count`` events of a filler aggregate (NewEvent, serialized once by hand:
    the build is not what is measured)."""
    from ...es import NewEvent

    return [NewEvent("Opened", b'{"name":"filler"}') if start + i == 0 else
            NewEvent("Deposited", b'{"amount":%d}' % (start + i)) for i in range(count)]


def build_store(store, data, aggregate_id: str | None) -> None:
    """Fills ``store`` with ``data.store_events`` events in ``append_many`` calls
    of about ``data.build_batch`` events: filler aggregates of
    ``data.filler_events``; with ``aggregate_id``, one event of that aggregate
    after each chunk (data.chunks()), so its 100 events are spread evenly."""
    from ...es import NO_STREAM, NewEvent

    calls: list = []
    size = 0

    def flush():
        nonlocal calls, size
        if calls:
            store.append_many(calls)
        calls, size = [], 0

    for k, chunk in enumerate(data.chunks()):
        for n in data.filler_plan(chunk):
            calls.append((str(uuid.uuid4()), filler_events(n), NO_STREAM))
            size += n
            if size >= data.build_batch:
                flush()
        if aggregate_id is not None:
            flush()  # the aggregate appears once per call (a stream at most once per append_many)
            ev = NewEvent("Opened", b'{"name":"loaded"}') if k == 0 else NewEvent("Deposited", b'{"amount":%d}' % k)
            store.append(aggregate_id, [ev], k - 1)
    flush()


def fold(store, stream_id: str) -> Account:
    acc = Account()
    for ev in store.read(stream_id):
        acc.apply(ev.decode())
    return acc


def project(store, view: ProjectionView, txn_events: int) -> int:
    """Catches ``view`` up from position 0: an upsert per event, a commit with
    the checkpoint every ``txn_events``. Returns the events applied."""
    n = 0
    position = 0
    for ev in store.read_all():
        obj = ev.decode()
        view.apply(ev.stream_id, getattr(obj, "amount", 0))
        n += 1
        position = ev.position + 1
        if view.pending >= txn_events:
            view.commit(position)
    view.commit(position)
    return n


class TidelogEvents(Contender):
    """tidelog.es, default durability (fsync)."""

    name = "tidelog event store"
    kind = "tidelog"
    description = ("tidelog.es EventStore, durability fsync: append(new stream, [event], NO_STREAM); "
                   "read() + decode(); read_all() + decode() into the SQLite view")

    def _open(self, tmpdir: str, data) -> None:
        import tidelog

        self.dir = store_dir(tmpdir, self.name)
        self.log = tidelog.open(os.path.join(self.dir, "log"))
        self.store = self.log.event_store(STORE, serializer=serializer())
        self.build_seconds = None
        if data.store_events:
            need_disk(self.dir, data.store_events * 200, "the event store")

    def events_setup(self, tmpdir, params, data):
        self.data = data
        self._open(tmpdir, data)
        self.aggregate = None
        if data.part == "load":
            self.aggregate = str(uuid.uuid4())
        if data.part in ("load", "project"):
            t0 = time.perf_counter()
            build_store(self.store, data, self.aggregate)
            self.build_seconds = time.perf_counter() - t0

    def events_run(self, case):
        data = self.data
        if data.part == "create":
            return self._create(data)
        if data.part == "load":
            lat = []
            clock = time.perf_counter_ns
            t0 = time.perf_counter()
            for _ in range(data.loads):
                s = clock()
                acc = fold(self.store, self.aggregate)
                lat.append(clock() - s)
            seconds = time.perf_counter() - t0
            assert acc.version == data.aggregate_events - 1, acc.version
            return {"seconds": seconds, "loads": data.loads, "latencies_ns": lat, "check": acc.balance,
                    "build_seconds": self.build_seconds}
        view = ProjectionView.fresh(self.dir)
        t0 = time.perf_counter()
        n = project(self.store, view, data.view_txn_events)
        seconds = time.perf_counter() - t0
        rows, total = view.close()
        assert n == data.store_events, (n, data.store_events)
        return {"seconds": seconds, "events": n, "check": total, "build_seconds": self.build_seconds}

    def _create(self, data) -> dict:
        from ...es import NO_STREAM

        store = self.store
        per_thread = max(1, data.commands // data.threads)

        def make_op(k: int):
            def op(i: int) -> None:
                store.append(str(uuid.uuid4()), [Opened(f"account {k}-{i}")], NO_STREAM)
            return op

        m = run_threads(data.threads, per_thread, make_op)
        m["events"] = m.pop("acks")
        return m

    def events_teardown(self):
        self.store.close()
        self.log.close()
        rmtree(self.dir)


class ProjectionViewAlone(Contender):
    """The project part's floor: the same view writes (ProjectionView, an upsert
    per event, a commit per 1,000) from a list of (stream, amount) in memory:
    what is left when reading and decoding the events cost nothing."""

    name = "sqlite view alone"
    kind = "limit"
    description = "the projection's SQLite view writes alone, from (stream, amount) pairs in memory"

    def events_supports(self, params):
        return params["part"] == "project"

    def events_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = store_dir(tmpdir, self.name)
        rows = []
        for n in data.filler_plan(data.store_events):
            sid = str(uuid.uuid4())
            rows.extend((sid, i) for i in range(n))
        self.rows = rows

    def events_run(self, case):
        view = ProjectionView.fresh(self.dir)
        txn = self.data.view_txn_events
        t0 = time.perf_counter()
        for position, (sid, amount) in enumerate(self.rows):
            view.apply(sid, amount)
            if view.pending >= txn:
                view.commit(position + 1)
        view.commit(len(self.rows))
        seconds = time.perf_counter() - t0
        rows, total = view.close()
        return {"seconds": seconds, "events": len(self.rows), "check": total}

    def events_teardown(self):
        rmtree(self.dir)


__all__ = ["TidelogEvents", "ProjectionViewAlone", "Opened", "Deposited", "Account", "build_store", "fold", "project",
           "serializer"]
