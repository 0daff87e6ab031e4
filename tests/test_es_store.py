"""The event store (tidelog.es.EventStore): appends with expected versions,
idempotent retries, atomic multi-stream appends, stream reads through the
index, deletes, read_all, subscriptions, the index snapshot, bad input."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import uuid

import pyarrow as pa
import pytest

import tidelog
from tidelog.es import EVENT_SCHEMA, EventFilter, JsonSerializer, NewEvent, RecordedEvent, WriteResult


@pytest.fixture
def log(tmp_path):
    with tidelog.open(tmp_path / "log") as lg:
        yield lg


@pytest.fixture
def store(log):
    return log.event_store("bank")


def ev(kind="E", data=b"", **kw):
    return NewEvent(kind, data, **kw)


@dataclasses.dataclass
class Deposited:
    amount: int


# ------------------------------------------------------------------ appends
def test_append_and_read_a_stream(store):
    r = store.append("acc-1", [ev("Opened", b"o"), ev("Deposited", b"d")], expected_version=tidelog.NO_STREAM)
    assert r == WriteResult(1, [0, 1]) and r.position == 1
    r = store.append("acc-2", [ev("Opened")], expected_version=tidelog.NO_STREAM)
    assert r == WriteResult(0, [2])
    r = store.append("acc-1", [ev("Withdrawn", b"w")], expected_version=1)
    assert r == WriteResult(2, [3])
    got = store.read("acc-1")
    assert [(e.stream_id, e.version, e.position, e.type, e.data) for e in got] == [
        ("acc-1", 0, 0, "Opened", b"o"), ("acc-1", 1, 1, "Deposited", b"d"), ("acc-1", 2, 3, "Withdrawn", b"w")]
    assert all(isinstance(e, RecordedEvent) and isinstance(e.event_id, uuid.UUID) for e in got)
    assert got[0].timestamp > 1_700_000_000 * 10**9
    assert store.stream_version("acc-1") == 2 and store.stream_version("nope") == tidelog.NO_STREAM
    assert store.streams() == ["acc-1", "acc-2"] and store.streams("acc-2") == ["acc-2"]
    assert store.end_position == 4 and store.event_count == 4


def test_read_ranges_backwards_and_limits(store):
    store.append("s", [ev(data=b"%d" % i) for i in range(10)])
    data = lambda evs: [int(e.data) for e in evs]  # noqa: E731
    assert data(store.read("s", 3, 5)) == [3, 4, 5]
    assert data(store.read("s", 7)) == [7, 8, 9]
    assert data(store.read("s", limit=2)) == [0, 1]
    assert data(store.read("s", backwards=True, limit=3)) == [9, 8, 7]
    assert data(store.read("s", 5, 2, backwards=True)) == [5, 4, 3, 2]
    assert data(store.read("s", 20)) == [] and store.read("unknown") == []
    assert store.last_event("s").version == 9 and store.last_event("unknown") is None
    assert store.read("s", limit=0) == []


@pytest.mark.parametrize("expected, exists, ok", [
    (tidelog.ANY, False, True), (tidelog.ANY, True, True),
    (tidelog.NO_STREAM, False, True), (tidelog.NO_STREAM, True, False),
    (tidelog.STREAM_EXISTS, False, False), (tidelog.STREAM_EXISTS, True, True),
    (0, True, True), (1, True, False), (0, False, False),
])
def test_expected_version_meanings(store, expected, exists, ok):
    if exists:
        store.append("s", [ev()])
    before = store.end_position
    if ok:
        store.append("s", [ev()], expected_version=expected)
        assert store.end_position == before + 1
    else:
        with pytest.raises(tidelog.WrongExpectedVersionError) as e:
            store.append("s", [ev()], expected_version=expected)
        assert e.value.stream_id == "s" and e.value.expected_version == expected
        assert e.value.actual_version == (0 if exists else -1)
        assert isinstance(e.value, tidelog.IntegrityError)
        assert store.end_position == before


def test_idempotent_retries_return_the_first_result(store):
    events = [ev("A"), ev("B")]
    first = store.append("s", events, expected_version=tidelog.NO_STREAM)
    assert store.append("s", events, expected_version=tidelog.NO_STREAM) == first
    more = [ev("C")]
    second = store.append("s", more, expected_version=1)
    assert store.append("s", more, expected_version=1) == second
    assert store.append("s", more, expected_version=tidelog.ANY) == second
    assert store.append("s", events, expected_version=tidelog.STREAM_EXISTS) == first
    assert store.stream_version("s") == 2 and store.end_position == 3
    # the same ids at another version are a conflict, not a duplicate
    with pytest.raises(tidelog.WrongExpectedVersionError):
        store.append("s", more, expected_version=0)
    # ids given as strings (a retry after the process died) match too
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    r = store.append("t", [ev(event_id=ids[0]), ev(event_id=ids[1])], expected_version=tidelog.NO_STREAM)
    assert store.append("t", [ev(event_id=ids[0]), ev(event_id=ids[1])], expected_version=tidelog.NO_STREAM) == r
    assert [str(e.event_id) for e in store.read("t")] == ids


def test_append_many_is_atomic_across_streams(store):
    store.append("a", [ev()])
    rs = store.append_many([("a", [ev(), ev()], 0), ("b", [ev()], tidelog.NO_STREAM)])
    assert rs == [WriteResult(2, [1, 2]), WriteResult(0, [3])]
    before = store.end_position
    with pytest.raises(tidelog.WrongExpectedVersionError):  # b exists: nothing of a is written either
        store.append_many([("a", [ev()], 2), ("b", [ev()], tidelog.NO_STREAM)])
    assert store.end_position == before and store.stream_version("a") == 2
    frames = store.topic.partition(0).frames(1, 4)
    assert [(f.base_offset, f.record_count) for f in frames] == [(1, 3)]  # one frame: all or none after a crash


def test_precondition_runs_under_the_lock_and_can_abort(store):
    seen = []

    def check():
        seen.append(store.stream_version("a"))
        if len(seen) == 2:
            raise RuntimeError("no")

    store.append_many([("a", [ev()], tidelog.ANY)], precondition=check)
    with pytest.raises(RuntimeError):
        store.append_many([("a", [ev()], tidelog.ANY)], precondition=check)
    assert seen == [-1, 0] and store.stream_version("a") == 0


def test_domain_objects_go_through_the_serializer(log):
    ser = JsonSerializer()
    ser.register(Deposited)
    store = log.event_store("objs", serializer=ser)
    store.append("acc", [Deposited(5), {"type": "Note", "text": "hi"}])
    a, b = store.read("acc")
    assert (a.type, a.data, a.decode()) == ("Deposited", b'{"amount":5}', Deposited(5))
    assert (b.type, b.decode()) == ("Note", {"text": "hi"})
    assert log.event_store("objs") is store
    with pytest.raises(tidelog.InvalidArgumentError):
        log.event_store("objs", serializer=JsonSerializer())


@pytest.mark.parametrize("call, error", [
    (lambda s: s.append("s", [ev()], expected_version=-3), tidelog.InvalidArgumentError),
    (lambda s: s.append("s", [ev()], expected_version="0"), tidelog.InvalidArgumentError),
    (lambda s: s.append("s", [ev()], expected_version=True), tidelog.InvalidArgumentError),
    (lambda s: s.append("s", [NewEvent("E", event_id="not-a-uuid")]), tidelog.InvalidArgumentError),
    (lambda s: s.append("s", [object()]), tidelog.SerializationError),
    (lambda s: s.append("s", [{"type": "T", "x": object()}]), tidelog.SerializationError),
    (lambda s: s.append("s", [{"x": 1}]), tidelog.SerializationError),
    (lambda s: s.append("s", []), tidelog.InvalidArgumentError),
    (lambda s: s.append("s", ev()), tidelog.InvalidArgumentError),
    (lambda s: s.append("", [ev()]), tidelog.InvalidArgumentError),
    (lambda s: s.append(5, [ev()]), tidelog.InvalidArgumentError),
    (lambda s: s.append("s", [NewEvent("E", event_id=uuid.UUID(int=1)), NewEvent("F", event_id=uuid.UUID(int=1))]),
     tidelog.InvalidArgumentError),
    (lambda s: s.append_many([("s", [ev()], 0), ("s", [ev()], 1)]), tidelog.InvalidArgumentError),
    (lambda s: s.append_many([("s", [ev()])]), tidelog.InvalidArgumentError),
    (lambda s: s.read("s", -1), tidelog.InvalidArgumentError),
    (lambda s: s.read_all(filter="x"), tidelog.InvalidArgumentError),
    (lambda s: s.subscribe(-5), tidelog.InvalidArgumentError),
])
def test_bad_input_is_a_typed_error_and_writes_nothing(store, call, error):
    store.append("s", [ev()])
    before = pa.table(store.scan())
    with pytest.raises(error):
        call(store)
    assert pa.table(store.scan()).equals(before)
    assert store.stream_version("s") == 0


def test_bad_store_names_and_event_values():
    with pytest.raises(tidelog.InvalidArgumentError):
        NewEvent("")
    with pytest.raises(tidelog.InvalidArgumentError):
        NewEvent("E", "text")  # data is bytes
    with pytest.raises(tidelog.InvalidArgumentError):
        NewEvent("E", b"", metadata="m")


def test_store_names_are_checked(log):
    for bad in ("", "a/b", "..", "x" * 201, 5):
        with pytest.raises(tidelog.InvalidArgumentError):
            log.event_store(bad)


def test_a_foreign_topic_under_the_store_name_is_refused(log):
    log.create_topic("__es.fake", schema=pa.schema([("x", pa.int64())]))
    with pytest.raises(tidelog.SchemaMismatchError):
        log.event_store("fake")


# ------------------------------------------------------------------ deletes
def test_soft_delete_hides_and_the_stream_can_come_back(store):
    store.append("s", [ev(data=b"0"), ev(data=b"1")])
    store.append("t", [ev()])
    pos = store.delete_stream("s", expected_version=1)
    assert pos == 3
    assert store.read("s") == [] and store.stream_version("s") == tidelog.NO_STREAM and store.streams() == ["t"]
    with pytest.raises(tidelog.WrongExpectedVersionError):
        store.append("s", [ev()], expected_version=tidelog.STREAM_EXISTS)
    r = store.append("s", [ev(data=b"2")], expected_version=tidelog.NO_STREAM)
    assert r.version == 2  # versions go on after a soft delete
    assert [e.data for e in store.read("s")] == [b"2"]
    assert [e.data for e in store.read_all(filter=EventFilter(stream_prefixes=["s"]))] == [b"0", b"1", b"2"]


def test_hard_delete_is_for_good(store):
    store.append("s", [ev()])
    store.delete_stream("s", hard=True)
    for call in (lambda: store.read("s"), lambda: store.stream_version("s"),
                 lambda: store.append("s", [ev()]), lambda: store.delete_stream("s")):
        with pytest.raises(tidelog.StreamDeletedError):
            call()
    with pytest.raises(tidelog.WrongExpectedVersionError):
        store.delete_stream("t", expected_version=0)
    assert store.streams() == []


# ------------------------------------------------------------------ global order
def test_read_all_filters_and_bounds(store):
    store.append("order-1", [ev("Placed"), ev("Paid")])
    store.append("user-1", [ev("Joined")])
    store.append("$tracking-x", [ev("Tracked")])
    store.append("order-2", [ev("Placed")])
    kinds = lambda it: [(e.stream_id, e.type) for e in it]  # noqa: E731
    assert kinds(store.read_all()) == [("order-1", "Placed"), ("order-1", "Paid"), ("user-1", "Joined"),
                                       ("order-2", "Placed")]
    assert kinds(store.read_all(filter=EventFilter(event_types=["Placed"]))) == [("order-1", "Placed"),
                                                                                 ("order-2", "Placed")]
    assert kinds(store.read_all(filter=EventFilter(stream_prefixes="user"))) == [("user-1", "Joined")]
    assert kinds(store.read_all(filter=EventFilter(include_system=True), from_position=3, to_position=4)) == [
        ("$tracking-x", "Tracked")]
    assert kinds(store.read_all(2, limit=1)) == [("user-1", "Joined")]


def test_scan_gives_arrow_in_the_event_schema(store):
    store.append("a", [ev("X", b"1", metadata=b"m")])
    t = pa.table(store.scan())
    assert t.schema.equals(EVENT_SCHEMA, check_metadata=False)
    assert t.column("metadata").to_pylist() == [b"m"] and t.column("stream_id").to_pylist() == ["a"]
    duckdb = pytest.importorskip("duckdb")
    scan = store.scan(columns=["stream_id", "type"])
    assert duckdb.sql("select count(*) from scan").fetchall() == [(1,)]


# ------------------------------------------------------------------ subscriptions
def test_subscription_catches_up_then_follows_live(store):
    store.append("a", [ev(data=b"0"), ev(data=b"1")])
    sub = store.subscribe(1)
    assert sub.poll(0).data == b"1" and sub.position == 2
    assert sub.poll(0.05) is None

    def later():
        time.sleep(0.2)
        store.append("b", [ev(data=b"2")])

    threading.Thread(target=later).start()
    t0 = time.monotonic()
    got = sub.poll(5)
    assert got.data == b"2" and time.monotonic() - t0 < 3
    sub.close()
    assert sub.poll(1) is None and list(sub) == []


def test_subscription_filter_and_close_from_another_thread(store):
    store.append("x-1", [ev("A"), ev("B")])
    with store.subscribe(filter=EventFilter(event_types=["B"])) as sub:
        assert sub.poll(0).type == "B"
        threading.Timer(0.2, sub.close).start()
        assert sub.poll() is None


CHILD_APPEND = """
import sys, tidelog
from tidelog.es import NewEvent
with tidelog.open(sys.argv[1]) as log:
    s = log.event_store("bank")
    for i in range(int(sys.argv[2])):
        s.append("child", [NewEvent("E", str(i).encode())], expected_version=i - 1 if i else tidelog.NO_STREAM)
"""


def test_a_subscription_sees_another_process_appends_live(log, store, tmp_path):
    sub = store.subscribe(0)
    p = subprocess.Popen([sys.executable, "-c", CHILD_APPEND, str(tmp_path / "log"), "20"])
    got = [sub.poll(30) for _ in range(20)]
    assert p.wait(60) == 0
    assert [e.data for e in got] == [str(i).encode() for i in range(20)]
    # and this process's index learns the other's appends (version checks, reads)
    assert store.stream_version("child") == 19
    with pytest.raises(tidelog.WrongExpectedVersionError):
        store.append("child", [ev()], expected_version=18)
    store.append("child", [ev()], expected_version=19)


def test_competing_subscription_through_a_group(log, store):
    store.append("a", [ev(data=b"%d" % i) for i in range(5)])
    first = store.subscribe(group="readers")
    got = [first.poll(5).data for _ in range(3)]
    first.commit()
    first.close()
    second = store.subscribe(group="readers")
    rest = [second.poll(5).data for _ in range(2)]
    assert got + rest == [b"0", b"1", b"2", b"3", b"4"]
    second.close()


# ------------------------------------------------------------------ the index
def test_reopen_uses_the_snapshot_and_agrees_with_a_rebuild(tmp_path):
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        s = log.event_store("bank")
        for i in range(300):
            s.append(f"s-{i % 13}", [ev(data=b"%d" % i)], durable=False)
        s.delete_stream("s-4")
        s.delete_stream("s-5", hard=True)
        expected = {sid: [e.data for e in s.read(sid)] for sid in s.streams()}
    snap = path / "stores" / "bank" / "stream-index"
    assert snap.exists()
    for damage in ("none", "flip", "truncate", "remove", "foreign"):
        if damage == "flip":
            b = bytearray(snap.read_bytes())
            b[len(b) // 2] ^= 0xFF
            snap.write_bytes(bytes(b))
        elif damage == "truncate":
            snap.write_bytes(snap.read_bytes()[:100])
        elif damage == "remove":
            snap.unlink()
        elif damage == "foreign":
            idx = tidelog._core.StreamIndex()
            idx.add("ghost", 0, 1, 0)
            idx.save(str(snap), 12345)
        with tidelog.open(path) as log:
            s = log.event_store("bank")
            assert {sid: [e.data for e in s.read(sid)] for sid in s.streams()} == expected, damage
            with pytest.raises(tidelog.StreamDeletedError):
                s.read("s-5")


def test_a_snapshot_ahead_of_the_log_is_not_trusted(tmp_path):
    """A snapshot whose positions pass the log's end (the log lost its tail, or
    the snapshot is from a longer history of the same store) is rebuilt, never used."""
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    with tidelog.open(a) as log:
        log.event_store("bank").append("x", [ev()])
    shutil.copytree(a, b)
    with tidelog.open(a) as log:
        s = log.event_store("bank")
        for i in range(5):
            s.append(f"y{i}", [ev()])
    shutil.copy(a / "stores" / "bank" / "stream-index", b / "stores" / "bank" / "stream-index")
    with tidelog.open(b) as log:
        s = log.event_store("bank")
        assert s.streams() == ["x"] and s.stream_version("y4") == tidelog.NO_STREAM
        assert s.append("y0", [ev()], expected_version=tidelog.NO_STREAM).positions == [1]


def test_read_only_log_reads_the_store(tmp_path):
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        log.event_store("bank").append("a", [ev(data=b"1")])
    with tidelog.open(path, read_only=True) as log:
        s = log.event_store("bank")
        assert [e.data for e in s.read("a")] == [b"1"]
        with pytest.raises(tidelog.ReadOnlyError):
            s.append("a", [ev()])
        with pytest.raises(tidelog.UnknownTopicError):
            log.event_store("other")


def test_closed_store_and_log(tmp_path):
    log = tidelog.open(tmp_path / "log")
    s = log.event_store("bank")
    s.append("a", [ev()])
    log.close()
    with pytest.raises(tidelog.LogClosedError):
        s.append("a", [ev()])
    with pytest.raises(tidelog.LogClosedError):
        s.read("a")


def test_damaged_events_cost_only_themselves(tmp_path):
    """A flipped byte in one event's frame: that event is skipped with a
    CorruptionWarning; every other stream reads whole, and appends go on."""
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        s = log.event_store("bank")
        for i in range(10):
            s.append(f"s-{i % 3}", [ev(data=b"payload-%d" % i)])
        victim = log.topic("__es.bank").partition(0).frames(4, 5)[0]
        where = victim.position + 64 + victim.length // 2
    (path / "stores" / "bank" / "stream-index").unlink()
    seg = path / "topics" / "__es.bank" / "0" / "00000000000000000000.log"
    data = bytearray(seg.read_bytes())
    data[where] ^= 0xFF
    seg.write_bytes(bytes(data))
    with tidelog.open(path) as log:
        with pytest.warns(tidelog.CorruptionWarning):
            s = log.event_store("bank")
        assert [e.data for e in s.read("s-0")] == [b"payload-0", b"payload-3", b"payload-6", b"payload-9"]
        assert [e.data for e in s.read("s-1")] == [b"payload-1", b"payload-7"]  # 4 was damaged
        # the damaged event's version stays taken: the next append gets a new one
        assert s.stream_version("s-1") == 2 and s.append("s-1", [ev()], expected_version=2).version == 3
        assert [e.version for e in s.read("s-1")] == [0, 2, 3]
        s.append("s-2", [ev(data=b"new")])
        assert s.read("s-2")[-1].data == b"new"


CHILD_MEMBER = """
import sys, tidelog
with tidelog.open(sys.argv[1]) as log:
    sub = log.event_store("bank").subscribe(group="billing")
    for i in range(3):
        e = sub.poll(30)
        print(e.data.decode(), flush=True)
    sub.commit()
    print("committed", flush=True)
    sub.poll(30)  # holds the next event, uncommitted, until killed
    print("holding", flush=True)
    import time; time.sleep(60)
"""


def test_a_competing_subscription_fails_over_when_its_member_is_killed(log, store, tmp_path):
    import signal

    store.append("a", [ev(data=b"%d" % i) for i in range(6)])
    p = subprocess.Popen([sys.executable, "-c", CHILD_MEMBER, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True)
    lines = [p.stdout.readline().strip() for _ in range(5)]
    assert lines == ["0", "1", "2", "committed", "holding"]
    standby = store.subscribe(group="billing")
    assert standby.poll(0.3) is None  # the child owns the store's partition
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    t0 = time.monotonic()
    got = standby.poll(10)
    assert got.data == b"3"  # from the committed position: event 3 again (at least once)
    assert time.monotonic() - t0 < 5
    assert [standby.poll(5).data for _ in range(2)] == [b"4", b"5"]
    standby.close()


def test_marker_types_are_reserved(store):
    for bad in (lambda: NewEvent("$deleted"), lambda: store.append("s", [{"type": "$tombstone"}])):
        with pytest.raises(tidelog.InvalidArgumentError):
            bad()
    assert store.end_position == 0


def test_a_precondition_sees_what_the_version_check_sees(store):
    """Rows of this process still in flight (durable=False) are visible to a
    precondition's reads, as they are to the version check."""
    store.append("t", [ev(data=b"first")], durable=False)
    seen = []
    store.append_many([("u", [ev()], tidelog.ANY)], precondition=lambda: seen.append(store.last_event("t")))
    assert seen[0] is not None and seen[0].data == b"first"


def test_an_event_store_topic_keeps_every_event(log, store):
    store.append("s", [ev()])
    for change in ({"cleanup_policy": "compact"}, {"retention_ms": 1000}):
        with pytest.raises(tidelog.InvalidArgumentError):
            log.alter_topic(store.topic.name, **change)
    assert store.topic.config.cleanup_policy == "delete"
