"""tidelog.eventsourcing against the eventsourcing library's own recorder and factory
test cases (9.5.6, unmodified), plus bad-input checks."""
from __future__ import annotations

import os
import unittest
from uuid import UUID, uuid4

import pytest

pytest.importorskip("eventsourcing")

from eventsourcing.persistence import (  # noqa: E402
    DataError,
    InfrastructureFactory,
    InfrastructureFactoryError,
    IntegrityError,
    StoredEvent,
    Tracking,
)
from eventsourcing.tests import persistence as cases  # noqa: E402  (a module: pytest collects no bases)
from eventsourcing.utils import Environment  # noqa: E402

import tidelog.eventsourcing as tes  # noqa: E402
from tidelog.errors import InvalidArgumentError  # noqa: E402
from _eventsourcing_env import TidelogEnvMixin, close_logs_under  # noqa: E402


class TextIds:
    """The library's text-id variant: originator ids are str."""

    def new_originator_id(self) -> UUID | str:
        return f"test-{uuid4()}"


# ------------------------------------------------------------------ aggregate
class TestAggregateRecorder(TidelogEnvMixin, cases.AggregateRecorderTestCase):
    def create_recorder(self):
        return self.make_factory().aggregate_recorder()


class TestAggregateRecorderTextIds(TextIds, TestAggregateRecorder):
    pass


class TestSnapshotRecorder(TidelogEnvMixin, cases.AggregateRecorderTestCase):
    def create_recorder(self):
        return self.make_factory().aggregate_recorder(purpose="snapshots")


# ---------------------------------------------------------------- application
class TestApplicationRecorder(TidelogEnvMixin, cases.ApplicationRecorderTestCase):
    def create_recorder(self):
        return self.make_factory().application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestApplicationRecorderTextIds(TextIds, TestApplicationRecorder):
    pass


class TestNonInterleavingNotificationIDs(TidelogEnvMixin, cases.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self):
        return self.make_factory().application_recorder()


class TestNonInterleavingNotificationIDsTextIds(TextIds, TestNonInterleavingNotificationIDs):
    pass


# ------------------------------------------------------------ tracking/process
class TestTrackingRecorder(TidelogEnvMixin, cases.TrackingRecorderTestCase):
    def create_recorder(self):
        return self.make_factory().tracking_recorder()


class TestProcessRecorder(TidelogEnvMixin, cases.ProcessRecorderTestCase):
    def create_recorder(self):
        return self.make_factory().process_recorder()


class TestProcessRecorderTextIds(TextIds, TestProcessRecorder):
    pass


# -------------------------------------------------------------------- factory
class MyTrackingRecorder(tes.TidelogTrackingRecorder):
    """A trivial subclass for the factory case's tracking-recorder topic path."""


class TestFactory(TidelogEnvMixin, cases.InfrastructureFactoryTestCase[tes.TidelogFactory]):
    def before_base_setup(self) -> None:  # the base case's setUp needs self.env
        self.env = self.make_env("TestCase")

    def expected_factory_class(self):
        return tes.TidelogFactory

    def expected_aggregate_recorder_class(self):
        return tes.TidelogAggregateRecorder

    def expected_application_recorder_class(self):
        return tes.TidelogApplicationRecorder

    def expected_tracking_recorder_class(self):
        return tes.TidelogTrackingRecorder

    def tracking_recorder_subclass(self):
        return MyTrackingRecorder

    def expected_process_recorder_class(self):
        return tes.TidelogProcessRecorder


# ------------------------------------------------- tidelog-specific behaviour
class TestTidelogSpecifics(TidelogEnvMixin, unittest.TestCase):
    def test_missing_path_names_the_keys(self) -> None:
        env = Environment("Bank", {"PERSISTENCE_MODULE": "tidelog.eventsourcing"})
        saved = os.environ.pop("TIDELOG_PATH")
        try:
            with self.assertRaises(InfrastructureFactoryError) as cm:
                InfrastructureFactory.construct(env)
        finally:
            os.environ["TIDELOG_PATH"] = saved
        self.assertIn("BANK_TIDELOG_PATH, TIDELOG_PATH", str(cm.exception))

    def test_bad_input_is_typed_and_writes_nothing(self) -> None:
        rec = self.make_factory("Bank").application_recorder()
        good = StoredEvent(uuid4(), 1, "t", b"s")
        bad_inputs = [
            StoredEvent(123, 1, "t", b"s"),              # neither UUID nor str
            StoredEvent("", 1, "t", b"s"),               # empty str id
            StoredEvent("$tracking-x", 1, "t", b"s"),    # system stream namespace
            StoredEvent(uuid4(), "1", "t", b"s"),        # version not an int
            StoredEvent(uuid4(), True, "t", b"s"),       # bool is not a version
            StoredEvent(uuid4(), 2**63, "t", b"s"),      # beyond int64
            StoredEvent(uuid4(), 1, "t", "state"),       # state not bytes
            StoredEvent(uuid4(), 1, None, b"s"),         # topic not a str
        ]
        for bad in bad_inputs:
            with self.assertRaises(DataError, msg=repr(bad)) as cm:
                rec.insert_events([good, bad])
            self.assertIsInstance(cm.exception, InvalidArgumentError)
        with self.assertRaises(DataError):
            rec.insert_events(["not a stored event"])  # type: ignore[list-item]
        with self.assertRaises(DataError):
            rec.select_events(42)  # type: ignore[arg-type]
        self.assertIsNone(rec.max_notification_id())
        self.assertEqual(rec.select_events(good.originator_id), [])

        proc = self.make_factory("Proc").process_recorder()
        for bad_tracking in (Tracking("", 1), Tracking("up", "1"), "tracking"):
            with self.assertRaises(DataError):
                proc.insert_events([good], tracking=bad_tracking)
        self.assertIsNone(proc.max_notification_id())

    def test_ids_keep_their_type_and_streams_are_shared_by_value(self) -> None:
        rec = self.make_factory().aggregate_recorder()
        u = uuid4()
        rec.insert_events([StoredEvent(u, 1, "t", b"a")])
        rec.insert_events([StoredEvent(str(u), 2, "t", b"b")])  # the same stream, by value
        got = rec.select_events(u)
        self.assertEqual([type(e.originator_id) for e in got], [UUID, str])
        with self.assertRaises(IntegrityError):
            rec.insert_events([StoredEvent(str(u), 2, "t", b"c")])

    def test_versions_below_the_last_are_refused(self) -> None:
        rec = self.make_factory().aggregate_recorder("snapshots")
        oid = uuid4()
        rec.insert_events([StoredEvent(oid, 5, "t", b"5"), StoredEvent(oid, 10, "t", b"10")])
        with self.assertRaises(IntegrityError):
            rec.insert_events([StoredEvent(oid, 7, "t", b"7")])  # unused, but below 10
        rec.insert_events([StoredEvent(oid, 15, "t", b"15")])
        versions = lambda **kw: [e.originator_version for e in rec.select_events(oid, **kw)]  # noqa: E731
        self.assertEqual(versions(), [5, 10, 15])
        self.assertEqual(versions(lte=12, desc=True, limit=1), [10])
        self.assertEqual(versions(gt=5, lte=15), [10, 15])
        self.assertEqual(versions(gt=5, desc=True), [15, 10])
        self.assertEqual(versions(lte=4), [])
        self.assertEqual(versions(gt=15), [])

    def test_batch_atomic_across_originators(self) -> None:
        rec = self.make_factory().application_recorder()
        a, b = uuid4(), uuid4()
        self.assertEqual(rec.insert_events([StoredEvent(a, 1, "t", b"")]), [1])
        with self.assertRaises(IntegrityError):
            rec.insert_events([StoredEvent(b, 1, "t", b""), StoredEvent(a, 1, "t", b"")])
        self.assertEqual(rec.select_events(b), [])
        self.assertEqual(rec.max_notification_id(), 1)
        # interleaved originators: ids follow each event
        ids = rec.insert_events([StoredEvent(b, 1, "t", b"b1"), StoredEvent(a, 2, "t", b"a2"),
                                 StoredEvent(b, 2, "t", b"b2")])
        notes = {n.id: n.state for n in rec.select_notifications(None, 10)}
        self.assertEqual([notes[i] for i in ids], [b"b1", b"a2", b"b2"])

    def test_applications_share_one_log_and_are_namespaced(self) -> None:
        f1, f2 = self.make_factory("Orders"), self.make_factory("Invoices")
        r1, r2 = f1.application_recorder(), f2.application_recorder()
        self.assertIs(f1._lease.log, f2._lease.log)
        oid = uuid4()
        self.assertEqual(r1.insert_events([StoredEvent(oid, 1, "t", b"")]), [1])
        self.assertEqual(r2.insert_events([StoredEvent(oid, 1, "t", b"")]), [1])
        self.assertEqual(tes.store_name("Orders"), "Orders")
        self.assertNotEqual(tes.store_name("Bank"), tes.store_name("bank"))
        self.assertEqual(tes.store_name(""), "events")
        self.assertNotEqual(tes.store_name("a b"), tes.store_name("a_b"))
        log = f1._lease.log
        f1.close()
        r2.insert_events([StoredEvent(oid, 2, "t", b"")])  # still open for f2
        f2.close()
        close_logs_under(self._tmp_dir)
        self.assertNotIn(os.path.realpath(self.log_path), tes._LOGS)
        del log

    def test_process_recorder_tracking_is_atomic_with_events(self) -> None:
        rec = self.make_factory("Proc").process_recorder()
        a = uuid4()
        rec.insert_events([StoredEvent(a, 1, "t", b"")], tracking=Tracking("up", 5))
        with self.assertRaises(IntegrityError):  # tracking not above 5: the event is not written
            rec.insert_events([StoredEvent(a, 2, "t", b"")], tracking=Tracking("up", 5))
        self.assertEqual(len(rec.select_events(a)), 1)
        with self.assertRaises(IntegrityError):  # event conflicts: the tracking is not written
            rec.insert_events([StoredEvent(a, 1, "t", b"")], tracking=Tracking("up", 6))
        self.assertEqual(rec.max_tracking_id("up"), 5)
        ids = rec.insert_events([StoredEvent(a, 2, "t", b"")], tracking=Tracking("up", 6))
        self.assertEqual(rec.max_notification_id(), ids[-1])  # not the tracking row's position
        self.assertEqual([n.originator_version for n in rec.select_notifications(None, 10)], [1, 2])
