"""A log written before frame version 2 (tests/fixtures/format_v1, version-1
frames; written by tests/fixtures/make_v1_log.py with that build) opens and
reads back unchanged, read-only and read-write; appends after it write
version-2 frames into the same segments; verify accepts both."""
import base64
import json
import os
import shutil
import struct

import pytest
import tidelog
from tidelog import _verify

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
EXPECTED = json.load(open(os.path.join(FIXTURES, "format_v1.json")))


def _unb64(s):
    return None if s is None else base64.b64decode(s)


@pytest.fixture
def v1_log(tmp_path):
    d = tmp_path / "format_v1"
    shutil.copytree(os.path.join(FIXTURES, "format_v1"), d)
    os.makedirs(d / "trash", exist_ok=True)
    return d


def _frame_versions(d) -> list[int]:
    versions = []
    for root, _dirs, files in os.walk(d):
        for name in sorted(files):
            if not name.endswith(".log"):
                continue
            data = open(os.path.join(root, name), "rb").read()
            pos = 0
            while pos + 64 <= len(data) and data[pos:pos + 4] == b"TLF1":
                version, = struct.unpack_from("<H", data, pos + 8)
                plen, poff = struct.unpack_from("<QI", data, pos + 48)
                versions.append(version)
                pos += (poff + plen + 7) // 8 * 8
    return versions


def _check_expected(log, extra_orders=()):
    t = log.topic("sensors")
    for part, cols in EXPECTED["sensors"].items():
        tab = t.read(partitions=[int(part)])
        assert tab.column("ts").cast("int64").to_pylist()[:len(cols["ts"])] == cols["ts"]
        for name in ("sensor", "value", "name"):
            assert tab.column(name).to_pylist()[:len(cols[name])] == cols[name]
    c = log.consumer(["orders"], start="earliest")
    got = {}
    while (r := c.poll(timeout=0.2)) is not None:
        hdrs = r.headers
        if isinstance(hdrs, dict):
            hdrs = list(hdrs.items())
        got.setdefault(str(r.partition), []).append(
            [r.offset, r.timestamp, r.key, r.value, None if hdrs is None else [[k, v] for k, v in hdrs]])
    c.close()
    for part, rows in EXPECTED["orders"].items():
        want = [[o, ts, _unb64(k), _unb64(v), None if h is None else [[hk, _unb64(hv)] for hk, hv in h]]
                for o, ts, k, v, h in rows]
        assert got[part][:len(want)] == want
        assert [row[3] for row in got[part][len(want):]] == [v for p, v in extra_orders if str(p) == part]


def test_fixture_holds_version_1_frames_only():
    assert set(_frame_versions(os.path.join(FIXTURES, "format_v1"))) == {1}


def _meta_versions(d) -> dict[str, int]:
    topics = os.path.join(d, "topics")
    return {t: json.load(open(os.path.join(topics, t, "topic.json")))["format_version"] for t in os.listdir(topics)}


def test_read_only_reads_every_value(v1_log):
    with tidelog.open(v1_log, read_only=True) as log:
        _check_expected(log)
    assert _verify.verify(v1_log, progress="off").all_problems() == []
    assert _meta_versions(v1_log) == {"orders": 1, "sensors": 1}  # a reader changes nothing


def test_a_writer_lifts_topic_metadata_to_version_2_before_it_appends(v1_log):
    """An earlier build takes version-2 frames for damage: once a writer of this
    version has opened a topic, topic.json says 2 and earlier builds refuse it
    (their check: format_version above theirs), before their recovery runs."""
    with tidelog.open(v1_log) as log:
        assert _meta_versions(v1_log) == {"orders": 2, "sensors": 2}
        _check_expected(log)
    # what the earlier build's refusal reads
    for t in ("orders", "sensors"):
        meta = json.load(open(os.path.join(v1_log, "topics", t, "topic.json")))
        assert meta["format_version"] == 2 and meta["config"]["name"] == t
    assert _verify.verify(v1_log, progress="off").all_problems() == []


def test_read_write_appends_version_2_after_version_1(v1_log):
    extra = []
    with tidelog.open(v1_log) as log:
        _check_expected(log)
        with log.producer(linger_ms=0) as p:
            for i in range(40):
                part = i % 2
                p.send("orders", value=b"new %d" % i, partition=part)
                extra.append((part, b"new %d" % i))
        log.topic("sensors").append({"ts": [1_800_000_000_000_000_000], "sensor": [1], "value": [0.5],
                                     "name": ["after"]})
    versions = _frame_versions(v1_log)
    assert 1 in versions and 2 in versions
    with tidelog.open(v1_log) as log:  # reopen: mixed segments recover and read
        _check_expected(log, extra)
    with tidelog.open(v1_log, read_only=True) as log:
        _check_expected(log, extra)
        assert log.topic("sensors").read().num_rows == sum(len(c["ts"]) for c in EXPECTED["sensors"].values()) + 1
    assert _verify.verify(v1_log, progress="off").all_problems() == []


def _frames_of(path):
    """(position, payload_offset, payload_length, base_offset, record_count) of each frame."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos + 64 <= len(data) and data[pos:pos + 4] == b"TLF1":
        base, count = struct.unpack_from("<qI", data, pos + 16)
        plen, poff = struct.unpack_from("<QI", data, pos + 48)
        out.append((pos, poff, plen, base, count))
        pos += (poff + plen + 7) // 8 * 8
    return out


@pytest.mark.parametrize("where", ["payload", "header"])
def test_damage_in_a_version_1_frame_verify_and_reads_agree(v1_log, where):
    """verify (the independent checker) and the native reader find the same
    offsets damaged in a version-1 frame, and the same ones intact."""
    seg = os.path.join(v1_log, "topics", "orders", "0", "%020d.log" % 0)
    frames = _frames_of(seg)
    pos, poff, plen, base, count = frames[len(frames) // 2]
    at = pos + poff + plen // 2 if where == "payload" else pos + 17  # a payload byte, or base_offset
    with open(seg, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x10]))
    report = _verify.verify(v1_log, progress="off")
    (rep,) = [p for p in report.partitions if (p.topic, p.partition) == ("orders", 0)]
    damaged = {o for r in rep.damaged for o in range(r.start_offset, r.end_offset)}
    assert damaged == set(range(base, base + count))
    with tidelog.open(v1_log, read_only=True) as log:
        part = log.topic("orders")._partitions[0]
        skipped = []
        frames_read = part.frames(0, 2**63 - 1, -(2**63), 2**63 - 1, 10_000, skipped)
        native_skipped = {o for d in skipped for o in range(d["start_offset"], d["end_offset"])}
        native_intact = {o for f in frames_read for o in range(f.base_offset, f.next_offset)}
    assert native_skipped == damaged
    intact = {o for a, b in rep.intact for o in range(a, b)}
    assert native_intact == intact


_LIFT_AND_APPEND = r"""
import sys, tidelog
print("start", flush=True)  # imports done: the kill lands in the open, the lift or the appends
with tidelog.open(sys.argv[1]) as log:
    p = log.producer(linger_ms=0, acks="durable")
    for i in range(10_000):
        value = b"%s-%d" % (sys.argv[2].encode(), i)
        p.send("orders", value=value, partition=i % 2).get(timeout=10)
        print(value.decode(), flush=True)
"""


def test_sigkill_while_lifting_and_appending_keeps_the_log_whole(tmp_path):
    """A writer SIGKILLed at random moments while it opens a version-1 log (and
    lifts its topic.json) and appends durably after the version-1 frames: each
    topic.json is whole (version 1 or 2), the log opens, every version-1 value
    and every acknowledged append reads back, and verify passes."""
    import random
    import signal
    import subprocess
    import sys
    import time

    rng = random.Random(11)
    outcomes = set()
    for cycle in range(12):
        d = tmp_path / f"c{cycle}"
        shutil.copytree(os.path.join(FIXTURES, "format_v1"), d)
        proc = subprocess.Popen([sys.executable, "-c", _LIFT_AND_APPEND, str(d), f"c{cycle}"],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "start"
        first = []
        if cycle % 3 == 0:
            pass  # at once: in the open or the lift itself
        elif cycle % 3 == 1:
            time.sleep(rng.uniform(0, 0.02))  # anywhere: open, lift or appends
        else:
            first = [proc.stdout.readline().strip()]  # among the appends, however slow the build
            time.sleep(rng.uniform(0, 0.01))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = [a.encode() for a in first + out.split() if a]
        versions = _meta_versions(d)  # whole JSON, a known version
        assert set(versions.values()) <= {1, 2}
        outcomes.add((max(versions.values()), bool(acked)))
        with tidelog.open(d, read_only=True) as log:
            c = log.consumer(["orders"], start="earliest")
            seen = set()
            while (r := c.poll(timeout=0.2)) is not None:
                seen.add(r.value)
            c.close()
            assert set(acked) <= seen
        with tidelog.open(d) as log:
            assert _meta_versions(d) == {"orders": 2, "sensors": 2}
            t = log.topic("sensors")
            for part, cols in EXPECTED["sensors"].items():
                assert t.read(partitions=[int(part)]).column("value").to_pylist()[:len(cols["value"])] == cols["value"]
        assert _verify.verify(d, progress="off").all_problems() == []
    # (the immediate kills land before or after the lift, depending on the machine)
    print("outcomes (format_version, any acked):", sorted(outcomes))
    assert (2, True) in outcomes, outcomes
