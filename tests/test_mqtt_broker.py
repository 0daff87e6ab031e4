"""The private Mosquitto (tidelog.connect.mqtt.broker) the demo, the ``mqtt``
benchmark and the tests share: it starts and stops a real ``mosquitto``,
and says clearly why when the program is missing or exits at start."""
from __future__ import annotations

import os
import socket

import pytest

from tidelog.bench import Options, run_suite
from tidelog.bench.contenders.tidelog_mqtt import TidelogMqtt
from tidelog.bench.mqtt import Mqtt
from tidelog.connect.mqtt import broker as broker_module
from tidelog.connect.mqtt.broker import PrivateMosquitto, find_mosquitto
from tidelog.errors import BrokerError

needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")


@pytest.fixture
def no_mosquitto(monkeypatch):
    monkeypatch.setattr(broker_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(broker_module, "_SBIN", ())


@needs_mosquitto
def test_starts_listens_and_cleans_up():
    with PrivateMosquitto(max_inflight=10, max_queued=100, log=False) as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        socket.create_connection(("127.0.0.1", broker.port), timeout=2).close()
        folder = broker.directory
        assert "max_queued_messages 100" in open(os.path.join(folder, "mosquitto.conf")).read()
    assert broker.proc.returncode is not None and not os.path.exists(folder)


@needs_mosquitto
def test_a_caller_folder_keeps_the_log_and_kill_stops_it(tmp_path):
    broker = PrivateMosquitto(tmp_path)
    broker.kill()
    assert broker.proc.returncode == -9
    assert broker.log_path == str(tmp_path / "mosquitto.log") and (tmp_path / "mosquitto.conf").exists()


@needs_mosquitto
def test_a_port_in_use_is_a_clear_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with PrivateMosquitto(tmp_path / "a") as first:
        with pytest.raises(BrokerError, match=f"cannot start mosquitto on port {first.port}: Address already in use"):
            PrivateMosquitto(tmp_path / "b", port=first.port)


def test_a_program_that_exits_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: "/bin/false")
    with pytest.raises(BrokerError, match=r"mosquitto did not start on port \d+: exited with status 1"):
        PrivateMosquitto(tmp_path)


def test_missing_program_is_a_clear_error(no_mosquitto):
    assert find_mosquitto() is None
    with pytest.raises(BrokerError, match="the mosquitto program is not installed"):
        PrivateMosquitto()


def test_bench_contenders_are_skipped_with_the_reason(no_mosquitto, tmp_path):
    doc = run_suite(Options(mode="smoke", dir=str(tmp_path)), contenders=[TidelogMqtt("bridge"), TidelogMqtt("sub")],
                    workloads=[Mqtt()])
    assert doc["results"] == [] and doc["errors"] == []
    assert sorted(s["contender"] for s in doc["skipped"]) == ["mosquitto_sub -q 1", "tidelog connect mqtt"]
    assert all("mosquitto program is not installed" in s["reason"] for s in doc["skipped"])
