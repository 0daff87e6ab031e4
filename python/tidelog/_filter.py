"""Row filters of reads (``scan(filter=...)``, ``read(filter=...)``): checked
against the topic's schema before anything is read, and read for what they
promise about the data, so that a read touches only what the filter can keep.

A filter is a ``pyarrow.compute.Expression``. pyarrow evaluates it on every
batch read (a row is kept where it is true; null counts as false, as in
``Table.filter``). Before that, its tree tells which rows cannot match:

* comparisons of the timestamp column with a literal, in a conjunction, bound
  the read's time range, so the time index finds the first frame and the read
  stops after the last (``ts BETWEEN a AND b`` from DuckDB costs what
  ``start_time=a, end_time=b`` costs);
* every comparison of a zone-mapped column with a literal decides, from each
  frame's min/max/null count, whether the frame may hold a matching row
  (``tidelog._zones``).

pyarrow exposes no expression tree; its pickle format is one. ``Expression``
pickles as an Arrow IPC file: the schema's custom metadata lists the tree in
prefix order (``call`` NAME, its arguments, optional ``options`` INDEX, ``end``
NAME; ``field_ref`` NAME; ``literal`` INDEX) and the literals (and the call
options) are the columns of a one-row batch. That metadata holds repeated keys,
which pyarrow's ``Schema.metadata`` (a dict) collapses, so the schema's
flatbuffer is read here directly. An expression this reader does not follow
(another pyarrow, a nested field reference) is still applied; it just promises
nothing, and the read touches every frame in its range.
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidArgumentError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Call(NamedTuple):
    name: str
    args: tuple
    options: Any  # the options' struct scalar as a dict, or None


class Field(NamedTuple):
    name: str


class Literal(NamedTuple):
    value: pa.Scalar


def check(expr: Any, schema: pa.Schema) -> pc.Expression:
    """``expr`` if it is a boolean expression over ``schema``'s columns; else
    InvalidArgumentError naming the problem (an unknown column, types that do
    not compare), raised before anything is read."""
    if not isinstance(expr, pc.Expression):
        raise InvalidArgumentError(
            f"filter must be a pyarrow.compute.Expression (e.g. pc.field('sensor_id') == 7), not "
            f"{type(expr).__name__}")
    try:
        schema.empty_table().filter(expr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        message = str(e).split("\n")[0]
        if message.startswith("No match for FieldRef.Name("):
            name = message[len("No match for FieldRef.Name("):].split(")")[0]
            message = f"no column {name!r}; the columns are {schema.names}"
        raise InvalidArgumentError(f"filter {expr} does not apply to this topic: {message}") from None
    return expr


def parse(expr: pc.Expression) -> Call | Field | Literal | None:
    """The tree of ``expr``, or None if this reader cannot follow it."""
    try:
        buf = expr.__reduce__()[1][0]
        pairs = _schema_metadata_pairs(memoryview(buf))
        values = pa.ipc.open_file(buf).read_all()
    except Exception:  # noqa: BLE001 - any surprise means: no promises, the filter still applies
        return None
    at = 0

    def node():
        nonlocal at
        key, value = pairs[at]
        at += 1
        if key == "field_ref":
            return Field(value)
        if key == "literal":
            return Literal(values.column(int(value))[0])
        if key != "call":
            raise ValueError(key)
        args, options = [], None
        while pairs[at][0] not in ("end", "options"):
            args.append(node())
        if pairs[at][0] == "options":
            options = values.column(int(pairs[at][1]))[0].as_py()
            at += 1
        if pairs[at] != ("end", value):
            raise ValueError(pairs[at])
        at += 1
        return Call(value, tuple(args), options)

    try:
        tree = node()
    except (IndexError, ValueError, KeyError):
        return None
    return tree if at == len(pairs) else None


def time_bounds(tree, ts_name: str, unit_ns: int) -> tuple[int, int]:
    """[lo, hi) in nanoseconds that every row the filter keeps lies in, from the
    comparisons of the timestamp column with literals that the filter's
    top-level conjunction holds (the whole int64 range if none)."""
    lo, hi = INT64_MIN, INT64_MAX
    for term in conjuncts(tree):
        bound = _compared_with_literal(term, ts_name)
        if bound is None:
            continue
        op, literal = bound
        ns = _literal_ns(literal, unit_ns)
        if ns is None:
            continue
        if op in ("greater_equal", "equal"):
            lo = max(lo, ns)
        if op == "greater":
            lo = max(lo, ns + 1)
        if op == "less":
            hi = min(hi, ns)
        if op in ("less_equal", "equal"):
            hi = min(hi, ns + 1)
    return lo, hi


def conjuncts(tree) -> list:
    """The terms of a top-level AND (the tree itself if it is not one)."""
    if tree is None:
        return []
    if isinstance(tree, Call) and tree.name in ("and", "and_kleene"):
        return [t for a in tree.args for t in conjuncts(a)]
    return [tree]


_FLIPPED = {"less": "greater", "less_equal": "greater_equal", "greater": "less", "greater_equal": "less_equal",
            "equal": "equal", "not_equal": "not_equal"}


def _compared_with_literal(term, column: str) -> tuple[str, pa.Scalar] | None:
    """(op, literal) for ``column op literal`` (or ``literal op column``, flipped)."""
    if not (isinstance(term, Call) and term.name in _FLIPPED and len(term.args) == 2):
        return None
    a, b = term.args
    if a == Field(column) and isinstance(b, Literal):
        return term.name, b.value
    if b == Field(column) and isinstance(a, Literal):
        return _FLIPPED[term.name], a.value
    return None


_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _literal_ns(literal: pa.Scalar, unit_ns: int) -> int | None:
    """A literal compared with the timestamp column, in nanoseconds (None if
    null or of a type whose instant is not plain: those promise nothing)."""
    if not literal.is_valid:
        return None
    t = literal.type
    if pa.types.is_timestamp(t):
        return literal.cast(pa.int64()).as_py() * _UNIT_NS[t.unit]
    if pa.types.is_integer(t):  # an int64 timestamp column holds counts of its unit
        v = literal.as_py() * unit_ns
        return v if INT64_MIN <= v <= INT64_MAX else None
    return None


# ------------------------------------------------------- the schema's metadata
def _schema_metadata_pairs(buf: memoryview) -> list[tuple[str, str]]:
    """The custom metadata of an Arrow IPC file's schema, every pair in order."""
    if bytes(buf[:6]) != b"ARROW1":
        raise ValueError("not an Arrow IPC file")
    at = 8
    if struct.unpack_from("<I", buf, at)[0] == 0xFFFFFFFF:  # the continuation marker
        at += 4
    length = struct.unpack_from("<i", buf, at)[0]
    message = buf[at + 4:at + 4 + length]
    fb = _Flatbuffer(message)
    root = fb.root()
    if fb.u8_field(root, 1) != 1:  # Message.header_type: 1 is Schema
        raise ValueError("the first message is not a schema")
    schema = fb.table_field(root, 2)
    pairs = []
    for kv in fb.vector_of_tables(schema, 2):  # Schema.custom_metadata
        pairs.append((fb.string_field(kv, 0), fb.string_field(kv, 1)))
    return pairs


class _Flatbuffer:
    """Just enough of the flatbuffers wire format to read tables, strings and
    vectors of tables (bounds-checked by struct: a short buffer raises)."""

    def __init__(self, buf: memoryview):
        self.buf = buf

    def root(self) -> int:
        return struct.unpack_from("<I", self.buf, 0)[0]

    def _field(self, table: int, index: int) -> int:
        vtable = table - struct.unpack_from("<i", self.buf, table)[0]
        vtable_bytes = struct.unpack_from("<H", self.buf, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vtable_bytes:
            return 0
        off = struct.unpack_from("<H", self.buf, vtable + slot)[0]
        return table + off if off else 0

    def _deref(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def u8_field(self, table: int, index: int) -> int:
        at = self._field(table, index)
        return struct.unpack_from("<B", self.buf, at)[0] if at else 0

    def table_field(self, table: int, index: int) -> int:
        at = self._field(table, index)
        if not at:
            raise ValueError("missing table")
        return self._deref(at)

    def string_field(self, table: int, index: int) -> str:
        at = self._field(table, index)
        if not at:
            return ""
        s = self._deref(at)
        n = struct.unpack_from("<I", self.buf, s)[0]
        if s + 4 + n > len(self.buf):
            raise ValueError("string out of bounds")
        return bytes(self.buf[s + 4:s + 4 + n]).decode()

    def vector_of_tables(self, table: int, index: int) -> list[int]:
        at = self._field(table, index)
        if not at:
            return []
        v = self._deref(at)
        n = struct.unpack_from("<I", self.buf, v)[0]
        return [self._deref(v + 4 + 4 * i) for i in range(n)]
