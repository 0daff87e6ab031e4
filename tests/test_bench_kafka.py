"""The Kafka peer of the benchmark suite (tidelog.bench.kafka and
contenders/kafka_.py): a real broker from Maven Central jars, started and
stopped by the suite; skipped with a printed reason only when Java or Maven is
missing. (Every workload x Kafka contender pair also runs in
test_bench_smoke.py, on tiny data.)"""
from __future__ import annotations

import os
import time

import pytest

from tidelog.bench import Options, run_suite
from tidelog.bench.contenders import Kafka, KafkaJavaProducer
from tidelog.bench.kafka import Broker, unavailable_reason
from tidelog.bench.kafka.broker import new_cluster_id
from tidelog.bench.workloads import find


def test_without_java_or_maven_the_contenders_are_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))     # no java, no mvn
    reason = unavailable_reason()
    assert reason is not None and "java" in reason and "mvn" in reason
    for c in (Kafka(), KafkaJavaProducer()):
        assert "java" in c.available()
    doc = run_suite(Options(mode="smoke", dir=str(tmp_path / "scratch"), raise_errors=True),
                    contenders=[Kafka(), KafkaJavaProducer()], workloads=[find("produce")])
    assert doc["errors"] == [] and doc["results"] == []
    reasons = {s["contender"]: s["reason"] for s in doc["skipped"]}
    assert set(reasons) == {"kafka", "kafka (Java producer)"}
    assert all("Maven" in r for r in reasons.values())


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_a_broker_starts_keeps_a_durable_topics_config_and_stops_cleanly():
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource

    b = Broker().start()
    try:
        pid, data_dir = b.pid(), b.data_dir
        b.create_topic("durable", config={"flush.messages": 1})
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        res = ConfigResource(ConfigResource.Type.TOPIC, "durable")
        config = admin.describe_configs([res])[res].result(30)
        assert config["flush.messages"].value == "1"
        # A record round-trips through the broker.
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        p.produce("durable", b"hello", b"k")
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "t", "enable.auto.commit": False})
        c.assign([TopicPartition("durable", 0, 0)])
        got = None
        deadline = time.monotonic() + 30
        while got is None and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                got = (m.key(), m.value())
        c.close()
        del p
        assert got == (b"k", b"hello")
    finally:
        b.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not data_dir.exists()


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_a_port_in_use_is_refused_with_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match="already in use"):
            Broker(data_dir=str(tmp_path), port=port).start()


def test_a_cluster_id_never_starts_with_a_dash():
    # kafka-storage format -t <id> reads an id starting with "-" as an option: the
    # broker's first start failed one time in 64.
    import uuid
    drawn = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(range(16)))])
    first = new_cluster_id(lambda: next(drawn))
    assert first == "AAECAwQFBgcICQoLDA0ODw" and not first.startswith("-")
    assert all(not new_cluster_id().startswith("-") for _ in range(2000))
