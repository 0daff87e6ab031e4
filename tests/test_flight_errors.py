"""What a tidelog Flight server refuses, and how: malformed tickets, unknown
topics and columns, bad filters, DoPut streams that do not fit the topic,
oversized batches, unknown actions, non-loopback addresses without a token,
calls that outlive a stop. Each refusal is a Flight error with a message that
says what to do; nothing is written, and the server keeps serving (checked
after every case)."""
from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import tidelog
import tidelog.flight as tf
from _flight_helpers import ServerProcess
from _helpers import SENSORS_SCHEMA, make_sensors

MAX_BATCH_BYTES = 100_000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("flight-errors") / "log"
    with tidelog.open(path) as log:
        log.create_topic("sensors", SENSORS_SCHEMA, partitions=2, key="sensor_id", timestamp="ts").append(
            make_sensors(1_000))
    server = ServerProcess(path, "--max-batch-bytes", str(MAX_BATCH_BYTES))
    client = flight.connect(server.location)
    log = tidelog.open(path)
    try:
        yield server, client, log
    finally:
        client.close()
        log.close()
        status, _, err = server.stop()
        assert status == 0, err


@pytest.fixture
def client(served):
    """The client; after the test, the server still serves and the topic is unchanged."""
    _, c, log = served
    before = log.topic("sensors").end_offsets()
    yield c
    assert [i.descriptor.path for i in c.list_flights()] == [[b"sensors"]]
    assert log.topic("sensors").end_offsets() == before
    assert c.do_get(tf.ticket("sensors", end_offset=1)).read_all().num_rows == 2


def raw(doc) -> flight.Ticket:
    return flight.Ticket(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


GOOD = {"version": 1, "topic": "sensors"}

BAD_TICKETS = [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    ([1, 2], "must be a JSON object, not an array"),
    ({"topic": "sensors"}, "'version' must be 1"),
    ({**GOOD, "version": 2}, "'version' must be 1"),
    ({**GOOD, "version": True}, "'version' must be 1"),
    ({**GOOD, "colums": ["ts"]}, "unknown ticket fields ['colums']"),
    ({"version": 1}, "'topic' must be a topic name (a string), not null"),
    ({**GOOD, "topic": 7}, "'topic' must be a topic name"),
    ({**GOOD, "topic": "no/such"}, "invalid topic name"),
    ({**GOOD, "partitions": "0"}, "'partitions' must be an array"),
    ({**GOOD, "partitions": [True]}, "'partitions' must be an array"),
    ({**GOOD, "partitions": [5]}, "partitions 0..1, not 5"),
    ({**GOOD, "start_offset": "10"}, "'start_offset' must be an offset"),
    ({**GOOD, "start_offset": -1}, "start_offset must be in [0, 2**63)"),
    ({**GOOD, "end_offset": {"zero": 1}}, "must map partition numbers"),
    ({**GOOD, "end_offset": {"0": 1.5}}, "must map partition numbers"),
    ({**GOOD, "end_offset": {"9": 1}}, "partitions 0..1, not 9"),
    ({**GOOD, "start_time": 1.5}, "int nanoseconds since the epoch or an ISO-8601 string"),
    ({**GOOD, "start_time": "yesterday"}, "is not an ISO-8601 time"),
    ({**GOOD, "columns": "ts"}, "'columns' must be an array of column names"),
    ({**GOOD, "columns": ["ts", "nope"]}, "unknown columns ['nope']"),
    ({**GOOD, "with_offsets": 1}, "'with_offsets' must be true or false"),
    ({**GOOD, "on_corrupt": "ignore"}, "'on_corrupt' must be \"raise\" or \"skip\""),
    ({**GOOD, "filter": 3}, "'filter' must be a base64 string"),
    ({**GOOD, "filter": "%%%"}, "not valid base64"),
    ({**GOOD, "filter": base64.b64encode(b"junk").decode()}, "not a Substrait ExtendedExpression"),
]


@pytest.mark.parametrize("doc, message", BAD_TICKETS, ids=[m for _, m in BAD_TICKETS])
def test_malformed_tickets(client, doc, message):
    with pytest.raises(flight.FlightServerError) as info:
        client.do_get(raw(doc)).read_all()
    assert message in str(info.value)
    # the same through get_flight_info of a command descriptor
    with pytest.raises(flight.FlightServerError, match="ticket|Error"):
        client.get_flight_info(flight.FlightDescriptor.for_command(raw(doc).ticket))


def test_unknown_topic(client):
    with pytest.raises(flight.FlightServerError, match="UnknownTopicError: no topic 'nope'"):
        client.do_get(tf.ticket("nope")).read_all()
    with pytest.raises(flight.FlightServerError, match="no topic 'nope'"):
        client.get_flight_info(tf.descriptor("nope"))
    with pytest.raises(flight.FlightServerError, match="no topic 'nope'"):
        list(client.do_action(flight.Action("describe", b"nope")))
    writer, _ = client.do_put(tf.descriptor("nope"), SENSORS_SCHEMA)
    with pytest.raises(flight.FlightServerError, match="no topic 'nope'"):
        writer.write_batch(make_sensors(3))
        writer.close()


def test_bad_filters(client):
    schema = SENSORS_SCHEMA
    with pytest.raises(ValueError, match="cannot be sent as Substrait.*no kernel matching"):
        tf.ticket("sensors", filter=pc.field("sensor_id") == "seven", schema=schema)
    with pytest.raises(flight.FlightServerError, match="built against the columns"):
        as_strings = pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.string()), ("value", pa.float64())])
        client.do_get(tf.ticket("sensors", filter=pc.field("sensor_id") == "seven", schema=as_strings)).read_all()
    other = pa.schema([("sensor_id", pa.int32())])
    with pytest.raises(flight.FlightServerError, match="built against the columns \\[sensor_id: int32\\]"):
        client.do_get(tf.ticket("sensors", filter=pc.field("sensor_id") == 3, schema=other)).read_all()
    with pytest.raises(TypeError, match="pass the topic's schema"):
        tf.ticket("sensors", filter=pc.field("sensor_id") == 3)
    with pytest.raises(ValueError, match="cannot be sent as Substrait"):
        tf.ticket("sensors", filter=pc.field("nope") == 3, schema=schema)
    with pytest.raises(ValueError, match="put time bounds in start_time/end_time"):
        tf.ticket("sensors", filter=pc.field("ts") > pa.scalar(1, pa.timestamp("ns")), schema=schema)


def test_bad_descriptors(client):
    for descriptor in (flight.FlightDescriptor.for_path("sensors", "extra"),
                       flight.FlightDescriptor.for_path()):
        with pytest.raises(flight.FlightServerError, match="a path of one element"):
            client.get_flight_info(descriptor)
    writer, _ = client.do_put(flight.FlightDescriptor.for_command(b"sensors"), SENSORS_SCHEMA)
    with pytest.raises(flight.FlightServerError, match="a path of one element"):
        writer.write_batch(make_sensors(3))
        writer.close()


def put_error(client, batches: list, schema=None, topic: str = "sensors"):
    """The error a DoPut of ``batches`` ends with, and the acknowledgements before it."""
    writer, reader = client.do_put(tf.descriptor(topic), schema or batches[0].schema)
    acks = []
    with pytest.raises(flight.FlightError) as info:
        for b in batches:
            writer.write_batch(b)
            ack = reader.read()
            if ack is None:
                break   # the server ended the stream: close() raises its error
            acks.append(tf.decode_put_result(ack))
        writer.done_writing()
        writer.close()
    return info.value, acks


SCHEMA_MISMATCHES = [
    (pa.schema([("ts", pa.timestamp("ns")), ("value", pa.float64())]), "columns ['ts', 'value'] are not"),
    (pa.schema([("ts", pa.timestamp("ns")), ("value", pa.float64()), ("sensor_id", pa.int32())]),
     "are not topic 'sensors''s"),
    (pa.schema([("ts", pa.timestamp("ns")), ("sensor_id", pa.list_(pa.int32())), ("value", pa.float64())]),
     "sensor_id: list<item: int32> cannot become int32"),
]


@pytest.mark.parametrize("schema, message", SCHEMA_MISMATCHES, ids=["missing", "order", "type"])
def test_do_put_schema_mismatch_writes_nothing(client, schema, message):
    batch = pa.RecordBatch.from_pylist([], schema=schema)
    error, acks = put_error(client, [batch], schema)
    assert isinstance(error, flight.FlightServerError) and message in str(error) and "SchemaMismatchError" in str(error)
    assert error.extra_info == b"SchemaMismatchError"
    assert acks == []


def test_do_put_batch_that_does_not_cast(client, served):
    """Batch 0 casts and is acknowledged; batch 1's values do not fit: the
    stream ends there, batch 0 stays (the fixture checks the topic otherwise
    unchanged, so batch 0 goes to a topic of its own)."""
    _, _, log = served
    topic = log.create_topic("narrow", pa.schema([("n", pa.int8())]))
    wide = pa.schema([("n", pa.int64())])
    writer, reader = client.do_put(tf.descriptor("narrow"), wide)
    writer.write_batch(pa.record_batch({"n": [1, 2]}, schema=wide))
    assert tf.decode_put_result(reader.read())["offsets"] == {0: (0, 1)}
    with pytest.raises(flight.FlightServerError, match="batch 1 of the stream does not fit"):
        writer.write_batch(pa.record_batch({"n": [3, 1000]}, schema=wide))
        writer.done_writing()
        writer.close()
    assert topic.read().column("n").to_pylist() == [1, 2]
    log.delete_topic("narrow")


def test_do_put_nulls_in_a_required_column(client, served):
    _, _, log = served
    topic = log.create_topic("strict", pa.schema([pa.field("n", pa.int64(), nullable=False)]))
    loose = pa.schema([("n", pa.int64())])
    writer, reader = client.do_put(tf.descriptor("strict"), loose)
    writer.write_batch(pa.record_batch({"n": [1]}, schema=loose))   # nullable, but no null: taken
    assert tf.decode_put_result(reader.read())["rows"] == 1
    with pytest.raises(flight.FlightServerError, match="batch 1 of the stream does not fit.*null values"):
        writer.write_batch(pa.record_batch({"n": [2, None]}, schema=loose))
        writer.done_writing()
        writer.close()
    assert topic.read().column("n").to_pylist() == [1]
    log.delete_topic("strict")


def test_do_put_append_refused(client, served):
    """A batch whose append fails (a null key in a compacted topic): the
    batches before it are acknowledged and kept, nothing of it or after it
    is written, and the error names the batch."""
    _, _, log = served
    schema = pa.schema([("k", pa.string()), ("v", pa.int64())])
    topic = log.create_topic("compacted", schema, key="k", cleanup_policy="compact")
    batches = [pa.record_batch({"k": ["a", "b"], "v": [1, 2]}, schema=schema),
               pa.record_batch({"k": ["c", None], "v": [3, 4]}, schema=schema),
               pa.record_batch({"k": ["d"], "v": [5]}, schema=schema)]
    writer, reader = client.do_put(tf.descriptor("compacted"), schema)
    for b in batches:
        writer.write_batch(b)
    writer.done_writing()
    assert tf.decode_put_result(reader.read())["offsets"] == {0: (0, 1)}
    assert reader.read() is None
    with pytest.raises(flight.FlightServerError) as info:
        writer.close()
    message = str(info.value)
    assert message.startswith("InvalidRecordError: batch 1 of the stream was refused (nothing of it was written; "
                              "the batches before it were acknowledged): topic 'compacted' is compacted"), message
    assert info.value.extra_info == b"InvalidRecordError"
    assert topic.read().column("v").to_pylist() == [1, 2]
    log.delete_topic("compacted")


def test_oversized_batch(client, served):
    """Batch 0 is taken, batch 1 is larger than --max-batch-bytes: refused, nothing of it written."""
    _, _, log = served
    topic = log.create_topic("limited", SENSORS_SCHEMA)
    small, big = make_sensors(10), make_sensors(10_000)   # 200 kB > 100 kB
    error, acks = put_error(client, [small, big], topic="limited")
    assert isinstance(error, flight.FlightServerError)
    assert "batch 1 of the stream holds 200000 bytes" in str(error) and "--max-batch-bytes" in str(error)
    assert [a["rows"] for a in acks] == [10]
    assert topic.end_offsets() == {0: 10}
    log.delete_topic("limited")


def test_unknown_action(client):
    with pytest.raises(flight.FlightServerError, match="unknown action 'compact'; the actions are \\['flush', 'describe'\\]"):
        list(client.do_action(flight.Action("compact", b"")))


def test_refuses_non_loopback_without_token(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tidelog.cli", "serve", str(tmp_path / "log"), "--flight",
                        "0.0.0.0:0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "refusing to serve on '0.0.0.0' without a token" in r.stderr and "--insecure-bind" in r.stderr
    assert tf.is_loopback("127.0.0.1") and tf.is_loopback("::1") and tf.is_loopback("localhost")
    assert not tf.is_loopback("0.0.0.0") and not tf.is_loopback("192.0.2.1")
    with pytest.raises(tidelog.InvalidArgumentError, match="refusing"):
        tf.FlightServer(tmp_path / "log", "grpc://0.0.0.0:0")


def test_bad_locations_and_port_in_use(tmp_path, served):
    for location in ("127.0.0.1", "http://127.0.0.1:1", "127.0.0.1:99999", "grpc://127.0.0.1:1/path"):
        with pytest.raises(tidelog.InvalidArgumentError):
            tf.parse_location(location, tls=False)
    assert tf.parse_location("[::1]:8815", tls=False) == ("::1", 8815, "grpc://[::1]:8815")
    assert tf.parse_location(("127.0.0.1", 0), tls=True) == ("127.0.0.1", 0, "grpc+tls://127.0.0.1:0")
    with pytest.raises(tidelog.InvalidArgumentError, match="asks for TLS"):
        tf.parse_location("grpc+tls://127.0.0.1:1", tls=False)
    port = served[0].location.rsplit(":", 1)[1]
    r = subprocess.run([sys.executable, "-m", "tidelog.cli", "serve", str(tmp_path / "log"), "--flight",
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and f"tidelog serve: TidelogIOError: cannot serve on grpc://127.0.0.1:{port}: is the " \
        "port taken" in r.stderr, r.stderr


def test_a_call_that_outlives_the_stop(tmp_path):
    """A DoPut stream whose client sends nothing more holds a stop for the
    grace period; then the server flushes and exits (status 1) without
    waiting: what it acknowledged is in the log."""
    path = tmp_path / "log"
    schema = pa.schema([("n", pa.int64())])
    with tidelog.open(path) as log:
        log.create_topic("t", schema, durability="none")
    server = ServerProcess(path, "--shutdown-grace", "0.5")
    with flight.connect(server.location) as client:
        writer, reader = client.do_put(tf.descriptor("t"), schema)
        writer.write_batch(pa.record_batch({"n": [1, 2, 3]}, schema=schema))
        assert tf.decode_put_result(reader.read())["rows"] == 3
        status, _, err = server.stop(signal.SIGTERM)
    assert status == 1 and "still in progress" in err
    with tidelog.open(path) as log:
        assert log.topic("t").read().column("n").to_pylist() == [1, 2, 3]


def test_read_only_server(tmp_path):
    """--read-only: reads and listings, no DoPut, no flush."""
    path = tmp_path / "log"
    schema = pa.schema([("n", pa.int64())])
    with tidelog.open(path) as log:
        log.create_topic("t", schema).append({"n": [1, 2]})
    server = ServerProcess(path, "--read-only")
    try:
        with flight.connect(server.location) as client:
            assert client.do_get(tf.ticket("t")).read_all().column("n").to_pylist() == [1, 2]
            writer, _ = client.do_put(tf.descriptor("t"), schema)
            with pytest.raises(flight.FlightUnauthorizedError, match="ReadOnlyError: this server opened its log "
                                                                      "read-only"):
                writer.write_batch(pa.record_batch({"n": [3]}, schema=schema))
                writer.close()
            with pytest.raises(flight.FlightUnauthorizedError, match="read-only"):
                list(client.do_action(flight.Action("flush", b"")))
    finally:
        status, _, err = server.stop()
    assert status == 0, err
    with tidelog.open(path, read_only=True) as log:
        assert log.topic("t").read().num_rows == 2
