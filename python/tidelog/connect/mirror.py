"""``tidelog mirror``: topics from a log folder or a Kafka cluster to a log
folder or a Kafka cluster. Byte topics keep keys, headers, timestamps and
(when the partition counts match) partitions; columnar (Arrow) topics are
copied partition to partition into a topic of the same schema, key and
timestamp columns (``_mirror_columnar``: their per-batch dedupe keys).

How it resumes, and why it neither skips nor repeats into a local log:

- Each mirrored record carries one extra header, ``tidelog.mirror.offset`` =
  ``"<source partition>:<source offset>"`` (the dedupe key; a record mirrored
  before has its previous hop's replaced).
- Every ``checkpoint_interval_s`` the destination producer is flushed (its
  records durable: fdatasync locally, acks=all on Kafka), then a checkpoint
  file is replaced atomically (write, fsync, rename, fsync the folder) with
  the source positions and the destination's end offsets at that moment.
- A restart reads the destination from those end offsets to its end, collects
  the dedupe keys found there (records written after the checkpoint, before the
  crash), and resumes from the checkpoint's positions, skipping exactly those
  keys. Without a checkpoint it scans the whole destination topic. Until the
  source has been read past every key found, the checkpoints it writes keep
  the end offsets the scan started from (``_tail_from``), so that a second
  crash finds those records again.

Into a local log that is exactly once (an append is atomic and durable when
the flush returns). Into Kafka it is at least once: the producer is idempotent
(no duplicate from its own retries) and the same scan removes the duplicates a
crash would cause, except for a request the broker was still taking while the
mirror died.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, SchemaMismatchError, TidelogError
from ._mirror_columnar import DEDUPE_HEADER, ColumnarCopier, parse_dedupe, prepare_topic
CHECKPOINT_VERSION = 1


def is_kafka(target: str) -> bool:
    return isinstance(target, str) and target.startswith("kafka://")


def open_endpoint(target: str, read_only: bool = False):
    """A ``Log`` for a folder, a ``KafkaLog`` for a ``kafka://`` URL."""
    import tidelog

    if is_kafka(target):
        return tidelog.connect(target)
    return tidelog.open(target, read_only=read_only)


def default_checkpoint(src: str, dst: str, topics: list[str]) -> Path:
    """Where a checkpoint lives unless one is named: the user's cache, one file per (src, dst, topics)."""
    digest = hashlib.sha1("\n".join([src, dst, *sorted(topics)]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tidelog" / "mirror" / f"{digest}.json"


@dataclass
class MirrorStats:
    records: int = 0
    skipped_duplicates: int = 0
    checkpoints: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


def _write_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(state, indent=1, sort_keys=True).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_checkpoint(path: Path, src: str, dst: str) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InvalidArgumentError(f"mirror checkpoint {path} cannot be read: {e}") from None
    if state.get("version") != CHECKPOINT_VERSION or state.get("src") != src or state.get("dst") != dst:
        raise InvalidArgumentError(f"mirror checkpoint {path} belongs to another mirror "
                                   f"({state.get('src')} -> {state.get('dst')}); name another --checkpoint")
    return state


def _key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class Mirror:
    """Copies ``topics`` from ``src`` to ``dst`` (each a log folder or a ``kafka://`` URL)."""

    def __init__(self, src: str, dst: str, topics: list[str], checkpoint: str | os.PathLike | None = None,
                 checkpoint_interval_s: float = 1.0, poll_timeout_s: float = 0.2):
        if not topics:
            raise InvalidArgumentError("mirror: name the topics to copy (--topics a b ...)")
        if str(src) == str(dst):
            raise InvalidArgumentError("mirror: the source and the destination are the same")
        self.src_name, self.dst_name, self.topics = str(src), str(dst), list(dict.fromkeys(topics))
        self.checkpoint_path = Path(checkpoint) if checkpoint else default_checkpoint(self.src_name, self.dst_name,
                                                                                       self.topics)
        self.checkpoint_interval_s = checkpoint_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.stats = MirrorStats()
        self._stop = threading.Event()
        #: (topic, destination partition) -> the offset a restart read the destination's byte records from
        self._tail_from: dict[tuple[str, int], int] = {}

    def stop(self) -> None:
        """Ends a continuous run after its current record (then flushes and checkpoints)."""
        self._stop.set()

    # ------------------------------------------------------------ setup
    def _prepare_topics(self, src, dst) -> tuple[dict[str, bool], dict[str, Any]]:
        """({byte topic: same partition count}, {columnar topic: its destination topic}),
        after creating missing destination topics; every topic is checked before anything is copied."""
        same, columnar = {}, {}
        dst_topics = set(dst.topics())
        for name in self.topics:
            topic = src.topic(name)  # UnknownTopicError names it
            if not topic.config.records:
                columnar[name] = prepare_topic(topic, dst, dst_topics)
                continue
            n = topic.partitions
            if name not in dst_topics:
                dst.create_topic(name, partitions=n)
            dtopic = dst.topic(name)
            if not dtopic.config.records:
                raise SchemaMismatchError(f"mirror: topic {name!r} holds byte records in the source and is columnar "
                                          f"in the destination; nothing was written")
            same[name] = dtopic.partitions == n
        return same, columnar

    def _seen_since(self, dst, state: dict | None, topics: list[str]) -> dict[tuple[str, int], set[int]]:
        """The dedupe keys in the byte ``topics`` of the destination past the checkpoint's end offsets."""
        seen: dict[tuple[str, int], set[int]] = {}
        if not topics:
            return seen
        ends = (state or {}).get("dst_ends", {})
        consumer = dst.consumer()
        try:
            pairs = [(t, p) for t in topics for p in range(dst.topic(t).partitions)]
            consumer.assign(pairs)
            remaining: dict[tuple[str, int], int] = {}
            for t, p in pairs:
                start = self._tail_from[(t, p)] = ends.get(_key(t, p), 0)
                end = consumer.end_offsets([(t, p)])[(t, p)]
                consumer.seek(t, p, min(start, end))
                if start < end:
                    remaining[(t, p)] = end
            deadline = time.monotonic() + 120
            while remaining and time.monotonic() < deadline:
                rec = consumer.poll(1.0)
                if rec is None:
                    continue
                key = (rec.topic, rec.partition)
                for hk, hv in rec.headers:
                    if hk == DEDUPE_HEADER:
                        sp, first, last = parse_dedupe(hv)
                        seen.setdefault((rec.topic, sp), set()).update(range(first, last + 1))
                if key in remaining and rec.offset + 1 >= remaining[key]:
                    del remaining[key]
            if remaining:
                raise TidelogError(f"mirror: reading the destination's tail timed out at {sorted(remaining)}")
        finally:
            consumer.close()
        return seen

    # ------------------------------------------------------------ running
    def run(self, follow: bool = False) -> MirrorStats:
        """Copies until the source's end as of the start (``follow=False``), or
        until ``stop()`` (``follow=True``); flushes and checkpoints at the end."""
        src = open_endpoint(self.src_name, read_only=True)
        try:
            dst = open_endpoint(self.dst_name)
            try:
                return self._run(src, dst, follow)
            finally:
                dst.close()
        finally:
            src.close()

    def _run(self, src, dst, follow: bool) -> MirrorStats:
        same, columnar = self._prepare_topics(src, dst)
        byte_topics = [t for t in self.topics if t in same]
        state = _read_checkpoint(self.checkpoint_path, self.src_name, self.dst_name)
        seen = self._seen_since(dst, state, byte_topics)
        positions: dict[tuple[str, int], int] = {}
        consumer = src.consumer() if byte_topics else None
        producer = dst.producer(acks="durable")
        copier = ColumnarCopier(src, dst, is_kafka(self.dst_name), columnar, producer, self.stats) if columnar \
            else None
        try:
            saved = (state or {}).get("positions", {})
            pairs = [(t, p) for t in byte_topics for p in range(src.topic(t).partitions)]
            if consumer is not None:
                consumer.assign(pairs)
                for t, p in pairs:
                    if _key(t, p) in saved:
                        consumer.seek(t, p, saved[_key(t, p)])
                    else:
                        consumer.seek(tidelog_tp(t, p))
                    positions[(t, p)] = consumer.position(t, p)
            if copier is not None:
                copier.resume(state, _key)
                pairs += list(copier.positions)
            ends = None if follow else {(t, p): e for t in self.topics for p, e in src.topic(t).end_offsets().items()}
            wait_s = self.poll_timeout_s / (2 if consumer is not None and copier is not None else 1)
            next_checkpoint = time.monotonic() + self.checkpoint_interval_s
            stats = self.stats
            while not self._stop.is_set():
                if copier is not None:
                    positions.update(copier.positions)
                if ends is not None and all(positions[k] >= ends[k] for k in pairs):
                    break
                if copier is not None:
                    copier.step(wait_s)
                rec = consumer.poll(wait_s) if consumer is not None else None
                if rec is not None:
                    key = (rec.topic, rec.partition)
                    positions[key] = rec.offset + 1
                    dup = seen.get(key)
                    if dup and rec.offset in dup:
                        dup.discard(rec.offset)
                        stats.skipped_duplicates += 1
                    else:
                        # (a record mirrored before carries the previous hop's key: replaced by this hop's)
                        headers = [h for h in rec.headers if h[0] != DEDUPE_HEADER]
                        headers.append((DEDUPE_HEADER, f"{rec.partition}:{rec.offset}".encode()))
                        producer.send(rec.topic, rec.value, rec.key, headers, rec.timestamp,
                                      rec.partition if same[rec.topic] else None)
                        stats.records += 1
                        stats.per_topic[rec.topic] = stats.per_topic.get(rec.topic, 0) + 1
                if time.monotonic() >= next_checkpoint:
                    self._checkpoint(producer, dst, positions, seen, copier)
                    next_checkpoint = time.monotonic() + self.checkpoint_interval_s
            self._checkpoint(producer, dst, positions, seen, copier)
        finally:
            producer.close()
            if consumer is not None:
                consumer.close()
            if copier is not None:
                copier.close()
        return self.stats

    def _checkpoint(self, producer, dst, positions: dict[tuple[str, int], int], seen: dict, copier=None) -> None:
        left = producer.flush()
        if left:
            raise TidelogError(f"mirror: {left} records were not acknowledged by the destination")
        if copier is not None:
            copier.flush()
            positions.update(copier.positions)
        ends = {(t, p): end for t in self.topics for p, end in dst.topic(t).end_offsets().items()}
        # Destination rows a restart found and has not met again in the source yet stay after the
        # checkpoint's end offsets, so that the next restart finds them too.
        for (t, sp), offsets in list(seen.items()):
            if offsets and max(offsets) >= positions[(t, sp)]:
                for key in ends:
                    if key[0] == t:
                        ends[key] = min(ends[key], self._tail_from.get(key, 0))
            else:
                del seen[(t, sp)]  # all behind the position: none can match again
        if copier is not None:
            copier.checkpoint_ends(ends)
        dst_ends = {_key(t, p): end for (t, p), end in ends.items()}
        _write_checkpoint(self.checkpoint_path, {
            "version": CHECKPOINT_VERSION, "src": self.src_name, "dst": self.dst_name, "topics": self.topics,
            "positions": {_key(t, p): o for (t, p), o in positions.items()}, "dst_ends": dst_ends,
            "written_at": time.time()})
        self.stats.checkpoints += 1


def tidelog_tp(topic: str, partition: int):
    from .._types import OFFSET_BEGINNING, TopicPartition

    return TopicPartition(topic, partition, OFFSET_BEGINNING)


def mirror(src: str, dst: str, topics: list[str], *, follow: bool = False, checkpoint: Any = None,
           checkpoint_interval_s: float = 1.0) -> MirrorStats:
    """Runs a ``Mirror``; with ``follow=True`` until SIGINT or SIGTERM."""
    m = Mirror(src, dst, topics, checkpoint, checkpoint_interval_s)
    if follow and threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda *_: m.stop()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return m.run(follow=True)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
    return m.run(follow=follow)


__all__ = ["DEDUPE_HEADER", "Mirror", "MirrorStats", "mirror"]
