"""The ``eventsourcing`` library (9.5) in the events workload
(tidelog.bench.events): an ``Application`` with one ``Account`` aggregate
(contenders/_es_library.py), on the library's SQLite persistence (WAL,
``synchronous=FULL``, made durable per commit) or on tidelog
(``tidelog.eventsourcing``, the persistence module of tidelog's
eventsourcing adapter; measured when it imports, else skipped with the
reason).

Concurrency: one thread drives it; the create part with 16 threads runs that
many threads of its own on one Application (the library's recorders are
thread-safe; its SQLite pool lets one writer in at a time).
"""
from __future__ import annotations

import importlib.util
import os
import time
import uuid

from ..core import Contender, need_disk, rmtree, run_threads
from ..events import ProjectionView
from ._common import store_dir

ADAPTER = "tidelog.eventsourcing"


def _adapter_missing() -> str | None:
    try:
        found = importlib.util.find_spec(ADAPTER) is not None
    except ImportError:
        found = False
    if not found:
        return f"{ADAPTER} is not in this build (the eventsourcing adapter, branch es-adapter)"
    try:
        importlib.import_module(ADAPTER)
    except Exception as e:  # noqa: BLE001 - reported as the reason
        return f"{ADAPTER} does not import: {type(e).__name__}: {e}"
    return None


class EventSourcingLib(Contender):
    """``persistence``: "sqlite" (the library's own, durable) or "tidelog" (tidelog.eventsourcing)."""

    kind = "peer"
    requires = ("eventsourcing",)

    def __init__(self, persistence: str = "sqlite"):
        self.persistence = persistence
        if persistence == "sqlite":
            self.name = "eventsourcing sqlite"
            self.description = ("eventsourcing 9.5 Application on eventsourcing.sqlite: journal_mode=WAL (the "
                                "library's), synchronous=FULL (set by the bench on every connection; durable per "
                                "commit); app.save / repository.get / select_notifications")
        else:
            self.name = "eventsourcing on tidelog"
            self.kind = "tidelog"
            self.description = ("eventsourcing 9.5 Application on tidelog.eventsourcing (a tidelog event store, "
                                "durability fsync); app.save / repository.get / select_notifications")

    def available(self) -> str | None:
        reason = super().available()
        if reason is None and self.persistence == "tidelog":
            reason = _adapter_missing()
        return reason

    # ------------------------------------------------------------ helpers
    def _app(self, folder: str):
        from . import _es_library as lib

        if self.persistence == "sqlite":
            env = {"PERSISTENCE_MODULE": f"{lib.__name__}:DurableSQLiteFactory",
                   "SQLITE_DBNAME": os.path.join(folder, "events.db")}
        else:
            env = {"PERSISTENCE_MODULE": ADAPTER, "TIDELOG_PATH": os.path.join(folder, "log")}
        app = lib.BenchApp(env=env)
        if self.persistence == "sqlite":
            self.settings = lib.pragmas(app)
            assert self.settings == {"journal_mode": "wal", "synchronous": "FULL"}, self.settings
        else:
            self.settings = {}
        return app

    def _templates(self, app, name: str, events: int) -> list:
        """The stored events of an Account with ``events`` events (Opened, then deposits of 1, 2, ...)."""
        from ._es_library import Account

        acc = Account(name)
        for k in range(1, events):
            acc.deposit(k)
        return [app.mapper.to_stored_event(e) for e in acc.collect_events()]

    def _build(self, app, data, aggregate: bool) -> None:
        """The same store as tidelog_events.build_store: filler aggregates of
        ``data.filler_events`` in ``insert_events`` calls of about
        ``data.build_batch`` events, and with ``aggregate`` the loaded
        aggregate's events spread one per chunk."""
        from eventsourcing.persistence import StoredEvent

        recorder = app.recorder
        filler = self._templates(app, "filler", data.filler_events)
        batch: list = []

        def flush():
            if batch:
                recorder.insert_events(batch)
                batch.clear()

        self.aggregate = None
        loaded = None
        if aggregate:
            loaded = self._templates(app, "loaded", data.aggregate_events)
            self.aggregate = loaded[0].originator_id
        for k, chunk in enumerate(data.chunks()):
            for n in data.filler_plan(chunk):
                oid = uuid.uuid4()
                batch.extend(StoredEvent(oid, t.originator_version, t.topic, t.state) for t in filler[:n])
                if len(batch) >= data.build_batch:
                    flush()
            if loaded is not None:
                flush()
                recorder.insert_events([loaded[k]])
        flush()

    # ------------------------------------------------------------ workload
    def events_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = store_dir(tmpdir, self.name)
        if data.store_events:
            need_disk(self.dir, data.store_events * 300, "the library's store")
        self.app = self._app(self.dir)
        self.build_seconds = None
        if data.part in ("load", "project"):
            t0 = time.perf_counter()
            self._build(self.app, data, aggregate=data.part == "load")
            self.build_seconds = time.perf_counter() - t0

    def events_run(self, case):
        data = self.data
        app = self.app
        if data.part == "create":
            from ._es_library import Account

            def make_op(k: int):
                def op(i: int) -> None:
                    app.save(Account(f"account {k}-{i}"))
                return op

            m = run_threads(data.threads, max(1, data.commands // data.threads), make_op)
            m["events"] = m.pop("acks")
            return m
        if data.part == "load":
            lat = []
            clock = time.perf_counter_ns
            get = app.repository.get
            t0 = time.perf_counter()
            for _ in range(data.loads):
                s = clock()
                acc = get(self.aggregate)
                lat.append(clock() - s)
            seconds = time.perf_counter() - t0
            assert acc.version == data.aggregate_events, acc.version
            return {"seconds": seconds, "loads": data.loads, "latencies_ns": lat, "check": acc.balance,
                    "build_seconds": self.build_seconds}
        view = ProjectionView.fresh(self.dir)
        t0 = time.perf_counter()
        n = self._project(view, data.view_txn_events)
        seconds = time.perf_counter() - t0
        rows, total = view.close()
        assert n == data.store_events, (n, data.store_events)
        return {"seconds": seconds, "events": n, "check": total, "build_seconds": self.build_seconds}

    def _project(self, view: ProjectionView, txn_events: int) -> int:
        """The pull loop: sections of ``txn_events`` notifications from id 1, each
        mapped to its domain event and applied; a commit with the checkpoint (the
        last notification id) every ``txn_events``."""
        select = self.app.recorder.select_notifications
        to_event = self.app.mapper.to_domain_event
        start, n, last = 1, 0, 0
        while True:
            section = select(start, txn_events)
            if not section:
                break
            for note in section:
                e = to_event(note)
                view.apply(str(e.originator_id), getattr(e, "amount", 0))
                last = note.id
                n += 1
                if view.pending >= txn_events:
                    view.commit(last)
            start = last + 1
        view.commit(last)
        return n

    def events_teardown(self):
        try:
            self.app.close()
        finally:
            rmtree(self.dir)


__all__ = ["EventSourcingLib"]
