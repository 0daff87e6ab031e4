"""The Kafka backend's compiled per-record paths (src/kafka_fastpath.pyx,
tidelog.kafka._fastpath): that they are what the backend runs (a build that
fell back to Python fails here), and that what they build is what the plain
Python/pyarrow construction gives, nulls, headers and runs of partitions
included."""
from __future__ import annotations

import importlib.machinery
import uuid

import pyarrow as pa
import pytest

import tidelog
from tidelog.kafka import _fastpath
from tidelog.kafka._records import payload_batch


class FakeMessage:
    """A confluent Message look-alike (another class: the module's ordinary-call path)."""

    def __init__(self, topic, partition, offset, key=None, value=b"v", headers=None, error=None, ts_ms=1_000):
        self._f = (topic, partition, offset, key, value, headers, error, ts_ms)

    def topic(self): return self._f[0]
    def partition(self): return self._f[1]
    def offset(self): return self._f[2]
    def key(self): return self._f[3]
    def value(self): return self._f[4]
    def headers(self): return self._f[5]
    def error(self): return self._f[6]
    def timestamp(self): return (1, self._f[7])


def test_the_compiled_module_is_what_the_backend_uses():
    assert _fastpath.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert tidelog.kafka.KafkaDeliveryFuture is _fastpath.KafkaDeliveryFuture
    # Every getter of confluent's Message is called as its C function (a confluent-kafka whose
    # getters changed kind would fall back to ordinary calls, and should be looked at).
    assert _fastpath.direct_getters() == 8


def test_byte_columns_match_pyarrow_with_nulls_and_headers():
    msgs = [FakeMessage("t", 0, 10, key=None, value=b"a"),
            FakeMessage("t", 0, 11, key=b"k1", value=None),
            FakeMessage("t", 0, 12, key=b"", value=b"", headers=[("h", b"1")]),
            FakeMessage("t", 0, 13, key=b"k3", value=b"xyz" * 100, ts_ms=-1)]
    offsets, stamps, keys, values, headers = _fastpath.byte_columns(msgs)
    assert offsets.tolist() == [10, 11, 12, 13]
    assert stamps.tolist() == [1_000_000_000] * 3 + [-1_000_000]
    for got, want in ((keys, [None, b"k1", b"", b"k3"]), (values, [b"a", None, b"", b"xyz" * 100])):
        got.validate(full=True)
        assert got.equals(pa.array(want, pa.binary()))
    assert headers == [None, None, [("h", b"1")], None]


def test_byte_columns_all_null_none_null_and_empty():
    offsets, _, keys, values, headers = _fastpath.byte_columns([FakeMessage("t", 0, i) for i in range(9)])
    assert keys.equals(pa.nulls(9, pa.binary())) and keys.null_count == 9
    assert values.equals(pa.array([b"v"] * 9, pa.binary())) and values.null_count == 0
    assert headers is None  # no message has headers: the batch builds empty lists without per-record objects
    offsets, stamps, keys, values, headers = _fastpath.byte_columns([])
    assert len(offsets) == len(stamps) == len(keys) == len(values) == 0


def test_byte_columns_refuse_a_value_that_is_not_bytes():
    with pytest.raises(TypeError, match="bytes or None"):
        _fastpath.byte_columns([FakeMessage("t", 0, 0, value="text")])
    with pytest.raises(TypeError, match="bytes or None"):
        _fastpath.byte_columns([FakeMessage("t", 0, 0, key=memoryview(b"k"))])


def test_payload_batch_equals_the_record_schema_built_from_lists():
    class NoColumnar:
        def is_columnar(self, topic):
            return False

    msgs = [FakeMessage("t", 0, i, key=None if i % 3 else b"k%d" % i, value=b"%d" % i,
                        headers=[("n", b"%d" % i)] if i == 4 else None) for i in range(7)]
    batch, offsets = payload_batch(NoColumnar(), "t", msgs)
    batch.validate(full=True)
    assert offsets.tolist() == list(range(7))
    assert batch.column("key").to_pylist() == [None if i % 3 else b"k%d" % i for i in range(7)]
    assert batch.column("value").to_pylist() == [b"%d" % i for i in range(7)]
    assert batch.column("headers").to_pylist() == [[{"key": "n", "value": b"4"}] if i == 4 else [] for i in range(7)]


def test_usable_drops_errors_and_turns_newest_first():
    msgs = [FakeMessage("t", 0, 0), FakeMessage("t", 0, 1, error="boom"), FakeMessage("t", 0, 2)]
    good, failed = _fastpath.usable(msgs)
    assert [m.offset() for m in good] == [2, 0] and failed
    good, failed = _fastpath.usable(msgs[:1])
    assert [m.offset() for m in good] == [0] and not failed


def test_take_partition_stops_at_a_partition_change_and_at_max_records():
    # The buffer is newest first: popped from its end.
    buf = [FakeMessage("t", 1, 5), FakeMessage("t", 0, 4), FakeMessage("u", 0, 3), FakeMessage("t", 0, 2),
           FakeMessage("t", 0, 1)]
    topic, partition, taken = _fastpath.take_partition(buf, 100)
    assert (topic, partition, [m.offset() for m in taken]) == ("t", 0, [1, 2])
    assert [m.offset() for m in buf] == [5, 4, 3]
    topic, partition, taken = _fastpath.take_partition(buf, 100)
    assert (topic, partition, [m.offset() for m in taken]) == ("u", 0, [3])
    buf = [FakeMessage("t", 0, i) for i in range(9, -1, -1)]
    _, _, taken = _fastpath.take_partition(buf, 4)
    assert [m.offset() for m in taken] == [0, 1, 2, 3] and len(buf) == 6


@pytest.fixture
def kafka(kafka_broker):
    log = tidelog.connect(f"kafka://{kafka_broker.bootstrap}")
    yield log
    log.close()


def test_the_backend_runs_the_compiled_send_poll_and_futures(kafka):
    topic = f"fast-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic)
    try:
        with kafka.producer() as p:
            assert isinstance(p.send.__self__, _fastpath.SendPath)
            seen = []
            futs = [p.send(topic, b"v%d" % i, key=None if i % 2 else b"k%d" % i) for i in range(50)]
            futs.append(p.send(topic, "text", headers={"h": "x"}, on_delivery=lambda err, md: seen.append((err, md))))
            p.flush()
            assert all(type(f) is _fastpath.KafkaDeliveryFuture and f.done() for f in futs)
            assert [f.result().offset for f in futs] == list(range(51))
            assert seen == [(None, futs[-1].get())]
            late = []
            futs[0].add_done_callback(late.append)
            assert late == [futs[0]] and futs[0].exception() is None
        with kafka.consumer() as c:
            c.assign([(topic, 0)])
            assert isinstance(c.poll.__self__, _fastpath.ReadPath)
            first = c.poll(10)
            assert (first.topic, first.offset, first.key, first.value, first.headers) == (topic, 0, b"k0", b"v0", [])
            assert c.position(topic, 0) == 1
            rest = []
            for rec in c:
                rest.append(rec)
                if rec.offset == 50:
                    break
            assert [r.value for r in rest] == [b"v%d" % i for i in range(1, 50)] + [b"text"]
            assert rest[-1].headers == [("h", b"x")] and rest[0].key is None
            c.seek(topic, 0, 0)
            batch = c.poll_batch(1000, 10)
            got = batch.to_pydict()
            assert got["offset"][:3] == [0, 1, 2] and got["key"][:2] == [b"k0", None]
            assert got["value"][:2] == [b"v0", b"v1"]
            assert got["headers"][0] == [] and got["headers"][-1] == [{"key": "h", "value": b"x"}]
            assert c.position(topic, 0) == 51
    finally:
        kafka.delete_topic(topic)


def test_a_closed_producer_refuses_sends_and_its_futures_still_answer(kafka):
    topic = f"fast-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic)
    try:
        p = kafka.producer()
        fut = p.send(topic, b"x")
        p.close()
        assert fut.result(5).offset == 0
        with pytest.raises(tidelog.errors.LogClosedError):
            p.send(topic, b"y")
        with pytest.raises(tidelog.errors.UnknownTopicError):
            with kafka.producer() as q:
                q.send(f"absent-{uuid.uuid4().hex[:8]}", b"z")
    finally:
        kafka.delete_topic(topic)


def test_importing_the_backend_does_not_import_confluent_kafka():
    import subprocess
    import sys

    code = "import sys, tidelog.kafka; print('confluent_kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


class FakeClient:
    """A librdkafka producer look-alike: SendPath needs its produce and poll."""

    def produce(self, *args, **kwargs):
        pass

    def poll(self, timeout):
        return 0


def test_futures_leave_the_collector_only_while_nothing_they_hold_can_hold_them():
    import gc
    import weakref

    path = _fastpath.SendPath(FakeClient(), set(), lambda *args: None, 1000)
    plain = path.future(None)
    assert not gc.is_tracked(plain)  # holds the producer, later a Message: no cycle possible
    assert gc.is_tracked(path.future(print))
    plain.add_done_callback(lambda fut: None)
    assert gc.is_tracked(plain)

    class Witness:
        pass

    witness = Witness()
    gone = weakref.ref(witness)
    fut = path.future(None)
    fut.add_done_callback(lambda f, w=witness, me=fut: None)  # fut -> callback -> fut: a cycle
    del witness, fut
    gc.collect()
    assert gone() is None


def test_a_failed_delivery_resolves_to_a_tidelog_error_and_fires_callbacks():
    import gc

    from confluent_kafka import KafkaError

    path = _fastpath.SendPath(FakeClient(), set(), lambda *args: None, 1000)
    reports = []
    fut = path.future(lambda err, md: reports.append((err, md)))
    fut.add_done_callback(lambda f: reports.append(f.done()))
    fut(KafkaError(KafkaError._MSG_TIMED_OUT), FakeMessage("orders", 0, -1))
    err = fut.exception()
    assert isinstance(err, tidelog.errors.TidelogError) and "delivery to 'orders'" in str(err)
    assert err.kafka_code == "_MSG_TIMED_OUT" and reports == [(err, None), True]
    with pytest.raises(type(err)):
        fut.result()
    assert gc.is_tracked(fut)
    ok = path.future(None)
    ok(None, FakeMessage("orders", 2, 7, ts_ms=5))
    assert ok.result() == (("orders", 2, 7, 5_000_000)) and ok.get(0) is ok.result()


def test_positions_follow_every_record_across_partitions(kafka):
    # ReadPath keeps the last record's position in C and writes it into the dict when another
    # partition's record comes or when positions are read: each read must see every record so far.
    topic = f"fast-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=2)
    try:
        with kafka.producer() as p:
            for i in range(40):
                p.send(topic, b"%d" % i, partition=i % 2)
            p.flush()
        with kafka.consumer() as c:
            c.assign([(topic, 0), (topic, 1)])
            seen = {0: 0, 1: 0}
            got = 0
            for rec in c:
                seen[rec.partition] = rec.offset + 1
                assert c.position(topic, 0) == seen[0] and c.position(topic, 1) == seen[1]
                got += 1
                if got == 20:
                    break
            while got < 40:
                rec = c.poll(10)
                seen[rec.partition] = rec.offset + 1
                assert [tp.offset for tp in c.position([(topic, 0), (topic, 1)])] == [seen[0], seen[1]]
                got += 1
            assert seen == {0: 20, 1: 20} and c.lag() == {(topic, 0): 0, (topic, 1): 0}
            c.seek(topic, 1, 5)
            rec = c.poll(10)
            assert (rec.partition, rec.offset) == (1, 5) and c.position(topic, 1) == 6
    finally:
        kafka.delete_topic(topic)
