"""Model test of log compaction: a hypothesis state machine puts, deletes,
compacts (with a dedupe map so small that a pass covers only a few keys),
reopens, and kills a cleaner process at every step of its swap, against a
plain dict. After every step:

* ``topic.table()`` equals the dict;
* a consumer reading the whole topic from offset 0 sees a history that Kafka's
  compaction guarantee allows: every record it sees is one that was written
  at that offset, in offset order; the last record it sees of every key is
  the key's latest (a value, or - while younger than delete_retention_ms -
  its tombstone); keys deleted longer ago may be gone entirely.

``TIDELOG_HYPOTHESIS_PROFILE=long`` for a long run (see tests/test_model.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule  # noqa: E402

import tidelog  # noqa: E402
from tidelog import _verify  # noqa: E402

pytestmark = pytest.mark.slow  # (the sanitizer run of CI skips it; the plain run has it)

if os.environ.get("TIDELOG_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["TIDELOG_HYPOTHESIS_PROFILE"])

KEYS = [f"k{i}".encode() for i in range(10)]
KILL_POINTS = ["compact.written", "compact.indexes_unlinked", "compact.renamed", "compact.done"]
# A map of 8 slots: at most 6 keys a pass (max_load 0.8), so larger key sets take several passes.
TINY_MAP = 24 * 8

CRASHING_CLEANER = textwrap.dedent("""
    import sys, tidelog
    log = tidelog.open(sys.argv[1])
    log.topic("m").compact_now(dedupe_buffer_bytes=int(sys.argv[2]))
    log.close()
""")


class CompactionMachine(RuleBasedStateMachine):
    @initialize(partitions=st.sampled_from([1, 2]), keep_tombstones=st.booleans())
    def setup(self, partitions, keep_tombstones):
        self.dir = tempfile.mkdtemp(prefix="tidelog-compaction-model-")
        self.path = os.path.join(self.dir, "log")
        self.log = tidelog.open(self.path)
        # delete_retention_ms: long (tombstones stay and must be seen) or 0 (they may go at the next pass)
        self.retention_ms = 86_400_000 if keep_tombstones else 0
        self.topic = self.log.create_topic("m", partitions=partitions, cleanup_policy="compact",
                                           segment_bytes=4096, delete_retention_ms=self.retention_ms,
                                           min_cleanable_dirty_ratio=1.0)
        self.producer = self.log.producer(linger_ms=0)
        self.model: dict[bytes, bytes] = {}
        self.written: dict[tuple[int, int], tuple[bytes, bytes | None]] = {}  # (partition, offset) -> (key, value)
        self.seq = 0

    def teardown(self):
        try:
            self.producer.close()
            self.log.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _send(self, key: bytes, value: bytes | None):
        meta = self.producer.send("m", key=key, value=value).result()
        self.written[(meta.partition, meta.offset)] = (key, value)

    @rule(key=st.sampled_from(KEYS), n=st.integers(1, 12))
    def put(self, key, n):
        for _ in range(n):
            self.seq += 1
            value = b"v%d-" % self.seq + b"x" * (self.seq % 300)
            self._send(key, value)
            self.model[key] = value

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key):
        self._send(key, None)
        self.model.pop(key, None)

    @rule(tiny=st.booleans())
    def compact(self, tiny):
        self.topic.compact_now(dedupe_buffer_bytes=TINY_MAP if tiny else None)

    @rule()
    def reopen(self):
        self.producer.close()
        self.log.close()
        self.log = tidelog.open(self.path)
        self.topic = self.log.topic("m")
        self.producer = self.log.producer(linger_ms=0)

    @rule(point=st.sampled_from(KILL_POINTS), nth=st.integers(1, 3), tiny=st.booleans())
    def cleaner_killed(self, point, nth, tiny):
        env = {**os.environ, "TIDELOG_TEST_KILL_AT": f"{point}:{nth}"}
        budget = TINY_MAP if tiny else 64 << 20
        r = subprocess.run([sys.executable, "-c", CRASHING_CLEANER, self.path, str(budget)], env=env,
                           timeout=120, capture_output=True)
        assert r.returncode in (0, -9), r.stderr.decode()[-2000:]

    # ------------------------------------------------------------ invariants
    @invariant()
    def table_equals_the_model(self):
        t = self.topic.table()
        got = dict(zip(t.column("key").to_pylist(), t.column("value").to_pylist()))
        assert got == self.model

    @invariant()
    def a_consumer_from_zero_sees_a_compacted_history(self):
        last: dict[bytes, bytes | None] = {}
        for p in range(self.topic.partitions):
            prev = -1
            for batch in self.topic.partition(p).scan(with_offsets=True):
                for key, value, offset in zip(batch.column("key").to_pylist(), batch.column("value").to_pylist(),
                                              batch.column("_offset").to_pylist()):
                    assert offset > prev
                    prev = offset
                    assert self.written[(p, offset)] == (key, value)
                    last[key] = value
        for key in KEYS:
            if key in self.model:
                assert last.get(key) == self.model[key]
            elif self.retention_ms and any(k == key for k, _ in self.written.values()):
                # deleted, and the tombstone is younger than delete_retention_ms: it is the last record seen
                assert key in last and last[key] is None
            else:
                assert last.get(key) is None


TestCompactionModel = CompactionMachine.TestCase
_PROFILE = settings.get_current_profile_name()
# CI: a few examples (each step reads the whole topic twice and a kill starts a
# process); the long profile's counts for the closing runs.
_EXAMPLES = int(os.environ.get("TIDELOG_COMPACTION_MODEL_EXAMPLES", "0"))  # a mid-size run, e.g. 300
TestCompactionModel.settings = settings(settings.get_profile(_PROFILE), deadline=None,
                                        **({} if _PROFILE == "long" and not _EXAMPLES else
                                           dict(max_examples=_EXAMPLES or 8,
                                                stateful_step_count=40 if _EXAMPLES else 20)))


def test_verify_accepts_a_compacted_log_after_the_model_runs(tmp_path):
    log = tidelog.open(tmp_path / "log")
    t = log.create_topic("m", cleanup_policy="compact", segment_bytes=4096, delete_retention_ms=0)
    with log.producer(linger_ms=0) as p:
        for i in range(400):
            p.send("m", key=KEYS[i % 7], value=None if i % 11 == 0 else b"x" * (i % 200))
    t.compact_now(dedupe_buffer_bytes=TINY_MAP)
    log.close()
    report = _verify.verify(str(tmp_path / "log"))
    assert not report.damaged, report.all_problems()
