"""Zone maps: for each frame of at least ``ZONE_MIN_ROWS`` rows, the null
count, min and max of every fixed-width numeric or temporal column (the key
column among them when it is one; the timestamp column's span is in the frame
header already). A filtered read (``scan(filter=...)``) asks them which frames
may hold a matching row and walks past the others on their header alone: their
payload pages are never touched (FORMAT.md §10).

Derived data, like the indexes: one append-only file per partition
(``<partition>/zonemap``), written by the appending process after each frame,
never synced, never trusted blindly. Every entry names its frame by base offset
*and* the frame's CRC32C, and the core excludes a frame only when both match
its header: an entry for a frame lost to a power cut (whose offsets were then
written again) names no frame and excludes nothing. An entry cut short, or
damaged, fails its own CRC and is ignored (the reader resynchronises on the
next entry's magic). A missing entry (a frame written by an older version, by
compaction, or by a process killed between the frame and its entry) only means
the frame is read; a writer's filtered scan adds the entry of every such frame
it decodes, so the map heals itself.

Concurrency: appenders of any process add entries with ``O_APPEND`` writes of
whole entries; readers read the file's new bytes on each filtered scan. A
``ZoneMaps`` belongs to one Topic handle and is used under the GIL.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Any

import numpy as np
import pyarrow as pa

from . import _core
from ._filter import Call, Field, Literal, conjuncts

#: Frames with fewer rows get no entry: walking past one saves little more
#: than its header read.
ZONE_MIN_ROWS = 256
FILE_NAME = "zonemap"
#: A writer rewrites a partition's file without the entries of frames that
#: retention removed, when the file is at least this big and half of it is theirs
#: (looked at every REWRITE_CHECK_WRITES entries it writes).
REWRITE_MIN_BYTES = 1 << 20
REWRITE_CHECK_WRITES = 1024

_MAGIC = b"TLZ1"
_HEAD = struct.Struct("<4sII")          # magic, length of what follows the CRC, CRC32C of it
_BODY = struct.Struct("<qIIHH")         # base_offset, frame CRC32C, record_count, columns, reserved
_COLUMN = struct.Struct("<HBBI")        # column index, kind, flags, null_count; then min and max
_KIND_FORMAT = {0: struct.Struct("<qq"), 1: struct.Struct("<QQ"), 2: struct.Struct("<dd")}
_HAS_RANGE, _HAS_NAN = 1, 2             # flags

# physical struct letter and stored kind (0 signed, 1 unsigned, 2 float) of each zone-mapped type
_SIGNED = {pa.int8(): "b", pa.int16(): "h", pa.int32(): "i", pa.int64(): "l"}
_UNSIGNED = {pa.uint8(): "B", pa.uint16(): "H", pa.uint32(): "I", pa.uint64(): "L"}


def _physical(t: pa.DataType) -> tuple[str, int] | None:
    if t in _SIGNED:
        return _SIGNED[t], 0
    if t in _UNSIGNED:
        return _UNSIGNED[t], 1
    if t == pa.float32():
        return "f", 2
    if t == pa.float64():
        return "d", 2
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date64(t) or pa.types.is_time64(t):
        return "l", 0
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return "i", 0
    return None


def zone_columns(schema: pa.Schema, timestamp: str | None) -> list[tuple[int, str, int]]:
    """(index, physical letter, kind) of the columns a zone map covers."""
    out = []
    for i, field in enumerate(schema):
        if field.name == timestamp:
            continue
        p = _physical(field.type)
        if p is not None:
            out.append((i, *p))
    return out


class ZoneMaps:
    """The zone maps of one topic's partitions, as one Topic handle writes and reads them."""

    def __init__(self, directory: str, schema: pa.Schema, timestamp: str | None, partitions: int, writable: bool,
                 start_offset: Any = None):
        self._directory = directory
        self._schema = schema
        self.columns = zone_columns(schema, timestamp)
        self._writable = writable
        self._start_offset = start_offset  # partition -> its first offset (retention moves it)
        self._fds: dict[int, int] = {}
        self._writes: dict[int, int] = {}
        self._maps: dict[int, _PartitionZones] = {}
        self._partitions = partitions

    def __bool__(self) -> bool:
        return bool(self.columns)

    def _path(self, partition: int) -> str:
        return os.path.join(self._directory, str(partition), FILE_NAME)

    # ------------------------------------------------------------- writing
    def stats(self, batch: pa.RecordBatch) -> bytes | None:
        """The column part of an entry for a frame of ``batch`` (None: too small for one)."""
        if batch.num_rows < ZONE_MIN_ROWS:
            return None
        parts = []
        for index, physical, kind in self.columns:
            nulls, lo, hi, nan = _core.zone_stats(batch.column(index), physical)  # one vectorized pass
            flags = (_HAS_NAN if nan else 0) | (_HAS_RANGE if lo is not None else 0)
            parts.append(_COLUMN.pack(index, kind, flags, nulls))
            parts.append(_KIND_FORMAT[kind].pack(lo if lo is not None else 0, hi if hi is not None else 0))
        return b"".join(parts)

    def write(self, partition: int, base_offset: int, frame_crc: int, record_count: int, stats: bytes) -> None:
        """Adds the entry of one appended frame (best effort: derived data)."""
        body = _BODY.pack(base_offset, frame_crc, record_count, len(self.columns), 0) + stats
        entry = _HEAD.pack(_MAGIC, len(body), _core.crc32c(body)) + body
        try:
            fd = self._fds.get(partition)
            if fd is not None and os.fstat(fd).st_nlink == 0:  # the file was removed: start a new one
                os.close(self._fds.pop(partition))
                fd = None
            if fd is None:
                fd = os.open(self._path(partition), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self._fds[partition] = fd
            os.write(fd, entry)  # one write of a whole entry: O_APPEND keeps entries whole between processes
            writes = self._writes[partition] = self._writes.get(partition, 0) + 1
            if writes % REWRITE_CHECK_WRITES == 0 and self._start_offset is not None:
                self._drop_removed_frames(partition, fd)
        except OSError:
            pass  # a missing entry only means the frame is read

    def _drop_removed_frames(self, partition: int, fd: int) -> None:
        """Rewrites the file without the entries of frames below the partition's
        first offset, if they are half of a big file. Entries other processes add
        meanwhile may be lost with the old file: their frames are read, and healed."""
        if os.fstat(fd).st_size < REWRITE_MIN_BYTES:
            return
        start = self._start_offset(partition)
        path = self._path(partition)
        with open(path, "rb") as f:
            data = f.read()
        kept = []
        at = 0
        for entry_at, entry_end, body in _entries(data):
            if _BODY.unpack_from(body, 0)[0] >= start:
                kept.append(data[entry_at:entry_end])
            at = entry_end
        if sum(len(k) for k in kept) * 2 > len(data):
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(b"".join(kept))
        os.replace(tmp, path)
        os.close(self._fds.pop(partition))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._maps.clear()

    # ------------------------------------------------------------- reading
    def excluded(self, partition: int, tree: Any) -> list[tuple[int, int]]:
        """(base_offset, crc) of the frames of ``partition`` whose entry shows
        that no row can satisfy the filter ``tree``."""
        zones = self._maps.get(partition)
        if zones is None:
            zones = self._maps[partition] = _PartitionZones(self._path(partition), self._schema)
        zones.refresh()
        if not zones.count:
            return []
        may = _may_match(tree, zones)
        if may is True:
            return []
        if may is False:
            may = np.zeros(zones.count, bool)
        none = np.flatnonzero(~may)
        return list(zip(zones.base[none].tolist(), zones.crc[none].tolist()))

    #: At a writer's open after a crash, at most this many frames at the end of a
    #: partition get their missing entries back (older gaps heal by use).
    REBUILD_TAIL_FRAMES = 256

    def rebuild_tail(self, partition: int, native, schema: pa.Schema, decompress) -> None:
        """Adds the missing entries of the frames after the last frame that has one
        (what a writer killed between its frames and their entries leaves), up to
        REBUILD_TAIL_FRAMES of them: recovery of derived data, reading only those frames."""
        zones = self._maps.get(partition)
        if zones is None:
            zones = self._maps[partition] = _PartitionZones(self._path(partition), self._schema)
        zones.refresh()
        end = native.end_offset
        start = max(native.start_offset, int(zones.base.max()) + 1 if zones.count else 0,
                    end - self.REBUILD_TAIL_FRAMES * ZONE_MIN_ROWS)
        if start >= end:
            return
        try:
            frames = native.frames(start, end, -(2**63), 2**63 - 1, self.REBUILD_TAIL_FRAMES, [])
        except Exception:  # noqa: BLE001 - derived data: damage is recovery's business, not this one's
            return
        for frame in frames:
            if frame.record_count >= ZONE_MIN_ROWS and not frame.sparse:
                try:
                    batches = _core.decode_frame(frame, schema, decompress)
                except Exception:  # noqa: BLE001 - an undecodable frame: reads will report it
                    continue
                self.heal(partition, frame, batches)

    def known(self, partition: int, base_offset: int, frame_crc: int) -> bool:
        zones = self._maps.get(partition)
        return zones is not None and (base_offset, frame_crc) in zones.keys

    def heal(self, partition: int, frame, batches: list[pa.RecordBatch]) -> None:
        """Adds the missing entry of a frame a filtered scan decoded (writers only)."""
        if not self._writable or len(batches) != 1 or frame.sparse or self.known(partition, frame.base_offset,
                                                                                  frame.crc):
            return
        stats = self.stats(batches[0])
        if stats is not None:
            self.write(partition, frame.base_offset, frame.crc, frame.record_count, stats)
            zones = self._maps.get(partition)
            if zones is not None:
                zones.keys.add((frame.base_offset, frame.crc))


def _entries(data: bytes):
    """(start, end, body) of each intact entry of ``data``, in order; damaged
    bytes are stepped over (resynchronising on the next magic). Stops before an
    entry cut short at the end (the rest may still be on its way)."""
    at, n = 0, len(data)
    while at + _HEAD.size <= n:
        magic, length, crc = _HEAD.unpack_from(data, at)
        if magic != _MAGIC or length > 1 << 20:
            nxt = data.find(_MAGIC, at + 1)  # damage: resynchronise on the next entry
            if nxt < 0:
                return
            at = nxt
            continue
        end = at + _HEAD.size + length
        if end > n:
            return  # an entry still being written (or cut short)
        body = data[at + _HEAD.size:end]
        if len(body) >= _BODY.size and _core.crc32c(body) == crc:
            yield at, end, body
            at = end
        else:
            at += 1


class _PartitionZones:
    """The entries of one partition's zone map file read so far, as arrays."""

    def __init__(self, path: str, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self._reset(None)

    def _reset(self, identity) -> None:
        self.identity = identity  # (st_dev, st_ino) of the file read
        self.read_bytes = 0
        self.pending = b""
        self.count = 0
        self.keys: set[tuple[int, int]] = set()
        self._base: list[int] = []
        self._crc: list[int] = []
        self._rows: list[int] = []
        self._cols: dict[int, tuple] = {}  # index -> (nulls, lo, hi, flags, kind, entry numbers)
        self.base = np.empty(0, np.int64)
        self.crc = np.empty(0, np.uint32)
        self.rows = np.empty(0, np.int64)
        self._arrays: dict[int, tuple] = {}

    def refresh(self) -> None:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if (st.st_dev, st.st_ino) != self.identity or st.st_size < self.read_bytes:
                    self._reset((st.st_dev, st.st_ino))  # a new file (the old one removed or replaced)
                f.seek(self.read_bytes)
                new = f.read()
        except FileNotFoundError:
            if self.identity is not None:
                self._reset(None)
            return
        if not new:
            return
        self.read_bytes += len(new)
        data = self.pending + new
        added = False
        at = 0
        for _, end, body in _entries(data):
            if self._add(body):
                added = True
            at = end
        self.pending = data[at:]
        if added:
            self._arrays.clear()
            self.base = np.array(self._base, np.int64)
            self.crc = np.array(self._crc, np.uint32)
            self.rows = np.array(self._rows, np.int64)
            self.count = len(self._base)

    def _add(self, body: bytes) -> bool:
        try:
            base, frame_crc, rows, ncols, _ = _BODY.unpack_from(body, 0)
            at = _BODY.size
            columns = []
            for _ in range(ncols):
                index, kind, flags, nulls = _COLUMN.unpack_from(body, at)
                at += _COLUMN.size
                lo, hi = _KIND_FORMAT[kind].unpack_from(body, at)
                at += 16
                columns.append((index, kind, flags, nulls, lo, hi))
        except (struct.error, KeyError):
            return False
        k = len(self._base)
        self._base.append(base)
        self._crc.append(frame_crc)
        self._rows.append(rows)
        self.keys.add((base, frame_crc))
        for index, kind, flags, nulls, lo, hi in columns:
            col = self._cols.get(index)
            if col is None:
                col = self._cols[index] = ([], [], [], [], kind, [])
            col[0].append(nulls)
            col[1].append(lo)
            col[2].append(hi)
            col[3].append(flags)
            col[5].append(k)
        return True

    def column(self, index: int):
        """(kind, valid, lo, hi, has_nan) per entry for a column (None: no entry covers it)."""
        got = self._arrays.get(index)
        if got is None:
            col = self._cols.get(index)
            if col is None:
                return None
            nulls, lo, hi, flags, kind, rows_of = col
            if len(rows_of) != self.count:  # entries without this column (another schema): unknown
                return None
            flags_a = np.array(flags, np.uint8)
            dtype = {0: np.int64, 1: np.uint64, 2: np.float64}[kind]
            has_range = (flags_a & _HAS_RANGE) != 0
            got = (kind, has_range, np.array(lo, dtype), np.array(hi, dtype), (flags_a & _HAS_NAN) != 0,
                   self.rows - np.array(nulls, np.int64))
            self._arrays[index] = got
        return got


# --------------------------------------------------------- the predicate
def _may_match(tree, zones: _PartitionZones):
    """Per entry, whether a row of its frame may satisfy ``tree``: a bool array,
    or True/False for every entry. Anything not understood may match."""
    if tree is None:
        return True
    if isinstance(tree, Call):
        name = tree.name
        if name in ("and", "and_kleene"):
            out: Any = True
            for term in conjuncts(tree):
                m = _may_match(term, zones)
                if m is False:
                    return False
                out = m if out is True else (out if m is True else out & m)
            return out
        if name in ("or", "or_kleene"):
            a, b = (_may_match(t, zones) for t in tree.args)
            if a is True or b is True:
                return True
            if a is False:
                return b
            if b is False:
                return a
            return a | b
        if name == "invert" and len(tree.args) == 1:
            return _may_match(_negated(tree.args[0]), zones) if _negated(tree.args[0]) is not None else True
        if name in ("is_null", "is_valid") and len(tree.args) == 1 and isinstance(tree.args[0], Field):
            col = _zone_column(zones, tree.args[0].name)
            if col is None or (tree.options or {}).get("nan_is_null"):
                return True
            kind, has_range, lo, hi, nan, valid = col
            return (zones.rows - valid > 0) if name == "is_null" else valid > 0
        if name == "is_in" and len(tree.args) == 1 and isinstance(tree.args[0], Field):
            return _is_in(zones, tree.args[0].name, (tree.options or {}).get("value_set"))
        comparison = _comparison(tree)
        if comparison is not None:
            return _compare(zones, *comparison)
    if isinstance(tree, Literal) and tree.value.type == pa.bool_():
        return bool(tree.value.as_py())  # null counts as false
    return True


_FLIP = {"less": "greater", "less_equal": "greater_equal", "greater": "less", "greater_equal": "less_equal",
         "equal": "equal", "not_equal": "not_equal"}
_NEGATE = {"less": "greater_equal", "less_equal": "greater", "greater": "less_equal", "greater_equal": "less",
           "equal": "not_equal", "not_equal": "equal"}


def _comparison(tree: Call) -> tuple[str, str, pa.Scalar] | None:
    if tree.name not in _FLIP or len(tree.args) != 2:
        return None
    a, b = tree.args
    if isinstance(a, Field) and isinstance(b, Literal):
        return a.name, tree.name, b.value
    if isinstance(b, Field) and isinstance(a, Literal):
        return b.name, _FLIP[tree.name], a.value
    return None


def _negated(tree) -> Any:
    """NOT tree as a tree this evaluator reads (None if it cannot say)."""
    if isinstance(tree, Call):
        if tree.name == "is_null":
            return Call("is_valid", tree.args, tree.options)
        if tree.name == "is_valid":
            return Call("is_null", tree.args, tree.options)
        if tree.name == "invert":
            return tree.args[0]
        if tree.name in _NEGATE and len(tree.args) == 2:
            # NOT (x < v) is x >= v for every row where x is a number; a NaN makes
            # both false, so the negation holds only for columns without NaN (checked in _compare).
            return Call("_negated_" + _NEGATE[tree.name], tree.args, None)
    return None


def _zone_column(zones: _PartitionZones, name: str):
    index = zones.schema.get_field_index(name)
    return zones.column(index) if index >= 0 else None


def _literal_bounds(literal: pa.Scalar, column_type: pa.DataType, kind: int) -> tuple[Any, Any] | None:
    """(floor, ceil) of the literal in the column's stored values (equal when exact)."""
    if not literal.is_valid:
        return None
    t = literal.type
    if kind == 2:
        if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            return None
        v = float(literal.as_py())
        return (v, v) if not math.isnan(v) else None
    if pa.types.is_timestamp(column_type):
        if not pa.types.is_timestamp(t):
            return None
        unit = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
        ns = literal.cast(pa.int64()).as_py() * unit[t.unit]
        u = unit[column_type.unit]
        return ns // u, -(-ns // u)
    if (pa.types.is_date(column_type) or pa.types.is_time(column_type) or pa.types.is_duration(column_type)):
        if t != column_type:
            return None
        v = pa.array([literal]).view(pa.int64() if t.bit_width == 64 else pa.int32())[0].as_py()
        return v, v
    if pa.types.is_integer(t):
        v = literal.as_py()
        return v, v
    if pa.types.is_floating(t):
        v = literal.as_py()
        if math.isnan(v) or math.isinf(v):
            return None
        return math.floor(v), math.ceil(v)
    return None


def _compare(zones: _PartitionZones, name: str, op: str, literal: pa.Scalar):
    negated = op.startswith("_negated_")
    op = op[len("_negated_"):] if negated else op
    index = zones.schema.get_field_index(name)
    col = zones.column(index) if index >= 0 else None
    if col is None:
        return True
    kind, has_range, lo, hi, nan, valid = col
    try:
        bounds = _literal_bounds(literal, zones.schema.field(index).type, kind)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        bounds = None  # a literal this reader cannot place: the frame may match
    if bounds is None:
        return True
    floor, ceil = bounds
    if kind != 2:
        info = np.iinfo(lo.dtype)
        above, below = floor > int(info.max), ceil < int(info.min)  # the literal is beyond every value
        if above or below:
            every_row = op == "not_equal" or op in (("less", "less_equal") if above else ("greater", "greater_equal"))
            return (valid > 0) if every_row else False
    if negated and kind == 2 and nan.any():
        return True
    if op == "not_equal":
        if kind == 2:
            return True
        return ~(has_range & (lo == hi) & (lo == floor) & (floor == ceil))
    with np.errstate(invalid="ignore"):
        if op == "equal":
            if floor != ceil:
                return False
            m = (lo <= floor) & (hi >= floor)
        elif op == "less":
            m = lo < ceil
        elif op == "less_equal":
            m = lo <= floor
        elif op == "greater":
            m = hi > floor
        else:  # greater_equal
            m = hi >= ceil
    return has_range & (valid > 0) & m


def _is_in(zones: _PartitionZones, name: str, value_set: Any):
    index = zones.schema.get_field_index(name)
    col = zones.column(index) if index >= 0 else None
    if col is None or not isinstance(value_set, list):
        return True
    kind, has_range, lo, hi, nan, valid = col
    out: Any = False
    for v in value_set:
        if v is None:
            return True  # null matching: conservative
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return True  # dates and times come as Python objects: not compared here
        m = _compare(zones, name, "equal", pa.scalar(v))
        if m is True:
            return True
        if m is not False:
            out = m if out is False else (out | m)
    return out
