"""The ``events`` workload: tidelog's event store (``tidelog.es``) beside the
``eventsourcing`` library (9.5) on its own SQLite persistence, and the same
library on tidelog (``tidelog.eventsourcing``, when that module is there).

Every side is durable: tidelog appends return once the event is fsynced (the
store's default durability); the library's SQLite database is in WAL mode
(the library sets it) with ``synchronous=FULL`` (set by the bench on every
connection, checked, and shown in the contender's description).

Four parts, each its own parameter set:

* ``create``, 1 and 16 threads: every command creates an aggregate with one
  event (tidelog: ``store.append(new_stream_id, [event], NO_STREAM)``; the
  library: ``app.save(Account(name))``), each thread on its own aggregates;
  events/s, with command latency percentiles.
* ``load``: the events of one aggregate of 100 events, spread evenly through a
  store of ``store_events`` events (1,000 and N: 10 M in the full run, the
  ``--es-events`` option), read back and folded into the aggregate
  (tidelog: ``store.read(stream)`` + ``ev.decode()`` of every event + apply;
  the library: ``app.repository.get(id)``); median µs per load. The store is
  built before the clock in large batches (tidelog: ``append_many``; the
  library: its recorder's ``insert_events``); the build time is reported.
* ``project``: a projection catching up from position 0 over a store of
  ``store_events`` events into a SQLite view (the same view code and settings
  for every side, ``ProjectionView``): one upsert per event, a transaction per
  1,000 events with the checkpoint row in the same transaction. tidelog:
  ``store.read_all()`` + ``decode()``; the library: ``select_notifications``
  in sections of 1,000 + ``mapper.to_domain_event`` (its ``ProjectionRunner``
  needs ``subscribe()``, which the SQLite recorder of 9.5 does not have, and
  its process applications commit one event per transaction: the pull loop is
  its fairest equivalent). events/s.

The contenders are in contenders/tidelog_events.py and
contenders/eventsourcing_.py; benches/test_bench_events.py checks the targets.
"""
from __future__ import annotations

import dataclasses
import os
import sqlite3

from .core import Metric, Target, Workload, human_count, percentiles

# the events every side writes: an account opened, then deposits
AGGREGATE_EVENTS = 100     # the loaded aggregate
FILLER_EVENTS = 10         # events of each other aggregate in a store
VIEW_TXN_EVENTS = 1000     # events per view transaction (project)


@dataclasses.dataclass
class EventsData:
    """One part's sizes."""

    part: str                      # "create" | "load" | "project"
    threads: int = 1               # create
    commands: int = 0              # create: aggregates created per round, all threads together
    store_events: int = 0          # load, project: events in the store
    loads: int = 0                 # load: loads per round
    build_batch: int = 10_000      # events per append_many / insert_events while building a store
    aggregate_events: int = AGGREGATE_EVENTS
    filler_events: int = FILLER_EVENTS
    view_txn_events: int = VIEW_TXN_EVENTS

    def chunks(self) -> list[int]:
        """load: the filler events between two of the loaded aggregate's events
        (``aggregate_events`` chunks, each followed by one of its events);
        project: one chunk of every event."""
        if self.part == "project":
            return [self.store_events]
        n, k = self.store_events - self.aggregate_events, self.aggregate_events
        return [n // k + (1 if i < n % k else 0) for i in range(k)]

    def filler_plan(self, count: int) -> list[int]:
        """A chunk of ``count`` filler events as aggregates of ``filler_events`` (the last may be shorter)."""
        full, rest = divmod(count, self.filler_events)
        return [self.filler_events] * full + ([rest] if rest else [])


class ProjectionView:
    """The read model every projecting side writes: a SQLite file (WAL,
    synchronous=FULL), a row per aggregate (events seen, balance), a checkpoint
    row committed in the same transaction as the rows it covers.

    Not thread-safe: one projecting thread."""

    def __init__(self, path: str):
        self.path = path
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        assert self.con.execute("pragma journal_mode=WAL").fetchone()[0].lower() == "wal"
        self.con.execute("pragma synchronous=FULL")
        self.con.execute("create table if not exists balances (stream text primary key, events integer, "
                         "balance integer)")
        self.con.execute("create table if not exists checkpoint (name text primary key, position integer)")
        self.upsert = ("insert into balances values (?, 1, ?) on conflict(stream) do update set "
                       "events = events + 1, balance = balance + excluded.balance")
        self.pending = 0
        self.con.execute("begin")

    def apply(self, stream: str, amount: int) -> None:
        self.con.execute(self.upsert, (stream, amount))
        self.pending += 1

    def commit(self, position: int) -> None:
        """The checkpoint (the next position to read) in the transaction of the rows before it."""
        self.con.execute("insert into checkpoint values ('view', ?) on conflict(name) do update set "
                         "position = excluded.position", (position,))
        self.con.execute("commit")
        self.pending = 0
        self.con.execute("begin")

    def close(self) -> tuple[int, int]:
        """Ends the open transaction; (rows, sum of balances)."""
        self.con.execute("commit")
        rows, total = self.con.execute("select count(*), coalesce(sum(balance), 0) from balances").fetchone()
        self.con.close()
        return rows, total

    @staticmethod
    def fresh(folder: str) -> "ProjectionView":
        path = os.path.join(folder, "view.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return ProjectionView(path)


class Events(Workload):
    name = "events"
    title = "13. Event store: tidelog.es vs the eventsourcing library"
    description = (
        "Durable on every side (tidelog: the store's default fsync; the `eventsourcing` library 9.5.6: its SQLite "
        "module, WAL, `synchronous=FULL`). *create*: each command creates an aggregate with one event (tidelog: "
        "`store.append(new_id, [event], NO_STREAM)`; the library: `app.save(Account(name))`), 1 and 16 threads "
        "on their own aggregates; events/s. *load*: an aggregate of 100 events spread through a store of N events "
        "(built beforehand in large batches, build time reported), read and folded (tidelog: `store.read()` + "
        "`decode()`; the library: `app.repository.get()`); µs per load. *project*: a projection catching up from "
        "position 0 into a SQLite view (the same view code for every side: an upsert per event, a transaction "
        "per 1,000 events with its checkpoint row; tidelog: `read_all()` + `decode()`; the library: "
        "`select_notifications` in sections of 1,000 + `mapper.to_domain_event`); events/s."
    )
    param_names = ("part", "threads", "store_events")
    # create: commands per round by threads
    CREATE = {"smoke": {1: 8, 16: 32}, "quick": {1: 150, 16: 480}, "full": {1: 1000, 16: 3200}}
    # load: (store sizes, loads per round); the largest size is N (--es-events overrides it)
    LOAD = {"smoke": ([1000, 3000], 5), "quick": ([1000, 200_000], 100), "full": ([1000, 10_000_000], 300)}
    PROJECT = {"smoke": 3000, "quick": 50_000, "full": 500_000}

    def grid(self, mode, opts):
        grid: list[dict] = [{"part": "create", "threads": n} for n in (1, 16)]
        sizes, _ = self.LOAD[mode]
        if opts.get("es_events"):
            sizes = [sizes[0], int(opts["es_events"])]
        grid += [{"part": "load", "store_events": n} for n in sizes]
        return grid + [{"part": "project", "store_events": self.PROJECT[mode]}]

    def make_data(self, params, mode):
        part = params["part"]
        if part == "create":
            n = params["threads"]
            return EventsData(part, threads=n, commands=self.CREATE[mode][n])
        if part == "load":
            return EventsData(part, store_events=params["store_events"], loads=self.LOAD[mode][1],
                              build_batch=2_000 if mode == "smoke" else 10_000)
        return EventsData(part, store_events=params["store_events"], build_batch=2_000 if mode == "smoke" else 10_000)

    def limit(self, params, case):
        return "sqlite view alone" if params["part"] == "project" else None

    def primary(self, params, case):
        return Metric("µs/load", False) if params["part"] == "load" else Metric("events/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        part = params["part"]
        if part == "create":
            p50, p99 = percentiles(m["latencies_ns"], (50, 99))
            out = {"events/s": m["events"] / s, "p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6}
        elif part == "load":
            (p50,) = percentiles(m["latencies_ns"], (50,))
            out = {"µs/load": p50 / 1e3, "mean µs": s / m["loads"] * 1e6}
        else:
            out = {"events/s": m["events"] / s}
        if m.get("build_seconds") is not None:
            out["build s"] = m["build_seconds"]
            out["build events/s"] = params["store_events"] / m["build_seconds"]
        return out

    def pooled(self, params, case, measures):
        lat = [x for m in measures for x in m.get("latencies_ns", ())]
        if not lat:
            return {}
        if params["part"] == "load":
            (p50,) = percentiles(lat, (50,))
            return {"µs/load": p50 / 1e3}
        p50, p99 = percentiles(lat, (50, 99))
        return {"p50 ms": p50 / 1e6, "p99 ms": p99 / 1e6}

    def label(self, params, case):
        part = params["part"]
        if part == "create":
            n = params["threads"]
            return f"create, {n} thread{'s' if n > 1 else ''}"
        if part == "load":
            return f"load 100 events from a store of {human_count(params['store_events'])}"
        return f"project {human_count(params['store_events'])} events into SQLite"

    def rounds(self, mode, opts):
        if mode == "full":
            return 1, opts.get("rounds") or 5
        return super().rounds(mode, opts)

    def targets(self, mode, opts):
        grid = self.grid(mode, opts)
        big = max(p["store_events"] for p in grid if p["part"] == "load")
        project = next(p for p in grid if p["part"] == "project")
        tl, lib, on_tl = "tidelog event store", "eventsourcing sqlite", "eventsourcing on tidelog"
        out = []
        for n in (1, 16):
            out.append(Target(f"(a/b) create, {n} thread{'s' if n > 1 else ''}: tidelog.es vs the library on SQLite",
                              tl, lib, {"part": "create", "threads": n}, 10.0))
        out.append(Target(f"(c) load 100 events from {human_count(big)}: tidelog.es vs the library on SQLite",
                          tl, lib, {"part": "load", "store_events": big}, 5.0))
        out.append(Target("(d) projection catch-up into SQLite: tidelog.es vs the library on SQLite",
                          tl, lib, {"part": "project", "store_events": project["store_events"]}, 5.0))
        out.append(Target("(a) create, 1 thread: the library on tidelog vs on SQLite",
                          on_tl, lib, {"part": "create", "threads": 1}, 3.0))
        out.append(Target(f"(c) load 100 events from {human_count(big)}: the library on tidelog vs on SQLite",
                          on_tl, lib, {"part": "load", "store_events": big}, 3.0))
        return out


__all__ = ["Events", "EventsData", "ProjectionView", "AGGREGATE_EVENTS", "FILLER_EVENTS"]
