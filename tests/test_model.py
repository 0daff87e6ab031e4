"""Model-based test (issue 5): a hypothesis state machine drives the public API
(create topics with and without a schema, append, produce, read, scan, consumer
seek, reopen, crash-and-recover, retention, delete) against a plain Python model
of the log, and checks that they agree after every step.

Profiles: the default run is CI-sized (``max_examples`` 30). For a long run::

    TIDELOG_HYPOTHESIS_PROFILE=long python -m pytest tests/test_model.py
    python -m pytest tests/test_model.py --hypothesis-profile=long   # once conftest registers the profiles

``long`` also enables a real crash: a child process that appends and is
SIGKILLed while the model tracks only what it acknowledged.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

import pyarrow as pa
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, precondition, rule  # noqa: E402,E501

import tidelog  # noqa: E402
from _helpers import kafka_partition  # noqa: E402

# ----------------------------------------------------------------------------- profiles
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                     HealthCheck.data_too_large])
for _name, _kw in {"tidelog-ci": dict(max_examples=30, stateful_step_count=25),
                   "long": dict(max_examples=1000, stateful_step_count=60)}.items():
    try:
        settings.get_profile(_name)
    except hypothesis.errors.InvalidArgument:
        settings.register_profile(_name, **_COMMON, **_kw)
if os.environ.get("TIDELOG_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["TIDELOG_HYPOTHESIS_PROFILE"])
PROFILE = settings.get_current_profile_name()
LONG = PROFILE == "long"

T0 = 1_700_000_000_000_000_000
COLS_SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("k", pa.int32()), ("v", pa.binary())])
NAMES = ["a", "b", "c.d", "e_f"]


class ModelTopic:
    def __init__(self, name: str, records: bool, partitions: int, keyed: bool, config: dict):
        self.name = name
        self.records = records
        self.partitions = partitions
        self.keyed = keyed
        self.config = config
        self.rows: list[list[dict]] = [[] for _ in range(partitions)]  # rows at offsets start..end-1
        self.start = [0] * partitions

    def end(self, p: int) -> int:
        return self.start[p] + len(self.rows[p])


class LogModel(RuleBasedStateMachine):
    cols_topics = Bundle("cols_topics")
    record_topics = Bundle("record_topics")

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tidelog-model-")
        self.path = os.path.join(self.dir, "log")
        self.log = tidelog.open(self.path)
        self.model: dict[str, ModelTopic] = {}
        self.sticky: dict[str, int] = {}  # round-robin counter of unkeyed columnar topics, per open
        self.crashes = 0
        self.steps = 0

    def teardown(self):
        event(f"steps: {'<5' if self.steps < 5 else '5-14' if self.steps < 15 else '15+'}")
        try:
            if self.log is not None:
                self._check_everything()
        finally:
            try:
                if self.log is not None:
                    self.log.close()
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ topics
    _CONFIG = dict(partitions=st.integers(1, 3), durability=st.sampled_from(["none", "interval", "fsync"]),
                   compression=st.sampled_from(["none", "none", "zstd"]),
                   segment_bytes=st.sampled_from([4096, 8192, 1 << 20]),
                   retention_bytes=st.sampled_from([None, None, 0, 3000, 20000]))

    def _create(self, name, records, partitions, keyed, durability, compression, segment_bytes, retention_bytes):
        config = dict(durability=durability, compression=compression, segment_bytes=segment_bytes,
                      retention_bytes=retention_bytes, flush_interval_ms=10)
        if name in self.model:
            with pytest.raises(tidelog.TopicExistsError):
                self.log.create_topic(name, None if records else COLS_SCHEMA, partitions=partitions, **config)
            return name
        if records:
            self.log.create_topic(name, partitions=partitions, **config)
        else:
            self.log.create_topic(name, COLS_SCHEMA, partitions=partitions, key="k" if keyed else None,
                                  timestamp="ts", **config)
        self.model[name] = ModelTopic(name, records, partitions, keyed or records, config)
        self.sticky[name] = 0
        return name

    @initialize(target=cols_topics, keyed=st.booleans(), **_CONFIG)
    def first_columnar_topic(self, **kw):
        return self._create("cols0", False, **kw)

    @initialize(target=cols_topics, durability=st.sampled_from(["none", "fsync"]))
    def small_retained_topic(self, durability):
        """Small segments and retention: appends roll it, retention deletes old segments."""
        return self._create("ret", False, 1, False, durability, "none", 4096, 0)

    @initialize(target=record_topics, **_CONFIG)
    def first_record_topic(self, **kw):
        return self._create("recs0", True, keyed=True, **kw)

    @rule(target=cols_topics, name=st.sampled_from(NAMES), keyed=st.booleans(), **_CONFIG)
    def create_columnar_topic(self, name, **kw):
        if name in self.model and self.model[name].records:
            with pytest.raises(tidelog.TopicExistsError):
                self.log.create_topic(name, COLS_SCHEMA)
            return "cols0"
        return self._create(name, False, **kw)

    @rule(target=record_topics, name=st.sampled_from(NAMES), **_CONFIG)
    def create_record_topic(self, name, **kw):
        if name in self.model and not self.model[name].records:
            with pytest.raises(tidelog.TopicExistsError):
                self.log.create_topic(name)
            return "recs0"
        return self._create(name, True, keyed=True, **kw)

    @rule(name=st.one_of(consumes(cols_topics), consumes(record_topics)))
    def delete_topic(self, name):
        if name not in self.model:
            with pytest.raises(tidelog.UnknownTopicError):
                self.log.delete_topic(name)
            return
        t = self.log.topic(name)
        before = t.read()  # data read before stays valid
        self.log.delete_topic(name)
        del self.model[name]
        with pytest.raises(tidelog.UnknownTopicError):
            self.log.topic(name)
        before.validate(full=True)
        event("delete topic")
        assert not os.path.exists(os.path.join(self.path, "topics", name))

    # ------------------------------------------------------------------ writing
    ROWS = st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.binary(max_size=100), st.integers(0, 10**6)),
                    min_size=1, max_size=60)

    @rule(name=cols_topics, rows=ROWS)
    def append_more(self, name, rows):  # the same rule twice: appends are the main course
        self.append(name, rows)

    @rule(rows=ROWS)
    def append_and_retain(self, rows):
        """Appends to the small-segment topic with retention_bytes=0, then applies retention."""
        if "ret" in self.model:
            self.append("ret", [(k, v + b"-" * 700, ts) for k, v, ts in rows] * 2)  # big enough to roll soon
            self.retention("ret")

    @rule(name=cols_topics, rows=ROWS)
    def append(self, name, rows):
        m = self.model.get(name)
        if m is None or m.records:  # deleted since (maybe re-created as a record topic)
            return
        t = self.log.topic(name)
        data = {"ts": pa.array([T0 + ts * 1000 for _, _, ts in rows], pa.timestamp("ns")),
                "k": pa.array([k for k, _, _ in rows], pa.int32()), "v": pa.array([v for _, v, _ in rows])}
        res = t.append(data)
        event("append")
        expected: dict[int, list[dict]] = {}
        if m.keyed:
            for k, v, ts in rows:
                expected.setdefault(kafka_partition(struct.pack(">i", k), m.partitions), []).append(
                    {"ts": T0 + ts * 1000, "k": k, "v": v})
        else:
            p = self.sticky[name] % m.partitions
            self.sticky[name] += 1 if m.partitions > 1 else 0
            expected[p] = [{"ts": T0 + ts * 1000, "k": k, "v": v} for k, v, ts in rows]
        assert set(res.offsets) == set(expected), (res.offsets, list(expected))
        for p, new in expected.items():
            assert res.offsets[p] == (m.end(p), m.end(p) + len(new) - 1)
            m.rows[p].extend(new)

    @rule(name=record_topics, records=st.lists(st.tuples(st.none(), st.binary(max_size=300), st.just([]),
                                                         st.none()), min_size=1, max_size=40))
    def produce_more(self, name, records):
        self.produce(name, records, 0, "durable")

    @rule(name=record_topics, records=st.lists(
        st.tuples(st.one_of(st.none(), st.binary(min_size=1, max_size=6)), st.one_of(st.none(), st.binary(max_size=50)),
                  st.lists(st.tuples(st.sampled_from(["h", "trace-id", "ü"]), st.one_of(st.none(), st.binary(max_size=8))),
                           max_size=2),
                  st.one_of(st.none(), st.integers(0, 10**6))),
        min_size=1, max_size=25), linger=st.sampled_from([0, 2]), acks=st.sampled_from(["durable", "written"]))
    def produce(self, name, records, linger, acks):
        m = self.model.get(name)
        if m is None or not m.records:  # deleted since (maybe re-created as a columnar topic)
            return
        with self.log.producer(linger_ms=linger, acks=acks) as p:
            futures = [(r, p.send(name, value=r[1], key=r[0], headers=r[2],
                                  timestamp=None if r[3] is None else T0 + r[3] * 1000)) for r in records]
            p.flush()
            metas = [(r, f.result()) for r, f in futures]
        self.log.flush()  # acks="written" on an "fsync" topic: visible once durable
        event("produce")
        for (key, value, headers, ts), meta in metas:
            if key is not None:
                assert meta.partition == kafka_partition(key, m.partitions)
            assert meta.offset == m.end(meta.partition), (meta, m.end(meta.partition))
            if ts is not None:
                assert meta.timestamp == T0 + ts * 1000
            m.rows[meta.partition].append({"timestamp": meta.timestamp, "key": key, "value": value,
                                           "headers": [(hk, hv) for hk, hv in headers]})

    # ------------------------------------------------------------------ reading
    def _expected(self, m: ModelTopic, p: int, lo: int, hi: int, t0=None, t1=None) -> list[dict]:
        lo = max(lo, m.start[p])
        rows = m.rows[p][lo - m.start[p]: max(lo, min(hi, m.end(p))) - m.start[p]]
        col = "timestamp" if m.records else "ts"
        if t0 is not None:
            rows = [r for r in rows if r[col] >= t0]
        if t1 is not None:
            rows = [r for r in rows if r[col] < t1]
        return rows

    @staticmethod
    def _rows_of(table: pa.Table, records: bool) -> list[dict]:
        if records:
            # the record schema's timestamp is an Arrow timestamp: compare its int ns
            table = table.set_column(0, "timestamp", table["timestamp"].cast(pa.int64()))
            out = table.to_pylist()
            for r in out:
                r["headers"] = [(h["key"], h["value"]) for h in r["headers"]]
            return out
        d = table.to_pydict()
        return [{"ts": ts.value if hasattr(ts, "value") else ts, "k": k, "v": v}
                for ts, k, v in zip(table["ts"].cast(pa.int64()).to_pylist(), d["k"], d["v"])]

    def _sync(self, name: str, p: int, start: int) -> None:
        """Retention (background, about once a second, or enforce_retention) moved the start."""
        m = self.model[name]
        assert start >= m.start[p], (name, p, start, m.start[p])
        if start > m.start[p]:
            event("retention deleted segments")
            del m.rows[p][: start - m.start[p]]
            m.start[p] = start

    def _stable(self, name: str, parts, fn):
        """fn() while no retention moves the start of ``parts`` (retried otherwise); the
        model follows the start first, so fn's checks see the same log as the model."""
        t = self.log.topic(name)
        for _ in range(20):
            before = t.start_offsets()
            for p in parts:
                self._sync(name, p, before[p])
            try:
                result = fn()
            except AssertionError:
                if t.start_offsets() != before:
                    continue  # retention ran meanwhile: try again
                raise
            if t.start_offsets() == before:
                return result
        raise AssertionError(f"{name}: the start offsets kept moving")

    @rule(name=st.one_of(cols_topics, record_topics), data=st.data())
    def read_range(self, name, data):
        m = self.model.get(name)
        if m is None:
            return
        # draws must not depend on state that timing changes (background retention, a
        # killed child): fractions of the current range, mapped after drawing
        p = data.draw(st.integers(0, m.partitions - 1))
        f_lo, f_hi = sorted(data.draw(st.tuples(st.floats(0, 1.05), st.floats(0, 1.1))))
        end = m.end(p)
        lo, hi = int(f_lo * end), int(f_hi * end) + 1
        t = self.log.topic(name)

        def check():
            got = t.read(lo, hi, partitions=p)
            assert self._rows_of(got, m.records) == self._expected(m, p, lo, hi)
        self._stable(name, [p], check)

    @rule(name=st.one_of(cols_topics, record_topics), data=st.data())
    def read_by_time(self, name, data):
        m = self.model.get(name)
        if m is None:
            return
        col = "timestamp" if m.records else "ts"
        stamps = sorted({r[col] for rows in m.rows for r in rows}) or [T0]
        f0, f1 = data.draw(st.floats(0, 1)), data.draw(st.one_of(st.none(), st.floats(0, 1)))
        t0 = stamps[min(len(stamps) - 1, int(f0 * len(stamps)))] + data.draw(st.sampled_from([-1, 0, 1]))
        t1 = None if f1 is None else stamps[min(len(stamps) - 1, int(f1 * len(stamps)))]
        t = self.log.topic(name)
        for p in range(m.partitions):
            def check(p=p):
                got = t.read(start_time=t0, end_time=t1, partitions=p)
                assert self._rows_of(got, m.records) == self._expected(m, p, 0, 2**62, t0, t1), (name, p, t0, t1)
                # offset_for_time: the first offset whose record has a timestamp >= t0
                first = next((m.start[p] + i for i, r in enumerate(m.rows[p]) if r[col] >= t0), m.end(p))
                assert t.offset_for_time(p, t0) == first, (name, p, t0)
            self._stable(name, [p], check)

    @rule(name=cols_topics, data=st.data())
    def scan_columns(self, name, data):
        m = self.model.get(name)
        if m is None or m.records:
            return
        t = self.log.topic(name)
        cols = data.draw(st.lists(st.sampled_from(["ts", "k", "v"]), min_size=1, max_size=3, unique=True))
        parts = data.draw(st.lists(st.integers(0, m.partitions - 1), min_size=1, max_size=m.partitions, unique=True))
        def check():
            got = pa.Table.from_batches(list(t.scan(partitions=parts, columns=cols)),
                                        schema=t.scan(columns=cols).schema)
            want = [r for p in parts for r in self._expected(m, p, 0, 2**62)]
            assert got.column_names == cols
            assert got.num_rows == len(want)
            if "k" in cols:
                assert got["k"].to_pylist() == [r["k"] for r in want]
            if "v" in cols:
                assert got["v"].to_pylist() == [r["v"] for r in want]
            # and through the Arrow C stream interface
            assert pa.table(t.scan(partitions=parts, columns=cols)).num_rows == len(want)
        self._stable(name, parts, check)

    @rule(name=record_topics, data=st.data())
    def consume_from(self, name, data):
        m = self.model.get(name)
        if m is None or not m.records:
            return
        p = data.draw(st.integers(0, m.partitions - 1))
        pick = data.draw(st.floats(0, 1))
        ts_pick = data.draw(st.floats(0, 1))

        def check():
            start = m.start[p] + int(pick * len(m.rows[p]))
            c = self.log.consumer()
            try:
                c.assign([(name, p)])
                c.seek(name, p, start)
                got = []
                while True:
                    r = c.poll(timeout=0)
                    if r is None:
                        break
                    got.append(r)
                want = self._expected(m, p, start, 2**62)
                assert [(r.offset, r.key, r.value, r.timestamp, list(r.headers)) for r in got] == \
                    [(start + i, w["key"], w["value"], w["timestamp"], w["headers"]) for i, w in enumerate(want)]
                assert c.position(name, p) == m.end(p)
                if m.rows[p]:
                    ts = m.rows[p][min(len(m.rows[p]) - 1, int(ts_pick * len(m.rows[p])))]["timestamp"]
                    c.seek_to_time(name, p, ts)
                    first = next(m.start[p] + i for i, r in enumerate(m.rows[p]) if r["timestamp"] >= ts)
                    assert c.position(name, p) == first
            finally:
                c.close()
        self._stable(name, [p], check)

    # ------------------------------------------------------------------ lifecycle
    @rule()
    def reopen(self):
        self.log.close()
        self.log = tidelog.open(self.path)
        assert self.log.clean_shutdown and self.log.recovery_report == []
        event("reopen")
        self.sticky = {n: 0 for n in self.model}

    @rule(data=st.data())
    def crash_and_recover(self, data):
        """A crash, simulated: the log is closed, then its clean-shutdown marker removed
        (so the next open recovers), the recovery checkpoint maybe removed, and a torn
        write (garbage or the first half of a frame) left after a partition's last frame."""
        self.log.close()
        self.log = None
        os.remove(os.path.join(self.path, "clean-shutdown"))
        torn = []
        for name, m in self.model.items():
            for p in range(m.partitions):
                pdir = os.path.join(self.path, "topics", name, str(p))
                if data.draw(st.booleans(), label=f"drop checkpoint {name}/{p}"):
                    open(os.path.join(pdir, "recovery-checkpoint"), "wb").close()
                how = data.draw(st.sampled_from(["none", "garbage", "half-frame", "header-only"]),
                                label=f"torn {name}/{p}")
                seg = sorted(glob.glob(os.path.join(pdir, "*.log")))[-1]
                size = os.path.getsize(seg)
                if how == "none":
                    continue
                with open(seg, "r+b") as f:
                    data_ = f.read()
                    f.seek(size)
                    if how == "garbage":
                        f.write(data.draw(st.binary(min_size=1, max_size=200), label="garbage"))
                    elif size >= 64 and data_[:4] == b"TLF1":
                        # a copy of the segment's first frame, renumbered as the next one and cut short
                        first = bytearray(data_[:min(size, 4096)])
                        struct.pack_into("<q", first, 16, m.end(p))
                        cut = 64 if how == "header-only" else max(65, len(first) // 2)
                        f.write(bytes(first[:cut]))
                torn.append((name, p))
        self.log = tidelog.open(self.path)
        assert not self.log.clean_shutdown
        self.sticky = {n: 0 for n in self.model}
        self.crashes += 1
        event("crash and recover")
        if self.log.recovery_report:
            event("crash: recovery cut something")
        self._check_everything()

    @precondition(lambda self: LONG and self.crashes < 3)
    @rule(name=cols_topics, n=st.integers(1, 200), delay=st.floats(0, 0.3))
    def crash_child(self, name, n, delay):
        """A real crash (long profile only): a child appends to a columnar topic and reports
        each acknowledged append; it is SIGKILLed at a random moment. The model gets what was
        acknowledged, plus whatever else survived (it must be whole appends, in order)."""
        m = self.model.get(name)
        if m is None or m.records or m.partitions != 1:
            return
        self.log.close()
        self.log = None
        child = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, self.path, name, str(n)],
                                 stdout=subprocess.PIPE, text=True)
        import time

        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        out = child.communicate()[0]
        acked = [int(x) for x in out.split() if x.isdigit()]
        self.log = tidelog.open(self.path)
        self.sticky = {n: 0 for n in self.model}  # topics reopened: round-robin counters restart
        t = self.log.topic(name)
        end = t.end_offsets()[0]
        assert end >= m.end(0) + len(acked)
        got = self._rows_of(t.read(m.end(0), end, partitions=0), False)
        for i, r in enumerate(got):
            assert r == {"ts": T0 + (10**7 + i) * 1000, "k": i, "v": b"crash-%d" % i}, (i, r)
        m.rows[0].extend(got)
        self.crashes += 1
        event("real crash (SIGKILLed child)")

    @rule(name=st.one_of(cols_topics, record_topics))
    def retention(self, name):
        m = self.model.get(name)
        if m is None:
            return
        t = self.log.topic(name)
        t.enforce_retention()
        starts = t.start_offsets()
        for p in range(m.partitions):
            new = starts[p]
            assert m.start[p] <= new <= m.end(p)
            if m.config["retention_bytes"] is None:
                assert new == m.start[p]
            if new > m.start[p]:
                # whole segments only: the new start is a segment base
                bases = [int(os.path.basename(f)[:20])
                         for f in glob.glob(os.path.join(self.path, "topics", name, str(p), "*.log"))]
                assert new == min(bases)
                self._sync(name, p, new)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def offsets_agree(self):
        self.steps += 1
        if self.log is None:
            return
        assert sorted(self.log.topics()) == sorted(self.model)
        for name, m in self.model.items():
            t = self.log.topic(name)
            ends, starts = t.end_offsets(), t.start_offsets()
            for p in range(m.partitions):
                assert ends[p] == m.end(p), (name, p, ends[p], m.end(p))
                # retention may run in the background (about once a second): only forward
                self._sync(name, p, starts[p])

    def _check_everything(self):
        for name, m in self.model.items():
            t = self.log.topic(name)
            for p in range(m.partitions):
                def check(p=p):
                    got = self._rows_of(t.read(partitions=p), m.records)
                    assert got == self._expected(m, p, 0, 2**62), (name, p)
                self._stable(name, [p], check)


_CRASH_CHILD = r"""
import sys, tidelog, pyarrow as pa
path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = tidelog.open(path)
t = log.topic(name)
T0 = 1_700_000_000_000_000_000
print("ready", flush=True)
for i in range(n):
    t.append({"ts": pa.array([T0 + (10**7 + i) * 1000], pa.timestamp("ns")), "k": pa.array([i], pa.int32()),
              "v": [b"crash-%d" % i]})
    t.flush()
    print(i, flush=True)
import time
time.sleep(60)
"""

LogModel.TestCase.settings = settings(settings.get_profile("tidelog-ci") if PROFILE == "default" else settings())
TestLogModel = LogModel.TestCase
