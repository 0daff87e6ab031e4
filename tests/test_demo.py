"""``tidelog demo``, the README's first command, on a small scale: every stage,
what it leaves on disk, its folder rules, its option errors."""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tidelog
from tidelog._sensors import TICK_SCHEMA
from tidelog.demo import DemoOptions, run_demo
from tidelog.demo import _alerts, _analytics
from tidelog.demo._read_model import summary
from tidelog.errors import InvalidArgumentError

SMALL = dict(rows=200_000, sensors=100, batch_rows=16_384, sqlite_rows=20_000, live_seconds=1.0, mqtt="off")


def demo_children() -> list:
    """The demo's processes still running (other tests' children are theirs)."""
    return [p for p in multiprocessing.active_children() if p.name.startswith("tidelog-demo")]


def cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tidelog.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_demo_runs_every_stage_and_leaves_a_consistent_log(tmp_path):
    threads_before = set(threading.enumerate())
    out = io.StringIO()
    folder = str(tmp_path / "d")
    assert run_demo(DemoOptions(directory=folder, **SMALL), out=out) == 0
    text = out.getvalue()
    for stage in ("1 ingest", "2 alerting", "3 live", "4 events", "5 query", "6 export", "7 SQLite"):
        assert f"\n{stage} " in text, stage
    assert "tidelog ingests" in text and f"The data is in {folder}" in text
    assert "Traceback" not in text
    # Nothing left running: no worker process, no projection thread.
    assert demo_children() == []
    assert set(threading.enumerate()) <= threads_before     # no thread of its own left

    # The folder is the log: verify works on it, and every stage's output is there.
    assert cli("verify", folder).returncode == 0
    with tidelog.open(folder) as log:
        readings = log.topic("readings")
        rows = readings.read(columns=["sensor_id"]).num_rows
        assert rows == 200_000 + 10 * 100              # the history, and 10 ticks of 100 sensors live
        group = log.describe_group(_alerts.GROUP)
        assert not any(group.lag.values())            # the workers committed everything
        store = log.event_store(_alerts.STORE)
        model = summary(os.path.join(folder, "demo", "alerts.sqlite"))
        assert store.event_count == model["raised"] + model["cleared"] > 0
        # The overheating sensors raised an alert while live.
        assert {0, 1, 2} <= {e.decode()["sensor_id"] for e in store.read_all() if e.type.endswith("AlertRaised")}
        # Each stream alternates raised / cleared, starting with raised: no alert stored twice.
        for stream in store.streams("sensor-"):
            kinds = [e.type.endswith("AlertRaised") for e in store.read(stream)]
            assert kinds == [i % 2 == 0 for i in range(len(kinds))], stream
    exported = pq.read_table(os.path.join(folder, "demo", "export"))
    assert exported.num_rows == rows


def test_alerts_follow_hysteresis_and_skip_what_a_restart_already_stored():
    def batch(values, ts):
        return pa.record_batch([pa.array(ts, pa.timestamp("ns")), pa.array([7] * len(values), pa.int32()),
                                pa.array(values, pa.float64())], schema=TICK_SCHEMA)

    states = {7: _alerts.SensorState(False, -1, -1)}
    alerts = _alerts.transitions(batch([20, 33, 31, 30, 28.5, 29.5, 40], [1, 2, 3, 4, 5, 6, 7]), states)
    assert [(type(e).__name__, e.ts_ns) for _, e in alerts] == [
        ("AlertRaised", 2), ("AlertCleared", 5), ("AlertRaised", 7)]
    # A worker restarted after storing up to ts 5 (state loaded from the stream) and polled the batch again.
    states = {7: _alerts.SensorState(False, 1, 5)}
    alerts = _alerts.transitions(batch([20, 33, 31, 30, 28.5, 29.5, 40], [1, 2, 3, 4, 5, 6, 7]), states)
    assert [(type(e).__name__, e.ts_ns) for _, e in alerts] == [("AlertRaised", 7)]


@pytest.mark.parametrize("engine", ["duckdb", "polars", "pyarrow"])
def test_the_window_query_answers_alike_on_every_engine(tmp_path, monkeypatch, engine):
    pytest.importorskip(engine)
    monkeypatch.setattr(_analytics, "_engine", lambda: engine)
    from tidelog.demo._feed import backfill

    with tidelog.open(tmp_path / "log") as log:
        topic = log.create_topic("readings", schema=TICK_SCHEMA, partitions=2, key="sensor_id", timestamp="ts")
        for b in backfill(50_000, 50, 5_000, 10**18):
            topic.append(b)
        got = _analytics.window_query(topic, 10**18 + 200 * 100_000_000, 10**18 + 600 * 100_000_000)
    assert got.engine == engine and got.rows_in_window == 400 * 50
    want = [(s, round(hi, 9)) for s, hi, _ in got.hottest]
    assert [s for s, _ in want] == [s for s, _ in sorted(want, key=lambda t: -t[1])]
    if engine != "pyarrow":
        assert got.bytes_read < got.bytes_total / 2    # the time window was pushed down


def test_a_second_run_replaces_its_own_folder_and_others_are_refused(tmp_path):
    folder = tmp_path / "d"
    assert run_demo(DemoOptions(directory=str(folder), **{**SMALL, "live_seconds": 0.2}), out=io.StringIO()) == 0
    out = io.StringIO()
    assert run_demo(DemoOptions(directory=str(folder), **{**SMALL, "live_seconds": 0.2}), out=out) == 0
    assert "replaced the data of an earlier demo" in out.getvalue()

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidArgumentError, match="did not make"):
        run_demo(DemoOptions(directory=str(other), **SMALL), out=io.StringIO())
    assert os.listdir(other) == ["notes.txt"]
    with tidelog.open(tmp_path / "a-log") as log:
        log.create_topic("t", schema=pa.schema([("x", pa.int64())]))
    with pytest.raises(InvalidArgumentError, match="a tidelog log that the demo did not make"):
        run_demo(DemoOptions(directory=str(tmp_path / "a-log"), **SMALL), out=io.StringIO())
    with pytest.raises(InvalidArgumentError, match="is a file"):
        run_demo(DemoOptions(directory=str(other / "notes.txt"), **SMALL), out=io.StringIO())


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "argument --rows: 0 is below 1"),
    (["--sensors", "many"], "argument --sensors: 'many' is not a whole number"),
    (["--live-seconds", "-1"], "argument --live-seconds: -1 is not within 0 to 3600 seconds"),
])
def test_bad_options_are_one_line_errors(args, message):
    run = cli("demo", *args)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    line, = run.stderr.strip().splitlines()
    assert line.startswith("tidelog demo: ") and message in line


def test_a_folder_it_did_not_make_is_refused_at_the_command_line(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    run = cli("demo", "--dir", str(tmp_path), "--rows", "1000")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("tidelog demo: ")
    assert "did not make" in run.stderr and os.listdir(tmp_path) == ["notes.txt"]


def test_help_explains_every_option_with_examples():
    text = cli("demo", "--help").stdout
    assert "examples:" in text and "exit status" in text
    for option in ("--dir", "--rows", "--sensors", "--batch", "--live-seconds", "--workers", "--mqtt",
                   "--sqlite-rows"):
        assert option in text
    assert "==SUPPRESS==" not in text


def test_live_readings_travel_through_mqtt_and_the_bridge(tmp_path):
    from tidelog.demo import _live_mqtt

    how, why = _live_mqtt.plan("auto")
    if how != "private":
        pytest.skip(f"the demo appends directly here: {why}")
    out = io.StringIO()
    folder = str(tmp_path / "d")
    assert run_demo(DemoOptions(directory=folder, **{**SMALL, "mqtt": "auto"}), out=out) == 0
    assert "through MQTT (a private Mosquitto, QoS 1" in out.getvalue()
    with tidelog.open(folder) as log:
        assert log.topic("readings").read(columns=["sensor_id"]).num_rows == 200_000 + 10 * 100
    assert demo_children() == []


def test_the_sensors_wait_for_pubacks_rather_than_reuse_a_packet_id():
    """More readings than MQTT's 65,535 packet ids in one go: the sensors'
    client waits for PUBACKs past its limit, and every reading arrives (paho
    drops a QoS 1 message whose id is still outstanding: a slow machine lost
    readings that way and the demo failed)."""
    import paho.mqtt.client as mqtt

    from tidelog.connect.mqtt.broker import PrivateMosquitto
    from tidelog.demo import _live_mqtt

    if _live_mqtt.plan("auto")[0] != "private":
        pytest.skip("needs mosquitto and paho-mqtt")
    assert _live_mqtt._Sensors.MAX_OUTSTANDING < 65_535
    n = 70_000
    batch = pa.RecordBatch.from_pydict({
        "ts": pa.array(range(10**18, 10**18 + n), pa.timestamp("ns")),
        "sensor_id": pa.array([i % 1000 for i in range(n)], pa.int32()),
        "value": pa.array([float(i) for i in range(n)]),
    })
    with PrivateMosquitto(max_inflight=1000, max_queued=0, log=False) as broker:
        host, _, port = broker.url[len("mqtt://"):].rpartition(":")
        received = []
        subscribed = threading.Event()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        sub.on_connect = lambda c, *a: c.subscribe(_live_mqtt.MQTT_TOPIC_ROOT + "/#", qos=1)
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.on_message = lambda c, u, m: received.append(m.payload)
        sub.connect(host, int(port))
        sub.loop_start()
        try:
            assert subscribed.wait(30)
            sensors = _live_mqtt._Sensors(broker.url, max_outstanding=2_000)
            sensors.send(batch)
            assert sensors.waits > 0
            assert all(info.rc == mqtt.MQTT_ERR_SUCCESS for info in sensors.pending)
            sensors.close()
            deadline = time.monotonic() + 60
            while len(received) < n and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            sub.disconnect()
            sub.loop_stop()
    values = sorted(json.loads(p)["value"] for p in received)
    assert values == [float(i) for i in range(n)]


def test_a_broker_url_that_is_not_mqtt_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InvalidArgumentError, match="--mqtt takes mqtt://host:port"):
        run_demo(DemoOptions(directory=str(tmp_path / "d"), **{**SMALL, "mqtt": "http://127.0.0.1:1883"}),
                 out=io.StringIO())
    assert not (tmp_path / "d").exists()
