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
    assert rc == 2 and "not a tidelog log folder" in err
    (tmp_path / "plain").mkdir()
    rc, out, err = _run_cli(tmp_path / "plain", capsys=capsys)
    assert rc == 2
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
    victim = frames[len(frames) // 2]
    _flip(seg, victim[0] + victim[1] + victim[2] // 2)
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 1
    assert f"DAMAGED: first bad frame at {os.path.basename(seg)} position {victim[0]}" in out
    assert "CRC32C mismatch" in out
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 1))
    assert rep.first_bad[:3] == (seg, victim[0], victim[4]) and rep.first_bad_sealed
    assert rep.end_offset == victim[4]
    # frames after the damaged one are still checked and counted
    total = sum(len(_frames(s)) for s in segment_logs(d, "s", 1))
    assert rep.frames == total - 1
    others = [p for p in report.partitions if p is not rep]
    assert not any(p.problems for p in others)
    # --repair refuses a sealed segment and leaves it alone
    before = open(seg, "rb").read()
    rc, out, _ = _run_cli(d, "--repair", capsys=capsys)
    assert rc == 1
    assert "NOT REPAIRED" in out and "sealed segment" in out
    assert open(seg, "rb").read() == before
    assert not glob.glob(seg + ".cut-*")


@pytest.mark.parametrize("field,value", [("magic", b"XXXX"), ("version", struct.pack("<H", 2)),
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


def test_missing_middle_segment_is_a_gap(two_topics):
    d, ends = two_topics
    segs = segment_logs(d, "s", 0)
    assert len(segs) >= 3
    os.remove(segs[1])
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if (p.topic, p.partition) == ("s", 0))
    assert rep.first_bad[0] == segs[2] and rep.first_bad[1] == 0
    assert "segment base mismatch" in rep.problems[0].reason
    assert not rep.first_bad_sealed  # the gap is before the last segment: --repair moves it aside
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    with tidelog.open(d) as log:
        assert log.topic("s").end_offsets()[0] == int(os.path.basename(segs[1])[:20])


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
    os.truncate(seg, frames[-2][0])  # two whole frames gone: the frames themselves look fine
    report = _verify.verify(d)
    rep = next(p for p in report.partitions if p.topic == "r")
    assert rep.first_bad is None
    cp = [p for p in rep.problems if p.kind == "checkpoint"]
    assert len(cp) == 1, _verify.format_report(report)
    assert f"before its recovery checkpoint ({ends['r'][0]})" in cp[0].reason
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
def test_repair_cuts_a_damaged_tail_and_saves_it(two_topics, capsys):
    d, ends = two_topics
    seg = segment_logs(d, "s", 0)[-1]
    frames = _frames(seg)
    victim = frames[len(frames) // 2]
    _flip(seg, victim[0] + victim[1] + 3)
    with tidelog.open(d, read_only=True) as ro:
        expected = ro.topic("s").read(0, victim[4], partitions=0)
    tail = open(seg, "rb").read()[victim[0]:]
    rc, out, _ = _run_cli(d, "--repair", capsys=capsys)
    assert rc == 3, out
    assert "repaired: cut" in out and "after repair: no damage" in out
    side = seg + f".cut-{victim[0]}"
    assert open(side, "rb").read() == tail
    assert os.path.getsize(seg) == victim[0]
    with tidelog.open(d) as log:
        assert log.clean_shutdown and log.recovery_report == []
        t = log.topic("s")
        assert t.end_offsets()[0] == victim[4] and t.end_offsets()[1] == ends["s"][1]
        assert_tables_equal(t.read(partitions=0), expected)
        res = t.append(make_sensors(500, start=10**6))
        assert res.offsets[0][0] == victim[4]
    rc, out, _ = _run_cli(d, capsys=capsys)
    assert rc == 0, out  # the side file is not mistaken for a segment
    # a second cut at the same position gets its own side file
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
    report = _verify.verify(d)
    assert not report.clean_shutdown
    rep = report.partitions[0]
    assert rep.first_bad[:2] == (seg, last[0])
    rc, out, _ = _run_cli(d, "--repair", capsys=capsys)
    assert rc == 3, out
    with tidelog.open(d) as log:
        assert log.recovery_report == []
        assert log.topic("t").end_offsets() == {0: 490}
        assert log.topic("t").read()["a"].to_pylist() == list(range(490))


def test_repair_of_a_bad_first_frame(two_topics):
    d, ends = two_topics
    segs = segment_logs(d, "r", 0)
    seg = segs[-1]
    base = int(os.path.basename(seg)[:20])
    _flip(seg, 100)
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert os.path.getsize(seg) == 0
    with tidelog.open(d) as log:
        assert log.topic("r").end_offsets() == {0: base}
        with log.producer(linger_ms=0) as p:
            assert p.send("r", value=b"again").result().offset == base


def test_repair_of_a_last_segment_that_does_not_continue(two_topics):
    d, ends = two_topics
    segs = segment_logs(d, "r", 0)
    last = segs[-1]
    wrong = os.path.join(os.path.dirname(last), "%020d.log" % (int(os.path.basename(last)[:20]) + 5))
    os.rename(last, wrong)
    for ext in (".index", ".timeindex"):
        os.rename(last[:-4] + ext, wrong[:-4] + ext)
    rep = _verify.verify(d, repair=True)
    assert _verify.exit_code(rep) == _verify.EXIT_REPAIRED, _verify.format_report(rep)
    assert not os.path.exists(wrong) and glob.glob(wrong + ".cut-0")
    with tidelog.open(d) as log:
        assert log.topic("r").end_offsets() == {0: int(os.path.basename(last)[:20])}


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
    assert "--repair" in out and ".cut-" in out
