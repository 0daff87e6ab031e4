"""librdkafka's own log lines go through Python's logging (the ``tidelog.kafka``
logger), never straight to stderr: a command against a broker that is not
there prints one error line, not librdkafka's ``%3|...`` stream."""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time

import pytest

import tidelog

pytest.importorskip("confluent_kafka")


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_librdkafka_logs_reach_the_tidelog_kafka_logger_not_stderr(capfd, caplog):
    url = f"kafka://127.0.0.1:{closed_port()}"
    with caplog.at_level(logging.DEBUG, logger="tidelog.kafka"):
        with tidelog.connect(url) as k:
            p = k.producer()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(r.name == "tidelog.kafka" for r in caplog.records):
                p.poll(0.1)  # (confluent-kafka hands log lines to the logger inside poll)
            p.close(0)
    records = [r for r in caplog.records if r.name == "tidelog.kafka"]
    assert records and any("Connection refused" in r.getMessage() for r in records)
    assert "%3|" not in capfd.readouterr().err


def test_the_cli_against_a_closed_port_prints_one_error_line(tmp_path):
    url = f"kafka://127.0.0.1:{closed_port()}"
    done = subprocess.run([sys.executable, "-m", "tidelog.cli", "mirror", url, str(tmp_path / "dst"), "--topics", "t",
                           "--checkpoint", str(tmp_path / "ck.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "%3|" not in done.stderr and "rdkafka" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("tidelog mirror: "), done.stderr[-2000:]
