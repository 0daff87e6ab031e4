"""Arrow <-> frame payloads, without copies where Arrow allows it.

Write path: a long-lived ``RecordBatchStreamWriter`` per thread writes into a
sink that keeps the pieces it is given. pyarrow hands body buffers to the sink
as ``pa.Buffer`` objects pointing at the caller's memory, so the pieces go to
one native ``pwritev`` and the payload is copied once, into the page cache.

Read path: a frame's payload is wrapped with ``pa.foreign_buffer`` over the
segment mapping and decoded with ``ipc.read_record_batch``: the arrays point
into the mapping (uncompressed frames only; zstd frames are decompressed).
"""
from __future__ import annotations

import datetime as _dt
import struct
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from . import _core
from .errors import SchemaMismatchError

FLAG_IPC_STREAM = _core.FLAG_IPC_STREAM
FLAG_TIME_ORDERED = _core.FLAG_TIME_ORDERED
CODEC_NONE = _core.CODEC_NONE
CODEC_ZSTD = _core.CODEC_ZSTD

_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


#: Batches below this many bytes of buffers are serialized into one buffer
#: (4-5 us) instead of handing each Arrow buffer to pwritev (15-20 us of Python
#: calls); above it the zero-copy path wins.
SMALL_BATCH_BYTES = 64 * 1024

_METADATA_LENGTH = struct.Struct("<i")


class _PieceSink:
    """A write-only file for pyarrow's IPC writer that keeps what it is given."""

    __slots__ = ("pieces", "closed")

    def __init__(self) -> None:
        self.pieces: list = []
        self.closed = False

    def write(self, data) -> int:
        self.pieces.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True


def one_row(type_: pa.DataType, value: Any) -> pa.Array:
    """A 1-row array of ``type_`` built from buffers: ``value`` is an int for
    fixed-width types, bytes for binary, string and fixed-size binary types,
    or a list of child arrays for a struct, a 1-row array for a list. Used for
    the templates registered at import: ``pa.array()`` of Python objects
    imports pandas, which would double the time ``import tidelog`` takes."""
    def offsets(*ends: int) -> pa.Buffer:
        return pa.py_buffer(b"".join(e.to_bytes(4, "little") for e in ends))

    if pa.types.is_struct(type_):
        return pa.Array.from_buffers(type_, 1, [None], children=value)
    if pa.types.is_list(type_):
        return pa.Array.from_buffers(type_, 1, [None, offsets(0, len(value))], children=[value])
    if pa.types.is_fixed_size_binary(type_):
        return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(value)])
    if pa.types.is_binary(type_) or pa.types.is_string(type_):
        return pa.Array.from_buffers(type_, 1, [None, offsets(0, len(value)), pa.py_buffer(value)])
    width = type_.bit_width // 8
    return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(int(value).to_bytes(width, "little", signed=True))])


def has_dictionary(schema: pa.Schema) -> bool:
    def walk(t: pa.DataType) -> bool:
        if pa.types.is_dictionary(t):
            return True
        return any(walk(t.field(i).type) for i in range(t.num_fields)) if t.num_fields else False

    return any(walk(f.type) for f in schema)


def ipc_buffer_count(t: pa.DataType) -> int | None:
    """The buffers a column of type ``t`` has in an IPC record batch message
    (validity, then offsets and/or values), or None for the types whose layout
    is not a flat column of one field node (nested, dictionary, views, null)."""
    if pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t) \
            or pa.types.is_large_string(t):
        return 3
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_temporal(t)
            or pa.types.is_decimal(t) or pa.types.is_fixed_size_binary(t)):
        return 2
    return None


class BatchEncoder:
    """Turns record batches of one schema into frame payload pieces.

    Thread-safe: each thread gets its own writer and sink.
    """

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.stream_frames = has_dictionary(schema)
        self._local = threading.local()

    def _writer(self):
        local = self._local
        writer = getattr(local, "writer", None)
        if writer is None:
            sink = _PieceSink()
            writer = ipc.new_stream(sink, self.schema)
            # The schema message goes out with the first batch: send it now.
            writer.write_batch(pa.RecordBatch.from_pylist([], schema=self.schema))
            if isinstance(threading.current_thread(), threading._DummyThread):
                # A thread Python did not start (a gRPC or other native callback
                # thread): its thread-locals are torn down with its thread state,
                # and a writer closing into its Python sink then crashes the
                # process. Such threads get a writer per batch instead.
                return writer, sink
            local.writer, local.sink = writer, sink
        return writer, local.sink

    def encode(self, batch: pa.RecordBatch) -> tuple[list, int, int]:
        """Returns (pieces, body_offset, flags) for one frame payload."""
        if batch.get_total_buffer_size() < SMALL_BATCH_BYTES and not self.stream_frames:
            # One serialize() is cheaper than the sink's per-buffer Python calls
            # for small batches; the extra copy is a few KiB at most.
            message = batch.serialize()
            return [message], 8 + _METADATA_LENGTH.unpack_from(message, 4)[0], 0
        if self.stream_frames:
            # Dictionaries travel in the same frame: store a whole IPC stream.
            sink = _PieceSink()
            with ipc.new_stream(sink, self.schema) as w:
                w.write_batch(batch)
            return sink.pieces, -1, FLAG_IPC_STREAM
        writer, sink = self._writer()
        sink.pieces = []
        writer.write_batch(batch)
        pieces = sink.pieces
        # An IPC message starts with 0xFFFFFFFF, an int32 metadata length
        # (padded to 8), the metadata, then the body.
        metadata_length = int.from_bytes(bytes(pieces[1]), "little", signed=True)
        return pieces, 8 + metadata_length, 0


#: The record batches stored in one frame (zero-copy when uncompressed):
#: ``decode_payload(frame, schema, decompress)``; in Cython, so a scan pays one
#: call per frame.
decode_payload = _core.decode_frame


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def as_int(value: Any, name: str) -> int:
    """An int argument (a Python or numpy integer, not a bool); TypeError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return int(value)


def as_offset(value: Any, name: str = "offset") -> int:
    """An offset argument: an int (not bool) in [0, 2**63)."""
    value = as_int(value, name)
    if not 0 <= value <= INT64_MAX:
        raise ValueError(f"{name} must be in [0, 2**63), not {value}")
    return value


def to_ns(value: Any, name: str = "timestamp") -> int:
    """Nanoseconds since the epoch from an int (ns), datetime or date (naive =
    UTC), ISO-8601 string (naive = UTC), numpy.datetime64, pandas.Timestamp or
    Arrow timestamp scalar; ValueError outside int64 (years 1677-2262)."""
    ns = _to_ns(value, name)
    if not INT64_MIN <= ns <= INT64_MAX:
        raise ValueError(f"{name} {ns} is outside int64 nanoseconds (years 1677-2262)")
    return ns


def _to_ns(value: Any, name: str) -> int:
    if value is None:
        raise TypeError(f"{name} is None")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a time, not a bool")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        # ISO-8601 ("2026-12-04T10:00:00Z", "2026-12-04 10:00:00.123+01:00", "2026-12-04")
        try:
            value = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO-8601 time") from None
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, pa.TimestampScalar):
        return int(value.value) * _UNIT_NS[value.type.unit]
    if hasattr(value, "value") and hasattr(value, "tz_localize"):  # pandas.Timestamp
        return int(value.value)
    raise TypeError(f"{name} must be int nanoseconds, datetime (naive = UTC), ISO-8601 str, numpy.datetime64 or "
                    f"pandas.Timestamp, not {type(value).__name__}")


def timestamp_unit_ns(t: pa.DataType) -> int:
    if pa.types.is_timestamp(t):
        return _UNIT_NS[t.unit]
    if pa.types.is_int64(t):
        return 1
    raise SchemaMismatchError(f"a timestamp column must be timestamp or int64 (nanoseconds), not {t}")


#: Written int timestamps outside [1980, 2200) are probably not nanoseconds.
PLAUSIBLE_NS = (315_532_800 * 10**9, 7_258_118_400 * 10**9)


def warn_if_implausible(lo: int, hi: int, what: str, stacklevel: int = 3) -> bool:
    """Warns (TimestampWarning) when [lo, hi] ns is not a plausible time range; True if it warned."""
    if PLAUSIBLE_NS[0] <= lo and hi < PLAUSIBLE_NS[1]:
        return False
    import warnings

    from .errors import TimestampWarning

    bad = lo if lo < PLAUSIBLE_NS[0] else hi
    when = "before 1980" if bad < PLAUSIBLE_NS[0] else "after 2200"
    hint = (" - it looks like milliseconds" if 10**11 < bad < 10**14 else
            " - it looks like seconds" if 10**8 < bad < 10**11 else "")
    warnings.warn(f"{what} {bad} as nanoseconds is {when}{hint}; tidelog takes int timestamps as "
                  f"nanoseconds since the epoch (use timestamp_ms=, a datetime, or a timestamp column)",
                  TimestampWarning, stacklevel=stacklevel)
    return True


def column_ns_range(column: pa.Array, unit_ns: int) -> tuple[int, int, bool] | None:
    """(min, max, ordered) of a timestamp column in ns, or None when every value
    is null; ``ordered``: no nulls and never decreasing."""
    r = _core.int64_min_max(column)
    if r is None:
        return None
    lo, hi = r[0] * unit_ns, r[1] * unit_ns
    if lo < INT64_MIN or hi > INT64_MAX:
        raise ValueError(f"timestamps from {r[0]} to {r[1]} (x{unit_ns} ns) are outside int64 nanoseconds "
                         "(years 1677-2262): the time index cannot hold them")
    return lo, hi, r[2]


def key_partitions(column: pa.Array, partitions: int) -> np.ndarray:
    """Kafka's default partition (murmur2 of the serialized key) for every row;
    null keys are marked -1. Ints serialize big-endian (int8/int16 widened to
    int32, as a 4-byte IntegerSerializer), strings as UTF-8, binary as is."""
    n = len(column)
    out = np.empty(n, dtype=np.int32)
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = column.type
    if pa.types.is_integer(t) and t.bit_width < 32:
        column = column.cast(pa.int32() if pa.types.is_signed_integer(t) else pa.uint32())
        t = column.type
    if pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t):
        width = t.bit_width // 8
        data = column.buffers()[1]
        start = column.offset * width
        view = memoryview(data)[start : start + n * width] if data is not None else b""
        _core.partition_fixed_width_keys(view, n, width, partitions, out)
    elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        osize = 8 if large else 4
        offsets = column.buffers()[1]
        data = column.buffers()[2]
        view = memoryview(offsets)[column.offset * osize : (column.offset + n + 1) * osize]
        _core.partition_binary_keys(view, data if data is not None else b"", n, large, partitions, out)
    else:
        raise SchemaMismatchError(f"cannot partition by a key column of type {t}")
    if column.null_count:
        out[~np.asarray(column.is_valid())] = -1
    return out
