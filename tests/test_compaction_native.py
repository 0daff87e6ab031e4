"""Compaction's native API (src/compaction.pxi) used directly with real frames:
a producer writes a topic with small segments, a pass rewrites sealed segments
keeping a subset of the records (frames kept whole copied, others re-encoded
from a filtered batch, empty frames where nothing survives), commits, and the
frames read back carry the right offsets. A cleaner killed at each compact.*
kill point leaves every segment wholly old or wholly new, and no leftovers.
(The Python read paths over sparse frames are tested with them, not here.)"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from tidelog import _core
from tidelog.errors import InvalidArgumentError, TidelogError

SCHEMA = pa.schema([("seq", pa.int64()), ("pad", pa.binary())])
FLAG_SPARSE = 2


def keep(seq: int) -> bool:
    return seq % 3 != 0 and seq % 10 < 7


def _write(path, n=400, per_batch=5):
    log = tidelog.open(path)
    t = log.create_topic("t", schema=SCHEMA, segment_bytes=4096)
    for start in range(0, n, per_batch):
        seqs = list(range(start, start + per_batch))
        t.append(pa.record_batch({"seq": seqs, "pad": [b"p" * (s % 23) for s in seqs]}, schema=SCHEMA))
    log.close()


def _arrow_part(frame):
    """(offsets, arrow payload) of a frame: Frame numbers a sparse frame's rows
    from its offset block, and payload() is the Arrow part after the block."""
    return frame.offsets().to_pylist(), frame.payload()


def _seqs(frame):
    offsets, arrow = _arrow_part(frame)
    if frame.record_count == 0:
        return offsets, []
    batch = pa.ipc.read_record_batch(arrow, SCHEMA)
    return offsets, batch.column("seq").to_pylist()


def _rewrite(session, seg, native):
    """Rewrites one segment keeping keep(); returns the seqs kept."""
    w = session.rewrite(seg["base_offset"])
    kept = []
    for f in native.frames(seg["base_offset"], seg["end_offset"], max_frames=100000):
        offsets, seqs = _seqs(f)
        mask = np.array([keep(s) for s in seqs], dtype=bool)
        span = f.next_offset - f.base_offset
        deltas = np.array([o - f.base_offset for o in offsets], dtype=np.uint32)[mask]
        if not mask.any():
            w.append_empty(f.base_offset, span, f.max_timestamp)
            continue
        _, arrow = _arrow_part(f)
        if mask.all():  # kept whole: the Arrow part copied as it is
            payload = arrow
        else:
            batch = pa.ipc.read_record_batch(arrow, SCHEMA).filter(pa.array(mask))
            payload = batch.serialize()
        w.append(f.base_offset, span, int(mask.sum()), deltas, 0, f.min_timestamp, f.max_timestamp, 0, 0, payload)
        kept.extend(s for s in seqs if keep(s))
    stats = w.commit()
    assert stats["swapped"] and stats["bytes_before"] > stats["bytes_after"] > 0
    return kept


def _check_partition(native, compacted_bases=(), may_be_old=()):
    """Frames tile the partition; records of compacted segments are those kept."""
    frames = native.frames(native.start_offset, native.end_offset, max_frames=100000)
    assert frames[0].base_offset == native.start_offset
    for a, b in zip(frames, frames[1:]):
        assert a.next_offset == b.base_offset
    assert frames[-1].next_offset == native.end_offset
    bounds = sorted(compacted_bases)
    for f in frames:
        offsets, seqs = _seqs(f)
        assert offsets == seqs, "each record sits at its own offset"
        sparse = bool(f.flags & FLAG_SPARSE)
        in_compacted = any(b <= f.base_offset < e for b, e in bounds)
        in_either = any(b <= f.base_offset < e for b, e in may_be_old)
        if in_compacted:
            assert sparse and all(keep(s) for s in seqs)
        elif not in_either:
            assert not sparse and len(seqs) == f.next_offset - f.base_offset


def test_rewrite_commit_and_read_back(tmp_path):
    path = str(tmp_path / "log")
    _write(path)
    with tidelog.open(path) as log:
        native = log.topic("t").partition(0).native
        end = native.end_offset
        with native.compaction() as session:
            segs = session.segments()
            assert len(segs) >= 5 and not segs[-1]["cleanable"] and segs[-1]["end_offset"] == end
            assert all(s["cleanable"] and not s["compacted"] for s in segs[:-1])
            for a, b in zip(segs, segs[1:]):
                assert a["end_offset"] == b["base_offset"]
            kept = []
            for seg in segs[:3]:
                kept += _rewrite(session, seg, native)
            assert [s["compacted"] for s in session.segments()[:4]] == [True, True, True, False]
            with pytest.raises(InvalidArgumentError):
                session.rewrite(segs[-1]["base_offset"])  # the active segment
            with pytest.raises(InvalidArgumentError):
                session.rewrite(segs[0]["base_offset"] + 1)
        compacted = [(s["base_offset"], s["end_offset"]) for s in segs[:3]]
        _check_partition(native, compacted)
        assert native.end_offset == end
        assert kept == [s for s in range(segs[2]["end_offset"]) if keep(s)]
        # The same through a read-only handle, and appends go on.
        with tidelog.open(path, read_only=True) as ro:
            _check_partition(ro.topic("t").partition(0).native, compacted)
        log.topic("t").append(pa.record_batch({"seq": [end], "pad": [b""]}, schema=SCHEMA))
    with tidelog.open(path) as log:
        _check_partition(log.topic("t").partition(0).native, compacted)
    assert not glob.glob(os.path.join(path, "**", "*.cleaned"), recursive=True)


def test_tiling_errors_and_abort_swap_nothing(tmp_path):
    path = str(tmp_path / "log")
    _write(path, n=100)
    with tidelog.open(path) as log:
        native = log.topic("t").partition(0).native
        session = native.compaction()
        seg = session.segments()[1]
        w = session.rewrite(seg["base_offset"])
        with pytest.raises(TidelogError):
            w.append_empty(seg["base_offset"] + 1, 1, 0)  # not at the segment's base
        with pytest.raises(TidelogError):
            w.append(seg["base_offset"], 2, 2, np.array([1, 1], np.uint32), 0, 0, 0, 0, 0, b"x")
        with pytest.raises(TidelogError):
            w.append(seg["base_offset"], 2, 2, np.array([0, 1, 2], np.uint32), 0, 0, 0, 0, 0, b"x")
        w.append_empty(seg["base_offset"], 1, 0)
        with pytest.raises(TidelogError):
            w.commit()  # short of the segment's end
        assert not glob.glob(os.path.join(path, "**", "*.cleaned"), recursive=True)
        w2 = session.rewrite(seg["base_offset"])
        w2.append_empty(seg["base_offset"], seg["end_offset"] - seg["base_offset"], 0)
        assert glob.glob(os.path.join(path, "**", "*.cleaned"), recursive=True)
        w2.abort()
        assert not glob.glob(os.path.join(path, "**", "*.cleaned"), recursive=True)
        session.release()
        session.release()
        with pytest.raises(tidelog.errors.LogClosedError):
            session.segments()
        _check_partition(native)


def test_one_cleaner_at_a_time(tmp_path):
    path = str(tmp_path / "log")
    _write(path, n=50)
    with tidelog.open(path) as a, tidelog.open(path) as b:
        pa_, pb = a.topic("t").partition(0).native, b.topic("t").partition(0).native
        with pa_.compaction():
            got = []
            t = threading.Thread(target=lambda: got.append(pb.compaction(wait=False)))
            t.start()
            t.join()
            assert got == [None]
            with pytest.raises(InvalidArgumentError):
                pa_.compaction()  # this handle already runs a pass
        with pb.compaction(wait=False) as s:
            assert s is not None


CHILD = textwrap.dedent(r"""
    import sys
    sys.path.insert(0, sys.argv[2])
    import tidelog
    from test_compaction_native import _rewrite
    log = tidelog.open(sys.argv[1])
    native = log.topic("t").partition(0).native
    with native.compaction() as session:
        seg = session.segments()[1]
        _rewrite(session, seg, native)
    sys.exit(2)  # the kill point was never reached
""")

KILL_POINTS = {"compact.written": "old", "compact.indexes_unlinked": "old", "compact.renamed": "new",
               "compact.done": "new"}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
@pytest.mark.parametrize("survivor", [False, True])
def test_a_cleaner_killed_at_each_step_leaves_old_or_new(tmp_path, point, survivor):
    path = str(tmp_path / "log")
    _write(path, n=200)
    # With a survivor the session goes on (its next cleaner repairs, under the
    # lock the dead one held); without, the next open recovers.
    other = tidelog.open(path) if survivor else None
    env = dict(os.environ, TIDELOG_TEST_KILL_AT=point)
    child = subprocess.run([sys.executable, "-c", CHILD, path, os.path.dirname(__file__)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, f"the child did not die at {point}: rc {child.returncode}\n{child.stderr}"
    folder = os.path.join(path, "topics", "t", "0")
    expected_new = KILL_POINTS[point] == "new"


    if survivor:
        native = other.topic("t").partition(0).native
        with native.compaction() as s:
            seg = s.segments()[1]
            assert seg["compacted"] == expected_new
        assert not glob.glob(os.path.join(folder, "*.cleaned"))
        bounds = [(seg["base_offset"], seg["end_offset"])]
        _check_partition(native, bounds if expected_new else (), () if expected_new else ())
        other.close()
    with tidelog.open(path) as log:
        assert not glob.glob(os.path.join(folder, "*.cleaned"))
        native = log.topic("t").partition(0).native
        with native.compaction() as s:
            seg = s.segments()[1]
            assert seg["compacted"] == expected_new
        stem = os.path.join(folder, f"{seg['base_offset']:020d}")
        assert os.path.exists(stem + ".index") and os.path.exists(stem + ".timeindex")
        bounds = [(seg["base_offset"], seg["end_offset"])]
        _check_partition(native, bounds if expected_new else ())


def test_a_wait_for_the_cleaner_lock_is_interruptible(tmp_path):
    import signal
    path = str(tmp_path / "log")
    _write(path, n=50)
    with tidelog.open(path) as a, tidelog.open(path) as b:
        pa_, pb = a.topic("t").partition(0).native, b.topic("t").partition(0).native
        held, done = threading.Event(), threading.Event()

        def holder():
            with pa_.compaction():
                held.set()
                done.wait(30)

        t = threading.Thread(target=holder)
        t.start()
        held.wait(30)
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                pb.compaction(wait=True)
        finally:
            done.set()
            t.join()
            timer.cancel()
        with pb.compaction(wait=False) as s:
            assert s is not None
