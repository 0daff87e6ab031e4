"""Topics: configuration, appends of columnar batches, reads and scans as Arrow."""
from __future__ import annotations

import base64
import dataclasses
import os
import threading
import time
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _arrow, _core, _filter, _zones
from ._core import DURABILITY_MODES
from ._partition import Partition
from .errors import InvalidArgumentError, InvalidRecordError, LogClosedError, ReadOnlyError, SchemaMismatchError, UnknownTopicError

COMPRESSIONS = ("none", "zstd")
# topic.json's format_version: 2 since frame version 2 (FORMAT.md §10). A
# writer lifts a version-1 topic to 2 before it appends, so earlier builds,
# which take version-2 frames for damage, refuse the topic instead.
TOPIC_FORMAT_VERSION = 2
# 3: a topic whose cleanup_policy has (or had) "compact": it may hold sparse
# frames (FORMAT.md §2.6), which builds before compaction take for damage.
COMPACTED_TOPIC_FORMAT_VERSION = 3
TOPIC_FORMAT_VERSIONS_READ = (1, 2, 3)
CLEANUP_POLICIES = ("delete", "compact", "compact,delete")
MiB = 1 << 20
MAX_COMPACTED_SEGMENT_BYTES = 1 << 30
#: How long closing a topic waits for a cleaner pass of this process to give up.
COMPACTION_CLOSE_WAIT_S = 60.0

def _record_schema(timestamp_type: pa.DataType) -> pa.Schema:
    return pa.schema(
        [
            pa.field("timestamp", timestamp_type, nullable=False),
            pa.field("key", pa.binary()),
            pa.field("value", pa.binary()),
            pa.field(
                "headers",
                pa.list_(pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.binary())])),
            ),
        ]
    )


#: The fixed schema of topics created without one (byte records, as Kafka's).
#: ``timestamp`` is an Arrow timestamp (ns, UTC), so DuckDB, Polars and pandas
#: see a time, not a BIGINT (FORMAT.md §3: record schema version 2).
_PLAUSIBLE_LO_NS, _PLAUSIBLE_HI_NS = _arrow.PLAUSIBLE_NS
RECORD_SCHEMA = _record_schema(pa.timestamp("ns", tz="UTC"))
#: Version 1, with an int64 ``timestamp`` (ns): topics created before version 2
#: keep it (their schema is in their topic.json) and read as they always did.
RECORD_SCHEMA_V1 = _record_schema(pa.int64())
RECORD_SCHEMAS = (RECORD_SCHEMA, RECORD_SCHEMA_V1)


def _schema_to_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclasses.dataclass(frozen=True)
class TopicConfig:
    """Everything stored in a topic's metadata file besides its schema."""

    name: str
    partitions: int
    key: str | None = None
    timestamp: str | None = None
    durability: str = "fsync"
    flush_interval_ms: int = 100
    compression: str = "none"
    compression_level: int = 3
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int = 256 * MiB
    segment_ms: int | None = None
    records: bool = False  # created without a schema: byte records
    # Log compaction (Kafka's names and meanings; python/tidelog/compaction).
    cleanup_policy: str = "delete"
    min_compaction_lag_ms: int = 0
    delete_retention_ms: int = 86_400_000
    min_cleanable_dirty_ratio: float = 0.5

    @property
    def compacted(self) -> bool:
        """Whether the log cleaner keeps the latest record per key."""
        return "compact" in self.cleanup_policy

    @property
    def deletes(self) -> bool:
        """Whether retention_ms/retention_bytes delete old segments (Kafka
        ignores them under cleanup_policy="compact" alone)."""
        return "delete" in self.cleanup_policy

    def validate(self, schema: pa.Schema) -> None:
        for name in ("partitions", "compression_level", "segment_bytes", "flush_interval_ms",
                     "min_compaction_lag_ms", "delete_retention_ms"):
            _check_int(name, getattr(self, name))
        if not isinstance(self.cleanup_policy, str) or self.cleanup_policy not in CLEANUP_POLICIES:
            raise InvalidArgumentError(f"cleanup_policy must be one of {CLEANUP_POLICIES}, not {self.cleanup_policy!r}")
        ratio = self.min_cleanable_dirty_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise InvalidArgumentError(f"min_cleanable_dirty_ratio must be a number in [0, 1], not {ratio!r}")
        for name in ("min_compaction_lag_ms", "delete_retention_ms"):
            if getattr(self, name) < 0:
                raise InvalidArgumentError(f"{name} must be a non-negative int")
        if self.compacted and self.segment_bytes > MAX_COMPACTED_SEGMENT_BYTES:
            raise InvalidArgumentError(f"segment_bytes of a compacted topic must be <= 1 GiB (a rewritten segment's offset "
                             f"blocks may make it larger than the original), not {self.segment_bytes}")
        if self.compacted and self.key is None:
            raise InvalidArgumentError(f"cleanup_policy={self.cleanup_policy!r} needs a key column (key=...): "
                             "compaction keeps the latest record per key")
        for name in ("retention_ms", "retention_bytes", "segment_ms"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name))
        for name in ("durability", "compression"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, not {type(getattr(self, name)).__name__}")
        for name in ("key", "timestamp"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a column name (str) or None")
        if not 1 <= self.partitions <= 100_000:
            raise InvalidArgumentError(f"partitions must be an int in [1, 100000], not {self.partitions!r}")
        if self.durability not in DURABILITY_MODES:
            raise InvalidArgumentError(f"durability must be one of {tuple(DURABILITY_MODES)}, not {self.durability!r}")
        if self.compression not in COMPRESSIONS:
            raise InvalidArgumentError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if not 1 <= self.compression_level <= 22:
            raise InvalidArgumentError("compression_level must be in [1, 22]")
        if not 4096 <= self.segment_bytes < 2**31:
            raise InvalidArgumentError("segment_bytes must be in [4 KiB, 2 GiB)")
        for name in ("retention_ms", "retention_bytes", "segment_ms"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise InvalidArgumentError(f"{name} must be a non-negative int or None")
        if self.flush_interval_ms < 1:
            raise InvalidArgumentError("flush_interval_ms must be >= 1")
        if self.key is not None:
            if self.key not in schema.names:
                raise SchemaMismatchError(f"key column {self.key!r} is not in the schema")
            t = schema.field(self.key).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_binary(t)
                    or pa.types.is_large_string(t) or pa.types.is_large_binary(t) or pa.types.is_timestamp(t)):
                raise SchemaMismatchError(f"key column {self.key!r} must be an integer, string or binary, not {t}")
        if self.timestamp is not None:
            if self.timestamp not in schema.names:
                raise SchemaMismatchError(f"timestamp column {self.timestamp!r} is not in the schema")
            _arrow.timestamp_unit_ns(schema.field(self.timestamp).type)


def normalize_cleanup_policy(value: Any) -> str:
    """Kafka's cleanup.policy as tidelog stores it: "delete", "compact" or
    "compact,delete" (also given as "delete,compact" or a list of the two)."""
    if isinstance(value, str):
        parts = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        parts = [v.strip() for v in value]
    else:
        raise TypeError(f"cleanup_policy must be a str such as 'compact' or 'compact,delete', not {value!r}")
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise InvalidArgumentError(f"cleanup_policy must be one of {CLEANUP_POLICIES}, not {value!r}")
    return ",".join(p for p in ("compact", "delete") if p in parts)


def topic_format_version(config: TopicConfig, stored: int | None = None) -> int:
    """topic.json's format_version for this config: 3 once compaction may have
    written sparse frames (it never goes back), else 2."""
    if config.compacted or (stored or 0) >= COMPACTED_TOPIC_FORMAT_VERSION:
        return COMPACTED_TOPIC_FORMAT_VERSION
    return TOPIC_FORMAT_VERSION


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


class AppendResult:
    """What ``Topic.append`` returns: ``offsets`` maps each partition written to
    its (first_offset, last_offset), both inclusive."""

    __slots__ = ("offsets", "rows")

    def __init__(self, offsets: dict[int, tuple[int, int]], rows: int):
        self.offsets = offsets
        self.rows = rows

    def __repr__(self) -> str:
        return f"AppendResult(rows={self.rows}, offsets={self.offsets})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AppendResult):
            return self.offsets == other.offsets
        if isinstance(other, dict):
            return self.offsets == other
        return NotImplemented


class Topic:
    """A named, partitioned stream of record batches with one Arrow schema.

    ``topic.partition(p)`` is the handle of one partition (``Partition``).
    Topics are made by their ``Log`` (``log.create_topic``, ``log.topic``),
    which also closes them: ``closed`` (read it, do not set it) is True once
    the log closed or the topic was deleted; ``log.topic(name)`` then returns
    the current handle, if any.

    Thread-safe: any number of threads may append and read at once.
    """

    def __init__(self, log, config: TopicConfig, schema: pa.Schema, directory: str, native_log,
                 note_skipped):
        """Opens the topic's partitions (all or none: on failure the ones opened
        are closed and released again). ``native_log`` is the log's native
        core, ``note_skipped(topic, partition, ranges)`` where reads report the
        damage they stepped over (``log.stats()``)."""
        self._log = log
        self._native_log = native_log
        self._note_skipped = note_skipped
        self.config = config
        self.schema = schema
        self.directory = directory
        # Another handle may delete the topic (FORMAT.md §1). Read-only handles
        # check on every use (_check_open); read-write handles when the log looks
        # the topic up, and their appends fail natively (the partition's deleted
        # flag): a read through a Topic object kept from before reads what was
        # there, with no stat or clock call on the read path.
        st = os.stat(directory)
        self._identity = (st.st_dev, st.st_ino)
        self._identity_checked_at = 0.0
        self._check_identity = log.read_only
        self.name = config.name
        self._encoder = _arrow.BatchEncoder(schema)
        self._small_fast_path = config.compression != "zstd" and not self._encoder.stream_frames
        self._key_index = schema.get_field_index(config.key) if config.key else -1
        self._ts_index = schema.get_field_index(config.timestamp) if config.timestamp else -1
        self._ts_unit_ns = _arrow.timestamp_unit_ns(schema.field(config.timestamp).type) if config.timestamp else 1
        self._ts_warned = False
        zones = _zones.ZoneMaps(directory, schema, config.timestamp, config.partitions, writable=not log.read_only,
                                start_offset=lambda p: self._partitions[p].start_offset)
        self._zones = zones if zones else None  # None: no column a zone map covers
        self._required_columns = [i for i, f in enumerate(schema) if not f.nullable]
        self._fsync = config.durability == "fsync"
        self._sticky = 0
        self._sticky_lock = threading.Lock()
        self._partitions = []  # the native partitions
        # One cleaner pass per partition in this process: the native cleaner lock
        # excludes other processes, and refuses a second pass on the same handle.
        self._compaction_locks = [threading.Lock() for _ in range(config.partitions)]
        self._config_lock = threading.Lock()  # alter_topic vs the cleaner thread's refresh (Log)
        self._meta_identity = None
        self._handles: list[Partition] = []
        # A plain attribute, not a property: consumers check it on every poll.
        self.closed = False
        self._compressor = None
        self._decompressor = None
        if config.compression == "zstd":
            import zstandard

            self._zstd = zstandard
        # Frames stay below this so one append never builds a frame near the 2 GiB limit.
        self._max_frame_bytes = max(1 * MiB, min(config.segment_bytes // 2, 256 * MiB))
        try:
            self._open_partitions(native_log)
        except BaseException:
            self._close(release=True)
            raise
        self._handles = [Partition(self, i, native, self._check_open, self._decompress, self._frame_request,
                                   note_skipped) for i, native in enumerate(self._partitions)]
        self._ts_buffer = self._ts_ipc_buffer()  # for time-range reads (Frame.sorted_rows_in)
        self._small = self._small_appender()
        if self._zones is not None and not log.read_only and not native_log.was_clean:
            # A writer died: the frames it wrote last may lack their zone map entries.
            for p in range(config.partitions):
                self._zones.rebuild_tail(p, self._partitions[p], self.schema, self._decompress)

    def _small_appender(self) -> _core.SmallAppender | None:
        """The one-call append of small batches (``_core.SmallAppender``), for a
        writer's topic whose frames are one plain IPC message of flat columns
        and whose rows all go to partition 0; else None."""
        c = self.config
        if self._log.read_only or c.partitions != 1 or c.compacted or c.compression == "zstd" \
                or self._encoder.stream_frames:
            return None
        ts_buffer = self._ts_ipc_buffer()
        if ts_buffer is None:
            return None
        ts_node = self._ts_index if ts_buffer >= 0 else -1
        return _core.SmallAppender(self._partitions[0], self.schema, ts_node, ts_buffer, self._ts_unit_ns,
                                   _PLAUSIBLE_LO_NS, _PLAUSIBLE_HI_NS, self._required_columns,
                                   _zones.ZONE_MIN_ROWS - 1 if self._zones is not None else 2**62)

    def _ts_ipc_buffer(self) -> int | None:
        """The index of the timestamp column's values buffer in a frame's IPC
        message (-1: the topic has no timestamp column), or None when a column's
        buffers cannot be counted (nested or dictionary types)."""
        buffers, ts_buffer = 0, -1
        for i, field in enumerate(self.schema):
            count = _arrow.ipc_buffer_count(field.type)
            if count is None:
                return None
            if i == self._ts_index:
                ts_buffer = buffers + 1  # its values buffer, after the validity bitmap
            buffers += count
        return ts_buffer

    # ------------------------------------------------------------------ opening
    def _open_partitions(self, native_log) -> None:
        c = self.config
        for p in range(c.partitions):
            self._partitions.append(
                native_log.open_partition(
                    os.path.join(self.directory, str(p)),
                    segment_bytes=c.segment_bytes,
                    segment_ms=-1 if c.segment_ms is None else c.segment_ms,
                    retention_bytes=-1 if c.retention_bytes is None or not c.deletes else c.retention_bytes,
                    retention_ms=-1 if c.retention_ms is None or not c.deletes else c.retention_ms,
                    durability=c.durability,
                    flush_interval_ms=c.flush_interval_ms,
                )
            )

    def _close(self, release: bool = False) -> None:
        """Internal, for the owning Log: closes the partitions (log closed,
        topic deleted or forgotten); ``release`` also drops the native
        partitions (their files are about to go). Idempotent."""
        if not self.closed:
            self.closed = True
            # A cleaner pass in this process (the cleaner thread, compact_now in
            # another thread) owns its partition's native pass from its own
            # thread: it sees `closed` between frames, abandons its rewrite and
            # lets go before the partition closes under it.
            for lock in self._compaction_locks:
                if lock.acquire(timeout=COMPACTION_CLOSE_WAIT_S):
                    lock.release()
            failure = None
            if self._zones is not None:
                self._zones.close()
            for p in self._partitions:
                try:
                    p.close()
                except Exception as e:  # noqa: BLE001 - the others must still close
                    failure = failure or e
            if failure is not None:
                raise failure
        if release:
            for p in self._partitions:
                p.release()

    def _check_open(self) -> None:
        if self.closed:
            raise LogClosedError(f"topic {self.name!r} is closed (its log was closed or the topic deleted)")
        if self._check_identity and not self._still_there_recently():
            # a read-only handle: its writer deleted the topic (and may have created another of that name)
            raise UnknownTopicError(f"topic {self.name!r} was deleted in {self._log.path}")

    def _still_there_recently(self) -> bool:
        """_still_there(), looked at no more than every 5 ms (as readers refresh
        indexes): a read-only reader's hot path pays no stat per call."""
        now = time.monotonic()
        if now - self._identity_checked_at < 0.005:
            return True
        ok = self._still_there()
        if ok:
            self._identity_checked_at = now
        return ok

    def _still_there(self) -> bool:
        """Internal, for the owning Log. Read-only handles: the topic folder
        this handle opened is still the topic's (deletion renames it away; a
        new topic of the name is a new folder)."""
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    @property
    def partitions(self) -> int:
        """The number of partitions (``partition(p)`` for one of them)."""
        return self.config.partitions

    def partition(self, partition: int) -> Partition:
        """The handle of one partition: its offsets, reads, appends and waits."""
        if type(partition) is not int or not 0 <= partition < len(self._handles):
            (partition,) = self._partition_list([partition])
        return self._handles[partition]

    def __repr__(self) -> str:
        return f"<tidelog.Topic {self.name!r} partitions={self.partitions} schema={self.schema.names}>"

    # ------------------------------------------------------------------ writing
    def _to_batches(self, data: Any) -> list[pa.RecordBatch]:
        schema = self.schema
        if isinstance(data, pa.RecordBatch):
            batches = [data]
            given = data.schema
        elif isinstance(data, pa.Table):
            batches = data.to_batches()
            given = data.schema
        elif isinstance(data, Mapping):
            missing = [n for n in schema.names if n not in data]
            extra = [n for n in data if n not in schema.names]
            if missing or extra:
                raise SchemaMismatchError(
                    f"columns do not match topic {self.name!r}: missing {missing}, unexpected {extra}"
                )
            try:
                arrays = [
                    pa.array(data[f.name], type=f.type) if not isinstance(data[f.name], (pa.Array, pa.ChunkedArray))
                    else data[f.name]
                    for f in schema
                ]
                batch = pa.RecordBatch.from_arrays(
                    [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays], schema=schema
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
                raise SchemaMismatchError(f"cannot convert data to the schema of topic {self.name!r}: {e}") from e
            batches = [batch]
            given = schema
        else:
            table = _foreign_table(data)
            if table is None:
                raise TypeError(f"append takes a pyarrow RecordBatch or Table, a dict of columns, or anything that "
                                f"exports Arrow data (__arrow_c_stream__: Polars, pandas >= 2.2, DuckDB results, ...), "
                                f"not {type(data).__name__}")
            if table.schema.names == schema.names and not table.schema.equals(schema, check_metadata=False):
                # Other libraries pick their own physical types (Polars: large or
                # view strings, pandas: its index): cast when the values fit.
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                    raise SchemaMismatchError(f"cannot convert data to the schema of topic {self.name!r}: {e}") from e
            batches = table.to_batches()
            given = table.schema
        if not given.equals(schema, check_metadata=False):
            if given.names == schema.names:
                diffs = [
                    f"{f.name}: {g.type}{'' if g.nullable else ' not null'} != {f.type}{'' if f.nullable else ' not null'}"
                    for f, g in zip(schema, given)
                    if not g.equals(f)
                ]
                detail = "; ".join(diffs)
            else:
                detail = f"columns {given.names} != {schema.names}"
            raise SchemaMismatchError(f"data does not match the schema of topic {self.name!r}: {detail}")
        if given.metadata != schema.metadata:
            batches = [pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in batches]
        for i in self._required_columns:
            for b in batches:
                if b.column(i).null_count:
                    raise SchemaMismatchError(f"column {schema.field(i).name!r} is not nullable but has nulls")
        return batches

    def _next_sticky(self) -> int:
        with self._sticky_lock:
            p = self._sticky
            self._sticky = (p + 1) % self.config.partitions
            return p

    def _split(self, batch: pa.RecordBatch) -> list[tuple[int, pa.RecordBatch]]:
        """Rows grouped by partition: by murmur2 of the key column, else the whole
        batch to the next partition in turn (null keys go there too)."""
        n_parts = self.config.partitions
        if n_parts == 1:
            return [(0, batch)]
        if self._key_index < 0:
            return [(self._next_sticky(), batch)]
        ids = _arrow.key_partitions(batch.column(self._key_index), n_parts)
        if (ids < 0).any():
            ids[ids < 0] = self._next_sticky()
        order = np.empty(len(ids), dtype=np.int64)
        counts = np.empty(n_parts, dtype=np.int64)
        _core.group_by_partition(ids, len(ids), n_parts, order, counts)
        nonzero = np.flatnonzero(counts)
        if len(nonzero) == 1:
            return [(int(nonzero[0]), batch)]
        grouped = batch.take(pa.array(order))
        out = []
        start = 0
        for p in nonzero:
            c = int(counts[p])
            out.append((int(p), grouped.slice(start, c)))
            start += c
        return out

    def _frames_of(self, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        nbytes = batch.get_total_buffer_size()
        if nbytes <= self._max_frame_bytes or batch.num_rows <= 1:
            return [batch]
        step = max(1, int(batch.num_rows * self._max_frame_bytes / nbytes))
        return [batch.slice(start, step) for start in range(0, batch.num_rows, step)]

    def _time_range(self, batch: pa.RecordBatch, now_ns: int) -> tuple[int, int, bool]:
        """(min, max, ordered): the batch's time range in ns (``now_ns`` without
        a timestamp column or value) and whether its timestamp column never
        decreases, with no nulls (the frame's FLAG_TIME_ORDERED)."""
        if self._ts_index < 0:
            return now_ns, now_ns, False
        column = batch.column(self._ts_index)
        if self._ts_unit_ns == 1:
            # Nanoseconds already: a plausible range (or a column warned about
            # once) needs neither the conversion nor the checks.
            r = _core.int64_min_max(column)
            if r is not None and (self._ts_warned or _PLAUSIBLE_LO_NS <= r[0] and r[1] < _PLAUSIBLE_HI_NS):
                return r
        r = _arrow.column_ns_range(column, self._ts_unit_ns)
        if r is not None and not self._ts_warned:
            # once per topic handle: an implausible column is one mistake, not one per batch
            self._ts_warned = _arrow.warn_if_implausible(
                r[0], r[1], f"topic {self.name!r}: timestamp column {self.config.timestamp!r} holds", stacklevel=5)
        return r if r is not None else (now_ns, now_ns, False)

    def _frame_request(self, batch: pa.RecordBatch, now_ns: int, time_range: tuple[int, int] | None = None) -> tuple:
        pieces, body_offset, flags = self._encoder.encode(batch)
        codec = _arrow.CODEC_NONE
        if self.config.compression == "zstd":
            pieces = [self._compress(pieces)]
            body_offset = -1
            codec = _arrow.CODEC_ZSTD
        if time_range is None:
            lo, hi, ordered = self._time_range(batch, now_ns)
            if ordered:
                flags |= _arrow.FLAG_TIME_ORDERED
        else:
            lo, hi = time_range
        return (pieces, batch.num_rows, lo, hi, codec, flags, 0, body_offset)

    def _compress(self, pieces: list) -> bytes:
        cctx = self._zstd.ZstdCompressor(level=self.config.compression_level)
        total = sum(len(p) for p in pieces)
        chunker = cctx.compressobj(size=total)
        out = [chunker.compress(p) for p in pieces]
        out.append(chunker.flush())
        return b"".join(out)

    def _decompress(self, data) -> bytes:
        return self._zstd.ZstdDecompressor().decompress(data)

    def append(self, data: Any, *, partition: int | None = None, durable: bool | None = None) -> AppendResult:
        """Appends a ``pa.RecordBatch``, ``pa.Table`` or dict of columns.

        The data is validated against the topic schema first (nothing is written
        on a mismatch), split across partitions (``partition``: all rows go
        there instead), written as one frame per partition, and - under
        ``durability="fsync"`` - acknowledged once the group commit has made it
        durable. Returns an ``AppendResult`` whose ``offsets`` maps partition
        -> (first_offset, last_offset).

        ``durable``: None (default) waits as the topic's durability mode says;
        True returns once the data is durable whatever the mode (as a
        producer's ``acks="durable"``); False once it is written to the page
        cache (``acks="written"``; on an ``"fsync"`` topic readers still see it
        only once the group commit made it durable).
        """
        wait = self._fsync if durable is None else bool(durable)
        small = self._small
        if small is not None and partition is None and not self.closed:
            # One small batch: one native call (SmallAppender), or None for the general path.
            if not wait:
                got = small.append(data)
                if got is not None:
                    return AppendResult({0: (got[0], got[0] + got[2] - 1)}, got[2])
            elif self.config.durability != "none":
                native_log = self._native_log
                native_log.announce()  # so the group commit waits for this append
                got = None
                try:
                    got = small.append(data)
                finally:
                    if got is None:
                        native_log.retract()
                if got is not None:
                    native_log.wait_durable(got[1], True)
                    return AppendResult({0: (got[0], got[0] + got[2] - 1)}, got[2])
        return self._append(data, wait=wait, partition=partition)

    def _append(self, data: Any, wait: bool, partition: int | None = None) -> AppendResult:
        """append() without the durability wait unless ``wait``; ``partition``
        sends every row there instead of splitting by key."""
        self._check_open()
        if self._log.read_only:
            raise ReadOnlyError(f"log {self._log.path!r} is open read-only")
        native_log = self._native_log
        announced = wait and self.config.durability != "none"
        if announced:
            native_log.announce()  # so the group commit waits for this append
        try:
            result, ticket = self._write(data, partition)
        except BaseException:
            if announced:
                native_log.retract()
            raise
        if announced:
            native_log.wait_durable(ticket, True)
        elif wait:
            native_log.flush()  # "none" topics are synced only on request
        return result

    def _write(self, data: Any, partition: int | None) -> tuple[AppendResult, int]:
        if partition is not None:
            (partition,) = self._partition_list([partition])
        batches = self._to_batches(data)
        if len(batches) == 1 and self._small_fast_path and not self.config.compacted:
            batch = batches[0]
            if batch.get_total_buffer_size() < _arrow.SMALL_BATCH_BYTES and batch.num_rows:
                return self._write_small(batch, partition)
        if self.config.compacted:
            self._check_keys(batches)
        now_ns = time.time_ns()
        # Frames per partition, appended with one native call each so that one
        # append's rows get consecutive offsets in every partition.
        per_partition: dict[int, list] = {}
        zone_stats: dict[int, list] | None = {} if self._zones is not None else None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            for p, part in ([(partition, batch)] if partition is not None else self._split(batch)):
                frames = per_partition.setdefault(p, [])
                for frame_batch in self._frames_of(part):
                    frames.append(self._frame_request(frame_batch, now_ns))
                    if zone_stats is not None:
                        zone_stats.setdefault(p, []).append(self._zones.stats(frame_batch))
        return self._write_frames(per_partition, zone_stats)

    def _write_small(self, batch: pa.RecordBatch, partition: int | None) -> tuple[AppendResult, int]:
        """_write() of one small batch that goes to one partition as one frame:
        the same frame as the general path, with a third of its Python work
        (1-row appends are dominated by it)."""
        if partition is None:
            partition = 0 if self._key_index < 0 and self.config.partitions == 1 else None
            if partition is None:
                split = self._split(batch)
                if len(split) != 1:
                    return self._write_frames({p: [self._frame_request(part, time.time_ns())] for p, part in split})
                partition = split[0][0]
        rows = batch.num_rows
        if self._zones is not None and rows >= _zones.ZONE_MIN_ROWS:
            return self._write_frames({partition: [self._frame_request(batch, time.time_ns())]},
                                      {partition: [self._zones.stats(batch)]})
        ((first, ticket),) = self._partitions[partition].append_frames([self._frame_request(batch, time.time_ns())])
        return AppendResult({partition: (first, first + rows - 1)}, rows), ticket

    def _write_frames(self, per_partition: dict[int, list],
                      zone_stats: dict[int, list] | None = None) -> tuple[AppendResult, int]:
        """Appends each partition's frames with one native call (so that one
        append's rows get consecutive offsets in every partition), and the
        zone map entries of those that have ``zone_stats``."""
        offsets: dict[int, tuple[int, int]] = {}
        ticket = 0
        rows = 0
        for p, frames in per_partition.items():
            stats = zone_stats.get(p) if zone_stats else None
            if stats and any(s is not None for s in stats):
                results = self._partitions[p].append_frames(frames, True)
                for (base, _, crc), frame, s in zip(results, frames, stats):
                    if s is not None:
                        self._zones.write(p, base, crc, frame[1], s)
            else:
                results = self._partitions[p].append_frames(frames)
            first = results[0][0]
            count = sum(f[1] for f in frames)
            offsets[p] = (first, first + count - 1)
            ticket = max(ticket, results[-1][1])
            rows += count
        return AppendResult(offsets, rows), ticket

    def _check_keys(self, batches: list) -> None:
        """A compacted topic takes no row without a key (as Kafka's broker refuses them)."""
        for batch in batches:
            if batch.num_rows and batch.column(self._key_index).null_count:
                raise InvalidRecordError(
                    f"topic {self.name!r} is compacted (cleanup_policy={self.config.cleanup_policy!r}): every row "
                    f"needs a key, and column {self.config.key!r} holds nulls; nothing was written")

    def flush(self) -> None:
        """Makes every append so far durable, whatever the durability mode."""
        self._check_open()
        if self._log.read_only:
            raise ReadOnlyError(f"log {self._log.path!r} is open read-only: only its writer can flush")
        self._native_log.flush()

    # ------------------------------------------------------------------ reading
    def _partition_list(self, partitions) -> list[int]:
        if partitions is None:
            return list(range(self.config.partitions))
        if isinstance(partitions, (int, np.integer)):
            partitions = [partitions]
        out = []
        for p in partitions:
            if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
                raise TypeError(f"a partition is an int, not {type(p).__name__}")
            if not 0 <= p < self.config.partitions:
                raise InvalidArgumentError(f"topic {self.name!r} has partitions 0..{self.config.partitions - 1}, not {p!r}")
            out.append(int(p))
        return out

    def scan(
        self,
        start_offset: int | None = None,
        end_offset: int | None = None,
        *,
        start_time: Any = None,
        end_time: Any = None,
        partitions: int | Iterable[int] | None = None,
        columns: list[str] | None = None,
        filter: pc.Expression | None = None,  # noqa: A002 - pyarrow's name for it
        on_corrupt: str = "raise",
        with_offsets: bool = False,
    ) -> "Scan":
        """A streaming read: batches one frame at a time, bounded memory.

        Offsets are per partition, ``start_offset`` inclusive and ``end_offset``
        exclusive; times are inclusive/exclusive too (int ns, datetime, ...).
        The end of each partition is fixed when the scan starts.

        ``start_offset``/``end_offset`` may also be dicts ``{partition: offset}``,
        as ``end_offsets()`` returns them (partitions missing from a start dict
        start at their first offset, from an end dict end at their end).

        ``on_corrupt``: ``"raise"`` (default) raises ``CorruptionError`` when the
        scan reaches damaged data (it names the offsets); ``"skip"`` steps over
        it with a ``CorruptionWarning`` and counts it in ``log.stats()``.

        ``with_offsets=True`` adds ``_partition`` (int32) and ``_offset`` (int64)
        columns, so that a row found by a query can be mapped back to its place.

        ``filter``: a ``pyarrow.compute.Expression`` over the topic's columns
        (any of them, asked for in ``columns`` or not); only rows where it is
        true come back. It is checked before anything is read
        (``InvalidArgumentError`` for an unknown column or types that do not
        compare). Comparisons of the timestamp column with literals narrow the
        time range, so the time index finds the frames.
        """
        self._check_open()
        return Scan(self, start_offset, end_offset, start_time, end_time, partitions, columns, on_corrupt,
                    with_offsets, filter)

    def read(self, start_offset=None, end_offset=None, *, start_time=None, end_time=None, partitions=None,
             columns=None, filter=None, on_corrupt: str = "raise",  # noqa: A002 - pyarrow's name for it
             with_offsets: bool = False) -> pa.Table:
        """Like ``scan(...).to_table()``: a ``pa.Table``, zero-copy when uncompressed.
        Rows come partition by partition, in offset order within each."""
        if columns is None and filter is None and not with_offsets and on_corrupt == "raise":
            table = None
            if type(start_offset) is int and type(end_offset) is int and start_time is None and end_time is None:
                table = self._read_in_one_frame(start_offset, end_offset, partitions)
            elif start_offset is None and end_offset is None and (start_time is not None or end_time is not None):
                table = self._read_time_range(start_time, end_time, partitions)
            if table is not None:
                return table
        return self.scan(start_offset, end_offset, start_time=start_time, end_time=end_time,
                         partitions=partitions, columns=columns, filter=filter, on_corrupt=on_corrupt,
                         with_offsets=with_offsets).to_table()

    def _one_partition(self, partitions: Any) -> int | None:
        """The partition a short read path serves: ``partitions`` if it is one
        int, 0 if it is None and the topic has one partition, else None."""
        if partitions is None:
            return 0 if self.config.partitions == 1 else None
        return partitions if type(partitions) is int else None

    def _read_in_one_frame(self, start: int, end: int, partitions: Any) -> pa.Table | None:
        """read() of [start, end) of one partition when one dense frame holds
        all of it (point lookups, small ranges): the frame's rows sliced, with
        none of a Scan's set-up. None when the general path is needed (several
        partitions or frames, a sparse frame, offsets out of range)."""
        partitions = self._one_partition(partitions)
        if partitions is None:
            return None
        if not 0 <= start < end < 2**63:
            return None
        part = self.partition(partitions)
        end = min(end, part.end_offset)
        if start >= end:
            return None
        frames = part.frames(start, end, 1)
        if not frames:
            return None
        frame = frames[0]
        base = frame.base_offset
        if frame.sparse or base > start or frame.next_offset < end:
            return None
        batches = part.decode(frame)
        if len(batches) != 1:
            return None
        batch = batches[0]
        if start > base or end - base < frame.record_count:
            batch = batch.slice(start - base, end - start)
        return pa.Table.from_batches([batch], schema=self.schema)

    def _read_time_range(self, start_time: Any, end_time: Any, partitions: Any) -> pa.Table | None:
        """read() of a time range of one partition whose time index finds few
        frames (the usual "last hour" query): those frames' rows in the range,
        without a Scan's set-up and generator, which cost as much as the search
        itself when the CPU caches are cold. None when the general path is
        needed (no timestamp column, several partitions, many frames)."""
        if self._ts_index < 0:
            return None
        partitions = self._one_partition(partitions)
        if partitions is None:
            return None
        native = self.partition(partitions).native  # checks that the topic is open and the partition exists
        t0 = -(2**63) if start_time is None else _arrow.to_ns(start_time, "start_time")
        t1 = 2**63 - 1 if end_time is None else _arrow.to_ns(end_time, "end_time")
        frames = native.frames(0, native.end_offset, t0, t1, Scan._FRAMES_PER_CALL)
        if len(frames) == Scan._FRAMES_PER_CALL:
            return None  # maybe more: the general path reads them in turns
        schema, decompress = self.schema, self._decompress
        ts_buffer = -1 if self._ts_buffer is None else self._ts_buffer
        unit = self._ts_unit_ns
        kept = []
        for frame in frames:
            inside = frame.min_timestamp >= t0 and frame.max_timestamp < t1
            # At the range's edges: the rows by a search of the stored column, before decoding.
            rows = None if inside else frame.sorted_rows_in(ts_buffer, -(-t0 // unit),
                                                             -(-t1 // unit) if t1 < 2**63 - 1 else 2**63 - 1)
            if rows is not None:
                first, stop = rows
                if stop > first:
                    (batch,) = _arrow.decode_payload(frame, schema, decompress)
                    kept.append(batch.slice(first, stop - first) if stop - first < batch.num_rows else batch)
                continue
            for batch in _arrow.decode_payload(frame, schema, decompress):
                batch = _rows_in_time(batch, frame, self._ts_index, unit, t0, t1, False)[0]
                if batch.num_rows:
                    kept.append(batch)
        return pa.Table.from_batches(kept, schema=schema)

    def end_offsets(self) -> dict[int, int]:
        self._check_open()
        return {i: p.end_offset for i, p in enumerate(self._partitions)}

    def start_offsets(self) -> dict[int, int]:
        self._check_open()
        return {i: p.start_offset for i, p in enumerate(self._partitions)}

    def offset_for_time(self, partition: int, timestamp: Any) -> int:
        """The first offset of ``partition`` whose record has a timestamp >=
        ``timestamp`` (end offset if none), as Kafka's offsetsForTimes: the time
        index finds the first frame that reaches it, then its rows are checked."""
        self._check_open()
        (p,) = self._partition_list([partition])
        ts = _arrow.to_ns(timestamp)
        native = self._partitions[p]
        offset = native.offset_for_time(ts)  # the first frame whose max timestamp reaches ts
        end = native.end_offset
        while offset < end:
            frames = native.frames(offset, end, ts, 2**63 - 1, 16)
            if not frames:
                return end
            for frame in frames:
                first = frame.row_index(offset)
                if first >= frame.record_count:
                    continue  # no records left in it (an empty frame of a compacted segment)
                if self._ts_index < 0:
                    return frame.offset_at(first)  # append time: every row of a frame has the frame's timestamp
                (batch,) = _arrow.decode_payload(frame, self.schema, self._decompress)
                col = batch.column(self._ts_index)
                values = col.view(pa.int64()) if pa.types.is_timestamp(col.type) else col
                hits = np.flatnonzero(pc.fill_null(pc.greater_equal(values, -(-ts // self._ts_unit_ns)), False))
                hits = hits[hits >= first]
                if hits.size:
                    return frame.offset_at(int(hits[0]))
            offset = frames[-1].next_offset
        return end

    def describe(self) -> dict:
        """Partitions (start/end offsets, bytes, segments), configuration and schema."""
        self._check_open()
        parts = [h.describe() for h in self._handles]
        if self.config.compacted:
            from .compaction import describe_partition

            for i, part in enumerate(parts):
                part["compaction"] = describe_partition(os.path.join(self.directory, str(i)))
        return {
            "name": self.name,
            "partitions": parts,
            "records": sum(p["end_offset"] - p["start_offset"] for p in parts),
            "bytes": sum(p["bytes"] for p in parts),
            "config": dataclasses.asdict(self.config),
            "schema": str(self.schema),
        }

    def to_parquet(self, path: str | os.PathLike, *, partition_by: Any = None, start_offset: Any = None,
                   end_offset: Any = None, start_time: Any = None, end_time: Any = None,
                   columns: list[str] | None = None, row_group_size: int = 1 << 20, compression: str = "zstd",
                   compression_level: int | None = None, max_rows_per_file: int | None = None,
                   incremental: bool = False, progress: Any = None):
        """Writes the topic's rows as Parquet files into the folder ``path``,
        streaming (bounded memory), readable by pyarrow, DuckDB and Polars.

        ``partition_by``: None, ``"date"`` (hive folders ``date=YYYY-MM-DD``,
        the UTC date of the timestamp column), a column name or a tuple of
        them. Offsets, times and ``columns`` select as in ``scan``.
        ``row_group_size`` rows per row group; ``compression``: ``"zstd"``
        (pyarrow's default would be snappy), ``"snappy"``, ... or ``"none"``.
        A one-off export writes a new or empty folder all at once;
        ``incremental=True`` adds what is new since the last run, exactly
        once even when runs are killed (see ``tidelog.export``). Returns an
        ``ExportResult``."""
        self._check_open()
        from .export import export_files

        return export_files(self, path, format="parquet", partition_by=partition_by, start_offset=start_offset,
                            end_offset=end_offset, start_time=start_time, end_time=end_time, columns=columns,
                            incremental=incremental, row_group_size=row_group_size, compression=compression,
                            compression_level=compression_level, max_rows_per_file=max_rows_per_file,
                            progress=progress)

    # ------------------------------------------------------------ compaction
    def _reconfigure(self, config: TopicConfig, meta_identity) -> None:
        """Internal, for the owning Log: takes over an altered configuration
        (only the settings Log.alter_topic changes differ)."""
        self.config = config
        self._meta_identity = meta_identity
        for p in self._partitions:
            p.set_retention(-1 if config.retention_bytes is None or not config.deletes else config.retention_bytes,
                            -1 if config.retention_ms is None or not config.deletes else config.retention_ms)

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """The current value of every key as a ``pa.Table``: the latest row per
        key, keys whose latest row is a tombstone (and null keys) left out. On
        any topic with a key column; on a compacted one it is what the cleaner
        converges to. See ``tidelog.compaction``."""
        self._check_open()
        from .compaction import table

        return table(self, columns)

    def compact_now(self, *, dedupe_buffer_bytes: int | None = None) -> dict:
        """Runs the log cleaner over every partition now, whatever the dirty
        ratio, as many passes as the key set needs (``dedupe_buffer_bytes``:
        the map's budget, default 64 MiB); waits for another process's pass on
        a partition to end first. Returns totals: passes, segments_rewritten,
        records_removed, tombstones_removed, bytes_before, bytes_after."""
        self._check_open()
        if self._log.read_only:
            raise ReadOnlyError(f"log {self._log.path!r} is open read-only: only a writer compacts")
        if not self.config.compacted:
            raise InvalidArgumentError(f"topic {self.name!r} has cleanup_policy={self.config.cleanup_policy!r}: "
                                       "alter_topic(name, cleanup_policy='compact') first")
        from .compaction import DEFAULT_DEDUPE_BUFFER_BYTES, Cleaner

        cleaner = Cleaner(DEFAULT_DEDUPE_BUFFER_BYTES if dedupe_buffer_bytes is None else dedupe_buffer_bytes)
        # Every sealed segment becomes cleanable: durable, and below a stored recovery checkpoint.
        self._native_log.flush()
        for p in self._partitions:
            p.write_checkpoint()
        totals = dict.fromkeys(("passes", "segments_rewritten", "records_removed", "tombstones_removed",
                                "bytes_before", "bytes_after"), 0)
        for p in range(self.partitions):
            while True:
                r = cleaner.clean(self, p, wait=True, force=True)
                if r is None:
                    break
                totals["passes"] += 1
                for k in ("segments_rewritten", "records_removed", "tombstones_removed", "bytes_before",
                          "bytes_after"):
                    totals[k] += getattr(r, k)
                if r.done:
                    break
        return totals

    def tombstone(self, keys: Any, *, durable: bool | None = None) -> AppendResult:
        """Appends a tombstone for every key of ``keys`` (a list or an Arrow
        array of key values): in a compacted topic it deletes the key. Byte
        records: a record with a null value. Columnar topics: a row with the
        key, the timestamp column set to now, and nulls in every other column
        (so they must be nullable: SchemaMismatchError otherwise)."""
        self._check_open()
        if self.config.key is None:
            raise InvalidArgumentError(f"topic {self.name!r} has no key column: a tombstone deletes a key")
        key_type = self.schema.field(self.config.key).type
        if pa.types.is_dictionary(key_type):
            key_type = key_type.value_type
        array = keys if isinstance(keys, (pa.Array, pa.ChunkedArray)) else pa.array(list(keys), type=key_type)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        from .compaction import _keys

        batch = _keys.tombstone_batch(self.schema, self.config.key, array, self.config.timestamp, time.time_ns())
        return self.append(batch, durable=durable)

    def enforce_retention(self) -> None:
        """Applies retention now (it also runs about once a second in the background)."""
        self._check_open()
        if self._log.read_only:
            raise ReadOnlyError(f"log {self._log.path!r} is open read-only: only its writer applies retention")
        for p in self._partitions:
            p.enforce_retention()


def _foreign_table(data: Any) -> pa.Table | None:
    """A pa.Table from another library's object through the Arrow PyCapsule
    interface (or its to_arrow()), or None if it exports no Arrow data."""
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    if hasattr(data, "__arrow_c_array__"):
        return pa.Table.from_batches([pa.record_batch(data)])
    if hasattr(data, "to_arrow"):  # Polars before the PyCapsule interface
        t = data.to_arrow()
        return t if isinstance(t, pa.Table) else pa.table(t)
    if type(data).__module__.startswith("pandas") and hasattr(data, "columns"):
        return pa.Table.from_pandas(data, preserve_index=False)
    return None


def _per_partition(topic, value, what: str, partitions: list[int], default) -> dict[int, Any]:
    """An offset for every partition read: one int for all, or a dict
    {partition: offset} (also keyed (topic, partition), as consumers return them)."""
    if value is None:
        return dict.fromkeys(partitions, default)
    if type(value) is int and 0 <= value < 2**63:  # the common case, without the ABC check below
        return dict.fromkeys(partitions, value)
    if isinstance(value, dict) or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            p = k[1] if isinstance(k, tuple) and len(k) == 2 and k[0] == topic.name else k
            p = topic.partition(p).index  # checked: an int in range
            out[p] = _arrow.as_offset(v, what)
        return {p: out.get(p, default) for p in partitions}
    offset = _arrow.as_offset(value, what)
    return {p: offset for p in partitions}


def check_on_corrupt(on_corrupt: str) -> bool:
    """True for "skip", False for "raise"; anything else is a ValueError."""
    if on_corrupt not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_corrupt must be 'raise' or 'skip', not {on_corrupt!r}")
    return on_corrupt == "skip"


def _rows_in_time(batch: pa.RecordBatch, frame, ts_index: int, unit_ns: int, t0: int, t1: int,
                  want_rows: bool) -> tuple[pa.RecordBatch, np.ndarray | None]:
    """``_time_filter`` of one of ``frame``'s batches, skipped for a frame wholly
    inside [t0, t1) ns (it keeps every row, except rows without a timestamp:
    those are in no time range)."""
    if frame.min_timestamp >= t0 and frame.max_timestamp < t1 and not batch.column(ts_index).null_count:
        return batch, None
    return _time_filter(batch, ts_index, unit_ns, t0, t1, want_rows, bool(frame.flags & _arrow.FLAG_TIME_ORDERED))


def _time_filter(batch: pa.RecordBatch, ts_index: int, unit_ns: int, t0: int, t1: int,
                 want_rows: bool, ordered: bool) -> tuple[pa.RecordBatch, np.ndarray | None]:
    """The rows of ``batch`` whose timestamp is in [t0, t1) ns, and (``want_rows``)
    their row numbers. Rows in time order (as appends usually are) are found by
    binary search and sliced, zero-copy: a 1 % time range costs a search, not a
    pass that compares and copies every row of the frames at its edges.
    ``ordered``: the frame says so (FLAG_TIME_ORDERED); else it is checked."""
    col = batch.column(ts_index)
    values = col.view(pa.int64()) if pa.types.is_timestamp(col.type) else col
    lo = -(-t0 // unit_ns)
    hi = -(-t1 // unit_ns) if t1 < 2**63 - 1 else 2**63 - 1
    if values.null_count == 0 and len(values):
        if not ordered:
            a = values.to_numpy()
            ordered = len(a) < 2 or bool((a[1:] >= a[:-1]).all())
        if ordered:
            first, stop = _core.int64_sorted_range(values, lo, hi)
        else:
            kept = np.flatnonzero((a >= lo) & (a < hi))
            if len(kept) and kept[-1] - kept[0] + 1 != len(kept):  # not one run: copy the rows kept
                return batch.take(pa.array(kept)), (kept if want_rows else None)
            first, stop = (int(kept[0]), int(kept[-1]) + 1) if len(kept) else (0, 0)
        rows = np.arange(first, stop, dtype=np.int64) if want_rows else None
        return batch.slice(first, stop - first), rows
    mask = pc.and_(pc.greater_equal(values, pa.scalar(lo, pa.int64())), pc.less(values, pa.scalar(hi, pa.int64())))
    rows = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False)) if want_rows else None
    return batch.filter(mask), rows


class Scan:
    """A streaming read of a topic. Iterate for ``pa.RecordBatch`` objects, or hand
    it to anything that takes the Arrow PyCapsule stream interface
    (``pa.table(scan)``, ``duckdb.sql("... from scan")``, ``polars.DataFrame(scan)``).
    Each iteration or export starts the scan anew."""

    _FRAMES_PER_CALL = 256
    #: What the last iteration decoded: frames, and their payload bytes (as
    #: stored). Frames a filter's zone maps ruled out are not counted.
    frames_read = 0
    bytes_read = 0

    def __init__(self, topic: Topic, start_offset, end_offset, start_time, end_time, partitions, columns,
                 on_corrupt: str = "raise", with_offsets: bool = False, row_filter: pc.Expression | None = None):
        self.topic = topic
        self._skip_damage = check_on_corrupt(on_corrupt)
        self._with_offsets = bool(with_offsets)
        self._partitions = topic._partition_list(partitions)
        self._starts = _per_partition(topic, start_offset, "start_offset", self._partitions, 0)
        self._end_given = _per_partition(topic, end_offset, "end_offset", self._partitions, None)
        self._t0 = None if start_time is None else _arrow.to_ns(start_time, "start_time")
        self._t1 = None if end_time is None else _arrow.to_ns(end_time, "end_time")
        schema = topic.schema
        self._filter = None if row_filter is None else _filter.check(row_filter, schema)
        if self._filter is not None and topic._ts_index >= 0:
            lo, hi = _filter.time_bounds(_filter.parse(self._filter), topic.config.timestamp, topic._ts_unit_ns)
            if lo > _filter.INT64_MIN:
                self._t0 = lo if self._t0 is None else max(self._t0, lo)
            if hi < _filter.INT64_MAX:
                self._t1 = hi if self._t1 is None else min(self._t1, hi)
        if columns is not None:
            columns = list(columns)
            unknown = [c for c in columns if c not in schema.names]
            if unknown:
                raise InvalidArgumentError(f"unknown columns {unknown}; topic {topic.name!r} has {schema.names}")
            self._column_indices = [schema.get_field_index(c) for c in columns]
            self.schema = pa.schema([schema.field(i) for i in self._column_indices], metadata=schema.metadata)
        else:
            self._column_indices = None
            self.schema = schema
        # The end is fixed at creation, so a scan is a consistent, finite read.
        self._ends = {p: topic.partition(p).end_offset for p in self._partitions}
        self._ends = {p: e if self._end_given[p] is None else min(e, self._end_given[p]) for p, e in self._ends.items()}
        if self._with_offsets:
            self.schema = self.schema.append(pa.field("_partition", pa.int32(), nullable=False)).append(
                pa.field("_offset", pa.int64(), nullable=False))

    def _row_filter(self, batch: pa.RecordBatch, frame, start: int, end: int, partition: int) -> pa.RecordBatch:
        topic = self.topic
        base, count = frame.base_offset, frame.record_count
        if frame.sparse:  # its rows carry their offsets (compaction removed the others)
            lo, hi = frame.row_index(start), frame.row_index(end)
        else:
            lo = max(start - base, 0)
            hi = min(end - base, count)
        if lo > 0 or hi < count:
            batch = batch.slice(lo, hi - lo)
        rows = None  # row numbers (within the slice) kept by a time filter
        if (self._t0 is not None or self._t1 is not None) and topic._ts_index >= 0:
            t0 = self._t0 if self._t0 is not None else -(2**63)
            t1 = self._t1 if self._t1 is not None else 2**63 - 1
            batch, rows = _rows_in_time(batch, frame, topic._ts_index, topic._ts_unit_ns, t0, t1,
                                        self._with_offsets)
        if self._with_offsets:
            if frame.sparse:
                offsets = frame.offsets().to_numpy()[lo:hi]
                if rows is not None:
                    offsets = offsets[rows]
            else:
                first = base + lo
                offsets = np.arange(first, first + batch.num_rows, dtype=np.int64) if rows is None else first + rows
            batch = pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(np.full(batch.num_rows, partition, dtype=np.int32)), pa.array(offsets)],
                names=[*batch.schema.names, "_partition", "_offset"])
        if self._filter is not None and batch.num_rows:
            batch = batch.filter(self._filter)
        if self._column_indices is not None:
            n = len(topic.schema)
            batch = batch.select(self._column_indices + ([n, n + 1] if self._with_offsets else []))
        if self._with_offsets:
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        return batch

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        topic = self.topic
        t0 = self._t0 if self._t0 is not None else -(2**63)
        t1 = self._t1 if self._t1 is not None else 2**63 - 1
        zones = topic._zones if self._filter is not None else None
        tree = _filter.parse(self._filter) if zones is not None else None
        self.frames_read = self.bytes_read = 0
        for p in self._partitions:
            part = topic.partition(p)
            end = self._ends[p]
            start = cursor = self._starts[p]
            skipped = [] if self._skip_damage else None
            excluded = zones.excluded(p, tree) if tree is not None else None
            while cursor < end:
                frames = part.frames(cursor, end, self._FRAMES_PER_CALL, skipped, t0, t1, excluded)
                after = cursor
                if skipped:
                    after = max(d["end_offset"] for d in skipped)
                    skipped.clear()
                if not frames:
                    if after > cursor:
                        cursor = after
                        continue
                    break
                for frame in frames:
                    batches = part.decode(frame)
                    self.frames_read += 1
                    self.bytes_read += frame.length
                    if zones is not None:
                        zones.heal(p, frame, batches)
                    for batch in batches:
                        batch = self._row_filter(batch, frame, start, end, p)
                        if batch.num_rows:
                            yield batch
                cursor = max(frames[-1].next_offset, after)

    def to_reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, iter(self))

    def to_table(self) -> pa.Table:
        batches = list(self)
        if not batches:
            return self.schema.empty_table()
        return pa.Table.from_batches(batches, schema=self.schema)

    def to_pandas(self, **kwargs) -> Any:
        """A pandas DataFrame (``to_table().to_pandas(**kwargs)``: copies)."""
        return self.to_table().to_pandas(**kwargs)

    def to_polars(self) -> Any:
        """A Polars DataFrame (zero-copy where Polars can take the Arrow buffers)."""
        import polars as pl

        return pl.from_arrow(self.to_table())

    def __arrow_c_stream__(self, requested_schema=None):
        return self.to_reader().__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        return f"<tidelog.Scan of {self.topic.name!r} partitions={self._partitions}>"
