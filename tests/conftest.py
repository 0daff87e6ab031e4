"""Shared fixtures for the tidelog test suite (everything through ``import tidelog``)."""
from __future__ import annotations

import os
import sys

import pyarrow as pa
import pytest

sys.path.insert(0, os.path.dirname(__file__))

try:  # hypothesis profiles for tests/test_model.py: `pytest --hypothesis-profile=long` for long runs
    from hypothesis import HealthCheck, settings as _hsettings

    _hcommon = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                          HealthCheck.data_too_large])
    _hsettings.register_profile("tidelog-ci", max_examples=30, stateful_step_count=25, **_hcommon)
    _hsettings.register_profile("long", max_examples=1000, stateful_step_count=60, **_hcommon)
except ImportError:
    pass

import tidelog  # noqa: E402
from _helpers import SENSORS_SCHEMA  # noqa: E402


@pytest.fixture
def log_dir(tmp_path):
    """A path for a log folder that does not exist yet."""
    return tmp_path / "log"


@pytest.fixture
def log(log_dir):
    """An open writer log, closed (if still open) at teardown."""
    lg = tidelog.open(log_dir)
    try:
        yield lg
    finally:
        lg.close()


@pytest.fixture
def sensors_schema() -> pa.Schema:
    return SENSORS_SCHEMA


@pytest.fixture
def sensors(log, sensors_schema):
    """A 4-partition keyed sensors topic (key sensor_id, time column ts)."""
    return log.create_topic("sensors", sensors_schema, partitions=4, key="sensor_id", timestamp="ts")


@pytest.fixture
def mqtt_broker(tmp_path):
    """A private Mosquitto broker on a free loopback port (tests/_mqtt.py),
    skipped with the reason when mosquitto cannot be installed."""
    from _mqtt import Broker

    broker = Broker(str(tmp_path))
    try:
        yield broker
    finally:
        broker.stop()


def _kafka_unavailable() -> str | None:
    from tidelog.bench.kafka import unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            reason = "confluent-kafka is not installed (pip install tidelog[kafka])"
    return reason


@pytest.fixture(scope="session")
def kafka_broker():
    """One real single-node Kafka (KRaft) broker for the whole test session,
    from Maven Central jars (tidelog.bench.kafka: the project's one broker
    helper); skipped, with the reason shown, only without Java, Maven or
    confluent-kafka."""
    reason = _kafka_unavailable()
    if reason:
        pytest.skip(f"no Kafka broker: {reason}")
    from tidelog.bench.kafka import Broker

    if os.environ.get("TIDELOG_TEST_KAFKA"):  # a broker already running ("127.0.0.1:port"): reuse it
        port = int(os.environ["TIDELOG_TEST_KAFKA"].rsplit(":", 1)[1])
        yield Broker(port=port)
        return

    broker = Broker().start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_url(kafka_broker) -> str:
    return f"kafka://{kafka_broker.bootstrap}"
