"""One cleaner pass over one partition (Kafka's LogCleaner, per partition).

A pass, holding the partition's cleaner lock (one cleaner per partition on
the machine, ``NativePartition.compaction``):

1. **Map.** From ``clean_end`` (the checkpoint) on, over the cleanable
   segments (sealed, durable, older than ``min_compaction_lag_ms``), put every
   keyed row's (key hash -> offset) into the dedupe map until the map is full
   or the cleanable offsets end: the map then covers ``[clean_end, stop)``.
2. **Rewrite.** Every cleanable segment starting below ``stop``, oldest first,
   is rewritten beside itself and swapped in (native, crash-safe): a row stays
   when its offset is ``>= stop``, its key is null, or no later offset of its
   key is in the map. A tombstone that stays gets a delete horizon (now +
   ``delete_retention_ms``) the first time a pass sees it as its key's latest,
   and is dropped by the first pass after that horizon. A segment in which
   nothing would change is not rewritten.
3. The checkpoint moves to ``stop``; a key set larger than the map takes
   several passes.

Oldest first matters: the segment holding a tombstone is swapped after every
older segment of the pass, so no crash leaves the tombstone's horizon set
while an older value of its key is still on disk (which a later pass could
otherwise resurrect by dropping the tombstone).

Rows keep their offsets, timestamps and order; frames keep their offset
ranges (a frame whose rows all went becomes an empty frame, and neighbouring
empty frames merge), so a partition's offsets stay contiguous frame to frame.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import pyarrow as pa

from .. import _arrow, _core
from ..errors import CorruptionError, LogClosedError
from . import _keys
from ._checkpoint import CleanerCheckpoint, now_ns

logger = logging.getLogger("tidelog.compaction")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Kafka's log.cleaner.dedupe.buffer.size is 128 MiB for all its threads; one map here.
DEFAULT_DEDUPE_BUFFER_BYTES = 64 << 20
FRAMES_PER_READ = 256
NS_PER_MS = 1_000_000


@dataclasses.dataclass
class PassResult:
    partition: int
    segments_rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_read: int = 0
    records_read: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    map_keys: int = 0
    clean_end: int = 0
    done: bool = True          # False: the map filled up, more passes are needed


class Stopped(Exception):
    """A pass gave up because its cleaner was asked to stop."""


class _Row:
    """A frame's rows as the cleaner needs them."""

    __slots__ = ("frame", "batch", "offsets", "hashes", "null_keys", "tombstones")

    def __init__(self, frame, batch, offsets, hashes, null_keys, tombstones):
        self.frame = frame
        self.batch = batch
        self.offsets = offsets
        self.hashes = hashes
        self.null_keys = null_keys
        self.tombstones = tombstones


class Cleaner:
    """Cleans the partitions of one topic handle. One per thread (it owns its map)."""

    def __init__(self, dedupe_buffer_bytes: int = DEFAULT_DEDUPE_BUFFER_BYTES, should_stop=None):
        """``should_stop()``: polled between frames; when it turns true the pass
        gives up (``Stopped``), discarding a rewrite it has not swapped in."""
        self.map = _core.OffsetMap(dedupe_buffer_bytes)
        self._should_stop = should_stop
        self._topic_closed = lambda: False

    # ----------------------------------------------------------------- reading
    def _frames(self, native, start: int, end: int):
        """Frames holding offsets in [start, end), in order; damage raises."""
        while start < end:
            if self._should_stop is not None and self._should_stop():
                raise Stopped("the cleaner was stopped")
            if self._topic_closed():
                raise LogClosedError("the topic was closed (its log closed or the topic was deleted) during a "
                                     "compaction pass; nothing the pass had not swapped in was kept")
            frames = native.frames(start, end, INT64_MIN, INT64_MAX, FRAMES_PER_READ)
            if not frames:
                return
            yield from frames
            start = frames[-1].next_offset

    def _rows(self, topic, frame, with_tombstones: bool = True) -> _Row:
        batches = _core.decode_frame(frame, topic.schema, topic._decompress)
        if not batches:
            return _Row(frame, None, np.empty(0, np.int64), None, None, None)
        batch = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
        offsets = np.asarray(frame.offsets(), dtype=np.int64)
        if batch.num_rows != len(offsets):
            raise CorruptionError(f"topic {topic.name!r}: the frame at offsets {frame.base_offset}.."
                                  f"{frame.next_offset - 1} decodes to {batch.num_rows} rows, its header says "
                                  f"{len(offsets)}")
        hashes, null_keys = _keys.key_hashes(batch.column(topic._key_index))
        stones = (_keys.tombstones(batch, topic._key_index, topic._ts_index, topic.config.records)
                  if with_tombstones else None)
        return _Row(frame, batch, offsets, hashes, null_keys, stones)

    # ---------------------------------------------------------------- the pass
    def clean(self, topic, partition: int, *, wait: bool = False, now: int | None = None,
              force: bool = False) -> PassResult | None:
        """One pass over ``partition`` of ``topic`` (a read-write Topic); None
        when another cleaner holds the partition (``wait=False``) or nothing is
        cleanable. ``force``: clean whatever the dirty ratio."""
        native = topic._partitions[partition]
        in_process = topic._compaction_locks[partition]  # the background thread and compact_now() alike
        if not in_process.acquire(blocking=wait):
            return None
        try:
            if topic.closed:
                return None
            self._topic_closed = lambda: topic.closed  # (Topic._close waits for the pass to give up)
            session = native.compaction(wait=wait)
            if session is None:
                return None
            with session:
                return self._clean_locked(topic, partition, native, session, now or now_ns(), force)
        finally:
            self._topic_closed = lambda: False
            in_process.release()

    def cleanable_segments(self, topic, segments: list[dict], now: int) -> list[dict]:
        lag_ns = topic.config.min_compaction_lag_ms * NS_PER_MS
        out = []
        for s in segments:
            if not s["cleanable"]:
                break
            if lag_ns and s["max_timestamp"] > now - lag_ns:
                break
            out.append(s)
        return out

    def _clean_locked(self, topic, partition, native, session, now, force) -> PassResult | None:
        folder = os.path.join(topic.directory, str(partition))
        ckpt = CleanerCheckpoint.load(folder)
        segments = self.cleanable_segments(topic, session.segments(), now)
        if not segments:
            return None
        first, end = segments[0]["base_offset"], segments[-1]["end_offset"]
        clean_end = min(max(ckpt.clean_end, first), end)
        if not force:
            horizon_due = ckpt.next_horizon_ns and now >= ckpt.next_horizon_ns
            ratio = dirty_ratio(segments, clean_end)
            if (ratio == 0.0 or ratio < topic.config.min_cleanable_dirty_ratio) and not horizon_due:
                return None
        result = PassResult(partition)
        stop = self._fill_map(topic, native, segments, clean_end, end, result)
        result.map_keys = len(self.map)
        result.done = stop >= end
        next_horizon = 0
        for s in segments:
            if s["base_offset"] >= stop:
                break
            horizon = self._rewrite_segment(topic, native, session, s, stop, now, result)
            if horizon and (not next_horizon or horizon < next_horizon):
                next_horizon = horizon
        ckpt.clean_end = stop
        ckpt.passes += 1
        ckpt.next_horizon_ns = next_horizon
        if result.segments_rewritten:
            ckpt.last_compaction_ns = now
            ckpt.bytes_reclaimed += max(0, result.bytes_before - result.bytes_after)
        ckpt.store(folder)
        result.clean_end = stop
        self.map.clear()
        return result

    def _fill_map(self, topic, native, segments, clean_end: int, end: int, result: PassResult) -> int:
        """Phase 1: the map from clean_end on; returns where it stops covering."""
        if len(self.map):
            # (an empty map needs no clearing: it was cleared when made and at
            # the end of the last pass; clear() fills the whole budget, 64 MiB,
            # holding the GIL)
            self.map.clear()
        stop = clean_end
        for frame in self._frames(native, clean_end, end):
            rows = self._rows(topic, frame, with_tombstones=False)
            result.bytes_read += frame.length
            n = len(rows.offsets)
            if n:
                lo = int(np.searchsorted(rows.offsets, clean_end))
                skip = rows.null_keys[lo:] if rows.null_keys is not None else None
                hashes = rows.hashes[lo:]
                offsets = rows.offsets[lo:]
                count = n - lo
                done = self.map.put_many(hashes, offsets, count, skip)
                if done < count:
                    return int(offsets[done])  # the map is full: this row is the first not covered
            stop = min(frame.next_offset, end)
        return max(stop, clean_end)

    def _rewrite_segment(self, topic, native, session, seg: dict, stop: int, now: int, result: PassResult) -> int:
        """Phase 2 for one segment: decide every row, then, if anything changes,
        read the segment again and rewrite it (only the decisions are kept in
        between: a byte per row of the frames that lose rows). Returns the
        earliest delete horizon its frames carry (0: none)."""
        base, seg_end = seg["base_offset"], seg["end_offset"]
        decided = []  # per frame: (keep mask or None when every row stays, delete horizon)
        changes = False
        earliest_horizon = 0
        retention_ns = topic.config.delete_retention_ms * NS_PER_MS
        for frame in self._frames(native, base, seg_end):
            rows = self._rows(topic, frame)
            result.records_read += len(rows.offsets)
            keep, horizon, removed_stones = self._decide(rows, stop, now, retention_ns)
            old_horizon = frame.delete_horizon_ns if frame.sparse else 0
            if keep is not None or horizon != old_horizon:
                changes = True
            if keep is not None:
                result.records_removed += int(len(keep) - keep.sum())
                result.tombstones_removed += removed_stones
            if horizon and (not earliest_horizon or horizon < earliest_horizon):
                earliest_horizon = horizon
            decided.append((frame.base_offset, keep, horizon))
        if not changes:
            return earliest_horizon
        writer = session.rewrite(base)
        try:
            pending_empty = None  # [base_offset, next_offset, timestamp] of merged empty frames
            frames = self._frames(native, base, seg_end)
            for (frame_base, keep, horizon), frame in zip(decided, frames):
                if frame.base_offset != frame_base:
                    raise CorruptionError(f"{topic.name}/{seg['base_offset']}: a segment changed under the cleaner lock")
                kept = frame.record_count if keep is None else int(keep.sum())
                if kept == 0:
                    if pending_empty is None:
                        pending_empty = [frame.base_offset, frame.next_offset, frame.max_timestamp]
                    else:
                        pending_empty[1] = frame.next_offset
                        pending_empty[2] = max(pending_empty[2], frame.max_timestamp)
                    continue
                if pending_empty is not None:
                    writer.append_empty(pending_empty[0], pending_empty[1] - pending_empty[0], pending_empty[2])
                    pending_empty = None
                self._write_frame(topic, writer, frame, keep, horizon)
            if pending_empty is not None:
                writer.append_empty(pending_empty[0], pending_empty[1] - pending_empty[0], pending_empty[2])
            stats = writer.commit()
        except BaseException:
            writer.abort()
            raise
        if stats.get("swapped", True):  # (not when retention deleted the segment meanwhile)
            result.segments_rewritten += 1
            result.bytes_before += stats["bytes_before"]
            result.bytes_after += stats["bytes_after"]
        return earliest_horizon

    def _decide(self, rows: _Row, stop: int, now: int, retention_ns: int):
        """(keep mask or None if every row stays, the frame's delete horizon, tombstones removed)."""
        n = len(rows.offsets)
        frame = rows.frame
        old_horizon = frame.delete_horizon_ns if frame.sparse else 0
        if n == 0:
            return None, 0, 0
        below = rows.offsets < stop
        latest = np.empty(n, dtype=np.int64)
        self.map.latest_many(rows.hashes, n, latest)
        keep = (~below) | (latest <= rows.offsets)
        if rows.null_keys is not None:
            keep |= rows.null_keys.astype(bool)
        removed_stones = 0
        horizon = 0
        if rows.tombstones is not None:
            stones = rows.tombstones & keep
            if rows.null_keys is not None:
                stones &= ~rows.null_keys.astype(bool)  # a row without a key is never removed
            if stones.any():
                if old_horizon and now >= old_horizon:
                    # Past the horizon: drop the tombstones the horizon covers.
                    # (Every tombstone of a frame with a horizon was its key's
                    # latest below the stop of the pass that set it.)
                    drop = stones & below
                    removed_stones = int(drop.sum())
                    keep &= ~drop
                    stones &= ~drop
                if stones.any():
                    if (stones & ~below).any():
                        horizon = 0  # a tombstone no pass has mapped yet: no horizon for this frame
                    elif old_horizon:
                        horizon = old_horizon
                    else:
                        horizon = now + retention_ns
        if keep.all():
            return None, horizon, 0
        return keep, horizon, removed_stones

    def _write_frame(self, topic, writer, frame, keep, horizon: int) -> None:
        offsets = np.asarray(frame.offsets(), dtype=np.int64)
        span = frame.next_offset - frame.base_offset
        if keep is None:
            # Every row stays: the stored Arrow part goes over as it is (no decode, no re-encode).
            payload = frame.payload()
            body_offset = -1
            if frame.codec == _arrow.CODEC_NONE and not frame.flags & _arrow.FLAG_IPC_STREAM:
                body_offset = 8 + int.from_bytes(payload[4:8].to_pybytes(), "little", signed=True)
            deltas = (offsets - frame.base_offset).astype(np.uint32)
            writer.append(frame.base_offset, span, len(offsets), deltas, horizon, frame.min_timestamp,
                          frame.max_timestamp, frame.codec, frame.flags & _arrow.FLAG_IPC_STREAM, payload,
                          body_offset)
            return
        batches = _core.decode_frame(frame, topic.schema, topic._decompress)
        batch = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
        batch = batch.filter(pa.array(keep))
        offsets = offsets[keep]
        lo, hi = frame.min_timestamp, frame.max_timestamp
        if topic._ts_index >= 0:
            r = _arrow.column_ns_range(batch.column(topic._ts_index), topic._ts_unit_ns)
            if r is not None:
                lo, hi = r[0], r[1]
        pieces, _rows, lo, hi, codec, flags, _schema_id, body_offset = topic._frame_request(batch, 0, (lo, hi))
        deltas = (offsets - frame.base_offset).astype(np.uint32)
        writer.append(frame.base_offset, span, len(offsets), deltas, horizon, lo, hi, codec, flags, pieces,
                      body_offset)


def dirty_ratio(segments: list[dict], clean_end: int) -> float:
    """Dirty bytes over all bytes of the cleanable segments (Kafka's
    cleanable ratio); a segment holding clean_end counts as dirty."""
    total = sum(s["bytes"] for s in segments)
    if not total:
        return 0.0
    dirty = sum(s["bytes"] for s in segments if s["end_offset"] > clean_end)
    return dirty / total


__all__ = ["Cleaner", "DEFAULT_DEDUPE_BUFFER_BYTES", "PassResult", "dirty_ratio"]
