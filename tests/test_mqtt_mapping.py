"""The MQTT bridge's mapping: JSON paths, topic levels, constants, arrival time,
coercions, messages that do not fit, unusable mapping files (no broker needed)."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

import tidelog
from tidelog.connect.mqtt import Mapping, MappingError
from tidelog.connect.mqtt._dedupe import RecentIds

SCHEMA = pa.schema([
    pa.field("ts", pa.timestamp("ms"), nullable=False), ("received", pa.timestamp("ns")), ("site", pa.string()),
    ("sensor_id", pa.int32()), ("value", pa.float64()), ("ok", pa.bool_()), ("unit", pa.string()),
    ("msg_id", pa.string()), ("mqtt", pa.string()),
])

MAPPING = """
mqtt_topic = "sensors/{site}/{sensor_id}"
id = "msg_id"

[columns]
ts = { json = "time", unit = "s" }
received = { arrival = true }
site = { level = "site" }
sensor_id = { level = "sensor_id" }
value = "reading.value"
ok = { json = "reading.ok", default = true }
unit = { const = "celsius" }
msg_id = "id"
mqtt = { mqtt_topic = true }
"""

ARRIVAL = 1_767_225_600_123_456_789


def msg(topic: str, payload, pid: int = 1) -> tuple:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return (pid, topic.encode(), data, ARRIVAL)


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "mapping.toml"
    path.write_text(MAPPING)
    return path


def test_levels_paths_constants_arrival_and_coercions(mapping_file):
    mapper = Mapping.from_file(mapping_file).bind(SCHEMA)
    got = mapper.map([
        msg("sensors/north/7", {"time": 1767225600, "reading": {"value": 21.5, "ok": False}, "id": "a"}),
        msg("sensors/south/8", {"time": "2026-01-01T00:00:01Z", "reading": {"value": "22"}, "id": "b"}),
        msg("sensors/east/9", {"time": 1767225602.5, "reading": {"value": 3}, "id": "c"}),
    ])
    assert not got.bad and got.duplicates == 0
    rows = got.batch.to_pylist()
    assert [r["site"] for r in rows] == ["north", "south", "east"]
    assert [r["sensor_id"] for r in rows] == [7, 8, 9]                       # topic levels, "7" -> int32
    assert [r["value"] for r in rows] == [21.5, 22.0, 3.0]                   # "22" -> 22.0, 3 -> 3.0
    assert [r["ok"] for r in rows] == [False, True, True]                    # default where missing
    assert [r["unit"] for r in rows] == ["celsius"] * 3
    assert [r["mqtt"] for r in rows] == ["sensors/north/7", "sensors/south/8", "sensors/east/9"]
    t0 = dt.datetime(2026, 1, 1)
    assert [r["ts"] for r in rows] == [t0, t0 + dt.timedelta(seconds=1), t0 + dt.timedelta(seconds=2.5)]
    assert got.batch.column("received").cast(pa.int64()).to_pylist() == [ARRIVAL] * 3


def test_messages_that_do_not_fit_are_skipped_with_reasons(mapping_file):
    mapper = Mapping.from_file(mapping_file).bind(SCHEMA)
    good = {"time": 1, "reading": {"value": 1.0}, "id": "x"}
    got = mapper.map([
        msg("sensors/a/1", b"not json"),
        msg("sensors/a/1", [1, 2]),
        msg("sensors/a/not-a-number", good),
        msg("other/a/1", good),
        msg("sensors/a/1", {**good, "reading": {"value": "warm"}}),
        msg("sensors/a/1", {**good, "time": None}),
        msg("sensors/a/99999999999", good),
        msg("sensors/a/1", good),
    ])
    reasons = [r for _, _, r in got.bad]
    assert got.batch.num_rows == 1 and len(reasons) == 7
    assert "not JSON" in reasons[0] and "not a JSON object" in reasons[1]
    assert "'not-a-number' is not an integer" in reasons[2]
    assert "does not match mqtt_topic" in reasons[3]
    assert "'warm' is not a number" in reasons[4]
    assert "column 'ts'" in reasons[5] and "not nullable" in reasons[5]
    assert "out of range for int32" in reasons[6]
    assert [i for i, _, _ in got.bad] == [0, 1, 2, 3, 4, 5, 6]


def test_stop_at_the_first_message_that_does_not_fit(mapping_file):
    mapper = Mapping.from_file(mapping_file).bind(SCHEMA, on_error="stop")
    good = {"time": 1, "reading": {"value": 1.0}, "id": "x"}
    got = mapper.map([msg("sensors/a/1", good), msg("sensors/a/1", b"{"), msg("sensors/a/2", good)])
    assert got.stopped_at == 1 and got.batch.num_rows == 1 and len(got.bad) == 1


def test_duplicates_dropped_by_id(mapping_file):
    mapper = Mapping.from_file(mapping_file).bind(SCHEMA)
    seen = RecentIds(3)
    messages = [msg("sensors/a/1", {"time": 1, "reading": {"value": 1}, "id": i}) for i in "abcab"]
    got = mapper.map(messages, seen.keep)
    assert got.duplicates == 2 and got.batch.column("msg_id").to_pylist() == ["a", "b", "c"]
    seen.keep("d")  # the window holds 3: "a" is forgotten
    assert "a" not in seen and "d" in seen and seen.keep(None) and seen.keep(None)


def test_recent_ids_read_back_from_the_topic_tail(log):
    topic = log.create_topic("t", schema=pa.schema([("id", pa.int64())]), partitions=2)
    topic.append({"id": list(range(10))}, partition=0)
    topic.append({"id": list(range(100, 105))}, partition=1)
    seen = RecentIds(8)
    assert seen.load_tail(topic, "id") == 8
    assert all(i in seen for i in (6, 7, 8, 9, 101, 102, 103, 104)) and 5 not in seen


def test_default_mapping_is_json_keys_by_column_name():
    schema = pa.schema([("ts", pa.timestamp("us")), ("name", pa.string()), ("n", pa.int64())])
    got = Mapping().bind(schema).map([msg("any/topic", {"ts": 5, "name": "x", "n": "12", "extra": 1}),
                                      msg("any/topic", {"ts": "1970-01-01T00:00:00.000007", "name": 3})])
    assert got.batch.to_pylist() == [
        {"ts": dt.datetime(1970, 1, 1, 0, 0, 0, 5), "name": "x", "n": 12},
        {"ts": dt.datetime(1970, 1, 1, 0, 0, 0, 7), "name": "3", "n": None},
    ]


def test_mapping_declares_a_schema_for_a_new_topic():
    m = Mapping.from_dict({"columns": {"ts": {"arrival": True, "type": "timestamp[ns]"},
                                       "v": {"json": "v", "type": "float64"}},
                           "topic": {"partitions": 2, "timestamp": "ts"}})
    assert m.schema() == pa.schema([("ts", pa.timestamp("ns")), ("v", pa.float64())])
    assert Mapping.from_dict({"columns": {"v": "v"}}).schema() is None


@pytest.mark.parametrize("text, words", [
    ("columns = [", "not valid TOML"),
    ("colums = {}", "unknown setting 'colums'"),
    ("on_error = \"ignore\"", "on_error must be"),
    ("[columns]\nv = { json = \"v\", const = 1 }", "exactly one source"),
    ("[columns]\nv = { jsn = \"v\" }", "unknown key 'jsn'"),
    ("[columns]\nv = { level = \"site\" }", "not named in mqtt_topic"),
    ("mqtt_topic = \"a/#/b\"\n[columns]\nv = \"v\"", "'#' must be the last level"),
    ("[columns]\nv = { json = \"a..b\" }", "dotted path"),
    ("[columns]\nv = { json = \"v\", type = \"float128\" }", "unknown column type"),
    ("[columns]\nv = { json = \"v\", unit = \"minutes\" }", "unit must be one of"),
    ("id = \"nope\"\n[columns]\nv = \"v\"", "id names column 'nope'"),
    ("[topic]\npartition = 2\n[columns]\nv = \"v\"", "unknown setting 'partition'"),
    ("[columns]\nv = { arrival = 1 }", "write arrival = true"),
])
def test_unusable_mapping_files_raise_mapping_error(tmp_path, text, words):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(MappingError, match=words.replace("(", r"\(").replace(")", r"\)")) as e:
        Mapping.from_file(path)
    assert isinstance(e.value, tidelog.InvalidArgumentError) and str(path) in str(e.value)


@pytest.mark.parametrize("columns, words", [
    ({"nope": "x"}, "column 'nope' is not in the topic's schema"),
    ({"v": {"json": "v", "type": "int32"}}, "column 'v' is double in the topic, int32 in the mapping"),
    ({"v": {"json": "v", "unit": "ms"}}, "unit is for timestamp columns"),
    ({"v": {"arrival": True}}, "arrival time needs a timestamp or int64 column"),
    ({"v": {"const": "warm"}}, "const 'warm' is not a number"),
    ({"v": "v"}, "column 'k' is not nullable"),
])
def test_mappings_that_do_not_fit_the_schema(columns, words):
    schema = pa.schema([("v", pa.float64()), pa.field("k", pa.int32(), nullable=False)])
    if "k" not in str(words):
        columns = {**columns, "k": "k"}
    with pytest.raises(MappingError, match=words):
        Mapping.from_dict({"columns": columns}).bind(schema)


def test_missing_mapping_file():
    with pytest.raises(MappingError, match="mapping file /nonexistent/m.toml"):
        Mapping.from_file("/nonexistent/m.toml")
