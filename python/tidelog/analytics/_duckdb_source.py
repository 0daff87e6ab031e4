"""The source DuckDB's Arrow scan reads a registered topic through (``tidelog.duckdb``).

DuckDB >= 2.0 reads every Python object through a *source* (``duckdb._sources``):
the scan asks the source, for each filter its optimizer left on the scan,
whether it ``accepts`` it (promises that every stream holds only rows where the
filter is true, by DuckDB's semantics), then calls ``stream(columns, filters)``
with the columns the query uses and the accepted filters, and reads the Arrow
C stream it returns. A filter arrives as a small tree (``duckdb._sources.nodes``:
AND/OR/NOT, comparisons of a column with a constant, IN, IS [NOT] NULL).

``TopicTable`` is such a source: it accepts a filter when it can turn it into a
``pyarrow.compute.Expression`` that keeps exactly the rows DuckDB keeps, and
streams ``topic.scan(columns=..., filter=...)``. The translation is DuckDB's
own (``duckdb._sources.to_arrow``, which its pyarrow Dataset source uses),
leaf by leaf, so NULLs, NaN, units and time zones mean what DuckDB means.
DuckDB 2.0 offers no filter on a nanosecond timestamp (TIMESTAMP_NS,
TIMESTAMPTZ_NS) to a Python source: it applies those itself, above the scan.
A duck-typed object (one with ``__arrow_c_stream__``, or a Dataset's
``scanner``/``schema``) would get projections at most: only a source class
is offered filters, so this module subclasses it.
"""
from __future__ import annotations

import datetime as _dt
import json
import weakref
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ._reads import Read, Reads, TimeWindow
from ..errors import InvalidArgumentError

try:
    import duckdb
    from duckdb._sources import ArrowScanSource
    from duckdb._sources.nodes import Binary, Col, In, Lit, Node, Postfix, Unary, Untranslatable
    from duckdb._sources.to_arrow import to_arrow
except ImportError as e:  # no duckdb, or one before 2.0 (no scan sources): no pushdown to offer
    _found = "not installed"
    try:
        import duckdb as _any_duckdb

        _found = f"duckdb {_any_duckdb.__version__} is installed"
    except ImportError:
        pass
    raise ImportError(f"tidelog.duckdb needs duckdb >= 2.0 (pip install 'duckdb>=2'); {_found}. Without it, "
                      "DuckDB still reads a topic.scan(...) (every column and row of it)") from e


class TopicTable(ArrowScanSource):
    """A topic as a DuckDB table with projection and filter pushdown (see tidelog.duckdb)."""

    # The topic's schema is fixed at creation, so DuckDB may cache it.
    schema_is_stable = True

    def __init__(self, topic: Any, name: str | None, scan_kwargs: dict):
        if not isinstance(getattr(topic, "schema", None), pa.Schema) or not hasattr(topic, "scan"):
            raise InvalidArgumentError(f"tidelog.duckdb.register takes a tidelog Topic, not {type(topic).__name__}")
        if name is None:
            name = topic.name
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"the table name must be a non-empty str, not {name!r}")
        for key in ("columns", "filter"):
            scan_kwargs.setdefault(key, None)
        # A scan made now checks the arguments before any query runs; its schema is the table's.
        probe = topic.scan(**scan_kwargs)
        super().__init__(topic)
        self.topic = topic
        self.name = name
        self.reads = Reads()
        self._scan_kwargs = scan_kwargs
        self._schema = probe.schema
        # The connection it is registered on, weakly: the connection holds the table, not the other way round.
        self._con: "weakref.ref | None" = None
        # [lo, hi] ns of the time index that the query running now (tidelog.duckdb.sql) keeps at most.
        self._window: tuple[int, int] | None = None
        _TABLES.add(self)

    @property
    def windowed(self) -> bool:
        """Whether the time index is a naive nanosecond timestamp, whose filters
        DuckDB keeps to itself: tidelog.duckdb.sql reads its windows from the SQL."""
        ts = self.topic.config.timestamp
        if ts is None or ts not in self._schema.names:
            return False
        t = self.topic.schema.field(ts).type
        return pa.types.is_timestamp(t) and t.unit == "ns" and t.tz is None

    def __repr__(self) -> str:
        return f"<tidelog.duckdb table {self.name!r} over topic {self.topic.name!r}>"

    # ---------------------------------------------------------- the source
    def __arrow_c_schema__(self) -> object:
        return self._schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        """Every column and row (what a reader that is not DuckDB's scan gets)."""
        return self.stream(None, [])[0]

    def rows(self) -> int | None:
        return None  # known only by reading: a filter, a time range or compaction may leave rows out

    def accepts(self, predicate: Node) -> bool:
        try:
            _translate(predicate, self.topic.schema)
        except Untranslatable:
            return False
        return True

    def stream(self, columns, filters) -> tuple[object, bool]:
        """``topic.scan`` of ``columns`` (declared column indexes; None: all)
        filtered by the accepted ``filters`` (and the registration's own)."""
        names = None if columns is None else [self._schema.names[i] for i in columns]
        # Comparisons of the time index become the scan's time range (no registration range to merge with).
        own_range = self._scan_kwargs.get("start_time") is not None or self._scan_kwargs.get("end_time") is not None
        window = None if own_range or self.topic.config.timestamp is None else TimeWindow()
        terms = [] if self._scan_kwargs["filter"] is None else [self._scan_kwargs["filter"]]
        for predicate in filters:
            for term in _and_terms_of(predicate):
                if window is None or not _time_bound(term, self.topic, window):
                    member = _integer_membership(term, self.topic.schema)
                    terms.append(member if member is not None else _translate(term, self.topic.schema))
        if self._window is not None:
            lo, hi = self._window
            if window is not None:
                window.add(">=", lo)
                window.add("<=", hi)
            else:
                ts, kind = self.topic.config.timestamp, self.topic.schema.field(self.topic.config.timestamp).type
                terms.append((pc.field(ts) >= pa.scalar(lo, kind)) & (pc.field(ts) <= pa.scalar(hi, kind)))
        row_filter = None
        for term in terms:
            row_filter = term if row_filter is None else row_filter & term
        kwargs = dict(self._scan_kwargs, filter=row_filter)
        if window:
            kwargs.update(window.scan_kwargs())
        if names is not None:
            # with_offsets adds _partition and _offset whatever the columns: ask for the topic's only
            kwargs["columns"] = [n for n in names if n not in _OFFSET_COLUMNS]
        scan = self.topic.scan(**kwargs)
        read = self.reads._add(Read(scan, kwargs["columns"], row_filter, window.range() if window else None))
        schema = scan.schema if names is None else pa.schema([scan.schema.field(n) for n in names])
        reader = pa.RecordBatchReader.from_batches(schema, _counted(scan, read, names))
        return reader.__arrow_c_stream__(), names is not None

    def unregister(self) -> None:
        """Removes the table from its connection."""
        con = self.connection
        if con is not None:
            con.unregister(self.name)
        self._con = None

    @property
    def connection(self) -> Any:
        """The DuckDB connection the table is registered on (None once unregistered or gone)."""
        return self._con() if self._con is not None else None


#: Every table registered in this process (tidelog.duckdb.sql looks up a connection's among them).
_TABLES: "weakref.WeakSet[TopicTable]" = weakref.WeakSet()

#: The columns ``with_offsets=True`` adds: not topic columns, so filters on them stay with DuckDB.
_OFFSET_COLUMNS = ("_partition", "_offset")


def _counted(scan: Any, read: Read, names: list[str] | None) -> Iterator[pa.RecordBatch]:
    """The scan's batches with exactly ``names`` (all if None), counted into ``read``."""
    for batch in scan:
        if names is not None and batch.schema.names != names:
            batch = batch.select(names)
        read.rows += batch.num_rows
        yield batch


# --------------------------------------------------------------- filters
def _translate(node: Node, schema: pa.Schema) -> pc.Expression:
    """``node`` as an expression over the topic's columns (``schema``) that
    keeps exactly the rows DuckDB keeps, or Untranslatable. AND, OR and NOT
    here; each leaf by DuckDB's own translation over its column alone (a
    column of a type it refuses, such as a view layout, refuses only its own
    filters). A column that is not the topic's (``_partition``, ``_offset``)
    is left to DuckDB."""
    match node:
        case Binary(op="AND" | "OR", left=left, right=right):
            a, b = _translate(left, schema), _translate(right, schema)
            return a & b if node.op == "AND" else a | b
        case Unary(op="NOT", operand=operand):
            return ~_translate(operand, schema)
    column = _leaf_column(node)
    if column is None:
        raise Untranslatable(node)
    index = schema.get_field_index(column.parts[0])
    if index < 0:
        raise Untranslatable(node)
    return to_arrow(node, pa.schema([schema.field(index)]))


def _and_terms_of(node: Node) -> list[Node]:
    """The terms of a top-level AND (BETWEEN arrives as one)."""
    if isinstance(node, Binary) and node.op == "AND":
        return _and_terms_of(node.left) + _and_terms_of(node.right)
    return [node]


_OPS = {"=": "==", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
#: The type DuckDB gives a constant compared with a time index, by the index's Arrow type.
_NAIVE = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP"}
_EPOCH = _dt.datetime(1970, 1, 1)


def _time_bound(term: Node, topic: Any, window: TimeWindow) -> bool:
    """Adds ``term`` to ``window`` if it compares the time index with a
    constant (True); else False. DuckDB gives the constant the column's own
    type: BIGINT for an int64 index (nanoseconds), a naive datetime for
    TIMESTAMP_S/_MS/TIMESTAMP, microseconds for TIMESTAMP WITH TIME ZONE."""
    ts = topic.config.timestamp
    if not (isinstance(term, Binary) and term.op in _OPS and isinstance(term.left, Col)
            and term.left.parts == (ts,) and isinstance(term.right, Lit)):
        return False
    kind, value = topic.schema.field(ts).type, term.right.value
    if pa.types.is_int64(kind) and term.right.type == "BIGINT" and type(value) is int:
        ns = value
    elif (pa.types.is_timestamp(kind) and kind.tz is None and term.right.type == _NAIVE.get(kind.unit)
          and isinstance(value, _dt.datetime) and value.tzinfo is None):
        delta = value - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000
    elif (pa.types.is_timestamp(kind) and kind.tz is not None and kind.unit in _NAIVE
          and term.right.type == "TIMESTAMP WITH TIME ZONE" and type(value) is int):
        ns = value * 1_000
    else:
        return False
    window.add(_OPS[term.op], ns)
    return True


def _integer_membership(term: Node, schema: pa.Schema) -> pc.Expression | None:
    """A top-level ``int_column IN (...)`` as a plain is_in, which zone maps
    read (DuckDB's translation answers NULL for a NULL row, which only matters
    under a NOT; at the top, NULL and false both drop the row). None for any
    other term. Integers compare exactly: no NaN, no -0.0, DuckDB types each
    constant as the column."""
    if not (isinstance(term, In) and isinstance(term.operand, Col) and len(term.operand.parts) == 1):
        return None
    index = schema.get_field_index(term.operand.parts[0])
    if index < 0 or not pa.types.is_integer(schema.field(index).type) or not term.values:
        return None
    values = [v.value for v in term.values if isinstance(v, Lit)]
    if len(values) != len(term.values) or not all(type(v) is int for v in values):
        return None
    kind = schema.field(index).type
    try:
        held = pa.array(values, kind)
    except (pa.ArrowInvalid, OverflowError):
        return None
    return pc.field(term.operand.parts[0]).isin(held)


def _leaf_column(node: Node) -> Col | None:
    match node:
        case Binary(left=Col() as column, right=Lit()):
            return column
        case Postfix(operand=Col() as column):
            return column
        case In(operand=Col() as column):
            return column
    return None


# ---------------------------------------------- time windows read from SQL
#: The comparison types of json_serialize_sql, as (lower bound, upper bound) makers of ``column op c``.
_BOUNDS = {
    "COMPARE_EQUAL": (lambda c: c, lambda c: c),
    "COMPARE_GREATERTHANOREQUALTO": (lambda c: c, None),
    "COMPARE_GREATERTHAN": (lambda c: c + 1, None),
    "COMPARE_LESSTHANOREQUALTO": (None, lambda c: c),
    "COMPARE_LESSTHAN": (None, lambda c: c - 1),
}
_FLIPPED = {"COMPARE_EQUAL": "COMPARE_EQUAL", "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
            "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN", "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
            "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN"}
#: Constants whose cast to TIMESTAMP_NS is what DuckDB compares a TIMESTAMP_NS column with.
_TIME_TYPES = ("VARCHAR", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE")
_NO_BOUND = (-(2**63), 2**63 - 1)


def time_windows(con: Any, query: str, params: Any, tables: list[TopicTable]) -> dict[TopicTable, tuple[int, int]]:
    """For each of ``tables`` (registered on ``con`` with a naive nanosecond
    time index), the window [lo, hi] ns that holds every row any reference to
    it in ``query`` can keep, read from DuckDB's own parse of the query
    (``json_serialize_sql``): the comparisons of the time index with a constant
    or a parameter in the top-level AND of the WHERE clause of a SELECT that
    reads the table alone. A table some reference of which has no such bound
    (a join, a subquery, a function of now()) gets no window."""
    try:
        parsed = json.loads(con.sql("select json_serialize_sql($1)", params=[query]).fetchall()[0][0])
    except Exception:  # noqa: BLE001 - a statement DuckDB does not serialize (not a SELECT) gets no window
        return {}
    if parsed.get("error") or len(parsed.get("statements", ())) != 1:
        return {}
    by_name = {t.name.lower(): t for t in tables}
    found: dict[TopicTable, list] = {}
    for select in _nodes_of_type(parsed["statements"][0], "SELECT_NODE"):
        source = select.get("from_table")
        for ref in _nodes_of_type(source, "BASE_TABLE"):
            table = by_name.get(str(ref.get("table_name", "")).lower())
            if table is None:
                continue
            window = None
            if ref is source and not ref.get("schema_name") and not ref.get("catalog_name"):
                window = _window(con, query, params, table, ref, select.get("where_clause"))
            found.setdefault(table, []).append(window)
    out = {}
    for table, windows in found.items():
        if windows and all(w is not None for w in windows):
            out[table] = (min(w[0] for w in windows), max(w[1] for w in windows))
    return out


def _nodes_of_type(tree: Any, kind: str) -> Iterator[dict]:
    """Every dict of ``tree`` whose "type" is ``kind``, depth first (iterative: any depth)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == kind:
                yield node
            pending.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            pending.extend(reversed(node))


def _window(con, query: str, params: Any, table: TopicTable, ref: dict, where: Any) -> tuple[int, int] | None:
    """[lo, hi] ns from the WHERE clause of a SELECT that reads ``ref`` alone; None if unbounded."""
    ts = table.topic.config.timestamp
    qualifiers = {str(ref.get("alias") or ref.get("table_name")).lower()}
    lo, hi = _NO_BOUND
    for term in _and_terms(where):
        kind = term.get("type")
        if kind == "COMPARE_BETWEEN":
            if not _is_column(term.get("input"), ts, qualifiers):
                continue
            a, b = _constant_ns(con, query, params, term.get("lower")), _constant_ns(con, query, params, term.get("upper"))
            if a is not None:
                lo = max(lo, a)
            if b is not None:
                hi = min(hi, b)
        elif kind in _BOUNDS:
            left, right = term.get("left"), term.get("right")
            if _is_column(right, ts, qualifiers):
                left, right, kind = right, left, _FLIPPED[kind]
            if not _is_column(left, ts, qualifiers):
                continue
            c = _constant_ns(con, query, params, right)
            if c is None:
                continue
            low, high = _BOUNDS[kind]
            if low is not None:
                lo = max(lo, low(c))
            if high is not None:
                hi = min(hi, high(c))
    return None if (lo, hi) == _NO_BOUND else (lo, hi)


def _and_terms(node: Any) -> list[dict]:
    if not isinstance(node, dict):
        return []
    if node.get("type") == "CONJUNCTION_AND":
        return [t for child in node.get("children", ()) for t in _and_terms(child)]
    return [node]


def _is_column(node: Any, name: str, qualifiers: set[str]) -> bool:
    if not isinstance(node, dict) or node.get("type") != "COLUMN_REF":
        return False
    parts = [str(p).lower() for p in node.get("column_names", ())]
    return parts == [name.lower()] or (len(parts) == 2 and parts[0] in qualifiers and parts[1] == name.lower())


def _constant_ns(con, query: str, params: Any, node: Any) -> int | None:
    """The nanoseconds of a constant (a literal, a cast of one, a parameter) as
    DuckDB compares it with a TIMESTAMP_NS column: cast to TIMESTAMP_NS."""
    inner = node.get("child") if isinstance(node, dict) and node.get("type") == "OPERATOR_CAST" else node
    if not isinstance(inner, dict) or inner.get("type") not in ("VALUE_CONSTANT", "VALUE_PARAMETER"):
        return None
    if inner.get("type") == "VALUE_PARAMETER":
        if node is not inner:
            return None
        value = _parameter(params, str(inner.get("identifier", "")))
        if value is _MISSING:
            return None
        text, values = "$v", {"v": value}
    else:
        return next((ns for ns in (_time_ns(con, query[a:b], None) for a, b in _source_spans(node, query))
                     if ns is not None), None)
    return _time_ns(con, text, values)


def _time_ns(con, text: str, values: Any) -> int | None:
    try:
        kind, ns = con.sql(f"select typeof({text}), epoch_ns(CAST({text} AS TIMESTAMP_NS))",
                           params=values).fetchall()[0]
    except Exception:  # noqa: BLE001 - a constant that is not a time: no bound from it
        return None
    return ns if kind in _TIME_TYPES and isinstance(ns, int) else None


def _source_spans(node: dict, query: str) -> list[tuple[int, int]]:
    """Where ``node`` may be in ``query``: its own location, and for a cast,
    that joined with its child's (a postfix cast, ``'...'::TIMESTAMP_NS``, is
    located at its ``::TYPE`` alone)."""
    spans = []
    for part in (node, node.get("child")) if node.get("type") == "OPERATOR_CAST" else (node,):
        at, length = part.get("query_location"), part.get("query_location_length")
        if not isinstance(at, int) or not isinstance(length, int) or length <= 0 or at + length > len(query):
            break
        spans.append((at, at + length))
    joined = [(min(a for a, _ in spans), max(b for _, b in spans))] if len(spans) == 2 else []
    return spans[:1] + joined


_MISSING = object()


def _parameter(params: Any, identifier: str) -> Any:
    if isinstance(params, dict):
        return params.get(identifier, _MISSING)
    if isinstance(params, (list, tuple)) and identifier.isdigit() and 1 <= int(identifier) <= len(params):
        return params[int(identifier) - 1]
    return _MISSING


def registered_on(con: Any) -> list[TopicTable]:
    """The tables registered on ``con`` (and not unregistered)."""
    return [t for t in list(_TABLES) if t.connection is con]


__all__ = ["TopicTable", "duckdb", "time_windows", "registered_on"]
