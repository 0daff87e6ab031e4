"""Type stubs for ``tidelog._core``, the Cython bindings (src/_core.pyx) to the
native core (native/).

Blocking and I/O calls release the GIL (appends of payloads under 64 KiB keep
it: the write is shorter than a GIL hand-over). Native errors are raised
through ``tidelog.errors._from_native`` as subclasses of
``tidelog.TidelogError``.

``Mapping`` and ``NativePartition`` objects are only obtained from
``NativePartition.frames`` and ``NativeLog.open_partition``. One made directly
has no native counterpart: its methods raise ``ValueError`` (``Mapping``) or
``LogClosedError`` (``NativePartition``, also after ``release()``).
"""
import enum
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal, TypedDict, TypeVar, final, overload

from typing_extensions import Buffer, Self, disjoint_base

_T = TypeVar("_T")

#: Durability mode name -> native enum value; the one definition of the names
#: (the default, "fsync", first).
DURABILITY_MODES: dict[str, int]
#: Frame header flag bit 0: the payload is a whole Arrow IPC stream (schema,
#: dictionary batches, one record batch) instead of one record-batch message.
FLAG_IPC_STREAM: Final = 1
#: Frame header flag bit 1: a sparse frame (compaction): the payload starts
#: with the offset block giving each record's offset (FORMAT.md §2.6).
FLAG_SPARSE: Final = 2
#: Frame header flag bit 2: the timestamp column has no nulls and never
#: decreases, so a time-range read may binary-search the frame (FORMAT.md §2.1).
FLAG_TIME_ORDERED: Final = 4
#: Frame header codec: payload stored as is.
CODEC_NONE: Final = 0
#: Frame header codec: payload is one zstd frame (``zstandard`` package).
CODEC_ZSTD: Final = 1

class ErrorCode(enum.IntEnum):
    """The native error codes (native/errors.h ``errc``). ``tidelog.errors``
    maps each name to the exception class raised for it."""

    io_error = 1
    corrupt = 2
    not_found = 3
    already_exists = 4
    locked = 5
    read_only = 6
    invalid_argument = 7
    closed = 8
    too_large = 9
    interrupted = 10
    conflict = 11
    topic_deleted = 12

def _error_from_native(code: int, message: str, place: dict[str, Any] | None) -> Exception:
    """The exception for a native error (called by src/error_bridge.h)."""

class _RecoveryEvent(TypedDict):
    file: str
    position: int
    bytes_dropped: int
    first_offset_dropped: int
    reason: str
    kind: str
    bytes_damaged: int
    end_offset: int

#: One frame to write: (pieces, record_count, min_timestamp, max_timestamp,
#: codec, flags, schema_id, body_offset).
_FrameRequest = tuple[Sequence[Buffer], int, int, int, int, int, int, int]

def crc32c(data: Buffer, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``value``:
    ``crc32c(b, crc32c(a)) == crc32c(a + b)``. SSE4.2 when available."""

def crc32c_portable(data: Buffer, value: int = 0) -> int:
    """The portable (slicing-by-8) CRC-32C, to test the hardware path against."""

def crc32c_hardware() -> bool:
    """Whether the SSE4.2 path is in use."""

def kafka_murmur2(data: Buffer) -> int:
    """Kafka's ``Utils.murmur2`` of ``data``, as a signed 32-bit int."""

def partition_fixed_width_keys(values: Buffer, count: int, width: int, partitions: int, out: Buffer) -> None:
    """Kafka partition ``(murmur2(key) & 0x7fffffff) % partitions`` for ``count``
    little-endian integers of ``width`` (4 or 8) bytes, each serialized
    big-endian, written as int32 into the writable buffer ``out``.

    Raises ValueError for another width, ``partitions <= 0`` or short buffers."""

def partition_binary_keys(
    offsets: Buffer, data: Buffer, count: int, large: bool, partitions: int, out: Buffer
) -> None:
    """Kafka partition for ``count`` variable-length keys given an Arrow offsets
    buffer (int32, or int64 when ``large``; already shifted to the array's
    offset) and its data buffer, written as int32 into ``out``."""

def group_by_partition(ids: Buffer, count: int, partitions: int, order: Buffer, counts: Buffer) -> None:
    """Stable counting sort of rows by partition: ``order`` (int64[count]) gets
    the row numbers grouped by partition (rows keep their order within one),
    ``counts`` (int64[partitions]) the rows per partition. ``ids`` is
    int32[count]; ValueError if a buffer is too small or an id is outside
    ``[0, partitions)``."""

def binary_buffers(
    items: list[Buffer | None], scratch: list[Any] | None = None
) -> tuple[Any | None, Any, Any, int]:
    """(validity or None, offsets, data, null_count) pyarrow buffers of an Arrow
    binary array holding ``items``. With ``scratch`` (a list of 3 slots, None at
    first) the buffers are views of buffers kept in it for the next call, and
    valid only until then. RecordTooLargeError over 2 GiB of data."""

@disjoint_base
class Mapping:
    """A read-only shared mapping of a segment file. Arrow buffers made over it
    (``pa.foreign_buffer(address, size, base=mapping)``) keep it alive, so it
    stays valid after retention or topic deletion unlinks the file.

    Supports the buffer protocol (read-only, format ``"B"``)."""

    @property
    def address(self) -> int:
        """Address of the first mapped byte."""
    @property
    def size(self) -> int:
        """Mapped length in bytes (the file size when it was mapped)."""
    @property
    def path(self) -> str:
        """Path of the mapped file (it may since have been unlinked)."""
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class Frame:
    """One published frame of a partition, as ``NativePartition.frames``
    returns it: where its payload lies in the mapped segment and what its
    header says (FORMAT.md §4). Immutable; only made by ``frames``."""

    @property
    def mapping(self) -> Mapping:
        """The segment mapping holding the frame (keeps it mapped)."""
    @property
    def address(self) -> int:
        """Address of the first byte of the Arrow payload (after a sparse frame's offset block)."""
    @property
    def length(self) -> int:
        """Arrow payload length in bytes (stored: compressed for zstd)."""
    @property
    def position(self) -> int:
        """Byte position of the frame header in its segment file."""
    @property
    def base_offset(self) -> int:
        """Offset of the frame's first record."""
    @property
    def record_count(self) -> int:
        """Records (rows) in the frame; 0 for an empty (sparse) frame."""
    @property
    def next_offset(self) -> int:
        """One past the frame's last offset, as its header gives it."""
    @property
    def min_timestamp(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...
    @property
    def codec(self) -> int:
        """``CODEC_NONE`` or ``CODEC_ZSTD``."""
    @property
    def flags(self) -> int:
        """Header flags (``FLAG_IPC_STREAM``, ``FLAG_SPARSE``, ``FLAG_TIME_ORDERED``)."""
    @property
    def schema_id(self) -> int: ...
    @property
    def crc(self) -> int:
        """CRC32C of the payload and header: with base_offset, the frame's identity."""
    @property
    def version(self) -> int:
        """Frame format version."""
    @property
    def sparse(self) -> bool:
        """FLAG_SPARSE: written by compaction, its rows carry their offsets."""
    @property
    def block_length(self) -> int:
        """Bytes of the offset block before the Arrow payload (0 for a dense frame)."""
    @property
    def delete_horizon_ns(self) -> int:
        """The offset block's delete horizon (0: none, and for dense frames)."""
    def offset_at(self, i: int) -> int:
        """The offset of row ``i`` (0 <= i < record_count)."""
    def row_index(self, offset: int) -> int:
        """The first row whose offset is >= ``offset`` (0 .. record_count)."""
    def offsets(self) -> Any:
        """The rows' offsets as an int64 ``pyarrow.Array``."""
    def payload(self) -> Any:
        """The Arrow payload (after a sparse frame's offset block) as a
        ``pyarrow.Buffer`` over the mapping (no copy; it keeps the mapping alive)."""
    def sorted_rows_in(self, ts_buffer: int, lo: int, hi: int) -> tuple[int, int] | None:
        """(first, stop): the rows whose values in the payload's 8-byte buffer
        ``ts_buffer`` are in [lo, hi), by binary search of the stored column
        before decoding; None when the frame cannot be searched (not one plain,
        uncompressed IPC message in time order)."""

def decode_frame(frame: Frame, schema: Any, decompress: Any) -> list[Any]:
    """The record batches (``pyarrow.RecordBatch``) stored in ``frame`` (zero-copy when
    uncompressed), none for an empty frame; ``decompress`` turns a zstd payload into bytes."""

@disjoint_base
class NativeLog:
    """One handle on a log folder: its place among the read-write handles that
    share the log (any number, in any processes; or one ``exclusive`` handle),
    the clean-shutdown marker and the group committer shared by its partitions.

    Opening for writing creates the folder, takes ``LOCK`` (raises
    ``LogLockedError`` naming the holders' pids when the mode conflicts) and
    starts the flusher thread. ``read_only=True`` needs an existing folder and
    takes no lock."""

    def __new__(cls, path: str, read_only: bool = False, exclusive: bool = False) -> Self: ...
    @property
    def path(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def was_clean(self) -> bool:
        """Whether the previous writer closed the log cleanly (always True for
        readers and for a new folder). False means partitions run recovery."""
    def open_partition(
        self,
        directory: str,
        *,
        segment_bytes: int,
        segment_ms: int = -1,
        retention_bytes: int = -1,
        retention_ms: int = -1,
        durability: str = "fsync",
        flush_interval_ms: int = 100,
    ) -> NativePartition:
        """Opens (creating if needed) the partition folder ``directory``; a
        writer recovers it first. Negative ``segment_ms``/``retention_*`` mean
        unlimited; ``durability`` is ``"fsync"``, ``"interval"`` or ``"none"``
        (ValueError otherwise)."""
    def wait_durable(self, ticket: int, announced: bool = False) -> None:
        """Blocks (GIL released) until the append that returned ``ticket`` is
        durable; returns at once for ticket 0 unless ``announced`` (the caller
        called ``announce()`` before appending). Raises ``TidelogIOError`` if an
        fdatasync failed (the log is then unusable)."""
    def announce(self) -> None:
        """Tells the group committer an append that will wait is on its way."""
    def retract(self) -> None:
        """Withdraws an ``announce()`` whose append will not wait (it failed)."""
    def notify_sequence(self) -> int:
        """The log-wide publish sequence; pass it to ``wait_notify`` after checking for data."""
    def wake_waiters(self) -> None:
        """Wakes every thread sleeping in ``wait_notify`` (used to cancel a wait)."""
    def wait_notify(self, seen: int, timeout: float | None = None) -> bool:
        """Sleeps (GIL released, futex) until any partition of the log publishes
        after ``seen`` was read; False on timeout (seconds; None: forever)."""
    def spin_notify(self, seen: int, spin_s: float) -> bool:
        """Busy-polls (GIL released, no system call) for up to ``spin_s`` seconds
        until any partition publishes after ``seen`` was read; False when nothing was."""
    def flush(self) -> None:
        """Makes every append so far durable, whatever the durability mode."""
    def stats(self) -> dict[str, int]:
        """Committer counters since open: ``appends``, ``frames``, ``bytes``,
        ``fdatasyncs``, ``flushes``, ``durable_waits``, ``checkpoints``,
        ``segments_deleted`` (all zero for read-only logs)."""
    def close(self) -> None:
        """Flushes, stops the flusher and writes the clean-shutdown marker. Call
        after every partition is closed. Idempotent."""

@disjoint_base
class PartitionReader:
    """A cursor over one partition (native ``partition_reader``): keeps the
    segment and position where its last read ended. One per thread."""

    def __new__(cls, partition: NativePartition, offset: int = 0) -> PartitionReader: ...
    @property
    def partition(self) -> NativePartition: ...
    @property
    def position(self) -> int: ...
    def read(
        self,
        offset: int,
        max_frames: int = 1,
        skipped: list[dict[str, Any]] | None = None,
        max_bytes: int = 18446744073709551615,
    ) -> list[Frame]: ...

@disjoint_base
class NativePartition:
    """One partition of a topic. Appends are thread-safe; reads see only
    published frames (in ``"fsync"`` mode: durable ones)."""

    def append(
        self,
        pieces: Sequence[Buffer],
        record_count: int,
        min_timestamp: int,
        max_timestamp: int,
        codec: int = 0,
        flags: int = 0,
        schema_id: int = 0,
        body_offset: int = -1,
    ) -> tuple[int, int]:
        """Writes one frame whose payload is the concatenation of ``pieces``
        (not copied: handed to one pwritev). ``body_offset`` is the payload
        offset of the first Arrow body buffer, which the frame places on a
        64-byte file position (-1: no alignment). Returns ``(base_offset,
        ticket)``; pass ``ticket`` to ``NativeLog.wait_durable`` (0: nothing
        to wait for)."""
    @overload
    def append_frames(self, frames: Sequence[_FrameRequest], with_crcs: Literal[False] = False
                      ) -> list[tuple[int, int]]: ...
    @overload
    def append_frames(self, frames: Sequence[_FrameRequest], with_crcs: Literal[True]
                      ) -> list[tuple[int, int, int]]: ...
    @overload
    def append_frames(self, frames: Sequence[_FrameRequest], with_crcs: bool) -> list[Any]:
        """Writes several frames under one lock, so they get consecutive
        offsets (nothing else lands in between), and registers them with the
        committer once. Each item is ``(pieces, record_count, min_timestamp,
        max_timestamp, codec, flags, schema_id, body_offset)`` as for
        ``append``. Returns ``[(base_offset, ticket)]``, one per frame, all
        with the same ticket; ``with_crcs``: ``[(base_offset, ticket, crc)]``
        (the frame's CRC32C: with its base offset, the frame's identity)."""
    def frames(
        self,
        start_offset: int = 0,
        end_offset: int = 9223372036854775807,
        min_timestamp: int = -9223372036854775808,
        max_timestamp: int = 9223372036854775807,
        max_frames: int = 1024,
        skipped: list[dict[str, Any]] | None = None,
        excluded: Sequence[tuple[int, int]] | None = None,
    ) -> list[Frame]:
        """Up to ``max_frames`` published frames holding offsets in
        ``[start_offset, end_offset)`` whose time span meets
        ``[min_timestamp, max_timestamp)``, in offset order. Headers are
        checked, CRCs are not; a frame an index entry points at that fails the
        check makes the walk restart at the segment start. Raises
        ``CorruptionError`` on a bad header reached by walking. ``excluded``:
        ``(base_offset, crc)`` of frames not wanted, walked past on their
        header alone; a pair naming no frame excludes nothing."""
    def damaged_ranges(self) -> list[dict[str, Any]]:
        """Damage this process knows of (recovery or reads): start_offset,
        end_offset (exclusive), segment, path, position, bytes, reason."""
    def offset_for_time(self, timestamp: int) -> int:
        """The first offset whose frame's max timestamp is >= ``timestamp``
        (the visible end if none)."""
    @property
    def start_offset(self) -> int:
        """First offset retention kept."""
    @property
    def end_offset(self) -> int:
        """Visible end: one past the last readable offset."""
    def written_end(self) -> int:
        """One past the last offset any read-write handle wrote, durable or not."""
    @property
    def size_bytes(self) -> int:
        """Bytes of frames in the partition's segments (readers: as last
        published by the writer in the state file)."""
    @property
    def segment_count(self) -> int: ...
    def wait_for_data(self, known_end: int, timeout: float | None = None) -> bool:
        """Sleeps (GIL released; futex on the shared state file) until the
        visible end passes ``known_end``. ``timeout`` in seconds, None waits
        forever. Returns False on timeout."""
    def enforce_retention(self) -> None:
        """Deletes whole old segments over the retention limits now (the
        flusher also does it about once a second)."""
    def write_checkpoint(self) -> bool:
        """Stores the durable point as the recovery checkpoint now (the
        housekeeper does it about once a second); False if it had not moved."""
    def set_retention(self, retention_bytes: int = -1, retention_ms: int = -1) -> None:
        """Changes this handle's retention limits (<0: none) for its next passes."""
    def recovery_events(self) -> list[_RecoveryEvent]:
        """What recovery cut off or dropped when this partition was opened."""
    def close(self) -> None:
        """Clean close (writer): flush, trim the active segment, sync the
        indexes, write the recovery checkpoint. Must not race with appends."""
    def remove_files(self) -> None:
        """Unlinks every file of the partition (after close)."""
    def mark_deleted(self) -> None:
        """Makes every handle's appends to this partition fail: its topic is being deleted."""
    def release(self) -> None:
        """Drops the native partition (after close). Later calls raise
        ``LogClosedError``; mappings already handed out stay valid."""
    def compaction(self, wait: bool = True) -> CompactionSession | None:
        """Starts a compaction pass holding the partition's cleaner lock (one
        cleaner per partition, across processes); None when ``wait`` is False
        and another cleaner holds it. The wait can be interrupted (Ctrl-C).
        Use the pass from the thread that started it."""

# ------------------------------------------------------------ compaction.pxi

class _CompactionSegment(TypedDict):
    base_offset: int
    end_offset: int
    bytes: int
    max_timestamp: int
    cleanable: bool
    compacted: bool

class _SwapStats(TypedDict):
    bytes_before: int
    bytes_after: int
    swapped: bool

@disjoint_base
class CompactionSession:
    """A compaction pass over one partition (FORMAT.md §2.7), holding its
    cleaner lock; a context manager whose exit aborts an uncommitted rewrite
    and releases the lock. Starting it removes an earlier cleaner's leftovers
    and rebuilds missing indexes."""

    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool: ...
    def segments(self) -> list[_CompactionSegment]:
        """The partition's segments in offset order."""
    def rewrite(self, base_offset: int) -> SegmentRewriter:
        """A rewriter for the cleanable segment starting at base_offset
        (InvalidArgumentError if there is none)."""
    def release(self) -> None:
        """Aborts an uncommitted rewrite and releases the lock. Idempotent."""

@disjoint_base
class SegmentRewriter:
    """The new version of one sealed segment; its frames must tile the
    segment's offsets exactly, each written sparse."""

    @property
    def base_offset(self) -> int: ...
    @property
    def end_offset(self) -> int: ...
    @property
    def next_offset(self) -> int:
        """Where the next frame must start."""
    @property
    def bytes_written(self) -> int: ...
    def append(
        self,
        base_offset: int,
        span: int,
        record_count: int,
        offset_deltas: Buffer,
        delete_horizon_ns: int,
        min_timestamp: int,
        max_timestamp: int,
        codec: int,
        flags: int,
        payload: Buffer | Sequence[Buffer],
        body_offset: int = -1,
        schema_id: int = 0,
    ) -> None:
        """Writes one sparse frame (offset_deltas: record_count uint32)."""
    def append_empty(self, base_offset: int, span: int, timestamp: int) -> None:
        """Writes an empty sparse frame over ``span`` offsets."""
    def commit(self) -> _SwapStats:
        """Finishes the segment and swaps it in."""
    def abort(self) -> None:
        """Removes the .cleaned files. Idempotent."""

def int64_sorted_range(values: Any, lo: int, hi: int) -> tuple[int, int]:
    """(first, stop): the rows of a non-decreasing int64 or timestamp Array
    without nulls whose values are in [lo, hi), by binary search."""

def zone_stats(values: Any, physical: str) -> tuple[int, int | float | None, int | float | None, bool]:
    """(null_count, min, max, has_nan) of a fixed-width numeric or temporal
    pyarrow Array read as ``physical`` (b h i l B H I L f d); min and max of
    the valid, non-NaN values, None if there is none."""

def consumer_next_frame(consumer: Any, max_records: int) -> tuple[str, int, Frame, Any, int, int] | None:
    """``Consumer._next_frame``, compiled."""

def consumer_fill(consumer: Any, deadline: float | None) -> bool:
    """``Consumer._fill``, compiled."""

def consumer_frames(consumer: Any, native: NativePartition, name: str, p: int, pos: int, topic: Any) -> list[Frame]:
    """``Consumer._frames``, compiled."""

def consumer_decode_records(frame: Frame, topic: Any, name: str, partition: int, lo: int, hi: int) -> list[Any]:
    """Records (rows [lo, hi)) of one frame."""

@disjoint_base
class ConsumerIterator:
    """``iter(consumer)``: the consumer's records, refilled (waiting) as it runs out."""
    def __new__(cls, consumer: Any) -> Self: ...
    def __iter__(self) -> ConsumerIterator: ...
    def __next__(self) -> Any: ...

def wake_deferral_state() -> tuple[bool, bool]:
    """(deferring, pending) of the calling thread's publish wake-ups."""

def simd_column_stats() -> bool:
    """Whether the column passes at append run vectorized for AVX2 on this CPU."""

def int64_min_max(values: Any) -> tuple[int, int, bool] | None:
    """(min, max, ordered) of the valid values of an int64 or timestamp pyarrow
    Array, or None if none is valid; ordered: no nulls and never decreasing."""

# ------------------------------------------------------------ producer.pxi

#: ProducerBatch.state: gathering records, sealed, appended, futures resolved, failed.
BATCH_OPEN: Final = 0
BATCH_SEALED: Final = 1
BATCH_APPENDED: Final = 2
BATCH_DONE: Final = 3
BATCH_FAILED: Final = 4

@final
class ProducerBatch:
    """Records of one (topic, partition) gathered by a producer, in native column
    buffers. Sealed once, appended as one frame; its futures resolve together."""

    def __new__(cls, topic: str, partition: int, engine: ProducerEngineBase) -> Self: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    state: int
    base_offset: int
    error: Any
    callbacks: Any
    deadline: float
    ticket: int
    engine: ProducerEngineBase
    untracked: bool
    @property
    def count(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def min_timestamp(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...
    def timestamp_at(self, i: int) -> int: ...
    def column_buffers(self) -> tuple[Any, ...]: ...
    def add_callback(self, index: int, callback: Any) -> None: ...

@final
class DeliveryFuture:
    """The outcome of one send(): ``result(timeout)`` -> RecordMetadata."""

    def done(self) -> bool: ...
    def result(self, timeout: float | None = None) -> Any: ...
    def add_done_callback(self, fn: Any) -> None: ...
    def get(self, timeout: float | None = None) -> Any: ...
    def exception(self, timeout: float | None = None) -> BaseException | None: ...

@final
class ProducerTopic:
    """Per-topic state of a producer: the open batch of each partition and the
    sticky partition for unkeyed records."""

    def __new__(cls, name: str, partitions: int, topic: Any) -> Self: ...
    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    batches: list[Any]
    sticky: int
    topic: Any
    natives: list[Any]
    plain: bool
    ticketed: bool
    stale: bool

def topic_deleted_error(st: ProducerTopic, e: BaseException) -> BaseException | None:
    """UnknownTopicError (``st`` goes stale) when ``e`` means the topic was deleted; None otherwise."""
    ...

def take_open_batch(st: ProducerTopic, partition: int, batch: ProducerBatch, queue: Any) -> Any: ...

@disjoint_base
class ProducerEngineBase:
    """The interface a producer calls its engine through
    (src/producer_engine.pxi); ``tidelog._producer.ProducerEngine``
    implements it. Every method here raises ``NotImplementedError``."""

    metadata: Any
    to_ns: Any
    batch_records: int
    def topic_state(self, name: str) -> ProducerTopic: ...
    def lingering(self, batch: ProducerBatch) -> Any: ...
    def seal(self, st: ProducerTopic, partition: int, batch: ProducerBatch) -> Any: ...
    def seal_soon(self, st: ProducerTopic, partition: int, batch: ProducerBatch) -> Any: ...
    def warn_timestamp(self, ts: int) -> Any: ...
    def track_direct(self, batch: ProducerBatch) -> Any: ...
    def finish(self, batches: list[ProducerBatch], state: int, error: BaseException | None = None) -> Any: ...
    def wait_batch(self, batch: ProducerBatch, timeout: float | None) -> Any: ...
    def add_done_callback(self, batch: ProducerBatch, future: DeliveryFuture, fn: Any) -> Any: ...
    def send_many(self, st: ProducerTopic, values: Any, keys: Any, headers: Any, partition: int | None) -> Any: ...
    def flush(self, timeout: float | None = None) -> Any: ...
    def poll(self, timeout: float = 0) -> Any: ...
    def abort(self, error: BaseException) -> Any: ...
    def close(self) -> Any: ...

@disjoint_base
class Producer:
    """A thread-safe record producer (see tidelog.Log.producer)."""

    def __init__(self, engine: ProducerEngineBase, linger_ms: float, batch_bytes: int, acks: str, max_record_bytes: int) -> None: ...
    @property
    def linger_ms(self) -> float: ...
    @property
    def batch_bytes(self) -> int: ...
    @property
    def acks(self) -> str: ...
    @property
    def max_record_bytes(self) -> int: ...
    _closed: bool
    _engine: ProducerEngineBase
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        timestamp: Any = None,
        partition: int | None = None,
        on_delivery: Any = None,
        timestamp_ms: int | None = None,
    ) -> DeliveryFuture: ...
    def send_many(
        self, topic: str, values: Any, keys: Any = None, headers: Any = None, partition: int | None = None
    ) -> Any: ...
    def flush(self, timeout: float | None = None) -> Any: ...
    def poll(self, timeout: float = 0) -> Any: ...
    def close(self, timeout: float | None = None) -> Any: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

@final
class Record:
    """One record as consumed: topic, partition, offset, timestamp (int ns), key,
    value (bytes or None) and headers (a list of (str, bytes) pairs)."""

    def __init__(
        self, topic: str, partition: int, offset: int, timestamp: int, key: Any, value: Any, headers: Any = None
    ) -> None: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> Any: ...
    @property
    def value(self) -> Any: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def decode_records(batch: Any, topic: str, partition: int, offsets: int | Frame, start: int, stop: int) -> list[Record]:
    """Records [start, stop) of a record-schema pa.RecordBatch, read straight
    from its buffers; ``offsets``: row 0's offset (the rest follow it), or the
    Frame the batch was decoded from (its rows' offsets)."""
def set_record_template(message: Any) -> None: ...
def encode_record_batch(batch: ProducerBatch) -> Any: ...
def decode_record_payload(frame: Frame, topic: str, partition: int, start: int, stop: int) -> list[Record]: ...

@disjoint_base
class DurableTable:
    """A small durable key -> value table in a folder (FORMAT.md, "Durable
    tables"), shared by threads and processes: each opens its own handle (one
    handle is not thread-safe). ``lock()`` excludes every other handle;
    ``refresh()`` (under the lock) catches up with what others put; ``get`` and
    ``items`` read this handle's view as of its last refresh; ``put`` (under the
    lock) appends one atomic record and returns a token that ``sync`` (lock not
    needed) makes durable. ``change_counter`` is a lock-free check for "did any
    handle put since I last looked"."""

    def __new__(cls, path: str, create: bool = True) -> Self: ...
    @property
    def path(self) -> str: ...
    def lock(self, timeout: float | None = None) -> bool:
        """Takes the table lock (GIL released while waiting); True once held,
        False when ``timeout`` (seconds) passed first."""
    def unlock(self) -> None: ...
    @property
    def locked(self) -> bool:
        """Whether this handle holds the table lock."""
    def refresh(self) -> None:
        """Under the lock: applies what other handles put, re-reads the journal
        after a rewrite, cuts a torn tail. CorruptionError for damage later
        records prove was durable."""
    def get(self, key: bytes) -> bytes | None: ...
    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]: ...
    def put(self, changes: list[tuple[bytes, bytes | None]]) -> tuple[int, int]:
        """Under the lock: one atomic record of (key, value or None to delete)
        changes; returns the token for ``sync``."""
    def sync(self, token: tuple[int, int]) -> None:
        """Makes the put behind ``token`` durable (fdatasync unless another
        handle's sync already covered it); the lock is not needed."""
    def rewrite(self) -> None: ...
    @property
    def change_counter(self) -> int:
        """Changes whenever any handle puts (an atomic load, no system call)."""
    @property
    def generation(self) -> int: ...
    @property
    def journal_bytes(self) -> int: ...
    def __len__(self) -> int: ...
    def close(self) -> None: ...
    def close_after_fork(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool: ...

@disjoint_base
class OfdLock:
    """A file opened (created when missing) only to carry byte locks owned by
    this open (OFD locks): they exclude every other open of the file, in this
    process or another, and the kernel releases them when the holder dies."""

    def __new__(cls, path: str) -> Self: ...
    @property
    def path(self) -> str: ...
    def lock(self, byte: int, exclusive: bool = True, wait: bool = False) -> bool: ...
    def unlock(self, byte: int) -> None: ...
    def locked_elsewhere(self, byte: int) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...

def hash_fixed_width_keys(values: Buffer, count: int, width: int, out: Buffer) -> None:
    """The log cleaner's 128-bit key hash (MurmurHash3 x64_128) of ``count``
    fixed-width values of ``width`` bytes, 16 bytes per value into ``out``."""

def hash_binary_keys(offsets: Buffer, data: Buffer, count: int, large: bool, out: Buffer) -> None:
    """The same for an Arrow binary/string column (offsets already shifted to the
    array's offset). Offsets out of order or past the data raise CorruptionError."""

@disjoint_base
class OffsetMap:
    """Key hash -> latest offset in a fixed memory budget (Kafka's dedupe
    buffer). Not thread-safe: one cleaner owns one map."""
    def __new__(cls, budget_bytes: int, max_load: float = 0.8) -> Self: ...
    @property
    def slots(self) -> int:
        """Slots of the table now: it starts small and doubles up to the budget."""
    @property
    def max_slots(self) -> int: ...
    @property
    def capacity(self) -> int:
        """Keys it holds before it is full."""
    @property
    def memory_bytes(self) -> int: ...
    @property
    def full(self) -> bool: ...
    def __len__(self) -> int: ...
    def put_many(self, hashes: Buffer, offsets: Buffer, count: int, skip: Buffer | None = None) -> int:
        """Records ``offsets[i]`` as the latest of ``hashes[i]`` for i < count,
        skipping rows where ``skip[i]`` is set; stops before the first new key
        that does not fit. Returns the rows consumed."""
    def latest_many(self, hashes: Buffer, count: int, out: Buffer) -> None:
        """``out[i]`` = the latest offset of ``hashes[i]``, or -1."""
    def clear(self) -> None: ...

def event_id_hash(event_id: bytes) -> int:
    """The stream index's 64-bit hash of a 16-byte event id."""

def decode_event_rows(frame: Frame, rows: Iterable[int], make: Callable[..., _T]) -> list[_T]:
    """``make(position, stream_id, version, type, event_id, timestamp, data,
    metadata)`` for each row of an uncompressed event-store frame, read from
    the mapping; NotImplementedError for other frame shapes."""

def read_event_rows(reader: PartitionReader, positions: Iterable[int], make: Callable[..., _T]) -> list[_T]:
    """decode_event_rows for the rows at ``positions`` (ascending), frames found through ``reader``."""

def set_event_template(message: Any) -> None:
    """Registers pyarrow's serialization of a 1-row event batch as the encoder's template."""

def encode_event_rows(rows: list[tuple[str, int, str, bytes, bytes, bytes | None]], timestamp_ns: int) -> tuple[bytes, int]:
    """One IPC record-batch message of event rows, and where its body starts."""

@disjoint_base
class StreamIndex:
    """The event store's per-stream index (native/stream_index.h). Not
    thread-safe: the event store serializes every call."""
    def __new__(cls) -> Self: ...
    @property
    def through(self) -> int: ...
    @property
    def event_count(self) -> int: ...
    @property
    def stream_count(self) -> int: ...
    def add(self, stream: str, position: int, id_hash: int, version: int) -> None: ...
    def soft_delete(self, stream: str, truncate_before: int, position: int) -> None: ...
    def tombstone(self, stream: str, position: int) -> None: ...
    def advance(self, position: int) -> None: ...
    def last_version(self, stream: str) -> int: ...
    def state(self, stream: str) -> tuple[int, int, bool]: ...
    def positions(self, stream: str, first_version: int, last_version: int) -> list[int]: ...
    def id_hashes(self, stream: str, first_version: int, count: int) -> list[int]: ...
    def find_event(self, stream: str, id_hash: int, start: int = 0) -> int: ...
    def live_streams(self, prefix: str = "", include_system: bool = False) -> list[str]: ...
    def index_frame(self, frame: Frame) -> None: ...
    def save(self, path: str, identity: int) -> None: ...
    def load(self, path: str, identity: int) -> bool: ...
    def serialize(self, identity: int) -> bytes: ...
    def parse(self, data: Buffer, identity: int) -> bool: ...
    def clear(self) -> None: ...

@final
class SmallAppender:
    """Appends one small ``pa.RecordBatch`` of a topic's schema to one partition
    as one frame (the frame the general path writes), or returns None and
    leaves the batch to that path."""
    def __init__(
        self,
        part: NativePartition,
        schema: Any,
        ts_node: int,
        ts_buffer: int,
        unit_ns: int,
        plausible_lo: int,
        plausible_hi: int,
        required_nodes: Sequence[int],
        max_rows: int,
    ) -> None: ...
    def append(self, batch: Any) -> tuple[int, int, int] | None:
        """(base_offset, ticket, rows), or None: the general path's turn."""
