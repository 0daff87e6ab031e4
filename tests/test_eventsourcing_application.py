"""eventsourcing applications on tidelog: the library's application test cases (9.5.6,
unmodified), with PERSISTENCE_MODULE=tidelog.eventsourcing and a fresh TIDELOG_PATH."""
from __future__ import annotations

import pytest

pytest.importorskip("eventsourcing")

from eventsourcing.tests import application as cases  # noqa: E402  (a module: no bases collected)
from eventsourcing.utils import get_topic  # noqa: E402

import tidelog.eventsourcing as tes  # noqa: E402
from _eventsourcing_env import TidelogEnvMixin  # noqa: E402


class TestApplication(TidelogEnvMixin, cases.ApplicationTestCase):
    pass


class TestExampleApplication(TidelogEnvMixin, cases.ExampleApplicationTestCase):
    expected_factory_topic = get_topic(tes.TidelogFactory)
