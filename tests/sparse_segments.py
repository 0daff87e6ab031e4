"""Test helper: compacted segments on disk without the native cleaner.

``rewrite_segment`` rewrites one SEALED segment of a CLOSED log in place, in
Python, as log compaction would (docs/FORMAT.md §2, §2.6): it reads the
segment's frames, keeps a subset of the rows of each, and writes each frame
again as a FLAG_SPARSE frame (its offset block, then the kept rows as an Arrow
IPC RecordBatch message, or a whole IPC stream for stream frames; compressed as
the frame was), or as an empty sparse frame when no row is kept. Every frame
keeps its base_offset and span, so the segment's offsets stay contiguous. The
segment's .index and .timeindex (derived data) are deleted: the next open
rebuilds them.

``empty_segment`` replaces a sealed segment by one empty frame covering all its
offsets. ``read_frames`` lists a segment's frames (headers and stored payloads).

Independent of tidelog's reader on purpose: only ``tidelog._core.crc32c`` is
used (the CRC of FORMAT.md §2.2).
"""
from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from tidelog import _core

MAGIC = 0x31464C54
HEADER = struct.Struct("<IIHHHHqIIqqQII")  # FORMAT.md §2.1, 64 bytes
assert HEADER.size == 64
FLAG_IPC_STREAM = 1
FLAG_SPARSE = 2
CODEC_ZSTD = 1

#: keep(offsets, batch) -> bool array: which rows of a frame survive.
Keep = Callable[[np.ndarray, "pa.RecordBatch | None"], np.ndarray]


@dataclass
class StoredFrame:
    position: int
    version: int
    codec: int
    flags: int
    base_offset: int
    record_count: int
    min_timestamp: int
    max_timestamp: int
    span: int
    payload: bytes  # as stored (compressed for zstd, with a sparse frame's offset block)

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.span


def segment_path(log_dir, topic: str, partition: int, base: int) -> str:
    return os.path.join(str(log_dir), "topics", topic, str(partition), f"{base:020d}.log")


def segment_bases(log_dir, topic: str, partition: int) -> list[int]:
    folder = os.path.join(str(log_dir), "topics", topic, str(partition))
    return sorted(int(n[:20]) for n in os.listdir(folder) if len(n) == 24 and n.endswith(".log") and n[:20].isdigit())


def read_frames(path: str) -> list[StoredFrame]:
    """The frames of a sealed segment file (stops at zeros or its end)."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos + 64 <= len(data):
        (magic, _crc, version, _hl, codec, flags, base, count, _sid, tmin, tmax, plen, poff,
         lod) = HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            break
        span = lod + 1 if version >= 2 else count
        out.append(StoredFrame(pos, version, codec, flags, base, count, tmin, tmax, span,
                               data[pos + poff:pos + poff + plen]))
        pos += (poff + plen + 7) & ~7
    return out


def _schema(log_dir, topic: str) -> pa.Schema:
    meta = json.load(open(os.path.join(str(log_dir), "topics", topic, "topic.json")))
    return ipc.read_schema(pa.py_buffer(base64.b64decode(meta["schema"])))


def _timestamp_column(log_dir, topic: str) -> str | None:
    meta = json.load(open(os.path.join(str(log_dir), "topics", topic, "topic.json")))
    return meta["config"].get("timestamp")


def offset_block(deltas, delete_horizon_ns: int = 0) -> bytes:
    """FORMAT.md §2.6: i64 horizon, u32 deltas, zero padding to a multiple of 8."""
    raw = struct.pack("<q", delete_horizon_ns) + np.asarray(deltas, dtype="<u4").tobytes()
    return raw + b"\0" * (-len(raw) % 8)


def encode_frame(base_offset: int, span: int, record_count: int, min_ts: int, max_ts: int, codec: int, flags: int,
                 payload: bytes, payload_offset: int = 64) -> bytes:
    """One version-2 frame: header, padding, payload, tail padding; CRC per §2.2."""
    header = bytearray(HEADER.pack(MAGIC, 0, 2, 64, codec, flags, base_offset, record_count, 0, min_ts, max_ts,
                                   len(payload), payload_offset, span - 1))
    crc = _core.crc32c(bytes(header[8:64]), _core.crc32c(payload))
    struct.pack_into("<I", header, 4, crc)
    body = bytes(header) + b"\0" * (payload_offset - 64) + payload
    return body + b"\0" * (-len(body) % 8)


def _decode(frame: StoredFrame, schema: pa.Schema) -> pa.RecordBatch:
    payload = frame.payload
    if frame.flags & FLAG_SPARSE:
        payload = payload[(8 + 4 * frame.record_count + 7) & ~7:]
    if frame.codec == CODEC_ZSTD:
        import zstandard

        payload = zstandard.ZstdDecompressor().decompress(payload)
    buf = pa.py_buffer(payload)
    if frame.flags & FLAG_IPC_STREAM:
        return ipc.open_stream(buf).read_all().combine_chunks().to_batches()[0]
    return ipc.read_record_batch(buf, schema)


def _encode_rows(batch: pa.RecordBatch, schema: pa.Schema, codec: int, flags: int) -> bytes:
    if flags & FLAG_IPC_STREAM:
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, schema) as w:
            w.write_batch(batch)
        raw = sink.getvalue().to_pybytes()
    else:
        raw = batch.serialize().to_pybytes()
    if codec == CODEC_ZSTD:
        import zstandard

        raw = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(raw)
    return raw


def _frame_offsets(frame: StoredFrame) -> np.ndarray:
    if frame.flags & FLAG_SPARSE:
        deltas = np.frombuffer(frame.payload, dtype="<u4", count=frame.record_count, offset=8)
        return frame.base_offset + deltas.astype(np.int64)
    return np.arange(frame.base_offset, frame.base_offset + frame.record_count, dtype=np.int64)


def _drop_indexes(path: str) -> None:
    stem = path[:-len(".log")]
    for ext in (".index", ".timeindex"):
        if os.path.exists(stem + ext):
            os.unlink(stem + ext)


def _replace(path: str, data: bytes) -> None:
    tmp = path + ".tmp-test"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    _drop_indexes(path)


def rewrite_segment(log_dir, topic: str, partition: int, base: int, keep: Keep, delete_horizon_ns: int = 0,
                    with_batch: bool = True) -> dict:
    """Rewrites segment ``base`` keeping, in each frame, the rows where
    ``keep(offsets, batch)`` is true. Returns {"kept": [offsets], "removed": [offsets]}.
    The log must be closed and the segment sealed (not the partition's last)."""
    bases = segment_bases(log_dir, topic, partition)
    assert base in bases[:-1], f"segment {base} is not a sealed segment of {topic}[{partition}] ({bases})"
    schema = _schema(log_dir, topic)
    ts_col = _timestamp_column(log_dir, topic)
    path = segment_path(log_dir, topic, partition, base)
    out, kept_all, removed_all = [], [], []
    for fr in read_frames(path):
        offsets = _frame_offsets(fr)
        batch = _decode(fr, schema) if with_batch or fr.record_count else None
        mask = np.asarray(keep(offsets, batch), dtype=bool)
        rows = np.flatnonzero(mask)
        kept_all.extend(offsets[rows].tolist())
        removed_all.extend(offsets[~mask].tolist())
        deltas = (offsets[rows] - fr.base_offset).astype(np.uint32)
        flags = (fr.flags & FLAG_IPC_STREAM) | FLAG_SPARSE
        if not rows.size:
            out.append(encode_frame(fr.base_offset, fr.span, 0, fr.max_timestamp, fr.max_timestamp, fr.codec,
                                    flags, offset_block([], delete_horizon_ns)))
            continue
        kept = batch.take(pa.array(rows))
        tmin, tmax = fr.min_timestamp, fr.max_timestamp
        if ts_col is not None:
            col = kept.column(ts_col)
            col = col.cast(pa.int64()) if pa.types.is_timestamp(col.type) else col
            unit = 1
            if pa.types.is_timestamp(schema.field(ts_col).type):
                unit = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[schema.field(ts_col).type.unit]
            vals = col.to_numpy(zero_copy_only=False)
            vals = vals[~np.isnan(vals)] if vals.dtype.kind == "f" else vals
            if len(vals):
                tmin, tmax = int(np.min(vals)) * unit, int(np.max(vals)) * unit
        payload = offset_block(deltas, delete_horizon_ns) + _encode_rows(kept, schema, fr.codec, fr.flags)
        out.append(encode_frame(fr.base_offset, fr.span, len(rows), tmin, tmax, fr.codec, flags, payload))
    _replace(path, b"".join(out))
    return {"kept": kept_all, "removed": removed_all}


def empty_segment(log_dir, topic: str, partition: int, base: int) -> list[int]:
    """Replaces sealed segment ``base`` by one empty sparse frame covering all its
    offsets; returns the offsets removed."""
    bases = segment_bases(log_dir, topic, partition)
    assert base in bases[:-1], f"segment {base} is not a sealed segment of {topic}[{partition}] ({bases})"
    path = segment_path(log_dir, topic, partition, base)
    frames = read_frames(path)
    end = bases[bases.index(base) + 1]
    removed = [int(o) for f in frames for o in _frame_offsets(f)]
    ts = frames[-1].max_timestamp
    _replace(path, encode_frame(base, end - base, 0, ts, ts, 0, FLAG_SPARSE, offset_block([])))
    return removed


def keep_every(n: int, phase: int = 0) -> Keep:
    """Keeps the rows whose offset % n == phase."""
    return lambda offsets, batch: offsets % n == phase
