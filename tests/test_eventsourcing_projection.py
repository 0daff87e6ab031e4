"""Projections on tidelog: the eventsourcing library's projection test cases (9.5.6,
unmodified). The view keeps its counters as streams of its tracking store, recorded
atomically with each tracking object (TidelogTrackingRecorder.record)."""
from __future__ import annotations

from typing import ClassVar

import pytest

pytest.importorskip("eventsourcing")
pytest.importorskip("msgspec")  # eventsourcing.tests.projection imports eventsourcing.dcb.msgpack

from eventsourcing.persistence import Tracking  # noqa: E402
from eventsourcing.tests import projection as cases  # noqa: E402  (a module: no bases collected)

import tidelog.eventsourcing as tes  # noqa: E402
from tidelog.es import NewEvent  # noqa: E402
from _eventsourcing_env import TidelogEnvMixin  # noqa: E402

_CREATED, _SUBSEQUENT = "counter-created", "counter-subsequent"


class TidelogEventCountersView(tes.TidelogTrackingRecorder, cases.EventCountersView):
    """Each counter is a stream: its count is the stream's length."""

    def get_created_event_counter(self) -> int:
        return self.store.stream_version(_CREATED) + 1

    def get_subsequent_event_counter(self) -> int:
        return self.store.stream_version(_SUBSEQUENT) + 1

    def incr_created_event_counter(self, tracking: Tracking) -> None:
        self.record(tracking, [(_CREATED, [NewEvent(type="Incremented")])])

    def incr_subsequent_event_counter(self, tracking: Tracking) -> None:
        self.record(tracking, [(_SUBSEQUENT, [NewEvent(type="Incremented")])])


class TestEventCountersView(TidelogEnvMixin, cases.EventCountersViewTestCase):
    def construct_event_counters_view(self) -> cases.EventCountersView:
        return self.make_factory("eventcounters").tracking_recorder(TidelogEventCountersView)


class TestAggregateEventCountersProjection(TidelogEnvMixin, cases.AggregateEventCountersProjectionTestCase):
    view_class = TidelogEventCountersView
    env: ClassVar[dict[str, str]] = {}  # os.environ carries PERSISTENCE_MODULE and TIDELOG_PATH


class TestEventSourcedProjection(TidelogEnvMixin, cases.EventSourcedProjectionTestCase):
    env: ClassVar[dict[str, str]] = {}
