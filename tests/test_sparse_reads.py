"""Reads over compacted segments (FORMAT.md §2.6): sparse frames, whose rows
carry their offsets, and empty frames. Every reader (scans, time ranges,
offset_for_time, consumers, group consumers) must number rows by their real
offsets, start inside a frame or on a removed offset, and move past empty
frames. The segments are compacted by tests/sparse_segments.py (in Python,
independently of the native cleaner)."""
from __future__ import annotations

import os
import struct

import numpy as np
import pyarrow as pa
import pytest

import sparse_segments as ss
import tidelog
from tidelog import _core

T0 = 1_700_000_000_000_000_000
SIZES = [7, 10, 13]  # rows per appended frame, in turn
ROWS = 600

COLUMNAR = pa.schema([("ts", pa.timestamp("ns")), ("key", pa.int32()), ("value", pa.int64())])
DICT = pa.schema([("ts", pa.timestamp("ns")), ("key", pa.dictionary(pa.int8(), pa.string())),
                  ("value", pa.int64())])


def _batch(kind: str, start: int, n: int) -> pa.RecordBatch:
    offs = np.arange(start, start + n, dtype=np.int64)
    ts = T0 + offs * 1000
    if kind == "records":
        return pa.record_batch([pa.array(ts, pa.int64()), pa.array([b"k%d" % (o % 7) for o in offs]),
                                pa.array([b"%d" % o for o in offs]),
                                pa.array([[("h", b"%d" % o)] if o % 5 == 0 else [] for o in offs],
                                         tidelog.RECORD_SCHEMA.field("headers").type)],
                               schema=tidelog.RECORD_SCHEMA)
    schema = COLUMNAR if kind == "columnar" else DICT
    keys = pa.array((offs % 7).astype(np.int32))
    if kind == "dict":
        keys = pa.array([f"k{o % 7}" for o in offs]).dictionary_encode().cast(DICT.field("key").type)
    return pa.record_batch([pa.array(ts, pa.timestamp("ns")), keys, pa.array(offs)], schema=schema)


def values(table) -> list[int]:
    """The value column as ints (every row's value is its offset)."""
    col = table.column("value")
    if pa.types.is_binary(col.type):
        return [int(v) for v in col.to_pylist()]
    return col.to_pylist()


def _keep_scenario(scenario: str, frames: int):
    """keep(offsets, batch) for one segment of ``frames`` frames."""
    calls = {"n": 0}

    def keep(offsets, batch):
        i = calls["n"]
        calls["n"] += 1
        if scenario == "every3":
            return offsets % 3 == 1
        if i in (0, frames // 2, frames - 1):  # "empties": empty frames at the start, middle and end
            return np.zeros(len(offsets), dtype=bool)
        return offsets % 2 == 0
    return keep


class Compacted:
    def __init__(self, d, kind, survivors, end, bases):
        self.dir, self.kind, self.survivors, self.end, self.bases = d, kind, survivors, end, bases

    def between(self, a, b):
        return [o for o in self.survivors if a <= o < b]

    def next_survivor(self, o):
        return next((s for s in self.survivors if s >= o), self.end)


def build(tmp_path, kind="records", compression="none", scenario="every3", horizon=0) -> Compacted:
    d = tmp_path / "log"
    with tidelog.open(d) as log:
        if kind == "records":
            t = log.create_topic("t", segment_bytes=4096, compression=compression, durability="none")
        else:
            t = log.create_topic("t", COLUMNAR if kind == "columnar" else DICT, timestamp="ts", key="key",
                                 segment_bytes=4096, compression=compression, durability="none")
        at, k = 0, 0
        while at < ROWS:
            n = SIZES[k % len(SIZES)]
            t.append(_batch(kind, at, n))
            at, k = at + n, k + 1
        end = t.end_offsets()[0]
    bases = ss.segment_bases(d, "t", 0)
    assert len(bases) >= 4, bases
    removed = set()
    for i, b in enumerate(bases[:-1]):
        if scenario == "empties" and i == 2:
            removed.update(ss.empty_segment(d, "t", 0, b))
            continue
        frames = len(ss.read_frames(ss.segment_path(d, "t", 0, b)))
        removed.update(ss.rewrite_segment(d, "t", 0, b, _keep_scenario(scenario, frames),
                                          delete_horizon_ns=horizon)["removed"])
    survivors = [o for o in range(end) if o not in removed]
    return Compacted(d, kind, survivors, end, bases)


KINDS = [("records", "none"), ("records", "zstd"), ("columnar", "none"), ("columnar", "zstd"), ("dict", "none")]


@pytest.fixture(params=[(k, c, s) for k, c in KINDS for s in ("every3", "empties")],
                ids=lambda p: "-".join(p))
def compacted(request, tmp_path):
    kind, compression, scenario = request.param
    return build(tmp_path, kind, compression, scenario)


# ----------------------------------------------------------------------------- Frame
def test_frame_api(tmp_path):
    c = build(tmp_path, "records", "none", "empties", horizon=12345)
    with tidelog.open(c.dir, read_only=True) as log:
        part = log.topic("t").partition(0)
        frames = part.frames(0, c.end, 100_000)
        assert frames[0].base_offset == 0 and frames[-1].next_offset == c.end
        sparse = [f for f in frames if f.sparse]
        assert sparse and any(f.record_count == 0 for f in sparse)
        seen = []
        for f in frames:
            offs = f.offsets()
            assert offs.type == pa.int64() and len(offs) == f.record_count
            assert offs.to_pylist() == [f.offset_at(i) for i in range(f.record_count)]
            assert offs.to_pylist() == c.between(f.base_offset, f.next_offset)
            seen.extend(offs.to_pylist())
            for o in range(f.base_offset - 1, f.next_offset + 2):
                assert f.row_index(o) == sum(1 for x in offs.to_pylist() if x < o)
            with pytest.raises(IndexError):
                f.offset_at(f.record_count)
            if f.sparse:
                assert f.delete_horizon_ns == (0 if f.base_offset == c.bases[2] else 12345)  # (empty_segment: 0)
                assert f.flags & _core.FLAG_SPARSE
                assert f.block_length == (8 + 4 * f.record_count + 7) // 8 * 8
                assert "sparse" in repr(f)
            else:
                assert f.delete_horizon_ns == 0 and f.block_length == 0
            if f.record_count == 0:
                assert part.decode(f) == [] and f.payload().size == 0
            else:
                (b,) = part.decode(f)
                assert b.num_rows == f.record_count
                assert [int(v) for v in b.column("value").to_pylist()] == offs.to_pylist()
                assert f.payload().size == f.length
        assert seen == c.survivors


def test_decode_records_takes_the_frame(tmp_path):
    c = build(tmp_path, "records", "zstd")
    with tidelog.open(c.dir, read_only=True) as log:
        part = log.topic("t").partition(0)
        f = next(f for f in part.frames(0, c.end, 1000) if f.sparse and f.record_count >= 2)
        (b,) = part.decode(f)
        recs = _core.decode_records(b, "t", 0, f, 1, f.record_count)
        assert [r.offset for r in recs] == f.offsets().to_pylist()[1:]
        assert [int(r.value) for r in recs] == [r.offset for r in recs]
        dense = _core.decode_records(b, "t", 0, 100, 0, 2)
        assert [r.offset for r in dense] == [100, 101]
        with pytest.raises(ValueError):
            _core.decode_records(b, "t", 0, f, 0, f.record_count + 1)


# ----------------------------------------------------------------------------- scans
def test_scan_reads_the_survivors_at_their_offsets(compacted):
    c = compacted
    with tidelog.open(c.dir, read_only=True) as log:
        t = log.topic("t")
        tab = t.read(with_offsets=True)
        assert values(tab) == c.survivors
        assert tab.column("_offset").to_pylist() == c.survivors
        assert t.read(columns=["value"]).num_rows == len(c.survivors)
        # starts and ends inside sparse frames, on removed offsets, on empty frames
        for a in list(range(0, c.end, 7)) + [c.end - 1, c.end]:
            for b in (a + 1, a + 5, a + 40, c.end):
                got = t.read(a, b, with_offsets=True)
                assert values(got) == c.between(a, b), (a, b)
                assert got.column("_offset").to_pylist() == c.between(a, b)


def test_time_ranges_and_offset_for_time(compacted):
    c = compacted
    with tidelog.open(c.dir, read_only=True) as log:
        t = log.topic("t")
        for a in list(range(0, c.end, 11)) + [c.end - 1]:
            for b in (a + 3, a + 50):
                got = t.read(start_time=T0 + a * 1000, end_time=T0 + b * 1000, with_offsets=True)
                assert got.column("_offset").to_pylist() == c.between(a, b), (a, b)
                assert values(got) == c.between(a, b)
            assert t.offset_for_time(0, T0 + a * 1000) == c.next_survivor(a), a
        assert t.offset_for_time(0, T0 + c.end * 1000) == c.end
        # a start offset and a time range together
        got = t.read(40, start_time=T0 + 30 * 1000, end_time=T0 + 200 * 1000, with_offsets=True)
        assert got.column("_offset").to_pylist() == c.between(40, 200)


def test_skip_mode_reads_compacted_segments_without_warnings(compacted, recwarn):
    c = compacted
    with tidelog.open(c.dir) as log:  # a writer open: indexes rebuilt, recovery finds nothing
        assert not [e for e in log.recovery_report if e["kind"] in ("damaged", "lost")], log.recovery_report
        assert values(log.topic("t").read(on_corrupt="skip")) == c.survivors
        assert log.stats()["corrupt_offsets_skipped"] == 0
    assert not [w for w in recwarn if issubclass(w.category, tidelog.CorruptionWarning)]


def test_appends_continue_after_compacted_segments(tmp_path):
    c = build(tmp_path, "columnar", "none", "empties")
    with tidelog.open(c.dir) as log:
        t = log.topic("t")
        t.append(_batch("columnar", c.end, 5))
        assert values(t.read()) == c.survivors + list(range(c.end, c.end + 5))


# ----------------------------------------------------------------------------- consumers
def _record_kind(c):
    return c.kind == "records"


@pytest.mark.parametrize("compression,scenario", [("none", "every3"), ("none", "empties"), ("zstd", "empties")])
def test_consumer_iteration_and_poll(tmp_path, compression, scenario):
    c = build(tmp_path, "records", compression, scenario)
    with tidelog.open(c.dir, read_only=True) as log:
        con = log.consumer("t")
        got = []
        for r in con:
            got.append(r)
            if len(got) == len(c.survivors):
                break
        assert [r.offset for r in got] == c.survivors
        assert all(int(r.value) == r.offset for r in got)
        assert all(r.headers == ([("h", b"%d" % r.offset)] if r.offset % 5 == 0 else []) for r in got)
        assert con.position("t", 0) == c.end and con.lag() == {("t", 0): 0}
        assert con.poll(0.01) is None

        con = log.consumer("t")
        for i, o in enumerate(c.survivors):
            r = con.poll(1)
            assert r.offset == o
            pos = con.position("t", 0)
            nxt = c.survivors[i + 1] if i + 1 < len(c.survivors) else c.end
            assert o < pos <= nxt  # the next unread row, or the next offset of the frame read whole
            assert con.lag()[("t", 0)] == c.end - pos
        assert con.poll(0.01) is None


def test_seek_to_removed_offsets_and_inside_sparse_frames(compacted):
    c = compacted
    removed = [o for o in range(c.end) if o not in set(c.survivors)]
    starts = removed[::9] + c.survivors[::13] + [c.end - 1, c.end]
    with tidelog.open(c.dir, read_only=True) as log:
        con = log.consumer("t")
        for s in starts:
            con.seek("t", 0, s)
            want = c.between(s, c.end)
            if _record_kind(c):
                r = con.poll(0.01)
                assert (r.offset if r else c.end) == (want[0] if want else c.end), s
                if want:
                    assert int(r.value) == want[0]
            b = con.poll_batch(3, timeout=0.01)
            if _record_kind(c):  # poll() moved one on
                want = want[1:]
            if not want:
                assert b is None
                continue
            assert b["offset"].to_pylist() == want[:3], s
            assert values(b) == want[:3]
            assert con.position("t", 0) <= (want[3] if len(want) > 3 else c.end)
            assert con.position("t", 0) > want[min(2, len(want) - 1)]


@pytest.mark.parametrize("max_records", [1, 2, 5, 1000])
def test_poll_batch_splits_sparse_frames(tmp_path, max_records):
    for kind, comp in (("records", "none"), ("columnar", "zstd")):
        c = build(tmp_path / kind, kind, comp, "empties")
        with tidelog.open(c.dir, read_only=True) as log:
            con = log.consumer("t")
            got = []
            while True:
                b = con.poll_batch(max_records, timeout=0.01)
                if b is None:
                    break
                assert 0 < b.num_rows <= max_records
                assert b["offset"].to_pylist() == values(b)
                got.extend(b["offset"].to_pylist())
                pos = con.position("t", 0)
                assert got[-1] < pos <= c.next_survivor(got[-1] + 1)
                # cut inside a frame: the position is the next unconsumed row
                if b.num_rows == max_records and c.next_survivor(got[-1] + 1) < c.end:
                    nxt = c.next_survivor(got[-1] + 1)
                    frames = log.topic("t").partition(0).frames(got[-1], got[-1] + 1, 1)
                    if nxt < frames[0].next_offset:
                        assert pos == nxt
            assert got == c.survivors


def test_group_consumer_commits_over_gaps(tmp_path):
    c = build(tmp_path, "records", "none", "empties")
    with tidelog.open(c.dir) as log:
        con = log.consumer(["t"], group="g", enable_auto_commit=False)
        first = [con.poll(5) for _ in range(25)]
        assert [r.offset for r in first] == c.survivors[:25]
        con.commit()
        committed = con.committed([tidelog.TopicPartition("t", 0)])[0].offset
        assert first[-1].offset < committed <= c.survivors[25]
        con.close()
        con2 = log.consumer(["t"], group="g", enable_auto_commit=False)
        rest = []
        while len(rest) < len(c.survivors) - 25:
            r = con2.poll(5)
            assert r is not None
            rest.append(r.offset)
        assert rest == c.survivors[25:]
        con2.commit(message=first[-1])  # commit(message=) is offset + 1, even if that offset was removed
        assert con2.committed([tidelog.TopicPartition("t", 0)])[0].offset == first[-1].offset + 1
        con2.close()


def test_async_consumer(tmp_path):
    import asyncio

    c = build(tmp_path, "records", "zstd", "every3")

    async def main():
        with tidelog.open(c.dir, read_only=True) as log:
            con = log.async_consumer("t")
            out = []
            while len(out) < len(c.survivors):
                r = await con.poll(1)
                assert r is not None
                out.append(r.offset)
            return out

    assert asyncio.run(main()) == c.survivors


# ----------------------------------------------------------------------------- damage
def _break_block(c: Compacted) -> tuple[str, int, int, int]:
    """Writes (with a valid CRC) a sparse frame whose deltas do not increase over
    the first sparse frame of the second segment. Returns (path, position, base, next)."""
    path = ss.segment_path(c.dir, "t", 0, c.bases[1])
    data = bytearray(open(path, "rb").read())
    fr = next(f for f in ss.read_frames(path) if f.record_count >= 2)
    block = (8 + 4 * fr.record_count + 7) & ~7
    deltas = list(struct.unpack_from(f"<{fr.record_count}I", fr.payload, 8))
    deltas[1] = deltas[0]
    payload = ss.offset_block(deltas) + fr.payload[block:]
    frame = ss.encode_frame(fr.base_offset, fr.span, fr.record_count, fr.min_timestamp, fr.max_timestamp,
                            fr.codec, fr.flags, payload)
    data[fr.position:fr.position + len(frame)] = frame
    open(path, "wb").write(bytes(data))
    return path, fr.position, fr.base_offset, fr.next_offset


def test_a_broken_offset_block_raises_naming_the_frame(tmp_path):
    c = build(tmp_path, "records", "none", "every3")
    path, pos, base, nxt = _break_block(c)
    with tidelog.open(c.dir, read_only=True) as log:
        t = log.topic("t")
        assert values(t.read(0, base)) == c.between(0, base)  # what lies before it reads
        assert values(t.read(nxt, c.end)) == c.between(nxt, c.end)  # and after it
        with pytest.raises(tidelog.CorruptionError) as info:
            t.read()
        e = info.value
        # The native walk checks the block after the CRC (a broken one is an inconsistent frame);
        # the Cython check behind it names the rule.
        assert "inconsistent header" in str(e) or "offset deltas not strictly increasing" in str(e)
        assert (e.topic, e.partition, e.position, e.start_offset, e.end_offset) == ("t", 0, pos, base, nxt)
        assert e.path == path and e.segment == os.path.basename(path)
        con = log.consumer("t")
        con.seek("t", 0, base)
        with pytest.raises(tidelog.CorruptionError):
            con.poll(0.1)


def test_a_frame_fewer_records_than_offsets_without_the_flag_is_refused(tmp_path):
    c = build(tmp_path, "records", "none", "every3")
    path = ss.segment_path(c.dir, "t", 0, c.bases[1])
    data = bytearray(open(path, "rb").read())
    fr = next(f for f in ss.read_frames(path) if f.record_count >= 2)
    block = (8 + 4 * fr.record_count + 7) & ~7
    frame = ss.encode_frame(fr.base_offset, fr.span, fr.record_count, fr.min_timestamp, fr.max_timestamp,
                            fr.codec, fr.flags & ~ss.FLAG_SPARSE, fr.payload[block:])
    # (shorter than the sparse frame it replaces: the segment is written again around it)
    rest = ss.read_frames(path)
    out = b"".join(frame if f.position == fr.position else bytes(data[f.position:f.position + (
        (64 + len(f.payload) + 7) & ~7)]) for f in rest)
    open(path, "wb").write(out)
    with tidelog.open(c.dir, read_only=True) as log:
        with pytest.raises(tidelog.CorruptionError) as info:
            log.topic("t").read()
        assert ("FLAG_SPARSE" in str(info.value) or "inconsistent header" in str(info.value)) and \
            info.value.start_offset == fr.base_offset
