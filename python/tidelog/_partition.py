"""One partition of a topic as a public handle: ``topic.partition(p)``."""
from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa

from . import _arrow


class Partition:
    """One partition of a topic: its offsets, reads, appends and waits.

    Get it with ``topic.partition(p)`` (one handle per partition, made when
    the topic opens; ``topic.partitions`` is their number). Reads and appends
    go through the topic, restricted to this partition, so they behave as the
    topic's (schema checks, durability, ``on_corrupt``). The handle belongs to
    its topic: when the log closes or the topic is deleted, its methods raise
    as the topic's do.

    Thread-safe, as its topic: any number of threads may use one handle.
    """

    __slots__ = ("topic", "index", "native", "_check_open", "_decompress", "_encode_frame", "_note_skipped")

    def __init__(self, topic, index: int, native, check_open: Callable[[], None],
                 decompress: Callable[[Any], bytes], encode_frame: Callable[..., tuple],
                 note_skipped: Callable[[str, int, list], None]):
        # Made by Topic, which hands over what the handle needs of it (its checks,
        # its codec, the log's damage counter) rather than having it reached for.
        #: The ``Topic`` this partition belongs to.
        self.topic = topic
        #: The partition number, 0 .. topic.partitions - 1.
        self.index = index
        #: The low-level partition (``tidelog._core.NativePartition``): what readers
        #: with their own loop (the consumer's poll) call without the checks the
        #: methods here make. Most code wants the methods here.
        self.native = native
        self._check_open = check_open
        self._decompress = decompress
        self._encode_frame = encode_frame
        self._note_skipped = note_skipped

    def __repr__(self) -> str:
        return f"<tidelog.Partition {self.topic.name!r}[{self.index}]>"

    # ---------------------------------------------------------------- offsets
    @property
    def start_offset(self) -> int:
        """The first offset retention kept."""
        self._check_open()
        return self.native.start_offset

    @property
    def end_offset(self) -> int:
        """The visible end: the offset the next record appended gets."""
        self._check_open()
        return self.native.end_offset

    @property
    def size_bytes(self) -> int:
        """Bytes of frames in this partition's segments."""
        self._check_open()
        return self.native.size_bytes

    @property
    def segment_count(self) -> int:
        """Number of segment files."""
        self._check_open()
        return self.native.segment_count

    def damaged_ranges(self) -> list[dict]:
        """Damage this process knows of (from recovery and reads): dicts with
        start_offset, end_offset (exclusive), segment, position, bytes, reason.
        ``tidelog verify`` finds all of it."""
        self._check_open()
        return self.native.damaged_ranges()

    def recovery_events(self) -> list[dict]:
        """What recovery cut off or dropped when this process opened the
        partition (also in ``log.recovery_report``)."""
        self._check_open()
        return self.native.recovery_events()

    def describe(self) -> dict:
        """Offsets, bytes, segments and known damage, as one entry of
        ``topic.describe()["partitions"]``."""
        self._check_open()
        native = self.native
        return {
            "partition": self.index,
            "start_offset": native.start_offset,
            "end_offset": native.end_offset,
            "bytes": native.size_bytes,
            "segments": native.segment_count,
            # Damage this process knows of (recovery, reads); `tidelog verify` finds all of it.
            "damaged": [{k: d[k] for k in ("start_offset", "end_offset", "segment", "position", "bytes", "reason")}
                        for d in native.damaged_ranges()],
        }

    def offset_for_time(self, timestamp: Any) -> int:
        """The first offset whose record has a timestamp >= ``timestamp`` (the
        end offset if none), as Kafka's offsetsForTimes."""
        return self.topic.offset_for_time(self.index, timestamp)

    def wait_for_data(self, offset: int, timeout: float | None = None) -> bool:
        """Sleeps without CPU (the GIL released) until the end offset passes
        ``offset``, that is until the record at ``offset`` can be read; True
        then, False after ``timeout`` seconds (None: no limit). Returns at once
        if it is there already. Appends from any process wake it."""
        self._check_open()
        return self.native.wait_for_data(_arrow.as_offset(offset), timeout)

    # ---------------------------------------------------------------- reading
    def scan(self, start_offset=None, end_offset=None, *, start_time=None, end_time=None, columns=None,
             filter=None, on_corrupt: str = "raise", with_offsets: bool = False):  # noqa: A002 - pyarrow's name
        """``topic.scan(...)`` of this partition only: a streaming ``Scan``."""
        return self.topic.scan(start_offset, end_offset, start_time=start_time, end_time=end_time,
                               partitions=[self.index], columns=columns, filter=filter, on_corrupt=on_corrupt,
                               with_offsets=with_offsets)

    def read(self, start_offset=None, end_offset=None, *, start_time=None, end_time=None, columns=None,
             filter=None, on_corrupt: str = "raise", with_offsets: bool = False) -> pa.Table:  # noqa: A002
        """``topic.read(...)`` of this partition only: a ``pa.Table`` in offset order."""
        return self.topic.read(start_offset, end_offset, start_time=start_time, end_time=end_time,
                               partitions=self.index, columns=columns, filter=filter, on_corrupt=on_corrupt,
                               with_offsets=with_offsets)

    def frames(self, start_offset: int, end_offset: int, max_frames: int = 1024, skipped: list | None = None,
               min_timestamp: int = -(2**63), max_timestamp: int = 2**63 - 1,
               excluded: list[tuple[int, int]] | None = None) -> list:
        """The low-level read: up to ``max_frames`` frames (zero-copy views of
        the mapped file) holding offsets in [start_offset, end_offset), in
        offset order; ``decode(frame)`` makes Arrow batches of one. In a
        compacted partition a frame may hold fewer records than offsets (or
        none): ``frame.offsets()`` / ``frame.offset_at(row)`` number its rows,
        ``frame.next_offset`` is where the next frame starts. With a
        ``skipped`` list, damaged data is stepped over: its ranges are added
        to the list, counted in ``log.stats()`` and warned about
        (``CorruptionWarning``); without, damage raises ``CorruptionError``.
        ``excluded``: ``(base_offset, frame.crc)`` of frames to walk past
        unread (a pair that names no frame excludes nothing)."""
        self._check_open()
        if skipped is None:
            return self.native.frames(start_offset, end_offset, min_timestamp, max_timestamp, max_frames, None,
                                      excluded)
        new = []
        frames = self.native.frames(start_offset, end_offset, min_timestamp, max_timestamp, max_frames, new,
                                    excluded)
        if new:
            self._note_skipped(self.topic.name, self.index, new)
            skipped.extend(new)
        return frames

    def decode(self, frame) -> list[pa.RecordBatch]:
        """The Arrow record batches of a frame from ``frames()`` (zero-copy
        when uncompressed), in the topic's schema; none for an empty frame."""
        return _arrow.decode_payload(frame, self.topic.schema, self._decompress)

    # ---------------------------------------------------------------- writing
    def append(self, data: Any, *, durable: bool | None = None):
        """Appends every row of ``data`` to this partition (no split by key):
        ``topic.append(data, partition=self.index, durable=durable)``."""
        return self.topic.append(data, partition=self.index, durable=durable)

    def encode(self, batch: pa.RecordBatch, now_ns: int, time_range: tuple[int, int] | None = None) -> tuple:
        """A frame request for ``append_frames``: ``batch`` (in the topic's
        schema, already checked) encoded and compressed as the topic says;
        ``time_range`` (min, max ns) if the caller knows it, else taken from
        the timestamp column (or ``now_ns``). For writers that batch their own
        frames, as the producer does."""
        return self._encode_frame(batch, now_ns, time_range)

    def append_frames(self, frames: list) -> list[tuple[int, int]]:
        """Writes frame requests (from ``encode``, or the producer's native
        encoder) with consecutive offsets; returns ``[(base_offset, ticket)]``,
        one per frame. Not durable on return: pass the ticket to
        ``log.wait_durable``, or call ``log.flush()``."""
        self._check_open()
        return self.native.append_frames(frames)
