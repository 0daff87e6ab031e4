"""The conformance suite: the public producer / consumer / group / Arrow API,
run against both backends (a local log folder and a real Kafka broker).

A test marked ``kafka_difference("...")`` checks a behaviour in which Kafka
differs by its nature (docs/kafka.md, "Two backends"): it runs on both
backends and asserts each backend's documented behaviour."""
from __future__ import annotations

import uuid

import pytest

import tidelog


@pytest.fixture(params=["local", "kafka"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def api(backend, tmp_path, request):
    """An open log of the backend: ``tidelog.open(folder)`` or ``tidelog.connect(url)``."""
    if backend == "local":
        log = tidelog.open(tmp_path / "log")
    else:
        broker = request.getfixturevalue("kafka_broker")
        log = tidelog.connect(f"kafka://{broker.bootstrap}?client.id=conformance")
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def name() -> str:
    """A topic or group name unique to the test (the Kafka broker is shared by the session)."""
    return f"t-{uuid.uuid4().hex[:12]}"

