"""tidelog.es.Aggregate: handlers, trigger/collect, versions, snapshots of state."""
from __future__ import annotations

import dataclasses

import pytest

import tidelog
from tidelog.es import Aggregate, UnknownEventError, applies

from _es_domain import Account, Deposited, Opened, Withdrawn


def test_new_aggregate_has_no_stream_version_and_an_id():
    a = Account()
    assert a.version == tidelog.NO_STREAM == -1
    assert isinstance(a.id, str) and len(a.id) == 36
    assert a.stream_id == "acct-" + a.id
    assert Account("x").id == "x"
    with pytest.raises(TypeError):
        Account("")
    with pytest.raises(TypeError):
        Account(5)  # type: ignore[arg-type]


def test_trigger_applies_and_collects():
    a = Account.open("alice", "a1")
    a.deposit(10)
    a.deposit(5)
    a.withdraw(3)
    assert (a.owner, a.balance, a.version) == ("alice", 12, 3)
    assert a.pending_events == (Opened("alice"), Deposited(10), Deposited(5), Withdrawn(3))
    events = a.collect_events()
    assert [type(e) for e in events] == [Opened, Deposited, Deposited, Withdrawn]
    assert a.collect_events() == [] and a.pending_events == ()
    assert a.version == 3


def test_a_rule_that_refuses_records_nothing():
    a = Account.open("bob")
    with pytest.raises(ValueError):
        a.withdraw(1)
    assert a.version == 0 and len(a.pending_events) == 1


def test_unknown_event_is_a_typed_error_and_changes_nothing():
    @dataclasses.dataclass
    class Frozen:
        reason: str

    a = Account.open("carol")
    with pytest.raises(UnknownEventError, match="Frozen"):
        a.trigger(Frozen("fraud"))
    assert a.version == 0 and len(a.pending_events) == 1
    assert issubclass(UnknownEventError, tidelog.TidelogError)


def test_handlers_by_type_name_base_class_and_override():
    @dataclasses.dataclass
    class Base:
        n: int

    @dataclasses.dataclass
    class Child(Base):
        pass

    class Counter(Aggregate):
        total = 0

        @applies(Base)
        def _base(self, e):
            self.total = self.total + e.n

        @applies("Renamed")
        def _renamed(self, e):
            self.total = self.total + e["n"] * 100

    class Doubler(Counter):
        @applies(Child)
        def _child(self, e):
            self.total = self.total + 2 * e.n

    c = Counter()
    c.trigger(Base(1))
    c.trigger(Child(1))          # base-class handler
    c._apply({"n": 1}, "Renamed")  # by stored name (what a repository does for dict events)
    assert c.total == 102
    d = Doubler()
    d.trigger(Child(1))
    d.trigger(Base(1))
    assert d.total == 3


def test_applies_rejects_bad_arguments():
    with pytest.raises(TypeError):
        applies()
    with pytest.raises(TypeError):
        applies(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        applies("")


def test_snapshot_round_trip_without_init():
    class Picky(Account):
        def __init__(self, id, required):  # a loaded instance must not need this
            super().__init__(id)
            self.required = required

    p = Picky("p1", required=True)
    p.trigger(Opened("dan"))
    p.trigger(Deposited(7))
    state = p.snapshot()
    assert state == {"owner": "dan", "balance": 7, "required": True}
    q = Picky.from_snapshot("p1", p.version, state)
    assert (q.id, q.version, q.owner, q.balance, q.pending_events) == ("p1", 1, "dan", 7, ())
    q.trigger(Deposited(1))
    assert q.version == 2 and q.balance == 8
