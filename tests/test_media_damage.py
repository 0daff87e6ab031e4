"""Media damage costs only the damaged bytes (FORMAT.md §2.5, §8).

A damage matrix: bit flips (header, payload, CRC field), zeroed 512 B and 4 KiB
sectors, a frame overwritten by a copy of another frame (a misdirected write)
and truncation in the middle of a sealed segment, at the start, middle and end
of a sealed and of the active segment, after a clean close and after a real
SIGKILL of the writer process; plus damage to every side file. For each case:

- no intact frame is lost: a skipping read returns exactly the rows of every
  undamaged frame, each at its original offset;
- damage is reported: a plain read of it raises CorruptionError naming its
  offsets, the skipped offsets are exactly the damaged frames' (warnings and
  ``log.stats()`` counters), and what recovery found is in ``recovery_report``;
- no offset is reused: the next append gets an offset past every offset the
  writer acknowledged;
- the damage stays where it was: a second open (clean) reports the same.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import warnings

import pyarrow as pa
import pytest

import tidelog
from _helpers import frame_spans, segment_logs

SCHEMA = pa.schema([("off", pa.int64()), ("payload", pa.binary())])
BATCHES = 40
ROWS = 25  # rows per batch: offsets 0..999

CHILD = r"""
import os, signal, sys
import pyarrow as pa
import tidelog
path, mode = sys.argv[1], sys.argv[2]
schema = pa.schema([("off", pa.int64()), ("payload", pa.binary())])
log = tidelog.open(path)
t = log.create_topic("t", schema, durability="fsync", segment_bytes=24 << 10)
for i in range({batches}):
    offs = list(range(i * {rows}, (i + 1) * {rows}))
    t.append({{"off": offs, "payload": [b"row-%d;" % o * (1 + o % 7) for o in offs]}})
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)   # every append above was acknowledged durable
log.close()
""".format(batches=BATCHES, rows=ROWS)

END = BATCHES * ROWS


def _build(path, mode):
    rc = subprocess.run([sys.executable, "-c", CHILD, str(path), mode]).returncode
    assert rc == (-signal.SIGKILL if mode == "kill" else 0), rc


@pytest.fixture(scope="module", params=["clean", "kill"])
def pristine(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"media-{request.param}") / "log"
    _build(path, request.param)
    segs = segment_logs(path, "t", 0)
    assert len(segs) >= 3, segs
    return path, request.param


@pytest.fixture
def copy(pristine, tmp_path):
    path, mode = pristine
    dst = tmp_path / "log"
    shutil.copytree(path, dst)
    return dst, mode


def _frames_of(seg):
    """Frames of a segment file (position, length, first offset, count)."""
    return [(start, length, base, count) for start, poff, plen, length, base, count in frame_spans(seg)]


def _pick(path, where, which):
    segs = segment_logs(path, "t", 0)
    seg = segs[0] if where == "sealed" else segs[-1]
    frames = _frames_of(seg)
    k = {"start": 0, "middle": len(frames) // 2, "end": len(frames) - 1}[which]
    return seg, frames, k


def _damaged_offsets(frames, lo, hi, seg_bytes_before, seg_bytes_after):
    """Offsets of the frames whose bytes changed in [lo, hi)."""
    out = set()
    for start, length, base, count in frames:
        if start < hi and start + length > lo and seg_bytes_before[start:start + length] != seg_bytes_after[start:start + length]:
            out.update(range(base, base + count))
    return out


def _inject(seg, frames, k, how, rng):
    """Damages frame k of seg as `how` says; returns the damaged offsets."""
    before = open(seg, "rb").read()
    data = bytearray(before)
    start, length, base, count = frames[k]
    if how == "payload-bit":
        # the payload is CRC-covered; the header says where it is
        poff = int.from_bytes(data[start + 56:start + 60], "little")
        plen = int.from_bytes(data[start + 48:start + 56], "little")
        at = start + poff + rng.randrange(plen)
        data[at] ^= 1 << rng.randrange(8)
        lo, hi = at, at + 1
    elif how == "header-bit":
        at = start + rng.choice([0, 9, 16, 20, 24, 48, 56])  # magic, version, base offset, count, lengths
        data[at] ^= 1 << rng.randrange(8)
        lo, hi = at, at + 1
    elif how == "crc-bit":
        at = start + 4 + rng.randrange(4)
        data[at] ^= 1 << rng.randrange(8)
        lo, hi = at, at + 1
    elif how in ("zero-512", "zero-4k"):
        size = 512 if how == "zero-512" else 4096
        lo = (start + length // 2) // size * size
        hi = min(lo + size, len(data))
        data[lo:hi] = bytes(hi - lo)
    elif how == "misdirected":
        j = k - 1 if k > 0 else k + 1
        s2, l2, _, _ = frames[j]
        other = before[s2:s2 + l2]
        lo, hi = start, min(start + len(other), len(data))
        data[lo:hi] = other[:hi - lo]
    elif how == "truncate":
        lo, hi = start + length // 2, len(data)
        del data[lo:]
    else:
        raise AssertionError(how)
    with open(seg, "wb") as f:
        f.write(data)
    if how == "truncate":
        return {o for s, l, b, c in frames if s + l > lo for o in range(b, b + c)}
    return _damaged_offsets(frames, lo, hi, before, bytes(data) + bytes(max(0, len(before) - len(data))))


def _read_skipping(log):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = log.topic("t").read(on_corrupt="skip")
    return table, [w for w in caught if issubclass(w.category, tidelog.CorruptionWarning)]


def _check(path, damaged: set[int], *, expect_reported_at_open: bool | None = None):
    good = [o for o in range(END) if o not in damaged]
    for attempt in range(2):  # the second open is clean: the damage is still there, nothing more lost
        with tidelog.open(path) as log:
            t = log.topic("t")
            end = t.end_offsets()[0]
            assert end >= END, f"offsets went backwards: end {end} < {END} ({log.recovery_report})"
            table, caught = _read_skipping(log)
            offs = table["off"].to_pylist()
            got_good = [o for o in offs if o < END]
            assert got_good == good, (sorted(set(range(END)) - set(got_good) - damaged)[:10], log.recovery_report)
            for o, payload in zip(offs, table["payload"].to_pylist()):
                if o < END:
                    assert payload == b"row-%d;" % o * (1 + o % 7)
            stats = log.stats()
            skipped = set()
            for event in log.recovery_report:
                assert event["kind"] in ("damaged", "lost", "index"), event
            if damaged:
                assert caught and stats["corrupt_ranges_skipped"] >= 1
                with pytest.raises(tidelog.CorruptionError) as info:
                    t.read()
                err = info.value
                assert err.topic == "t" and err.partition == 0
                assert err.start_offset is not None and err.start_offset <= min(damaged) < err.end_offset
                for d in t.describe()["partitions"][0]["damaged"]:
                    skipped.update(range(d["start_offset"], min(d["end_offset"], END)))
                assert damaged <= skipped, (sorted(damaged - skipped), t.describe())
                assert skipped - damaged <= set(range(END, end)), sorted(skipped - damaged)
            else:
                assert not caught and stats["corrupt_ranges_skipped"] == 0
                assert t.read()["off"].to_pylist()[:END] == list(range(END))
            if attempt == 0:
                # No offset is handed out twice: the next append lands past everything acknowledged.
                first = t.append({"off": [10**9], "payload": [b"after"]}).offsets[0][0]
                assert first >= END
                assert t.read(first, first + 1)["off"].to_pylist() == [10**9]
            if expect_reported_at_open and attempt == 0:
                assert any(e["kind"] in ("damaged", "lost") for e in log.recovery_report), log.recovery_report


DATA_DAMAGE = ["payload-bit", "header-bit", "crc-bit", "zero-512", "zero-4k", "misdirected"]


@pytest.mark.parametrize("which", ["start", "middle", "end"])
@pytest.mark.parametrize("where", ["sealed", "active"])
@pytest.mark.parametrize("how", DATA_DAMAGE)
def test_damage_matrix(copy, how, where, which):
    path, mode = copy
    rng = random.Random(f"{how}-{where}-{which}-{mode}")
    seg, frames, k = _pick(path, where, which)
    damaged = _inject(seg, frames, k, how, rng)
    assert damaged, "the injection changed no CRC-covered byte"
    _check(path, damaged)


@pytest.mark.parametrize("which", ["start", "middle", "end"])
def test_truncated_sealed_segment(copy, which):
    path, mode = copy
    seg, frames, k = _pick(path, "sealed", which)
    damaged = _inject(seg, frames, k, "truncate", random.Random(0))
    _check(path, damaged)


def _side_files(path):
    part = os.path.join(path, "topics", "t", "0")
    return part, sorted(os.listdir(part))


@pytest.mark.parametrize("how", ["delete", "garbage", "truncate-half"])
@pytest.mark.parametrize("side", ["index", "timeindex", "recovery-checkpoint", "state", "clean-shutdown"])
def test_damaged_side_file_costs_nothing(copy, side, how):
    path, mode = copy
    part, names = _side_files(path)
    if side in ("index", "timeindex"):
        targets = [os.path.join(part, n) for n in names if n.endswith("." + side)]
    elif side == "clean-shutdown":
        targets = [os.path.join(path, "clean-shutdown")]
    else:
        targets = [os.path.join(part, side)]
    rng = random.Random(f"{side}-{how}-{mode}")
    for f in targets:
        if not os.path.exists(f):
            if side == "clean-shutdown" and how == "garbage":
                # a marker where none belongs (after a crash): believed, and still nothing is lost
                open(f, "wb").write(b"x")
            continue
        size = os.path.getsize(f)
        if how == "delete":
            os.remove(f)
        elif how == "garbage":
            with open(f, "r+b") as fh:
                fh.write(bytes(rng.randrange(256) for _ in range(max(size, 16))))
        else:
            os.truncate(f, size // 2)
    _check(path, set())


def test_damaged_topic_json_is_a_typed_error_and_writes_nothing(copy):
    path, mode = copy
    meta = os.path.join(path, "topics", "t", "topic.json")
    with open(meta, "r+b") as f:
        f.seek(10)
        f.write(b"\x00garbage{")

    def tree():
        out = {}
        for root, dirs, files in os.walk(path):
            for n in files:
                p = os.path.join(root, n)
                out[p] = open(p, "rb").read() if not n.endswith(".log") else os.path.getsize(p)
        return out

    before = tree()
    with pytest.raises(tidelog.CorruptionError) as info:
        tidelog.open(path)
    assert "topic.json" in str(info.value)
    after = tree()
    changed = [p for p in before if p in after and before[p] != after[p] and not p.endswith(("LOCK", "clean-shutdown"))]
    logs = [p for p in before if p.endswith(".log")]
    assert all(p in after for p in logs), "a segment disappeared"
    assert not [p for p in changed if p.endswith((".log", ".index", ".timeindex"))], changed


def test_lost_tail_after_a_clean_close_never_reuses_offsets(copy):
    """The issue's first case, end to end: bit rot near the end of the active
    segment; the two intact frames after it stay, and the next append does not
    get offsets a consumer has already seen."""
    path, mode = copy
    seg, frames, _ = _pick(path, "active", "end")
    k = max(len(frames) - 3, 0)
    damaged = _inject(seg, frames, k, "payload-bit", random.Random(1))
    with tidelog.open(path) as log:
        t = log.topic("t")
        assert t.end_offsets()[0] == END
        c = log.consumer(["t"], on_corrupt="skip")
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tidelog.CorruptionWarning)
            while True:
                batch = c.poll_batch(timeout=0)
                if batch is None:
                    break
                seen.extend(batch["off"].to_pylist())
        assert seen == [o for o in range(END) if o not in damaged]
        assert c.position("t", 0) == END
        assert t.append({"off": [1], "payload": [b"x"]}).offsets[0][0] == END
        assert log.stats()["corrupt_offsets_skipped"] == len(damaged)
