"""``tidelog verify PATH [--repair]`` (issue 5): a full CRC check of every frame,
the offsets and the indexes, a per-partition report, and a repair that cuts a
damaged partition tail after saving the bytes."""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from _helpers import SENSORS_SCHEMA, assert_tables_equal, frame_spans, make_sensors, partition_files, segment_logs
from tidelog import _verify, cli
import sparse_segments as ss


_frames = frame_spans


def _snapshot(d) -> dict:
    out = {}
    for dirpath, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _run_cli(*args, capsys=None) -> tuple[int, str, str]:
    rc = cli.main(["verify", *map(str, args)])
    out, err = capsys.readouterr() if capsys else ("", "")
    return rc, out, err


@pytest.fixture
def two_topics(tmp_path):
    d = tmp_path / "log"
    with tidelog.open(d) as log:
        s = log.create_topic("s", SENSORS_SCHEMA, partitions=2, key="sensor_id", timestamp="ts",
                             segment_bytes=16 << 10)
        for i in range(20):
            s.append(make_sensors(200, start=200 * i))
        log.create_topic("r", segment_bytes=8 << 10)
        with log.producer(linger_ms=0) as p:
            for i in range(300):
                p.send("r", value=b"v%d" % i * 20, key=b"k%d" % (i % 5))
        ends = {"s": s.end_offsets(), "r": log.topic("r").end_offsets()}
    return d, ends


def _flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ 0x20]))


# ----------------------------------------------------------------------------- clean logs
def test_clean_log_report(two_topics, capsys):
    d, ends = two_topics
    before = _snapshot(d)
    rc, out, err = _run_cli(d, capsys=capsys)
    assert rc == 0, out
    assert "no damage" in out and "DAMAGE" not in out
    for name in ("s/0", "s/1", "r/0"):
        assert name in out
    assert err == ""  # no progress on a non-terminal for a small log
    rc, out, _ = _run_cli(d, "--json", capsys=capsys)
    assert rc == 0
    report = json.loads(out)
    assert report["damaged"] is False
    parts = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    for (topic, p), rep in parts.items():
        segs = segment_logs(d, topic, p)
        frames = [f for s in segs for f in _frames(s)]
        assert rep["frames"] == len(frames)
        assert rep["records"] == sum(f[5] for f in frames) == ends[topic][p]
        assert rep["bytes"] == sum(os.path.getsize(s) for s in segs)  # closed cleanly: trimmed to the frames
        assert rep["segments"] == len(segs)
        assert (rep["start_offset"], rep["end_offset"]) == (0, ends[topic][p])
        assert rep["first_bad"] is None and rep["problems"] == []
    assert _snapshot(d) == before  # verify writes nothing


def test_not_a_log(tmp_path, capsys):
    rc, out, err = _run_cli(tmp_path / "missing", capsys=capsys)
    assert rc == 2 and "missing does not exist" in err
    (tmp_path / "plain").mkdir()
    rc, out, err = _run_cli(tmp_path / "plain", capsys=capsys)
    assert rc == 2 and "not a tidelog log folder" in err
    with pytest.raises(_verify.VerifyError):
        _verify.verify(tmp_path / "plain")


def test_empty_log_and_empty_topic(tmp_path, capsys):
    d = tmp_path / "log"
    with tidelog.open(d) as log:
        log.create_topic("empty", partitions=3)
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 0 and "no damage" in out
    report = _verify.verify(d)
    assert [p.frames for p in report.partitions] == [0, 0, 0]


# ----------------------------------------------------------------------------- damage found
def test_bit_flip_in_a_sealed_segment(two_topics, capsys):
    d, ends = two_topics
    seg = segment_logs(d, "s", 1)[1]
    frames = _frames(seg)
    k = len(frames) // 2
    victim = frames[k]
    _flip(seg, victim[0] + victim[1] + victim[2] // 2)
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 1
    assert f"DAMAGED: first bad frame at {os.path.basename(seg)} position {victim[0]}" in out
    assert "CRC32C mismatch" in out and f"offsets {victim[4]}..{victim[4] + victim[5] - 1}" in out
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 1))
    assert rep.first_bad[:3] == (seg, victim[0], victim[4]) and rep.first_bad_sealed
    (dmg,) = rep.damaged  # exactly that frame (FORMAT.md §2.5 step 1)
    assert (dmg.position, dmg.bytes, dmg.start_offset, dmg.end_offset, dmg.resync_position) == \
        (victim[0], victim[3], victim[4], victim[4] + victim[5], frames[k + 1][0])
    assert rep.end_offset == ends["s"][1]
    # frames after the damaged one are still checked and counted as intact
    total = sum(len(_frames(s)) for s in segment_logs(d, "s", 1))
    assert rep.frames == total - 1
    assert rep.intact == [[0, victim[4]], [victim[4] + victim[5], ends["s"][1]]]
    others = [p for p in report.partitions if p is not rep]
    assert not any(p.problems for p in others)
    js = json.loads(_run_cli(d, "--json", capsys=capsys)[1])
    assert js["damaged_ranges"] == 1 and js["damaged_offsets"] == victim[5] and js["lost_offsets"] == 0
    part = next(p for p in js["partitions"] if (p["topic"], p["partition"]) == ("s", 1))
    assert part["damaged"][0]["segment"] == seg and part["damaged"][0]["reason"] == "CRC32C mismatch"
    # --repair splits the sealed segment: the frame's bytes aside, the frames after it in a new segment
    before = open(seg, "rb").read()
    rc, out, _ = _run_cli(d, "--repair", capsys=capsys)
    assert rc == 3, out
    assert open(seg, "rb").read() == before[:victim[0]]
    assert open(seg + f".damaged-{victim[0]}", "rb").read() == before[victim[0]:victim[0] + victim[3]]
    new = os.path.join(os.path.dirname(seg), "%020d.log" % (victim[4] + victim[5]))
    assert open(new, "rb").read() == before[frames[k + 1][0]:]


@pytest.mark.parametrize("field,value", [("magic", b"XXXX"), ("version", struct.pack("<H", 3)),
                                         ("header_length", struct.pack("<H", 32)),
                                         ("payload_offset", struct.pack("<I", 12)),
                                         ("base_offset", struct.pack("<q", 5)),
                                         ("payload_length", struct.pack("<Q", 4 << 30)),
                                         ("codec", struct.pack("<H", 7)),
                                         ("timestamps", struct.pack("<qq", 10, 5)),
                                         ("crc", b"\0\0\0\0"), ("record_count", struct.pack("<I", 1)),
                                         ("empty", struct.pack("<I", 0))])
def test_header_damage(two_topics, field, value):
    d, _ = two_topics
    at = {"magic": 0, "crc": 4, "version": 8, "header_length": 10, "codec": 12, "base_offset": 16,
          "record_count": 24, "empty": 24, "timestamps": 32, "payload_length": 48, "payload_offset": 56}[field]
    seg = segment_logs(d, "s", 0)[1]
    victim = _frames(seg)[2]
    with open(seg, "r+b") as f:
        f.seek(victim[0] + at)
        f.write(value)
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 0))
    assert rep.first_bad is not None and rep.first_bad[:2] == (seg, victim[0]), _verify.format_report(report)
    assert _verify.exit_code(report) == 1


def test_missing_middle_segment_is_a_gap(two_topics, capsys):
    d, ends = two_topics
    segs = segment_logs(d, "s", 0)
    assert len(segs) >= 3
    os.remove(segs[1])
    gap = (int(os.path.basename(segs[1])[:20]), int(os.path.basename(segs[2])[:20]))
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 0))
    assert rep.first_bad is None and rep.damaged == []  # no damaged bytes: lost offsets
    (g,) = rep.lost
    assert (g.segment, g.start_offset, g.end_offset, g.acknowledged) == (segs[0], gap[0], gap[1], False)
    assert [p.kind for p in rep.problems] == ["lost"]
    assert _verify.exit_code(report) == 1
    # --repair acknowledges the gap (offsets are never renumbered); verify then exits 0
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert os.path.exists(os.path.join(os.path.dirname(segs[0]), _verify.ACK_FILE))
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 0, out
    assert f"lost (acknowledged): {os.path.basename(segs[0])}" in out and f"offsets {gap[0]}..{gap[1] - 1}" in out
    with tidelog.open(d) as log:
        assert log.topic("s").end_offsets()[0] == ends["s"][0]
        with pytest.raises(tidelog.CorruptionError):
            log.topic("s").read(gap[0], gap[1], partitions=0)
    # a new gap elsewhere is not covered by the acknowledgement
    os.remove(segment_logs(d, "s", 1)[1])
    assert _verify.exit_code(_verify.verify(d)) == 1


def test_zeroed_frame_followed_by_data(two_topics):
    d, _ = two_topics
    seg = segment_logs(d, "s", 0)[0]
    frames = _frames(seg)
    assert len(frames) >= 3
    victim = frames[1]
    with open(seg, "r+b") as f:
        f.seek(victim[0])
        f.write(bytes(victim[3]))
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 0))
    assert rep.first_bad[:2] == (seg, victim[0]) and "zeros" in rep.first_bad[3]


def test_checkpoint_ahead_of_the_log(two_topics):
    """Acknowledged records missing at the end (a lost tail, a file restored from an old copy)."""
    d, ends = two_topics
    seg = segment_logs(d, "r", 0)[-1]
    frames = _frames(seg)
    os.truncate(seg, frames[-2][0] if len(frames) >= 2 else 0)
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if p.topic == "r")
    assert rep.first_bad is None
    lost = [p for p in rep.problems if p.kind == "lost"]
    assert len(lost) == 1, _verify.format_report(report)
    assert f"before its recovery checkpoint / published end ({ends['r'][0]})" in lost[0].reason
    assert lost[0].end_offset == ends["r"][0]
    assert _verify.exit_code(report) == 1


def test_damaged_metadata_is_reported_and_other_topics_checked(two_topics, capsys):
    d, _ = two_topics
    (d / "topics" / "r" / "topic.json").write_text("{garbage")
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 1
    assert "metadata" in out and "topic.json" in out
    assert "s/0" in out and "s/1" in out


def test_index_damage_is_reported(two_topics):
    d, _ = two_topics
    idx = [f for f in partition_files(d, "s", 0, ".index") if f.endswith(".index")][0]
    data = bytearray(open(idx, "rb").read())
    struct.pack_into("<I", data, 12, struct.unpack_from("<I", data, 12)[0] + 8)  # entry 1 position + 8
    open(idx, "wb").write(data)
    report = _verify.verify(d)
    probs = report.all_problems()
    assert len(probs) == 1 and probs[0].kind == "index" and probs[0].file == idx
    assert "not a frame start" in probs[0].reason


def test_padding_damage_is_reported_and_zeroed(two_topics):
    d, ends = two_topics
    with tidelog.open(d, read_only=True) as ro:
        expected = ro.topic("s").read(partitions=0)
    for seg in segment_logs(d, "s", 0):
        padded = [f for f in _frames(seg) if f[1] > 64]
        if padded:
            break
    else:
        pytest.skip("no frame with header padding")
    victim = padded[0]
    _flip(seg, victim[0] + 64)
    report = _verify.verify(d)
    probs = report.all_problems()
    assert [p.kind for p in probs] == ["padding"] and probs[0].position == victim[0]
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED
    with tidelog.open(d, read_only=True) as ro:
        assert_tables_equal(ro.topic("s").read(partitions=0), expected)


# ----------------------------------------------------------------------------- repair
def test_repair_moves_a_damaged_tail_aside(two_topics, capsys):
    d, ends = two_topics
    seg = segment_logs(d, "s", 0)[-1]
    frames = _frames(seg)
    victim = frames[len(frames) // 2]
    with open(seg, "r+b") as f:  # the header of a frame and everything after it gone bad
        f.seek(victim[0])
        f.write(b"\xa5" * (os.path.getsize(seg) - victim[0]))
    with tidelog.open(d, read_only=True) as ro:
        expected = ro.topic("s").read(0, victim[4], partitions=0)
    tail = open(seg, "rb").read()[victim[0]:]
    rc, out, _ = _run_cli(d, "--repair", capsys=capsys)
    assert rc == 3, out
    assert "repaired: damaged tail" in out and "after repair: no damage" in out
    side = seg + f".damaged-{victim[0]}"
    assert open(side, "rb").read() == tail
    assert os.path.getsize(seg) == victim[0]
    with tidelog.open(d) as log:
        assert all(e["bytes_damaged"] == 0 for e in log.recovery_report), log.recovery_report
        t = log.topic("s")
        # offsets are never given out twice: the damaged ones stay a gap
        assert t.end_offsets()[0] == ends["s"][0] and t.end_offsets()[1] == ends["s"][1]
        assert_tables_equal(t.read(0, victim[4], partitions=0), expected)
        with pytest.raises(tidelog.CorruptionError) as info:
            t.read(victim[4], ends["s"][0], partitions=0)
        assert info.value.start_offset == victim[4]
        res = t.append(make_sensors(500, start=10**6))
        assert res.offsets[0][0] == ends["s"][0]
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 0, out  # the side file is not mistaken for a segment; the gap is acknowledged
    assert _verify.side_file_name(seg, victim[0]) == side + ".1"


def test_repair_of_a_torn_tail_after_a_crash(tmp_path, capsys):
    d = tmp_path / "log"
    child = r"""
import sys, tidelog, pyarrow as pa
log = tidelog.open(sys.argv[1])
t = log.create_topic("t", pa.schema([("a", pa.int64()), ("b", pa.binary())]), durability="none")
for i in range(50):
    t.append({"a": list(range(i * 10, i * 10 + 10)), "b": [b"x" * 100] * 10})
t.flush()
import os; os._exit(0)   # no close: no clean-shutdown marker, the active segment keeps its zeros
"""
    subprocess.run([sys.executable, "-c", child, str(d)], check=True, timeout=120)
    seg = segment_logs(d, "t")[-1]
    frames = _frames(seg)
    last = frames[-1]
    with open(seg, "r+b") as f:  # a torn last frame: its second half never reached the disk
        f.seek(last[0] + last[3] // 2)
        f.write(bytes(last[3] - last[3] // 2))
    torn = open(seg, "rb").read()[last[0]:last[0] + last[3]]
    report = _verify.verify(d)
    assert not report.clean_shutdown
    rep = report.partitions[0]
    assert rep.first_bad[:2] == (seg, last[0])
    assert rep.damaged[0].torn and "never acknowledged" in rep.damaged[0].reason
    rc, out, _ = _run_cli(d, "--repair", capsys=capsys)
    assert rc == 3, out
    assert open(seg + f".damaged-{last[0]}", "rb").read()[:last[3]] == torn  # saved before recovery ran
    with tidelog.open(d) as log:
        # the torn offsets had been visible to readers: they are not given out again
        assert log.topic("t").end_offsets() == {0: 500}
        assert log.topic("t").read(on_corrupt="skip")["a"].to_pylist() == list(range(490))
    assert _verify.exit_code(_verify.verify(d)) == 0


def test_repair_of_a_bad_first_frame(two_topics):
    d, ends = two_topics
    segs = segment_logs(d, "r", 0)
    seg = segs[-1]
    frames = _frames(seg)
    base = int(os.path.basename(seg)[:20])
    _flip(seg, 100)
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert os.path.getsize(seg) == 0
    if len(frames) > 1:
        assert os.path.exists(os.path.join(os.path.dirname(seg), "%020d.log" % frames[1][4]))
    with tidelog.open(d) as log:
        assert log.topic("r").end_offsets() == ends["r"]
        with log.producer(linger_ms=0) as p:
            assert p.send("r", value=b"again").result().offset == ends["r"][0]
        with pytest.raises(tidelog.CorruptionError):
            log.topic("r").read(base, base + 1)


def test_repair_of_a_last_segment_that_does_not_continue(two_topics):
    d, ends = two_topics
    segs = segment_logs(d, "r", 0)
    last = segs[-1]
    base = int(os.path.basename(last)[:20])
    wrong = os.path.join(os.path.dirname(last), "%020d.log" % (base + 5))
    os.rename(last, wrong)
    for ext in (".index", ".timeindex"):
        os.rename(last[:-4] + ext, wrong[:-4] + ext)
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if p.topic == "r")
    assert [(g.start_offset, g.end_offset) for g in rep.lost] == [(base, base + 5)]
    assert rep.damaged[0].segment == wrong and rep.damaged[0].position == 0
    assert "offset mismatch" in rep.damaged[0].reason
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert glob.glob(wrong + ".damaged-0")
    with tidelog.open(d) as log:
        assert log.topic("r").end_offsets()[0] >= ends["r"][0]


def test_repair_rebuilds_damaged_indexes(two_topics):
    d, ends = two_topics
    for f in partition_files(d, "s", 1, ".timeindex"):
        if f.endswith(".timeindex"):
            open(f, "wb").write(b"\xff" * 48)
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert not _verify.verify(d).damaged


HOLDER = r"""
import sys, tidelog
log = tidelog.open(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
log.close()
"""


def test_repair_refuses_while_a_writer_holds_the_log(two_topics, capsys):
    d, _ = two_topics
    seg = segment_logs(d, "s", 0)[-1]
    _flip(seg, _frames(seg)[-1][0] + 70)
    before = _snapshot(d / "topics")
    # a writer in this process
    with tidelog.open(d):
        rc, out, err = _run_cli(d, "--repair", capsys=capsys)
        assert rc == 2 and "writer holds the log" in err
    # a writer in another process, named by its pid
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        rc, out, err = _run_cli(d, "--repair", capsys=capsys)
        assert rc == 2 and str(child.pid) in err
    finally:
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(60)
    # (the writers' opens rewrote state files and checkpoints, but no segment was cut)
    after = _snapshot(d / "topics")
    assert {k: v for k, v in after.items() if k.endswith(".log")} == \
        {k: v for k, v in before.items() if k.endswith(".log")}
    assert not glob.glob(seg + ".cut-*")


def test_verify_while_a_writer_appends(tmp_path):
    """A live log: the active segment is checked up to the published end; no false damage."""
    d = tmp_path / "log"
    log = tidelog.open(d)
    try:
        t = log.create_topic("t", SENSORS_SCHEMA, partitions=2, key="sensor_id", segment_bytes=32 << 10,
                             retention_bytes=128 << 10)
        log.create_topic("r", durability="none", segment_bytes=16 << 10)
        stop = threading.Event()

        def work():
            i = 0
            p = log.producer(linger_ms=0, acks="written")
            while not stop.is_set():
                t.append(make_sensors(300, start=300 * i))
                p.send("r", value=b"x" * (i % 500))
                if i % 7 == 0:
                    t.enforce_retention()
                i += 1
            p.close()

        threads = [threading.Thread(target=work) for _ in range(2)]
        for th in threads:
            th.start()
        try:
            time.sleep(0.3)
            for _ in range(8):
                report = _verify.verify(d)
                assert report.live and report.writer_pid == os.getpid()
                assert not report.damaged, _verify.format_report(report)
        finally:
            stop.set()
            for th in threads:
                th.join()
    finally:
        log.close()
    assert not _verify.verify(d).damaged


# ----------------------------------------------------------------------------- progress and memory
class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_indicator(two_topics):
    d, _ = two_topics
    tty = _FakeTTY()
    _verify.verify(d, progress="always", progress_stream=tty)
    text = tty.getvalue()
    assert "\rverify [" in text and "100%" in text and text.endswith("\n")
    pipe = io.StringIO()
    _verify.verify(d, progress="always", progress_stream=pipe)
    assert "verify: 100%" in pipe.getvalue()  # not a terminal: whole lines
    quiet = _FakeTTY()
    _verify.verify(d, progress="auto", progress_stream=quiet)  # a small log: no bar even on a terminal
    assert quiet.getvalue() == ""
    quiet = _FakeTTY()
    _verify.verify(d, progress="never", progress_stream=quiet)
    assert quiet.getvalue() == ""


def test_memory_is_bounded_by_the_buffer(tmp_path):
    """A log far larger than verify's buffer, with frames larger than it too."""
    d = tmp_path / "log"
    schema = pa.schema([("b", pa.binary())])
    rng = np.random.default_rng(1)
    with tidelog.open(d) as log:
        t = log.create_topic("big", schema, durability="none", segment_bytes=64 << 20)
        for _ in range(5):  # 5 frames of ~6 MiB each
            t.append({"b": [rng.bytes(1 << 20) for _ in range(6)]})
        t2 = log.create_topic("many", schema, durability="none", segment_bytes=4 << 20)
        for i in range(400):
            t2.append({"b": [rng.bytes(20_000)]})
    total = sum(os.path.getsize(f) for f in glob.glob(str(d / "topics" / "*" / "0" / "*.log")))
    assert total > 30 << 20
    tracemalloc.start()
    try:
        report = _verify.verify(d)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not report.damaged
    assert report.frames == 405
    assert peak < 6 << 20, f"verify peaked at {peak / 2**20:.1f} MiB for a {total / 2**20:.0f} MiB log"


def test_cli_help_mentions_verify(capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "--repair" in out and ".damaged-" in out


# ----------------------------------------------------------------------------- cross-check with the native walker
MATRIX_KINDS = ["header-bit", "payload-bit", "crc-bit", "zero-512", "zero-4k", "copy", "truncate"]
MATRIX_WHERE = ["start", "middle", "end"]
MATRIX = [(kind, seg, where) for kind in MATRIX_KINDS for seg in ("sealed", "active") for where in MATRIX_WHERE
          if not (kind == "truncate" and seg == "active")]


@pytest.fixture(scope="module")
def matrix_log(tmp_path_factory):
    """One partition, value == offset on every row, ~7 frames per segment, >= 4 segments."""
    d = tmp_path_factory.mktemp("matrix") / "log"
    with tidelog.open(d) as log:
        t = log.create_topic("m", SENSORS_SCHEMA, timestamp="ts", segment_bytes=32 << 10)
        for i in range(31):
            t.append(make_sensors(150 + 7 * (i % 5), start=sum(150 + 7 * (k % 5) for k in range(i))))
        end = t.end_offsets()[0]
    segs = segment_logs(d, "m")
    assert len(segs) >= 4 and len(_frames(segs[-1])) >= 3, [len(_frames(s)) for s in segs]
    return d, end


def _damage(seg: str, kind: str, where: str) -> None:
    frames = _frames(seg)
    i = {"start": 0, "middle": len(frames) // 2, "end": len(frames) - 1}[where]
    pos, poff, plen, length, base, count = frames[i]
    size = os.path.getsize(seg)

    def zero(at, n):
        with open(seg, "r+b") as f:
            f.seek(at)
            f.write(bytes(min(n, size - at)))

    if kind == "header-bit":
        _flip(seg, pos + 17)  # base_offset
    elif kind == "payload-bit":
        _flip(seg, pos + poff + plen // 2)
    elif kind == "crc-bit":
        _flip(seg, pos + 5)
    elif kind == "zero-512":
        zero((pos + 100) // 512 * 512, 512)
    elif kind == "zero-4k":
        zero((pos + 100) // 4096 * 4096, 4096)
    elif kind == "copy":  # a misdirected write: another frame's bytes over this one
        j = i + 2 if i + 2 < len(frames) else i - 2
        src = frames[j]
        data = open(seg, "rb").read()[src[0]:src[0] + src[3]]
        with open(seg, "r+b") as f:
            f.seek(pos)
            f.write(data[: size - pos])
    elif kind == "truncate":
        os.truncate(seg, pos + 100)


def _ranges_to_set(ranges) -> set[int]:
    out: set[int] = set()
    for a, b in ranges:
        out.update(range(a, b))
    return out


def _verify_sets(d):
    report = _verify.verify(d, progress="never")
    (rep,) = report.partitions
    damaged = _ranges_to_set((r.start_offset, r.end_offset) for r in rep.damaged)
    lost = _ranges_to_set((g.start_offset, g.end_offset) for g in rep.lost)
    intact = _ranges_to_set(rep.intact)
    assert not damaged & lost and not (damaged | lost) & intact
    return report, rep, damaged, lost, intact


def _native_sets(d, read_only=True, removed=frozenset()):
    """What the native walker skips and returns, reading the whole partition with
    skipping on (``removed``: offsets compaction removed, which intact frames cover
    without a record)."""
    with tidelog.open(d, read_only=read_only) as log:
        t = log.topic("m")
        part = t._partitions[0]
        end = t.end_offsets()[0]
        cursor, intact, skipped = t.start_offsets()[0], set(), set()
        while cursor < end:
            got = []
            frames = part.frames(cursor, end, -(2**63), 2**63 - 1, 1024, got)
            for dmg in got:
                skipped.update(range(dmg["start_offset"], dmg["end_offset"]))
            for f in frames:
                intact.update(range(f.base_offset, f.next_offset))
            after = max([cursor] + [f.next_offset for f in frames] + [g["end_offset"] for g in got])
            if after == cursor:
                break
            cursor = after
        with pytest.warns(tidelog.CorruptionWarning) if skipped else _no_warning():
            table = t.read(on_corrupt="skip")
        stats = log.stats()
        assert stats["corrupt_offsets_skipped"] >= len(skipped) if skipped else True
        values = table["value"].to_numpy().astype(np.int64)
        assert set(values.tolist()) == intact - removed  # the skipping read returns exactly the intact records
        return intact, skipped, end, log.recovery_report


class _no_warning:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("error", tidelog.CorruptionWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


@pytest.mark.parametrize("kind,segment,where", MATRIX, ids=["-".join(c) for c in MATRIX])
def test_damage_matrix_agrees_with_the_native_walker(matrix_log, tmp_path, kind, segment, where):
    src, end = matrix_log
    _damage_matrix_case(src, end, frozenset(), tmp_path, kind, segment, where)


@pytest.fixture(scope="module")
def compacted_matrix_log(matrix_log, tmp_path_factory):
    """matrix_log with its first two segments compacted (tests/sparse_segments.py):
    in the second, the first frame keeps every other row, the middle one is
    empty, the others keep every third row; the first keeps every other row."""
    import shutil

    src, end = matrix_log
    d = tmp_path_factory.mktemp("compacted-matrix") / "log"
    shutil.copytree(src, d)
    bases = ss.segment_bases(d, "m", 0)
    removed = set(ss.rewrite_segment(d, "m", 0, bases[0], ss.keep_every(2))["removed"])
    middle = len(ss.read_frames(ss.segment_path(d, "m", 0, bases[1]))) // 2
    calls = []

    def keep(offsets, batch):
        calls.append(1)
        i = len(calls) - 1
        return offsets % 2 == 0 if i == 0 else np.zeros(len(offsets), bool) if i == middle else offsets % 3 == 0
    removed |= set(ss.rewrite_segment(d, "m", 0, bases[1], keep)["removed"])
    with tidelog.open(d):
        pass  # a writer open rebuilds the indexes the rewrite deleted
    assert _verify.exit_code(_verify.verify(d, progress="never")) == _verify.EXIT_CLEAN
    return d, end, frozenset(removed)


COMPACTED_MATRIX = [(kind, where) for kind in MATRIX_KINDS for where in MATRIX_WHERE]


@pytest.mark.parametrize("kind,where", COMPACTED_MATRIX, ids=["-".join(c) for c in COMPACTED_MATRIX])
def test_damage_matrix_in_a_compacted_segment(compacted_matrix_log, tmp_path, kind, where):
    """Damage to sparse and empty frames is found (and repaired) as in dense ones;
    the offsets compaction removed are neither damaged nor lost."""
    src, end, removed = compacted_matrix_log
    _damage_matrix_case(src, end, removed, tmp_path, kind, "sealed", where)


def _damage_matrix_case(src, end, removed, tmp_path, kind, segment, where):
    import shutil

    d = tmp_path / "log"
    shutil.copytree(src, d)
    segs = segment_logs(d, "m")
    seg = segs[1] if segment == "sealed" else segs[-1]
    _damage(seg, kind, where)

    # 1. verify and a reader (no recovery) see the same damage and the same intact records
    report, rep, damaged, lost, intact = _verify_sets(d)
    assert report.damaged and rep.damaged, _verify.format_report(report)
    n_intact, n_skipped, n_end, _ = _native_sets(d, removed=removed)
    assert damaged | lost == n_skipped, _verify.format_report(report)
    assert intact == n_intact
    assert intact | damaged | lost == set(range(0, end))
    assert all(r.segment == seg for r in rep.damaged)

    # 2. after a writer open (recovery seals a damaged active segment and starts a new one)
    with tidelog.open(d) as log:
        events = log.recovery_report
        assert {e["kind"] for e in events} <= {"damaged", "lost", "index"}
        assert log.topic("m").end_offsets()[0] >= end
    report2, rep2, damaged2, lost2, intact2 = _verify_sets(d)
    n_intact2, n_skipped2, n_end2, _ = _native_sets(d, removed=removed)
    assert intact2 == intact == n_intact2
    assert damaged2 | lost2 == n_skipped2 and damaged | lost <= damaged2 | lost2
    assert damaged2 | lost2 | intact2 == set(range(0, n_end2))

    # 3. --repair: damaged bytes aside, intact frames kept at their offsets
    before = {p: open(p, "rb").read() for p in segment_logs(d, "m")}
    rep3 = _verify.verify(d, repair=True, progress="never")
    assert _verify.exit_code(rep3) == _verify.EXIT_REPAIRED, _verify.format_report(rep3)
    for r in rep2.damaged:  # every damaged byte was saved
        side = _verify.side_file_name(r.segment, r.position, unique=False)
        assert open(side, "rb").read() == before[r.segment][r.position:r.position + r.bytes]
    after = rep3.after_repair
    (arep,) = after.partitions
    assert not after.damaged and not arep.damaged, _verify.format_report(rep3)
    assert all(g.acknowledged for g in arep.lost)
    assert _ranges_to_set((g.start_offset, g.end_offset) for g in arep.lost) == damaged2 | lost2
    assert _ranges_to_set(arep.intact) == intact
    # the next open reports no damaged bytes (a gap shows as "data missing", 0 bytes)
    with tidelog.open(d) as log:
        assert all(e["bytes_damaged"] == 0 and e["kind"] in ("damaged", "lost") for e in log.recovery_report), \
            log.recovery_report
        t = log.topic("m")
        got = t.read(on_corrupt="skip")
        assert got["value"].to_numpy().astype(np.int64).tolist() == sorted(intact - removed)
        for a, b in (r for r in arep.intact):
            assert t.read(a, b)["value"].to_numpy().astype(np.int64).tolist() == [
                o for o in range(a, b) if o not in removed]
        for g in arep.lost:
            with pytest.raises(tidelog.CorruptionError) as info:
                t.read(g.start_offset, g.end_offset)
            assert "offsets missing from the segment" in str(info.value) or "data missing" in str(info.value)
            assert info.value.start_offset <= g.start_offset < info.value.end_offset
    # indexes were rebuilt by the writer open after the repair; verify agrees; exit 0
    for s in segment_logs(d, "m"):
        assert os.path.exists(s[:-4] + ".index") and os.path.exists(s[:-4] + ".timeindex")
    rc = _verify.exit_code(_verify.verify(d, progress="never"))
    assert rc == _verify.EXIT_CLEAN


@pytest.mark.parametrize("crash_at", ["after-side-file", "after-tmp", "after-rename", "after-truncate"])
def test_interrupted_repair_is_finished_by_a_rerun(two_topics, monkeypatch, crash_at):
    """A crash between the steps of a split (side file, new segment built and renamed,
    original truncated) leaves a state that verify reports, readers read right, and a
    second `verify --repair` finishes (with the same result as an uninterrupted one)."""
    d, ends = two_topics
    seg = segment_logs(d, "s", 0)[1]
    frames = _frames(seg)
    k = len(frames) // 2
    victim = frames[k]
    _flip(seg, victim[0] + victim[1] + 5)
    with tidelog.open(d, read_only=True) as ro:
        # values, not the table: its buffers map the segment the repair truncates (SIGBUS)
        expected = ro.topic("s").read(partitions=0, on_corrupt="skip")["value"].to_pylist()
    new = os.path.join(os.path.dirname(seg), "%020d.log" % (victim[4] + victim[5]))

    class Crash(Exception):
        pass

    real_copy, real_rename, real_truncate = _verify._copy_range, os.rename, _verify._truncate

    def copy(src, start, end, dest, exclusive):
        real_copy(src, start, end, dest, exclusive)
        if crash_at == "after-side-file" and ".damaged-" in dest or crash_at == "after-tmp" and dest.endswith(".tmp"):
            raise Crash

    def rename(a, b):
        real_rename(a, b)
        if crash_at == "after-rename" and b == new:
            raise Crash

    def truncate(path, position):
        real_truncate(path, position)
        if crash_at == "after-truncate":
            raise Crash

    monkeypatch.setattr(_verify, "_copy_range", copy)
    monkeypatch.setattr(_verify.os, "rename", rename)
    monkeypatch.setattr(_verify, "_truncate", truncate)
    with pytest.raises(Crash):
        _verify.verify(d, repair=True)
    monkeypatch.undo()

    report = _verify.verify(d)
    assert _verify.exit_code(report) == 1, _verify.format_report(report)  # something is left to do
    if crash_at == "after-rename":
        # the intact frames are in both files: the old copy is damage past the new segment's base
        rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 0))
        first, dup = rep.damaged  # the bad frame, then the old copy of the frames after it
        assert first.position == victim[0] and first.end_offset == victim[4] + victim[5]
        assert dup.position == frames[k + 1][0] and dup.resync_position is None and dup.offsets == 0
        assert "interrupted" in dup.reason
    with tidelog.open(d, read_only=True) as ro:  # readers see every intact record, once
        assert ro.topic("s").read(partitions=0, on_corrupt="skip")["value"].to_pylist() == expected

    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert os.path.getsize(seg) == victim[0]
    assert _frames(new)[0][4] == victim[4] + victim[5]
    assert not glob.glob(new + ".tmp")
    with tidelog.open(d) as log:
        assert all(e["bytes_damaged"] == 0 for e in log.recovery_report), log.recovery_report
        assert log.topic("s").read(partitions=0, on_corrupt="skip")["value"].to_pylist() == expected
    assert _verify.exit_code(_verify.verify(d)) == 0
    # a third run has nothing to do
    assert _verify.exit_code(_verify.verify(d, repair=True)) == 0


# ----------------------------------------------------------------------------- compacted segments
@pytest.fixture
def compacted_log(tmp_path):
    """A byte-record topic whose sealed segments were compacted (every third
    record kept; the third segment one empty frame), indexes rebuilt."""
    d = tmp_path / "log"
    with tidelog.open(d) as log:
        log.create_topic("r", segment_bytes=4096)
        with log.producer(linger_ms=60_000) as p:
            for i in range(400):
                p.send("r", value=b"%d" % i, key=b"k%d" % (i % 5))
                if i % 9 == 8:
                    p.flush()  # frames of 9 records
    bases = ss.segment_bases(d, "r", 0)
    assert len(bases) >= 4
    removed = set()
    for b in bases[:-1]:
        if b == bases[2]:
            removed |= set(ss.empty_segment(d, "r", 0, b))
        else:
            removed |= set(ss.rewrite_segment(d, "r", 0, b, ss.keep_every(3))["removed"])
    with tidelog.open(d):
        pass  # rebuilds the indexes
    return d, bases, removed


def test_compacted_segments_verify_clean(compacted_log, capsys):
    d, bases, removed = compacted_log
    report = _verify.verify(d, progress="never")
    assert _verify.exit_code(report) == _verify.EXIT_CLEAN, _verify.format_report(report)
    (rep,) = report.partitions
    assert rep.intact == [[0, rep.end_offset]] and not rep.lost and not rep.damaged
    assert rep.records == rep.end_offset - len(removed)
    assert _run_cli(d, capsys=capsys)[0] == 0


def test_leftovers_of_an_interrupted_compaction_are_notes(compacted_log):
    d, bases, removed = compacted_log
    stem = ss.segment_path(d, "r", 0, bases[1])[:-4]
    # a crash after step 2 of the swap: the new files written, the old indexes unlinked
    for ext in (".log", ".index", ".timeindex"):
        with open(stem + ext + ".cleaned", "wb") as f:
            f.write(b"\x01" * 100)
    os.unlink(stem + ".index")
    os.unlink(stem + ".timeindex")
    report = _verify.verify(d, progress="never")
    assert _verify.exit_code(report) == _verify.EXIT_CLEAN, _verify.format_report(report)
    notes = " ".join(report.partitions[0].notes)
    assert f"{os.path.basename(stem)}.log.cleaned: left by an interrupted compaction" in notes
    assert "a compaction of the segment was interrupted" in notes
    # without the leftovers, a missing index is a problem again
    for ext in (".log", ".index", ".timeindex"):
        os.unlink(stem + ext + ".cleaned")
    report = _verify.verify(d, progress="never")
    assert {p.kind for p in report.all_problems()} == {"index"}


def _rewrite_frame(path, position, make):
    """Replaces the frame at ``position`` by make(StoredFrame) (bytes of a whole
    frame); the frames after it are kept, moved if the length changed."""
    data = open(path, "rb").read()
    out = b""
    for f in ss.read_frames(path):
        length = ((struct.unpack_from("<I", data, f.position + 56)[0] + len(f.payload)) + 7) & ~7
        out += make(f) if f.position == position else data[f.position:f.position + length]
    open(path, "wb").write(out)


@pytest.mark.parametrize("breakage", ["deltas-repeat", "delta-past-span", "block-too-long", "empty-payload",
                                      "count-0-dense", "fewer-dense"])
def test_broken_sparse_frames_are_damage(compacted_log, breakage):
    d, bases, removed = compacted_log
    path = ss.segment_path(d, "r", 0, bases[1])
    fr = next(f for f in ss.read_frames(path) if f.record_count >= 2)
    block = (8 + 4 * fr.record_count + 7) & ~7
    deltas = list(struct.unpack_from(f"<{fr.record_count}I", fr.payload, 8))
    arrow = fr.payload[block:]
    count, flags, payload = fr.record_count, fr.flags, None
    if breakage == "deltas-repeat":
        deltas[1] = deltas[0]
    elif breakage == "delta-past-span":
        deltas[-1] = fr.span
    elif breakage == "block-too-long":
        payload = ss.offset_block(deltas)[:block - 8]
    elif breakage == "empty-payload":
        count, payload = 0, ss.offset_block([]) + b"\0" * 8
    elif breakage == "count-0-dense":
        count, flags, payload = 0, 0, ss.offset_block([])
    elif breakage == "fewer-dense":
        flags, payload = fr.flags & ~ss.FLAG_SPARSE, arrow
    if payload is None:
        payload = ss.offset_block(deltas) + arrow
    _rewrite_frame(path, fr.position, lambda f: ss.encode_frame(f.base_offset, f.span, count, f.min_timestamp,
                                                                f.max_timestamp, f.codec, flags, payload))
    report = _verify.verify(d, progress="never")
    (rep,) = report.partitions
    assert _verify.exit_code(report) == _verify.EXIT_DAMAGED
    assert [(r.segment, r.position, r.start_offset, r.end_offset) for r in rep.damaged] == [
        (path, fr.position, fr.base_offset, fr.next_offset)], _verify.format_report(report)
    reason = rep.damaged[0].reason
    assert ("offset block" in reason or "FLAG_SPARSE" in reason or "empty sparse frame" in reason), reason
    assert rep.intact == [[0, fr.base_offset], [fr.next_offset, rep.end_offset]]
