"""One suite, two backends: the tests of the public producer / consumer / group
/ Arrow API, each run on a local log and on a real Kafka broker."""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import tidelog
from _helpers import SENSORS_SCHEMA, kafka_partition, make_sensors

T0_MS = 1_700_000_000_000


def drain(consumer, n: int, timeout_s: float = 30) -> list:
    """Up to ``n`` records, polling until ``timeout_s`` passes."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        rec = consumer.poll(0.5)
        if rec is not None:
            out.append(rec)
    return out


def produce(api, topic: str, n: int, keyed: bool = True) -> list:
    with api.producer() as p:
        futs = [p.send(topic, value=f"v{i}".encode(), key=f"k{i}".encode() if keyed else None,
                       headers={"seq": str(i)}, timestamp_ms=T0_MS + i) for i in range(n)]
        p.flush()
        return [f.result(30) for f in futs]


# ------------------------------------------------------------------ topics
def test_create_list_describe_delete_a_topic(api, name):
    topic = api.create_topic(name, partitions=3)
    assert topic.partitions == 3
    assert name in api.topics()
    desc = api.topic(name).describe()
    assert desc["name"] == name and len(desc["partitions"]) == 3
    assert all(p["start_offset"] == p["end_offset"] == 0 for p in desc["partitions"])
    api.delete_topic(name)
    assert name not in api.topics()


def test_creating_a_topic_twice_is_a_topic_exists_error(api, name):
    api.create_topic(name)
    with pytest.raises(tidelog.TopicExistsError):
        api.create_topic(name)


def test_an_unknown_topic_is_an_unknown_topic_error(api, name):
    with pytest.raises(tidelog.UnknownTopicError):
        api.topic(name)
    with pytest.raises(tidelog.UnknownTopicError):
        api.producer().send(name, b"x")


def test_deleting_an_unknown_topic_is_an_unknown_topic_error(api, name):
    with pytest.raises(tidelog.UnknownTopicError):
        api.delete_topic(name)


def test_a_record_over_the_size_limit_is_a_record_too_large_error(api, name):
    api.create_topic(name)
    with api.producer() as p:
        with pytest.raises(tidelog.RecordTooLargeError):
            p.send(name, b"x" * (2 << 20)).result(30)
        assert p.send(name, b"fits").result(30).offset == 0


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 250, ".."])
def test_a_bad_topic_name_is_refused_before_anything_is_created(api, bad):
    with pytest.raises(tidelog.InvalidTopicNameError):
        api.create_topic(bad)


# ------------------------------------------------------------------ producing
def test_futures_resolve_to_where_each_record_landed(api, name):
    api.create_topic(name, partitions=2)
    metas = produce(api, name, 20)
    assert all(isinstance(m, tidelog.RecordMetadata) for m in metas)
    for p in (0, 1):
        offsets = [m.offset for m in metas if m.partition == p]
        assert offsets == list(range(len(offsets)))
    assert metas[3].timestamp == (T0_MS + 3) * 1_000_000


def test_keyed_records_go_to_kafkas_murmur2_partition(api, name):
    api.create_topic(name, partitions=5)
    metas = produce(api, name, 40)
    for i, m in enumerate(metas):
        assert m.partition == kafka_partition(f"k{i}".encode(), 5)


def test_send_many_returns_each_partitions_offsets(api, name):
    api.create_topic(name, partitions=1)
    with api.producer() as p:
        res = p.send_many(name, [b"a", b"b", b"c"], keys=[b"1", b"2", b"3"])
        res2 = p.send_many(name, [b"d"])
    assert res.offsets == {0: (0, 2)} and res2.offsets == {0: (3, 3)}


def test_delivery_callbacks_and_done_callbacks_run(api, name):
    api.create_topic(name)
    seen, done = [], []
    with api.producer() as p:
        fut = p.send(name, b"x", on_delivery=lambda err, meta: seen.append((err, meta.offset)))
        fut.add_done_callback(lambda f: done.append(f.result().offset))
        p.flush()
        assert fut.get(timeout=10).offset == 0
    deadline = time.monotonic() + 10
    while not (seen and done) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [(None, 0)] and done == [0]


def test_kafka_style_producer_settings_are_accepted(api, name):
    api.create_topic(name)
    with api.producer({"linger.ms": 1, "acks": "all"}) as p:
        assert p.send(name, b"x").result(30).offset == 0
    with api.producer(acks=1, linger_ms=0) as p:
        assert p.send(name, b"y").result(30).offset == 1
    with pytest.raises(tidelog.InvalidArgumentError):
        api.producer(lingr_ms=5)


@pytest.mark.kafka_difference("durability: acks='durable' is Kafka's acks=all plus replication, not an fdatasync")
def test_acks_durable_is_the_default(api, backend, name):
    api.create_topic(name)
    with api.producer() as p:
        assert p.acks == "durable"
        p.send(name, b"x").result(30)
    if backend == "kafka":
        # What "durable" means on Kafka: acknowledged by all in-sync replicas;
        # a topic asks for an fsync per batch with durability="fsync".
        api.create_topic(name + "-fsync", durability="fsync")
        assert api.topic_configs(name + "-fsync")["flush.messages"] == "1"


# ------------------------------------------------------------------ consuming
def test_records_round_trip_with_keys_headers_and_timestamps(api, name):
    api.create_topic(name, partitions=1)
    produce(api, name, 5)
    with api.consumer([name]) as c:
        recs = drain(c, 5)
    assert [r.offset for r in recs] == [0, 1, 2, 3, 4]
    r = recs[2]
    assert (r.topic, r.partition, r.key, r.value) == (name, 0, b"k2", b"v2")
    assert r.headers == [("seq", b"2")]
    assert r.timestamp == (T0_MS + 2) * 1_000_000


@pytest.mark.kafka_difference("timestamps: Kafka keeps whole milliseconds; a ns timestamp loses its sub-ms part")
def test_nanosecond_timestamps(api, backend, name):
    api.create_topic(name)
    ts = T0_MS * 1_000_000 + 123_456
    with api.producer() as p:
        p.send(name, b"x", timestamp=ts).result(30)
    with api.consumer([name]) as c:
        (rec,) = drain(c, 1)
    assert rec.timestamp == (ts if backend == "local" else ts - 123_456)


def test_assign_seek_and_position(api, name):
    api.create_topic(name, partitions=2)
    produce(api, name, 30)
    with api.consumer() as c:
        c.assign([("" + name, 1)])
        assert c.assignment() == [(name, 1)]
        c.seek(name, 1, 3)
        assert c.position(name, 1) == 3
        rec = drain(c, 1)[0]
        assert (rec.partition, rec.offset) == (1, 3)
        assert c.position(name, 1) == 4
        c.seek(tidelog.TopicPartition(name, 1, tidelog.OFFSET_BEGINNING))
        assert drain(c, 1)[0].offset == 0


def test_a_seek_outside_the_partition_moves_to_the_start_or_end(api, name, caplog):
    api.create_topic(name)
    produce(api, name, 3)
    with api.consumer(start="earliest") as c:
        c.assign([(name, 0)])
        c.seek(name, 0, 99)
        assert c.position(name, 0) == 0
    assert "outside the partition" in caplog.text
    with api.consumer(start="latest") as c:
        c.assign([(name, 0)])
        assert c.position(name, 0) == 3
        assert c.poll(0.5) is None


def test_seek_to_time_finds_the_first_record_at_or_after_it(api, name):
    api.create_topic(name)
    produce(api, name, 10)
    with api.consumer() as c:
        c.assign([(name, 0)])
        c.seek_to_time(name, 0, (T0_MS + 6) * 1_000_000)
        assert drain(c, 1)[0].offset == 6


def test_poll_batch_returns_arrow_with_place_columns(api, name):
    api.create_topic(name)
    produce(api, name, 50)
    with api.consumer([name]) as c:
        rows = 0
        batches = []
        deadline = time.monotonic() + 30
        while rows < 50 and time.monotonic() < deadline:
            b = c.poll_batch(max_records=20, timeout=0.5)
            if b is not None:
                assert b.num_rows <= 20
                batches.append(b)
                rows += b.num_rows
    table = pa.Table.from_batches(batches)
    assert table.schema.names == ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
    assert table.column("offset").to_pylist() == list(range(50))
    assert table.column("value").to_pylist()[7] == b"v7"


def test_iteration_yields_records_in_offset_order(api, name):
    api.create_topic(name)
    produce(api, name, 10)
    with api.consumer([name]) as c:
        it = iter(c)
        assert [next(it).offset for _ in range(10)] == list(range(10))


def test_lag_and_end_offsets(api, name):
    api.create_topic(name)
    produce(api, name, 8)
    with api.consumer([name]) as c:
        drain(c, 3)
        assert c.end_offsets() == {(name, 0): 8}
        assert c.lag() == {(name, 0): 5}


def test_a_consumer_without_a_group_cannot_commit(api, name):
    api.create_topic(name)
    with api.consumer([name]) as c:
        with pytest.raises(tidelog.InvalidGroupIdError):
            c.commit()
        with pytest.raises(tidelog.InvalidGroupIdError):
            c.committed([(name, 0)])


# ------------------------------------------------------------------ groups
def _group_drain(consumer, n: int, timeout_s: float = 60) -> list:
    return drain(consumer, n, timeout_s)


def test_a_group_resumes_from_its_committed_offsets(api, name):
    api.create_topic(name, partitions=2)
    produce(api, name, 20)
    group = name + "-g"
    with api.consumer([name], group=group, enable_auto_commit=False) as c:
        first = _group_drain(c, 12)
        assert len(first) == 12
        c.commit()
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed([(name, 0), (name, 1)])}
    with api.consumer([name], group=group, enable_auto_commit=False) as c:
        rest = _group_drain(c, 8)
    assert len(rest) == 8
    seen = {(r.partition, r.offset) for r in first + rest}
    assert len(seen) == 20
    assert committed == {(name, p): 1 + max(r.offset for r in first if r.partition == p) for p in (0, 1)
                         if any(r.partition == p for r in first)} | {
        (name, p): tidelog.OFFSET_INVALID for p in (0, 1) if not any(r.partition == p for r in first)}
    assert group in api.groups()


def test_commit_of_explicit_offsets_and_of_a_message(api, name):
    api.create_topic(name)
    produce(api, name, 5)
    group = name + "-g"
    with api.consumer([name], group=group, enable_auto_commit=False) as c:
        recs = _group_drain(c, 5)
        c.commit(offsets={(name, 0): 2})
        assert c.committed([(name, 0)])[0].offset == 2
        c.commit(message=recs[3])
        assert c.committed([tidelog.TopicPartition(name, 0)])[0].offset == 4


def test_auto_commit_at_close(api, name):
    api.create_topic(name)
    produce(api, name, 6)
    group = name + "-g"
    with api.consumer([name], group=group) as c:
        assert len(_group_drain(c, 4)) == 4
    with api.consumer([name], group=group) as c:
        assert [r.offset for r in _group_drain(c, 2)] == [4, 5]


@pytest.mark.kafka_difference("rebalance timing: a Kafka member's assignment arrives within the broker's join "
                              "round (seconds), a local one's at once")
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_two_members_share_the_partitions_and_get_rebalance_callbacks(api, name, strategy):
    api.create_topic(name, partitions=4)
    produce(api, name, 40)
    group = name + "-g"
    assigned = {"a": [], "b": []}
    revoked: list = []
    seen: list = []

    def poll(c) -> None:
        rec = c.poll(0.1)
        if rec is not None:
            seen.append((rec.partition, rec.offset))

    a = api.consumer([name], group=group, partition_assignment_strategy=strategy,
                     on_assign=lambda c, ps: assigned["a"].append(sorted(ps)),
                     on_revoke=lambda c, ps: revoked.append(sorted(ps)))
    deadline = time.monotonic() + 60
    while not assigned["a"] and time.monotonic() < deadline:
        poll(a)
    assert assigned["a"] and len(assigned["a"][-1]) == 4
    b = api.consumer([name], group=group, partition_assignment_strategy=strategy,
                     on_assign=lambda c, ps: assigned["b"].append(sorted(ps)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(a.assignment()) + len(b.assignment()) != 4 or
                                           not a.assignment() or not b.assignment()):
        poll(a)
        poll(b)
    assert sorted(a.assignment() + b.assignment()) == [(name, p) for p in range(4)]
    assert len(a.assignment()) == 2 and len(b.assignment()) == 2
    assert revoked  # the first member gave partitions up through its callback
    if strategy == "cooperative-sticky":  # only what moves is revoked; the rest stays, uninterrupted
        assert all(len(r) == 2 for r in revoked)
    # Between them they read every record once (auto-commit at revocation kept a's progress).
    deadline = time.monotonic() + 60
    while len(seen) < 40 and time.monotonic() < deadline:
        poll(a)
        poll(b)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 40
    b.close()
    a.close()


@pytest.mark.kafka_difference("who removes a member that stopped polling: on Kafka its own client leaves the "
                              "group once max.poll.interval.ms passes and the broker rebalances (seconds); on a "
                              "local log the next poll of another member evicts it")
def test_a_member_removed_from_its_group_gets_commit_failed_error(api, backend, name):
    api.create_topic(name, partitions=2)
    produce(api, name, 20)
    group = name + "-g"
    # Small timeouts keep the test short (the test broker allows sessions from 500 ms).
    quick = {"session.timeout.ms": 1000, "heartbeat.interval.ms": 200}
    lost: list = []
    a = api.consumer({**quick, "max.poll.interval.ms": 2000}, group=group, enable_auto_commit=False,
                     on_lost=lambda c, ps: lost.extend(ps))
    b = api.consumer({**quick, "max.poll.interval.ms": 60_000}, group=group, enable_auto_commit=False)
    a.subscribe([name])
    b.subscribe([name])
    got: list = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (got and len(a.assignment()) == 1 and len(b.assignment()) == 1
                                               and (got[-1].topic, got[-1].partition) in a.assignment()):
        rec = a.poll(0.1)
        if rec is not None:
            got.append(rec)
        b.poll(0.1)
    assert got and len(a.assignment()) == 1 and len(b.assignment()) == 1
    rec = got[-1]
    mine = a.assignment()
    before = b.committed([(rec.topic, rec.partition)])[0].offset
    time.sleep(2.5)  # a stops polling for longer than its max.poll.interval.ms
    if backend == "kafka":  # its own client has left the group already: no other member needed
        with pytest.raises(tidelog.CommitFailedError) as raised:
            a.commit(message=rec)
        assert raised.value.kafka_code in ("UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS",
                                           "_ASSIGNMENT_LOST", "STALE_MEMBER_EPOCH")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(b.assignment()) != 2:  # b takes a's partition over
        b.poll(0.1)
    assert len(b.assignment()) == 2
    with pytest.raises(tidelog.CommitFailedError):
        a.commit(message=rec)
    assert b.committed([(rec.topic, rec.partition)])[0].offset == before  # nothing stored
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not lost:  # a's next polls: it learns it is out, and joins again
        a.poll(0.1)
        b.poll(0.1)
    assert [(tp.topic, tp.partition) for tp in lost] == mine
    a.close()
    b.close()


# ------------------------------------------------------------------ Arrow
@pytest.mark.kafka_difference("columnar topics: a Kafka record holds a whole Arrow batch, so its rows share "
                              "one offset")
def test_a_columnar_topic_appends_and_reads_back_as_arrow(api, backend, name):
    topic = api.create_topic(name, SENSORS_SCHEMA, partitions=3, key="sensor_id", timestamp="ts")
    data = make_sensors(3000)
    res = topic.append(data)
    assert res.rows == 3000 if hasattr(res, "rows") else True
    table = api.topic(name).read()
    assert table.num_rows == 3000
    assert sorted(table.column("value").to_pylist()) == list(map(float, range(3000)))
    for p in range(3):  # rows in their key's partition
        part = api.topic(name).read(partitions=p)
        ids = np.unique(part.column("sensor_id").to_numpy())
        assert all(kafka_partition(int(i).to_bytes(4, "big", signed=True), 3) == p for i in ids)
    # projection and filter, in both
    sel = api.topic(name).read(columns=["value"], filter=pc.field("sensor_id") == 7)
    assert sel.schema.names == ["value"]
    assert sel.num_rows == sum(1 for v in data.column("sensor_id").to_pylist() if v == 7)
    # a time range
    t0 = data.column("ts")[1000].value
    t1 = data.column("ts")[2000].value
    rng = api.topic(name).read(start_time=t0, end_time=t1)
    assert rng.num_rows == 1000
    # scan: a stream DuckDB or pyarrow can take
    reader = pa.RecordBatchReader.from_stream(api.topic(name).scan(columns=["ts", "value"]))
    assert reader.read_all().num_rows == 3000
    with_offsets = api.topic(name).read(with_offsets=True)
    offsets_per_partition = {p: len(set(with_offsets.filter(pc.field("_partition") == p)
                                        .column("_offset").to_pylist())) for p in range(3)}
    if backend == "local":
        assert sum(offsets_per_partition.values()) == 3000   # one offset per row
    else:
        assert sum(offsets_per_partition.values()) == 3      # one Kafka record per partition's rows


def test_byte_topics_read_as_the_record_schema(api, name):
    api.create_topic(name, partitions=2)
    produce(api, name, 30)
    table = api.topic(name).read()
    assert table.schema.equals(tidelog.RECORD_SCHEMA)
    assert table.num_rows == 30
    assert sorted(table.column("value").to_pylist()) == sorted(f"v{i}".encode() for i in range(30))
    one = api.topic(name).read(partitions=0, start_offset=1, end_offset=3)
    assert one.num_rows == 2


def test_a_closed_log_refuses_new_clients(api, name):
    api.create_topic(name)
    api.close()
    with pytest.raises(tidelog.LogClosedError):
        api.producer()
