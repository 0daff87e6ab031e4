"""The MQTT bridge against a real Mosquitto broker with real publishers (paho-mqtt):
end to end, SIGKILL mid-stream (nothing lost; exactly once with an id), the
reverse direction, and the command's errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest

import tidelog
from _mqtt import Collector, Publisher, free_port
from tidelog.connect.mqtt import MqttBridge

pytest.importorskip("paho.mqtt.client")

MAPPING = """
mqtt_topic = "sensors/{{site}}/{{sensor_id}}"
{id_line}

[columns]
ts = {{ json = "t", unit = "ms", type = "timestamp[ms]" }}
site = {{ level = "site", type = "string" }}
sensor_id = {{ level = "sensor_id", type = "int32" }}
value = {{ json = "v", type = "float64" }}
n = {{ json = "n", type = "int64" }}

[topic]
partitions = 2
key = "sensor_id"
timestamp = "ts"
"""


def mapping_file(tmp_path, with_id: bool = True):
    path = tmp_path / ("with-id.toml" if with_id else "without-id.toml")
    path.write_text(MAPPING.format(id_line='id = "n"' if with_id else ""))
    return path


def message(n: int) -> tuple[str, bytes]:
    return f"sensors/site{n % 3}/{n % 10}", json.dumps({"t": 1_767_225_600_000 + n, "v": n / 4, "n": n}).encode()


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tidelog.cli", "connect", "mqtt", *args], capture_output=True,
                          text=True, timeout=timeout)


def start_bridge(log_dir, broker, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tidelog.cli", "connect", "mqtt", str(log_dir), "--broker",
                             broker.url, "--subscribe", "sensors/#", "--to", "readings", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "subscribed to sensors/#" not in line:
        proc.kill()
        raise AssertionError(f"the bridge did not start: {line!r} {proc.stderr.read()!r}")
    return proc


def rows_in(log_dir, topic: str = "readings") -> int:
    try:
        with tidelog.open(log_dir, read_only=True) as ro:
            return sum(ro.topic(topic).end_offsets().values()) if topic in ro.topics() else 0
    except tidelog.LogNotFoundError:
        return 0


def test_bridge_in_process_end_to_end(tmp_path, mqtt_broker):
    n = 3_000
    with tidelog.open(tmp_path / "log") as log, \
            MqttBridge(log, topic="readings", broker=mqtt_broker.url, subscribe="sensors/#",
                       mapping=mapping_file(tmp_path), batch_rows=256) as bridge:
        subscribed = threading.Event()
        result = {}
        runner = threading.Thread(target=lambda: result.update(stats=bridge.run(on_subscribed=subscribed.set)))
        runner.start()
        assert subscribed.wait(10)
        pub = Publisher(mqtt_broker)
        pub.publish(message(i) for i in range(n))
        pub.publish([message(5), ("sensors/site0/not-a-number", b'{"t": 1, "v": 1, "n": -1}')])
        deadline = time.monotonic() + 30
        while bridge.stats.handled < n + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        bridge.stop()
        runner.join(10)
        pub.close()
        stats = result["stats"]
        assert (stats.received, stats.appended, stats.duplicates, stats.skipped, stats.acked) == (n + 2, n, 1, 1, n + 2)
        assert 1 < stats.batches < n
        topic = log.topic("readings")
        assert topic.partitions == 2 and topic.config.key == "sensor_id"
        table = topic.read().sort_by("n")
        assert table.column("n").to_pylist() == list(range(n))
        assert table.column("site").to_pylist()[:4] == ["site0", "site1", "site2", "site0"]
        assert table.column("sensor_id").to_pylist()[:11] == [*range(10), 0]
        assert table.column("value").to_pylist()[3] == 0.75
        assert table.column("ts").cast(pa.int64()).to_pylist()[2] == 1_767_225_600_002


@pytest.mark.parametrize("with_id", [True, False], ids=["id-exactly-once", "no-id-at-least-once"])
def test_sigkill_mid_stream_loses_nothing(tmp_path, mqtt_broker, with_id):
    """The bridge is killed while messages stream in, restarted while they still
    do: every published message is in the topic, exactly once when the mapping
    names an id (a PUBACK only ever follows a durable append)."""
    n = 12_000
    log_dir = tmp_path / "log"
    args = ("--map", str(mapping_file(tmp_path, with_id)), "--batch-rows", "400", "--linger-ms", "20")
    first = start_bridge(log_dir, mqtt_broker, *args)
    pub = Publisher(mqtt_broker)
    publishing = threading.Thread(target=lambda: [pub.publish(message(i) for i in range(k, k + 200))
                                                  for k in range(0, n, 200)])
    publishing.start()
    deadline = time.monotonic() + 60
    while rows_in(log_dir) < n // 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    at_kill = rows_in(log_dir)
    assert n // 4 <= at_kill < n, "the bridge was not killed mid-stream"
    second = start_bridge(log_dir, mqtt_broker, *args, "--idle-exit", "2", "--json")
    publishing.join(120)
    pub.close()
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    with tidelog.open(log_dir, read_only=True) as ro:
        got = ro.topic("readings").read(columns=["n"]).column("n").to_pylist()
    assert set(got) == set(range(n))
    if with_id:
        assert sorted(got) == list(range(n))
    else:
        assert len(got) >= n
    assert stats["skipped"] == 0 and stats["received"] >= n - at_kill


def test_publish_republishes_a_topic_and_resumes(tmp_path, mqtt_broker):
    log_dir = tmp_path / "log"
    schema = pa.schema([("ts", pa.timestamp("ms")), ("sensor_id", pa.int32()), ("value", pa.float64())])
    n = 500
    with tidelog.open(log_dir) as log:
        log.create_topic("readings", schema=schema, timestamp="ts").append(
            {"ts": [1_767_225_600_000 + i for i in range(n)], "sensor_id": [i % 4 for i in range(n)],
             "value": [i / 2 for i in range(n)]})
        log.create_topic("copy", schema=schema, timestamp="ts")
    collector = Collector(mqtt_broker, "out/#")
    try:
        done = cli(str(log_dir), "--broker", mqtt_broker.url, "--publish", "readings",
                   "--mqtt-topic", "out/sensor/{sensor_id}", "--until-end")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{n} rows of 'readings' published to 'out/sensor/{{sensor_id}}'")
        got = collector.wait_for(n)
        assert len(got) == n
        assert got[7] == ("out/sensor/3", b'{"ts":1767225600007,"sensor_id":3,"value":3.5}')
        again = cli(str(log_dir), "--broker", mqtt_broker.url, "--publish", "readings", "--until-end")
        assert again.returncode == 0 and again.stdout.startswith("0 rows"), again.stderr  # the group resumed
    finally:
        collector.close()
    # round trip: the republished rows, bridged back with the default mapping, are the rows
    with tidelog.open(log_dir) as log:
        bridge = MqttBridge(log, topic="copy", broker=mqtt_broker.url, subscribe="back/#", client_id="back")
        subscribed = threading.Event()
        runner = threading.Thread(target=lambda: bridge.run(max_messages=n, on_subscribed=subscribed.set))
        runner.start()
        assert subscribed.wait(10)
        log.reset_group_offsets("mqtt-publish-readings", to="earliest")
        from tidelog.connect.mqtt import MqttPublisher

        with MqttPublisher(log, topic="readings", broker=mqtt_broker.url, mqtt_topic="back/{sensor_id}") as p:
            assert p.run(until_end=True) == n
        runner.join(30)
        assert log.topic("copy").read().sort_by("ts").equals(log.topic("readings").read())


def test_stop_leaves_the_bad_message_with_the_broker(tmp_path, mqtt_broker):
    log_dir = tmp_path / "log"
    args = ("--map", str(mapping_file(tmp_path)), "--on-error", "stop")
    bridge = start_bridge(log_dir, mqtt_broker, *args)
    pub = Publisher(mqtt_broker)
    pub.publish([message(1), ("sensors/x/1", b"{not json"), message(2)])
    _, err = bridge.communicate(timeout=30)
    assert bridge.returncode == 1
    assert err.count("\n") == 1 and err.startswith("tidelog connect mqtt: MessageMappingError: a message from MQTT "
                                                   "topic 'sensors/x/1' does not fit topic 'readings'")
    assert rows_in(log_dir) == 1
    again = start_bridge(log_dir, mqtt_broker, "--map", str(mapping_file(tmp_path)), "--idle-exit", "1", "--json")
    out, err = again.communicate(timeout=30)
    pub.close()
    stats = json.loads(out.strip().splitlines()[-1])
    assert again.returncode == 0, err
    assert (stats["received"], stats["skipped"], stats["appended"]) == (2, 1, 1)  # redelivered, skipped this time
    assert err.startswith("tidelog connect mqtt: skipped a message from MQTT topic 'sensors/x/1'")


def test_a_small_inflight_window_still_gets_every_message(tmp_path):
    """mosquitto's default window (20 unacknowledged messages): batches end when
    the broker holds back, instead of waiting for the linger time."""
    from _mqtt import Broker

    broker = Broker(str(tmp_path), max_inflight=20)
    try:
        with tidelog.open(tmp_path / "log") as log:
            bridge = MqttBridge(log, topic="readings", broker=broker.url, subscribe="sensors/#",
                                mapping=mapping_file(tmp_path), linger_ms=10_000)
            subscribed = threading.Event()
            result = {}
            runner = threading.Thread(target=lambda: result.update(
                stats=bridge.run(max_messages=400, on_subscribed=subscribed.set)))
            runner.start()
            assert subscribed.wait(10)
            pub = Publisher(broker)
            t0 = time.monotonic()
            pub.publish(message(i) for i in range(400))
            runner.join(60)
            pub.close()
            # without the flush on a quiet socket, a batch stuck at the window would wait 10 s
            assert result["stats"].appended == 400 and time.monotonic() - t0 < 8
    finally:
        broker.stop()


@pytest.mark.parametrize("args, status, words", [
    (["--to", "readings"], 2, "give --subscribe FILTER and --to TOPIC"),
    (["--publish", "a", "--subscribe", "x/#"], 2, "give one or the other"),
    (["--subscribe", "x/#", "--to", "t", "--batch-rows", "0"], 2, "--batch-rows must be at least 1"),
    (["--subscribe", "x/#", "--to", "t", "--broker", "http://h:1"], 2, "broker 'http://h:1'"),
    (["--subscribe", "x/#", "--to", "t", "--map", "/nonexistent.toml"], 2, "mapping file"),
    (["--subscribe", "x/#", "--to", "t"], 2, "topic 't' does not exist"),
    (["--publish", "t", "--mqtt-topic", "a/#"], 2, "MQTT topic 'a/#'"),
])
def test_cli_bad_arguments_one_line(tmp_path, args, status, words):
    done = cli(str(tmp_path / "log"), *args)
    assert done.returncode == status, done.stderr
    assert done.stderr.startswith("tidelog connect mqtt: ") and done.stderr.count("\n") == 1, done.stderr
    assert words in done.stderr


def test_cli_unreachable_broker(tmp_path):
    with tidelog.open(tmp_path / "log") as log:
        log.create_topic("t", schema=pa.schema([("v", pa.float64())]))
    done = cli(str(tmp_path / "log"), "--broker", f"mqtt://127.0.0.1:{free_port()}", "--subscribe", "x/#",
               "--to", "t")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("tidelog connect mqtt: BrokerError: cannot reach the MQTT broker at mqtt://127.0.0.1:")


def test_cli_publish_without_paho(tmp_path):
    with tidelog.open(tmp_path / "log") as log:
        log.create_topic("t", schema=pa.schema([("v", pa.float64())]))
    code = ("import sys; sys.modules['paho'] = None; from tidelog.cli import main; "
            f"sys.exit(main(['connect', 'mqtt', {str(tmp_path / 'log')!r}, '--publish', 't']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == ("tidelog connect mqtt: publishing to MQTT needs paho-mqtt: pip install 'tidelog[mqtt]' "
                           "(or pip install 'paho-mqtt>=2.1')\n")


def test_dedupe_window_survives_a_restart(tmp_path, mqtt_broker):
    """Messages re-published with ids already in the topic (a publisher's retry
    after the bridge restarted) are dropped: the ids are read back at start."""
    log_dir = tmp_path / "log"
    mapping = mapping_file(tmp_path)
    pub = Publisher(mqtt_broker)
    for round_ in range(2):
        bridge = start_bridge(log_dir, mqtt_broker, "--map", str(mapping), "--idle-exit", "1", "--json")
        pub.publish(message(i) for i in range(100))
        out, err = bridge.communicate(timeout=30)
        stats = json.loads(out.strip().splitlines()[-1])
        assert (stats["appended"], stats["duplicates"]) == ((100, 0) if round_ == 0 else (0, 100)), err
    pub.close()
    assert rows_in(log_dir) == 100
    assert os.path.isdir(log_dir)


def test_reconnects_after_the_broker_restarts(tmp_path):
    """A broker restarted (without persistence, so it forgot the subscription):
    the bridge connects again, subscribes again and takes what comes next."""
    from _mqtt import Broker

    broker = Broker(str(tmp_path))
    with tidelog.open(tmp_path / "log") as log:
        bridge = MqttBridge(log, topic="readings", broker=broker.url, subscribe="sensors/#",
                            mapping=mapping_file(tmp_path))
        subscribed = threading.Event()
        result = {}
        runner = threading.Thread(target=lambda: result.update(
            stats=bridge.run(max_messages=200, on_subscribed=subscribed.set)))
        runner.start()
        try:
            assert subscribed.wait(10)
            pub = Publisher(broker)
            pub.publish(message(i) for i in range(100))
            pub.close()
            while bridge.stats.handled < 100:
                time.sleep(0.01)
            broker.stop()
            broker = Broker(str(tmp_path), port=broker.port)
            deadline = time.monotonic() + 30
            while bridge.stats.reconnects == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert bridge.stats.reconnects == 1
            time.sleep(0.2)  # the new subscription is in place once the bridge connected again
            pub = Publisher(broker)
            pub.publish(message(i) for i in range(100, 200))
            pub.close()
            runner.join(30)
        finally:
            bridge.stop()
            broker.stop()
        assert result["stats"].appended == 200
        assert sorted(log.topic("readings").read().column("n").to_pylist()) == list(range(200))


def test_waits_work_on_descriptors_past_1024():
    """The bridge's socket waits use poll(): select() raises "filedescriptor out
    of range" once a process holds more than 1,024 files (it did, in a test run
    that had leaked log handles)."""
    import resource
    import select
    import socket

    from tidelog.connect.mqtt import _wire

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100) if hard == resource.RLIM_INFINITY
                                                else min(max(soft, 1100), hard), hard))
    held = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open(os.devnull, os.O_RDONLY))
        a, b = socket.socketpair()
        try:
            assert a.fileno() >= 1024
            assert not _wire._ready(a, select.POLLIN, 0.01)
            b.send(b"x")
            assert _wire._ready(a, select.POLLIN, 1.0)
            assert _wire._ready(a, select.POLLOUT, 1.0)
        finally:
            a.close()
            b.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
