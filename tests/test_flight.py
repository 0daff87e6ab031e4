"""The Arrow Flight endpoint (tidelog.flight, ``tidelog serve --flight``),
served by a ``tidelog serve`` process and used through a
``pyarrow.flight.FlightClient`` from this one:

* DoGet of offsets, per-partition offsets, times, columns, filters and
  ``with_offsets`` returns exactly what ``topic.read`` returns for the same
  arguments on the same log, and the endpoint tickets of ListFlights read
  each whole topic;
* DoPut acknowledges each batch with its offsets, and what was acknowledged
  is in the log; streams in parallel get dense, disjoint offsets;
* a server SIGKILLed right after acknowledging DoPuts loses none of them;
* SIGTERM and SIGINT stop it cleanly (the log closed, a clean shutdown);
* a token and TLS protect it.

The error cases are in test_flight_errors.py.
"""
from __future__ import annotations

import datetime as dt
import json
import signal
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import tidelog
import tidelog.flight as tf
from _flight_helpers import ServerProcess, self_signed_certificate
from _helpers import SENSORS_SCHEMA, T0, frame_spans, make_sensors, segment_logs

PLAIN_SCHEMA = pa.schema([("name", pa.string()), ("n", pa.int64())])


def fill(path) -> None:
    """A 3-partition keyed sensors topic of 20,000 rows in 8 appends, and a 1-partition one of strings."""
    with tidelog.open(path) as log:
        sensors = log.create_topic("sensors", SENSORS_SCHEMA, partitions=3, key="sensor_id", timestamp="ts")
        for i in range(8):
            sensors.append(make_sensors(2_500, start=i * 2_500))
        plain = log.create_topic("plain", PLAIN_SCHEMA)
        plain.append({"name": [f"row {i}" for i in range(100)], "n": list(range(100))})
        packed = log.create_topic("zstd", SENSORS_SCHEMA, compression="zstd", timestamp="ts")
        for i in range(3):
            packed.append(make_sensors(1_000, start=i * 1_000))
        ticks = log.create_topic("ticks", pa.schema([("ts", pa.int64()), ("v", pa.float64())]), timestamp="ts")
        for i in range(4):
            ticks.append({"ts": T0 + np.arange(i * 500, (i + 1) * 500) * 1_000_000, "v": np.arange(500.0)})
        log.create_topic("records", partitions=2)
        with log.producer() as producer:   # byte records: nested headers, a not-null timestamp
            for i in range(50):
                producer.send("records", value=b"v%d" % i, key=b"k%d" % (i % 7), headers={"h": b"x%d" % i})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server process, client, the log opened read-write in this process too)."""
    path = tmp_path_factory.mktemp("flight") / "log"
    fill(path)
    server = ServerProcess(path)
    client = flight.connect(server.location)
    log = tidelog.open(path)
    try:
        yield server, client, log
    finally:
        client.close()
        log.close()
        status, out, err = server.stop()
        assert status == 0, err


def get(client, ticket) -> pa.Table:
    return client.do_get(ticket).read_all()


# ----------------------------------------------------------------- DoGet

TS = [T0 + 3_000 * 1000, T0 + 11_000 * 1000]   # rows 3,000 .. 10,999 by time

SELECTIONS = {
    "everything": dict(),
    "offsets": dict(start_offset=100, end_offset=2_000),
    "per-partition offsets": dict(start_offset={0: 10, 2: 500}, end_offset={1: 1_000}),
    "partitions": dict(partitions=[2, 0]),
    "times as ns": dict(start_time=TS[0], end_time=TS[1]),
    "times as datetime": dict(start_time=dt.datetime.fromtimestamp(TS[0] / 1e9, dt.timezone.utc),
                              end_time=dt.datetime.fromtimestamp(TS[1] / 1e9, dt.timezone.utc)),
    "columns": dict(columns=["value", "ts"]),
    "filter": dict(filter=pc.field("sensor_id") == 7),
    "filter and times": dict(filter=pc.field("sensor_id").isin([3, 4]) | (pc.field("value") < 100.0),
                             start_time=TS[0], end_time=TS[1]),
    "with offsets": dict(with_offsets=True, columns=["value"], start_offset=5),
    "everything at once": dict(start_offset={1: 50}, end_offset=4_000, start_time=TS[0], partitions=[0, 1],
                               columns=["sensor_id", "value"], filter=pc.field("value") > 5_000,
                               with_offsets=True),
    "nothing": dict(start_offset=10**9),
}


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_do_get_equals_read(served, name):
    _, client, log = served
    topic = log.topic("sensors")
    args = SELECTIONS[name]
    expected = topic.read(**args)
    got = get(client, tf.ticket(topic, **args))
    assert got.schema == expected.schema
    assert got.equals(expected), name
    assert expected.num_rows > 0 or name == "nothing"


@pytest.mark.parametrize("name, args", [("zstd", {}), ("zstd", {"start_time": T0 + 1_500_000}),
                                         ("ticks", {"filter": (pc.field("ts") >= T0 + 700_000_000)
                                                    & (pc.field("ts") < T0 + 1_200_000_000)}),
                                         ("records", {}), ("records", {"columns": ["key", "headers"]})])
def test_do_get_of_compressed_and_record_topics(served, name, args):
    _, client, log = served
    topic = log.topic(name)
    expected = topic.read(**args)
    assert expected.num_rows and get(client, tf.ticket(topic, **args)).equals(expected)


def test_ticket_by_name_and_schema_from_the_server(served):
    """A client without the log: the topic's schema comes from get_schema."""
    _, client, log = served
    schema = client.get_schema(tf.descriptor("sensors")).schema
    assert schema == SENSORS_SCHEMA
    ticket = tf.ticket("sensors", partitions=1, filter=pc.field("sensor_id").isin([3, 4]), schema=schema,
                       start_time="2023-11-14T22:13:20.005Z")
    expected = log.topic("sensors").read(partitions=1, filter=pc.field("sensor_id").isin([3, 4]),
                                         start_time=T0 + 5_000_000)
    assert expected.num_rows and get(client, ticket).equals(expected)


def test_filters_get_their_column_names_back():
    """Substrait names columns by position; the server names them again
    where the rebuilt filter writes the same Substrait, so the scan can use
    it (time bounds of an int64 time column, per-frame min/max); otherwise
    the filter stays as received (still applied)."""
    from tidelog import _filter
    from tidelog.flight._ticket import decode_filter, encode_filter

    schema = pa.schema([("ts", pa.int64()), ("sensor_id", pa.int32()), ("value", pa.float64()),
                        ("name", pa.string())])
    for expr in [(pc.field("ts") >= 1_000) & (pc.field("ts") < 2_000), pc.field("sensor_id") != -3,
                 (pc.field("value") > 0.5) | pc.field("name").is_null(), ~(pc.field("name") == "x")]:
        got = decode_filter(encode_filter(expr, schema), schema)
        assert "FieldPath" not in str(got) and _filter.parse(got) is not None, (expr, got)
    got = decode_filter(encode_filter((pc.field("ts") >= 1_000) & (pc.field("ts") < 2_000), schema), schema)
    assert _filter.time_bounds(_filter.parse(got), "ts", 1) == (1_000, 2_000)
    for expr in [pc.field("sensor_id").isin([3, 4]), (pc.field("value") + 1) > 3]:
        got = decode_filter(encode_filter(expr, schema), schema)
        assert "FieldPath" in str(got)   # kept as received
        table = pa.table({"ts": [1, 2], "sensor_id": [3, 5], "value": [2.5, 1.0], "name": ["a", None]}, schema=schema)
        assert table.filter(got).equals(table.filter(expr))


def test_ticket_is_versioned_json(served):
    """The wire format is plain JSON any Flight client can write."""
    _, client, log = served
    raw = json.dumps({"version": 1, "topic": "plain", "start_offset": 90, "columns": ["n"]}).encode()
    assert get(client, flight.Ticket(raw)).column("n").to_pylist() == list(range(90, 100))
    doc = json.loads(tf.ticket("sensors", start_offset={2: 7}, end_time=5, columns=["ts"]).ticket)
    assert doc == {"version": 1, "topic": "sensors", "start_offset": {"2": 7}, "end_time": 5, "columns": ["ts"]}


def test_stream_is_the_scan_frame_by_frame(served):
    """DoGet sends the scan's batches one by one (it never gathers them)."""
    _, client, log = served
    topic = log.topic("sensors")
    reader = client.do_get(tf.ticket(topic, partitions=[0]))
    sizes = [chunk.data.num_rows for chunk in reader]
    assert sizes == [b.num_rows for b in topic.scan(partitions=[0])]
    assert len(sizes) == 8


def test_a_stream_left_early(served):
    """A client that reads one batch of a large stream and goes away: the
    server ends that stream (its read-ahead stops) and goes on serving."""
    server, client, log = served
    for _ in range(3):
        with flight.connect(server.location) as other:
            reader = other.do_get(tf.ticket("sensors", columns=["value"]))
            assert reader.read_chunk().data.num_rows > 0
            reader.cancel()
    assert get(client, tf.ticket("sensors")).num_rows == 20_000


def test_list_flights_and_endpoint_tickets(served):
    _, client, log = served
    infos = {info.descriptor.path[0].decode(): info for info in client.list_flights()}
    assert set(infos) >= {"sensors", "plain", "zstd", "records", "ticks"}
    info = infos["sensors"]
    assert info.schema == SENSORS_SCHEMA
    assert info.total_records == 20_000
    assert info.total_bytes == log.topic("sensors").describe()["bytes"] > 0
    meta = json.loads(info.app_metadata)
    assert meta["key"] == "sensor_id" and meta["timestamp"] == "ts"
    ends = log.topic("sensors").end_offsets()
    assert [(p["partition"], p["start_offset"], p["end_offset"]) for p in meta["partitions"]] == \
        [(p, 0, ends[p]) for p in range(3)]
    (endpoint,) = info.endpoints
    assert get(client, endpoint.ticket).equals(log.topic("sensors").read())
    assert [i.descriptor.path[0] for i in client.list_flights(b"pla*")] == [b"plain"]
    same = client.get_flight_info(tf.descriptor("plain"))
    assert same.total_records == 100 and same.schema == PLAIN_SCHEMA


def test_flight_info_of_a_ticket(served):
    """A command descriptor holding a ticket: that read's schema and an endpoint for it."""
    _, client, log = served
    command = tf.ticket_json("sensors", columns=["value"], with_offsets=True, end_offset=3)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
    assert info.schema.names == ["value", "_partition", "_offset"]
    assert get(client, info.endpoints[0].ticket).num_rows == 9


# ----------------------------------------------------------------- DoPut

def put(client, name: str, batches: list, options=None) -> list[dict]:
    """DoPut of ``batches``, reading each acknowledgement before sending the next."""
    writer, acks = client.do_put(tf.descriptor(name), batches[0].schema, **({"options": options} if options else {}))
    out = []
    for batch in batches:
        writer.write_batch(batch)
        out.append(tf.decode_put_result(acks.read()))
    writer.done_writing()
    writer.close()
    return out


def test_do_put_acknowledges_each_batch_durably(served):
    _, client, log = served
    topic = log.create_topic("puts", SENSORS_SCHEMA, partitions=2, key="sensor_id", timestamp="ts")
    sizes = [1_000, 8_000, 10, 5_000, 1_000]   # small and large (> 64 KiB) batches take different paths
    starts = np.cumsum([0] + sizes)
    batches = [make_sensors(n, start=int(at)) for n, at in zip(sizes, starts)]
    acks = put(client, "puts", batches)
    assert [a["batch"] for a in acks] == list(range(5))
    assert [a["rows"] for a in acks] == sizes
    # Offsets per partition follow one another, batch after batch, and cover every row.
    nxt = {0: 0, 1: 0}
    for batch, ack in zip(batches, acks):
        assert sum(last - first + 1 for first, last in ack["offsets"].values()) == batch.num_rows
        for p, (first, last) in ack["offsets"].items():
            assert first == nxt[p]
            nxt[p] = last + 1
    assert topic.end_offsets() == nxt
    got = topic.read().sort_by("value")
    assert got.equals(pa.Table.from_batches(batches).sort_by("value"))
    # one ack's offsets hold exactly that batch's rows of that partition
    p, (first, last) = next(iter(acks[3]["offsets"].items()))
    rows = topic.read(first, last + 1, partitions=[p])
    assert set(rows.column("value").to_pylist()) <= set(batches[3].column("value").to_pylist())


def test_do_put_casts_what_append_casts(served):
    """Other physical types of the same columns (large strings, int32) are
    cast, as topic.append casts data from other libraries."""
    _, client, log = served
    topic = log.create_topic("cast", PLAIN_SCHEMA)
    batch = pa.record_batch([pa.array(["a", "b"], pa.large_string()), pa.array([1, 2], pa.int32())],
                            names=["name", "n"])
    (ack,) = put(client, "cast", [batch])
    assert ack["offsets"] == {0: (0, 1)}
    got = topic.read()
    assert got.schema == PLAIN_SCHEMA and got.to_pylist() == [{"name": "a", "n": 1}, {"name": "b", "n": 2}]


def test_parallel_puts_get_dense_disjoint_offsets(served):
    _, client, log = served
    topic = log.create_topic("parallel", PLAIN_SCHEMA)
    acks: list = [None] * 4
    errors = []

    def stream(k: int) -> None:
        try:
            with flight.connect(served[0].location) as c:
                batches = [pa.record_batch({"name": [f"s{k}"] * 10, "n": list(range(i * 10, i * 10 + 10))},
                                           schema=PLAIN_SCHEMA) for i in range(20)]
                acks[k] = put(c, "parallel", batches)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    ranges = sorted(ack["offsets"][0] for stream_acks in acks for ack in stream_acks)
    assert ranges == [(i * 10, i * 10 + 9) for i in range(80)]
    table = topic.read()
    for stream_acks, k in zip(acks, range(4)):
        for ack in stream_acks:
            first, last = ack["offsets"][0]
            assert set(table.column("name").slice(first, 10).to_pylist()) == {f"s{k}"}


# ------------------------------------------------------------------ actions

def test_actions(served):
    _, client, log = served
    assert {a.type for a in client.list_actions()} == {"flush", "describe"}
    (result,) = client.do_action(flight.Action("flush", b""))
    assert json.loads(result.body.to_pybytes()) == {"flushed": True}
    (result,) = client.do_action(flight.Action("describe", b"sensors"))
    d = json.loads(result.body.to_pybytes())
    assert d["name"] == "sensors" and d["records"] == 20_000 and len(d["partitions"]) == 3


# ----------------------------------------------------- crash and shutdown

@pytest.mark.parametrize("durability", ["fsync", "none"])
def test_acknowledged_puts_survive_sigkill(tmp_path, durability):
    """Batches streamed as fast as the server takes them; SIGKILL right after
    an acknowledgement: every acknowledged batch is in the reopened log, at
    its offsets ("none" topics too: DoPut acknowledges once durable)."""
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        log.create_topic("t", PLAIN_SCHEMA, durability=durability)
    server = ServerProcess(path)
    client = flight.connect(server.location)
    batches = [pa.record_batch({"name": [f"b{i}"] * 50, "n": np.arange(i * 50, i * 50 + 50)}, schema=PLAIN_SCHEMA)
               for i in range(400)]
    writer, reader = client.do_put(tf.descriptor("t"), PLAIN_SCHEMA)
    acked = []

    def send() -> None:
        try:
            for b in batches:
                writer.write_batch(b)
        except flight.FlightError:
            pass  # the server is gone
        except pa.ArrowException:
            pass

    sender = threading.Thread(target=send)
    sender.start()
    while len(acked) < 60:
        acked.append(tf.decode_put_result(reader.read()))
    server.kill()
    sender.join(30)
    client.close()
    with tidelog.open(path) as log:
        table = log.topic("t").read()
        assert not log.clean_shutdown
    for ack in acked:
        first, last = ack["offsets"][0]
        i = ack["batch"]
        assert table.slice(first, last - first + 1).equals(pa.Table.from_batches([batches[i]])), i
    assert table.num_rows >= 60 * 50


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_it_cleanly(tmp_path, sig):
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        log.create_topic("t", PLAIN_SCHEMA, durability="none")
    server = ServerProcess(path)
    with flight.connect(server.location) as client:
        put(client, "t", [pa.record_batch({"name": ["x"], "n": [1]}, schema=PLAIN_SCHEMA)])
        # a stream left open, a batch sent and acknowledged: the stop ends it
        writer, reader = client.do_put(tf.descriptor("t"), PLAIN_SCHEMA)
        writer.write_batch(pa.record_batch({"name": ["y"], "n": [2]}, schema=PLAIN_SCHEMA))
        assert tf.decode_put_result(reader.read())["offsets"] == {0: (1, 1)}
        writer.done_writing()
        status, out, err = server.stop(sig)
    assert status == 0, err
    assert "stopped" in out
    with tidelog.open(path) as log:
        assert log.clean_shutdown
        assert log.topic("t").read().column("n").to_pylist() == [1, 2]


def test_damaged_data(tmp_path):
    """A DoGet that reaches a damaged frame ends with the CorruptionError
    (the scan finds it when it looks the frames up, before their batches);
    on_corrupt="skip" steps over it, as topic.read(on_corrupt="skip") does."""
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        topic = log.create_topic("t", SENSORS_SCHEMA, timestamp="ts")
        for i in range(5):
            topic.append(make_sensors(1_000, start=i * 1_000))
    (segment,) = segment_logs(path, "t")
    with open(segment, "r+b") as f:   # the third frame's magic
        f.seek(frame_spans(segment)[2][0])
        f.write(b"XXXX")
    server = ServerProcess(path)
    try:
        with flight.connect(server.location) as client:
            reader = client.do_get(tf.ticket("t"))
            rows = 0
            with pytest.raises(flight.FlightServerError, match="CorruptionError: .*offsets 2000..2999") as info:
                for chunk in reader:
                    rows += chunk.data.num_rows
            assert info.value.extra_info == b"CorruptionError" and rows <= 2_000
            got = client.do_get(tf.ticket("t", on_corrupt="skip")).read_all()
        with tidelog.open(path, read_only=True) as log, pytest.warns(tidelog.CorruptionWarning):
            expected = log.topic("t").read(on_corrupt="skip")
        assert got.num_rows == 4_000 and got.equals(expected)
    finally:
        status, _, err = server.stop()
    assert status == 0, err
    assert "skipped damaged data in topic 't' partition 0: offsets 2000..2999" in err


# ------------------------------------------------------------- TLS, token

def test_tls_and_token(tmp_path):
    path = tmp_path / "log"
    fill(path)
    cert, key = self_signed_certificate(tmp_path)
    (tmp_path / "token").write_text("s3cret-token\n")
    server = ServerProcess(path, "--token-file", str(tmp_path / "token"), "--tls-cert", str(cert),
                           "--tls-key", str(key))
    try:
        assert server.location.startswith("grpc+tls://127.0.0.1:")
        client = flight.connect(server.location, tls_root_certs=cert.read_bytes())
        good = tf.call_options("s3cret-token")
        infos = list(client.list_flights(options=good))
        assert {i.descriptor.path[0] for i in infos} == {b"sensors", b"plain", b"zstd", b"records", b"ticks"}
        with tidelog.open(path, read_only=True) as log:
            expected = log.topic("sensors").read(columns=["value"], partitions=[1])
        got = client.do_get(tf.ticket("sensors", columns=["value"], partitions=[1]), options=good).read_all()
        assert got.equals(expected)
        acks = put(client, "plain", [pa.record_batch({"name": ["z"], "n": [7]}, schema=PLAIN_SCHEMA)], good)
        assert acks[0]["offsets"] == {0: (100, 100)}
        for options in (None, tf.call_options("wrong"), flight.FlightCallOptions(
                headers=[(b"authorization", b"Basic czNjcmV0LXRva2Vu")])):
            with pytest.raises(flight.FlightUnauthenticatedError, match="needs a token"):
                list(client.list_flights(**({"options": options} if options else {})))
            with pytest.raises(flight.FlightUnauthenticatedError):
                client.do_get(tf.ticket("plain"), **({"options": options} if options else {})).read_all()
        client.close()
        # plain text to a TLS server does not get through
        with flight.connect(server.location.replace("grpc+tls", "grpc")) as plain:
            with pytest.raises(flight.FlightUnavailableError):
                list(plain.list_flights(options=tf.call_options("s3cret-token", timeout=5)))
    finally:
        status, _, err = server.stop()
    assert status == 0, err
