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
