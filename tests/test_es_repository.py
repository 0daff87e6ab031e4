"""tidelog.es.Repository: load/save, optimistic concurrency (threads and
processes), snapshots (a cache that never breaks get), upcasting."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
import warnings

import pytest

import tidelog
from tidelog.es import (Aggregate, AggregateNotFoundError, NewEvent, Repository, SnapshotWarning, Upcasters, UpcastError,
                        applies)

from _es_domain import Account, Deposited, Opened


@pytest.fixture
def store(log):
    return log.event_store("bank")


def test_save_then_get(store):
    repo = Repository(store, Account)
    a = Account.open("alice", "a1")
    a.deposit(10)
    res = repo.save(a)
    assert res.version == 1 and a.version == 1 and a.pending_events == ()
    assert [e.type for e in store.read("acct-a1")] == ["Opened", "Deposited"]
    b = repo.get("a1")
    assert (b.owner, b.balance, b.version, b.pending_events) == ("alice", 10, 1, ())
    assert repo.exists("a1") and not repo.exists("nope")
    assert repo.save(b) is None  # nothing pending
    b.deposit(5)
    repo.save(b)
    assert repo.get("a1").balance == 15
    assert repo.get("a1", version=0).balance == 0
    assert repo.get("a1", version=1).balance == 10


def test_missing_aggregate_is_a_typed_error(store):
    repo = Repository(store, Account)
    with pytest.raises(AggregateNotFoundError) as exc:
        repo.get("ghost")
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, tidelog.TidelogError)
    assert exc.value.aggregate_id == "ghost" and exc.value.stream_id == "acct-ghost"
    with pytest.raises(ValueError):
        repo.get("a", version=-1)
    with pytest.raises(TypeError):
        Repository(store, dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Repository(store, Account, snapshot_every=0)


def test_concurrent_save_conflicts_and_writes_nothing(store):
    repo = Repository(store, Account)
    repo.save(Account.open("alice", "a1"))
    x, y = repo.get("a1"), repo.get("a1")
    x.deposit(1)
    y.deposit(2)
    repo.save(x)
    with pytest.raises(tidelog.WrongExpectedVersionError):
        repo.save(y)
    assert len(y.pending_events) == 1  # kept, so a caller may inspect them
    assert repo.get("a1").balance == 1 and store.stream_version("acct-a1") == 1
    with pytest.raises(tidelog.WrongExpectedVersionError):  # a new aggregate whose id is taken
        repo.save(Account.open("mallory", "a1"))


def test_save_all_is_atomic_across_aggregates(store):
    repo = Repository(store, Account)
    repo.save_all([Account.open("a", "a"), Account.open("b", "b")])
    a, b = repo.get("a"), repo.get("b")
    stale_b = repo.get("b")
    stale_b.deposit(1)
    repo.save(stale_b)
    a.deposit(10)
    b.deposit(10)
    with pytest.raises(tidelog.WrongExpectedVersionError):
        repo.save_all([a, b])
    assert store.stream_version("acct-a") == 0  # the good half was not written either
    with pytest.raises(ValueError):
        repo.save_all([a, a])


def test_unserializable_event_is_a_typed_error_and_nothing_is_written(store):
    @dataclasses.dataclass
    class Weird:
        thing: object

    class Odd(Account):
        @applies(Weird)
        def _weird(self, e):
            pass

    repo = Repository(store, Odd)
    a = Odd.open("x", "o1")
    a.trigger(Weird(object()))
    end = store.end_position
    with pytest.raises(tidelog.errors.SerializationError):
        repo.save(a)
    assert store.end_position == end and not repo.exists("o1")
    assert len(a.pending_events) == 2


def test_metadata_is_recorded(store):
    repo = Repository(store, Account)
    repo.save(Account.open("a", "m1"), metadata={"correlation_id": "c-1"})
    (rec,) = store.read("acct-m1")
    assert json.loads(rec.metadata) == {"correlation_id": "c-1"}


# ---------------------------------------------------------------- snapshots
def _reads(store, monkeypatch):
    calls = []
    real = store.read

    def spy(stream_id, from_version=None, to_version=None, **kw):
        calls.append((stream_id, from_version, to_version))
        return real(stream_id, from_version, to_version, **kw)

    monkeypatch.setattr(store, "read", spy)
    return calls


def test_snapshot_every_n_and_get_reads_only_after_it(store, log, monkeypatch):
    repo = Repository(store, Account, snapshot_every=10)
    a = Account.open("alice", "s1")
    repo.save(a)
    for i in range(24):
        a.deposit(1)
        repo.save(a)            # 25 events: snapshots when the count reaches 10 and 20
    snap = repo.latest_snapshot("s1")
    assert snap is not None and snap.version == 19 and snap.type == "Account"
    assert f"{store.topic.name}.snapshots" in log.topics()
    assert log.topic(f"{store.topic.name}.snapshots").config.cleanup_policy == "compact"
    calls = _reads(store, monkeypatch)
    b = repo.get("s1")
    assert (b.balance, b.version) == (24, 24)
    assert calls == [("acct-s1", 19, None)]   # one read, from the snapshot's version
    # Another repository (another process would do the same) finds it from the topic.
    other = Repository(store, Account, snapshot_every=10)
    assert other.get("s1").balance == 24
    # An older version than the snapshot replays from the start.
    assert repo.get("s1", version=5).balance == 5
    assert repo.get("s1", version=19).balance == 19


def test_a_batch_save_crossing_several_multiples_takes_one_snapshot(store):
    repo = Repository(store, Account, snapshot_every=3)
    a = Account.open("x", "s2")
    for _ in range(9):
        a.deposit(2)
    repo.save(a)
    assert repo.latest_snapshot("s2").version == 9
    assert repo.get("s2").balance == 18


def test_broken_or_stale_snapshots_never_break_get(store, log):
    repo = Repository(store, Account, snapshot_every=2)
    a = Account.open("x", "s3")
    a.deposit(5)
    repo.save(a)
    good = repo.latest_snapshot("s3")
    assert good.version == 1
    topic = log.topic(f"{store.topic.name}.snapshots")
    import pyarrow as pa
    from tidelog.es import SNAPSHOT_SCHEMA

    def put(**over):
        row = dict(id="acct-s3", version=1, event_id=good.event_id.bytes, type="Account", class_version=1,
                   state_type=good.state_type, state=good.state, timestamp=time.time_ns())
        row.update(over)
        topic.append(pa.Table.from_pylist([row], schema=SNAPSHOT_SCHEMA))

    put(state=b"\xff not json")                                   # undecodable
    with pytest.warns(SnapshotWarning):
        assert repo.get("s3").balance == 5
    for bad in (dict(event_id=uuid.uuid4().bytes, state=b'{"owner": "x", "balance": 999}'),   # another history
                dict(class_version=7, state=b'{"owner": "x", "balance": 999}'),              # another state shape
                dict(type="Other", state=b'{"owner": "x", "balance": 999}'),
                dict(version=50, state=b'{"owner": "x", "balance": 999}')):                  # beyond the stream
        put(**bad)
        with warnings.catch_warnings():
            warnings.simplefilter("error", SnapshotWarning)
            got = repo.get("s3")
        assert (got.balance, got.version) == (5, 1)
    topic.tombstone(["acct-s3"])
    assert repo.get("s3").balance == 5


def test_unserializable_state_warns_and_the_save_stands(store):
    class Holder(Account):
        def snapshot(self):
            return {"x": object()}

    repo = Repository(store, Holder, snapshot_every=1)
    h = Holder.open("x", "s4")
    with pytest.warns(SnapshotWarning):
        repo.save(h)
    assert repo.get("s4").owner == "x" and repo.latest_snapshot("s4") is None


def test_snapshot_of_a_deleted_and_rewritten_stream_is_not_used(store):
    repo = Repository(store, Account, snapshot_every=1)
    a = Account.open("x", "s5")
    a.deposit(100)
    repo.save(a)
    assert repo.latest_snapshot("s5").version == 1
    store.delete_stream("acct-s5")
    with pytest.raises(AggregateNotFoundError):
        repo.get("s5")
    assert not repo.exists("s5")
    # Written again: versions go on, the old snapshot names a hidden event.
    store.append("acct-s5", [NewEvent("Opened", b'{"owner": "new"}')], expected_version=tidelog.NO_STREAM)
    b = repo.get("s5")
    assert (b.owner, b.balance) == ("new", 0) and b.version == store.stream_version("acct-s5")


# ---------------------------------------------------------------- upcasting
def test_upcasters_chain_and_rename(store):
    up = Upcasters()

    @up.register("Deposited", from_version=1)
    def cents_to_units(d):                 # v1 {"cents"} -> v2 {"units"}
        return {"units": d["cents"]}

    @up.register("Deposited", from_version=2)
    def units_to_amount(d):                # v2 {"units"} -> v3 {"amount"}
        return {"amount": d["units"]}

    # "Credited" v1 was renamed: it becomes a "Deposited" v2, and the chain goes on from there.
    up.add("Credited", 1, lambda d: {"units": d["value"]}, to_type="Deposited")

    store.append("acct-u1", [NewEvent("Opened", b'{"owner": "old"}'),
                             NewEvent("Deposited", b'{"cents": 7}'),                          # no version: 1
                             NewEvent("Deposited", b'{"units": 5}', b'{"schema_version": 2}'),
                             NewEvent("Credited", b'{"value": 3}'),
                             NewEvent("Deposited", b'{"amount": 1}', b'{"schema_version": 3}')])
    assert up.upcast("Credited", 1, {"value": 3}) == ("Deposited", 3, {"amount": 3})
    a = Repository(store, Account, upcasters=up).get("u1")
    assert (a.owner, a.balance, a.version) == ("old", 16, 4)


def test_schema_version_is_recorded_and_newer_data_is_refused(log):
    @dataclasses.dataclass
    class Deposited:              # the v2 class, under the stored name "Deposited"
        __schema_version__ = 2
        amount: int

    class V2(Aggregate):
        stream_prefix = "acct-"
        balance = 0

        @applies(Opened)
        def _opened(self, e):
            pass

        @applies(Deposited)
        def _dep2(self, e):
            self.balance += e.amount

    store = log.event_store("v2")
    repo = Repository(store, V2)
    a = V2("v")
    a.trigger(Opened("x"))
    a.trigger(Deposited(4))
    repo.save(a)
    recs = store.read("acct-v")
    assert recs[0].metadata is None and json.loads(recs[1].metadata) == {"schema_version": 2}
    assert repo.get("v").balance == 4
    store.append("acct-v", [NewEvent("Deposited", b'{"amount": 1}', b'{"schema_version": 3}')])
    with pytest.raises(UpcastError, match="newer"):
        repo.get("v")


def test_failing_upcaster_is_a_typed_error(store):
    up = Upcasters({("Deposited", 1): lambda d: d["missing"]})
    store.append("acct-f", [NewEvent("Opened", b'{"owner": "o"}'), NewEvent("Deposited", b'{"amount": 1}')])
    with pytest.raises(UpcastError, match="KeyError"):
        Repository(store, Account, upcasters=up).get("f")
    with pytest.raises(ValueError):
        up.add("Deposited", 1, lambda d: d)   # one upcaster per (type, version)
    with pytest.raises(UpcastError, match="not a dict"):
        Repository(store, Account, upcasters={("Deposited", 1): lambda d: [d]}).get("f")


# ---------------------------------------------------------------- several processes
CHILD = r"""
import sys
import tidelog
sys.path.insert(0, sys.argv[3])
from _es_domain import Account
from tidelog.es import Repository
log = tidelog.open(sys.argv[1])
repo = Repository(log.event_store("bank"), Account, snapshot_every=7)
won = []
for _ in range(int(sys.argv[2])):
    while True:
        a = repo.get("shared")
        a.deposit(1)
        try:
            repo.save(a)
        except tidelog.WrongExpectedVersionError:
            continue
        won.append(a.version)
        break
print(" ".join(map(str, won)))
log.close()
"""


def test_processes_saving_one_aggregate_exactly_one_wins_per_version(log, log_dir):
    store = log.event_store("bank")
    Repository(store, Account).save(Account.open("shared", "shared"))
    procs, per_proc = 3, 15
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(log_dir), str(per_proc),
                                  os.path.dirname(__file__)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(procs)]
    won: list[int] = []
    for c in children:
        out, err = c.communicate(timeout=300)
        assert c.returncode == 0, err
        won += [int(v) for v in out.split()]
    assert sorted(won) == list(range(1, procs * per_proc + 1))   # every version won exactly once
    a = Repository(store, Account, snapshot_every=7).get("shared")
    assert a.balance == procs * per_proc and a.version == procs * per_proc


def test_two_event_classes_with_one_type_name_warn(store):
    @dataclasses.dataclass
    class Opened:                 # same name as _es_domain.Opened, another class
        owner: str

    class Other(Aggregate):
        @applies(Opened)
        def _o(self, e):
            pass

    Repository(store, Account)
    with pytest.warns(UserWarning, match="is not registered"):
        Repository(store, Other)
