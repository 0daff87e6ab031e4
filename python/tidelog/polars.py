"""Polars over tidelog topics, reading only what a query needs.

``scan(topic, **scan_kwargs)`` is a ``polars.LazyFrame`` over a topic, made with
Polars' IO-plugin interface (``polars.io.plugins.register_io_source``). When it
is collected, Polars hands the source the columns the query uses, the
predicate of its filters and, without a predicate, the number of rows it needs;
tidelog reads only those columns of only the frames that can hold matching
rows, and stops once it has the rows::

    lf = tidelog.polars.scan(sensors)
    lf.filter(pl.col("ts").is_between(t0, t1) & (pl.col("sensor_id") == 7)).select("value").collect()

What is pushed:

* projections: the columns the query uses (``columns=`` of ``topic.scan``);
* ``head(n)`` / ``limit(n)`` without a filter: the scan stops after n rows;
* the predicate, as far as it translates exactly into a ``pyarrow.compute.Expression``
  for ``topic.scan(filter=...)``: comparisons (== != < <= > >=) of a column with
  a literal, ``is_between``, ``is_in``, ``is_null``/``is_not_null``, ``&``, ``|``,
  ``~``, with Polars' semantics kept (NaN above every number, NULLs, time units
  and time zones: a literal is converted to the column's type only when exact).
  Of a top-level ``&`` the parts that translate are pushed, the others not; an
  ``|`` or ``~`` is pushed whole or not at all. Comparisons of the timestamp
  column narrow the read through the time index, and zone maps skip frames.

Not followed: Polars' ``batch_size`` hint (frames go to Polars as they were
appended; with a predicate, gathered into chunks of at least 1 Mi rows).

Polars' own predicate is always applied to what the scan returns as well, so
an answer never depends on what could be pushed. ``lf.explain()`` shows the
scan (``PYTHON[tidelog] SCAN``) with the projection and the predicate Polars
gave it; ``reads=tidelog.polars.Reads()`` records what each collect read
(columns, the filter pushed, frames, bytes, rows; see ``tidelog.analytics``).

Arguments: ``topic`` a ``tidelog.Topic`` (one of byte records reads as its
timestamp, key, value and headers columns); any other keyword is a
``topic.scan`` argument applied to every collect (``start_time``,
``partitions``, ``columns``, ``with_offsets``, ``filter``, ...). Each collect
scans afresh, so it sees every row appended before it started. Errors:
``InvalidArgumentError`` for anything but a topic, the ``topic.scan`` errors
for bad scan arguments (raised by ``scan``, before any collect), and
``ImportError`` when Polars is missing; errors of a collect (a closed log,
damage) are raised by ``collect``. Dictionary columns arrive as
``pl.Categorical``, as ``pl.from_arrow`` makes them; uncompressed frames reach
Polars without a copy (a filter's chunks gather up to 1 Mi rows of them).
A LazyFrame may be collected from any thread, any number of times.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from .analytics._reads import Read, Reads, TimeWindow
from .errors import InvalidArgumentError

__all__ = ["scan", "Read", "Reads"]

#: The columns ``with_offsets=True`` adds: not topic columns, so never in a pushed filter.
_OFFSET_COLUMNS = ("_partition", "_offset")


def _polars():
    try:
        import polars
        from polars.io.plugins import register_io_source  # noqa: F401 - Polars >= 1.0
    except ImportError as e:
        raise ImportError("tidelog.polars needs polars >= 1.0 (pip install polars)") from e
    return polars


def scan(topic: Any, *, reads: Reads | None = None, **scan_kwargs: Any) -> Any:
    """A ``polars.LazyFrame`` over ``topic`` with projection, predicate and
    limit pushdown (see the module docstring). ``reads``: a ``Reads`` that
    records what every collect read."""
    pl = _polars()
    from polars.io.plugins import register_io_source

    if not isinstance(getattr(topic, "schema", None), pa.Schema) or not hasattr(topic, "scan"):
        raise InvalidArgumentError(f"tidelog.polars.scan takes a tidelog Topic, not {topic!r}")
    if reads is not None and not isinstance(reads, Reads):
        raise InvalidArgumentError(f"reads must be a tidelog.polars.Reads, not {type(reads).__name__}")
    scan_kwargs = dict(scan_kwargs)
    scan_kwargs.setdefault("columns", None)
    scan_kwargs.setdefault("filter", None)
    probe = topic.scan(**scan_kwargs)  # checks the arguments now, not at the first collect
    arrow_schema = probe.schema
    schema = pl.DataFrame(arrow_schema.empty_table()).schema

    def source(with_columns, predicate, n_rows, batch_size) -> Iterator[Any]:
        return _frames(pl, topic, scan_kwargs, arrow_schema, schema, with_columns, predicate, n_rows, reads)

    return register_io_source(source, schema=schema, explain_name="tidelog",
                              explain_detail=f"topic {topic.name!r}")


def _frames(pl, topic, scan_kwargs: dict, arrow_schema: pa.Schema, schema, with_columns, predicate, n_rows,
            reads: Reads | None) -> Iterator[Any]:
    """The frames of one collect: read what the query needs, then apply its predicate."""
    wanted = list(schema.names()) if with_columns is None else list(with_columns)
    needed = list(wanted)
    pushed = None
    # Comparisons of the time index become the scan's time range (unless the scan has its own range).
    time_index = topic.config.timestamp
    own_range = scan_kwargs.get("start_time") is not None or scan_kwargs.get("end_time") is not None
    window = None if own_range or time_index is None or time_index not in topic.schema.names else TimeWindow()
    if predicate is not None:
        for name in predicate.meta.root_names():
            if name not in needed:
                needed.append(name)
        pushed = pushdown_filter(predicate, topic.schema, time_index, window)
    row_filter = scan_kwargs["filter"]
    if pushed is not None:
        row_filter = pushed if row_filter is None else row_filter & pushed
    columns = [c for c in needed if c not in _OFFSET_COLUMNS or c in topic.schema.names]
    if not columns and not any(c in _OFFSET_COLUMNS for c in needed):
        # A frame of no columns has no rows in Polars: read the narrowest column for the row count.
        columns = [_narrowest(arrow_schema)]
    kwargs = dict(scan_kwargs, columns=columns, filter=row_filter)
    if window:
        kwargs.update(window.scan_kwargs())
    the_scan = topic.scan(**kwargs)
    read = Read(the_scan, columns, row_filter, window.range() if window else None)
    if reads is not None:
        reads._add(read)
    left = n_rows
    produced = False
    for chunk in _chunks(the_scan, read, CHUNK_ROWS if predicate is not None else 0):
        df = pl.from_arrow(chunk, rechunk=False)  # the frames' buffers as they are: no copy
        if predicate is not None:  # one plan for both: each collect costs a round trip to Polars' threads
            df = df.lazy().filter(predicate).select(wanted).collect()
        elif df.columns != wanted:
            df = df.select(wanted)
        if left is not None:
            if df.height >= left:
                df = df.head(left)
                left = 0
            else:
                left -= df.height
        if df.height:
            produced = True
            yield df
        if left == 0:
            break
    if not produced:
        yield pl.DataFrame(schema=schema).select(wanted)


#: Frames are handed to Polars' filter in chunks of at least this many rows (a
#: filter costs one plan whatever its size; the chunk is zero-copy views of
#: the frames when they are uncompressed).
CHUNK_ROWS = 1 << 20


def _chunks(scan: Any, read: Read, rows: int) -> Iterator[pa.RecordBatch | pa.Table]:
    """The scan's batches, counted into ``read``; gathered into tables of at
    least ``rows`` rows when ``rows`` (the last may be smaller)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in scan:
        read.rows += batch.num_rows
        if not rows:
            yield batch
            continue
        held.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(held)
            held, count = [], 0
    if held:
        yield pa.Table.from_batches(held)


def _narrowest(schema: pa.Schema) -> str:
    def width(field: pa.Field) -> int:
        t = field.type
        return t.bit_width if pa.types.is_primitive(t) else 1 << 16

    return min(schema, key=width).name


# ------------------------------------------------------ predicate pushdown
class _Untranslatable(Exception):
    """A part of a Polars predicate that no pyarrow expression keeps exactly."""


def pushdown_filter(predicate: Any, schema: pa.Schema, time_index: str | None = None,
                    window: TimeWindow | None = None) -> pc.Expression | None:
    """The part of a Polars predicate that translates exactly into a
    ``pyarrow.compute.Expression`` over ``schema`` (the topic's), as a
    conjunction; None if no part does. Rows it drops are rows the predicate
    drops, so a scan filtered by it and then by the predicate returns what the
    predicate alone would. With a ``window``, the comparisons of ``time_index``
    in the top-level conjunction go into it instead (see TimeWindow)."""
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # noqa: BLE001 - an expression Polars cannot serialize pushes nothing
        return None
    kept = []
    for term in _conjuncts(tree):
        try:
            if window is not None and _time_bounds(term, schema, time_index, window):
                continue
            kept.append(_translate(term, schema, top=True))
        except _Untranslatable:
            continue
    if not kept:
        return None
    out = kept[0]
    for term in kept[1:]:
        out = out & term
    return out


def _time_bounds(term: dict, schema: pa.Schema, time_index: str | None, window: TimeWindow) -> bool:
    """Adds ``term`` to ``window`` when it compares the time index with a
    constant (or is an ``is_between`` of it): True; else False."""
    if time_index is None:
        return False
    comparisons = []
    binary = term.get("BinaryExpr") if isinstance(term, dict) else None
    function = term.get("Function") if isinstance(term, dict) else None
    if binary is not None and binary["op"] in _COMPARE and binary["op"] != "NotEq":
        op = _COMPARE[binary["op"]]
        if _column_name(binary["left"]) == time_index:
            comparisons.append((op, binary["right"]))
        elif _column_name(binary["right"]) == time_index:
            comparisons.append((_FLIPPED[op], binary["left"]))
    elif function is not None:
        boolean = function["function"].get("Boolean") if isinstance(function["function"], dict) else None
        inputs = function["input"]
        if (isinstance(boolean, dict) and "IsBetween" in boolean and len(inputs) == 3
                and _column_name(inputs[0]) == time_index):
            closed = boolean["IsBetween"]["closed"]
            comparisons.append((">=" if closed in ("Both", "Left") else ">", inputs[1]))
            comparisons.append(("<=" if closed in ("Both", "Right") else "<", inputs[2]))
    if not comparisons:
        return False
    column_type = schema.field(time_index).type
    bounds = []
    for op, node in comparisons:
        value = _as_column_type(_constant(node), column_type)
        if value is None or not value.is_valid:
            return False
        ns = value.cast(pa.int64()).as_py()
        if pa.types.is_timestamp(column_type):
            ns *= _UNIT_NS[column_type.unit]
        bounds.append((op, ns))
    for op, ns in bounds:
        window.add(op, ns)
    return True


_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _conjuncts(node: dict) -> list[dict]:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if binary is not None and binary["op"] in ("And", "LogicalAnd"):
        return _conjuncts(binary["left"]) + _conjuncts(binary["right"])
    return [node]


_COMPARE = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _translate(node: Any, schema: pa.Schema, top: bool = False) -> pc.Expression:
    """``node`` as an expression that is true, false or null where Polars' is;
    ``top``: a term of the top-level AND, where false and null both drop a row."""
    if not isinstance(node, dict) or len(node) != 1:
        raise _Untranslatable(node)
    (kind, body), = node.items()
    if kind == "Column" and isinstance(body, str):  # a boolean column as a predicate of its own
        field = _field(body, schema)
        if not pa.types.is_boolean(schema.field(body).type):
            raise _Untranslatable(node)
        return field
    if kind == "BinaryExpr":
        op = body["op"]
        if op in ("And", "LogicalAnd"):
            return _translate(body["left"], schema) & _translate(body["right"], schema)
        if op in ("Or", "LogicalOr"):
            return _translate(body["left"], schema) | _translate(body["right"], schema)
        if op in _COMPARE:
            left, right = body["left"], body["right"]
            if _column_name(left) is not None:
                return _compare(_COMPARE[op], _column_name(left), _constant(right), schema)
            if _column_name(right) is not None:
                return _compare(_FLIPPED[_COMPARE[op]], _column_name(right), _constant(left), schema)
        raise _Untranslatable(node)
    if kind == "Function":
        function, inputs = body["function"], body["input"]
        boolean = function.get("Boolean") if isinstance(function, dict) else None
        if boolean == "Not" and len(inputs) == 1:
            return ~_translate(inputs[0], schema)
        if boolean in ("IsNull", "IsNotNull") and len(inputs) == 1 and _column_name(inputs[0]) is not None:
            field = _field(_column_name(inputs[0]), schema)
            return field.is_null() if boolean == "IsNull" else field.is_valid()
        if isinstance(boolean, dict) and "IsBetween" in boolean and len(inputs) == 3:
            name = _column_name(inputs[0])
            if name is None:
                raise _Untranslatable(node)
            closed = boolean["IsBetween"]["closed"]
            low = _compare(">=" if closed in ("Both", "Left") else ">", name, _constant(inputs[1]), schema)
            high = _compare("<=" if closed in ("Both", "Right") else "<", name, _constant(inputs[2]), schema)
            return low & high
        if isinstance(boolean, dict) and "IsIn" in boolean and len(inputs) == 2:
            name = _column_name(inputs[0])
            if name is None or boolean["IsIn"].get("nulls_equal"):
                raise _Untranslatable(node)
            return _is_in(name, _constant(inputs[1], one=False), schema, top)
    raise _Untranslatable(node)


def _column_name(node: Any) -> str | None:
    if isinstance(node, dict) and set(node) == {"Column"} and isinstance(node["Column"], str):
        return node["Column"]
    return None


def _field(name: str, schema: pa.Schema) -> pc.Expression:
    if schema.get_field_index(name) < 0:  # not a topic column (or a repeated name)
        raise _Untranslatable(name)
    return pc.field(name)


def _constant(node: Any, one: bool = True) -> pa.Array:
    """The value of an expression that reads no column, evaluated by Polars
    itself (literals of every kind, casts of them), as an Arrow array: one
    value (``one``) or the values of a list (``is_in``)."""
    if _reads_a_column(node):
        raise _Untranslatable(node)
    import polars as pl

    try:
        expr = pl.Expr.deserialize(json.dumps(node).encode(), format="json")
        series = pl.select(expr.alias("constant")).to_series()
    except Exception as e:  # noqa: BLE001 - a constant Polars cannot evaluate alone is not pushed
        raise _Untranslatable(node) from e
    if one:
        if len(series) != 1 or series.dtype == pl.List or series.dtype == pl.Array:
            raise _Untranslatable(node)
        return series.to_arrow()
    if series.dtype in (pl.List, pl.Array):
        if len(series) != 1:
            raise _Untranslatable(node)
        series = series.explode()
    return series.to_arrow()


def _reads_a_column(node: Any) -> bool:
    if isinstance(node, dict):
        return any(k in ("Column", "Columns", "Nth", "Selector", "Wildcard") or _reads_a_column(v)
                   for k, v in node.items())
    if isinstance(node, list):
        return any(_reads_a_column(v) for v in node)
    return False


def _compare(op: str, name: str, constant: pa.Array, schema: pa.Schema) -> pc.Expression:
    """``column op constant`` as Polars evaluates it."""
    field = _field(name, schema)
    column_type = schema.field(name).type
    value = _as_column_type(constant, column_type)
    if value is None or not value.is_valid:  # a comparison with null is null for every row: not pushed
        raise _Untranslatable(name)
    value_type = value.type
    if pa.types.is_dictionary(column_type):
        if op not in ("==", "!="):  # Polars orders categories its own way
            raise _Untranslatable(name)
    if pa.types.is_floating(value_type):
        v = value.as_py()
        if v != v:  # NaN: Polars equates NaN with NaN and orders it above every number
            raise _Untranslatable(name)
        compared = _OPERATORS[op](field, value)
        if op in (">", ">="):
            return compared | (field != field)  # NaN rows: Polars orders them above every number
        return compared
    return _OPERATORS[op](field, value)


_OPERATORS = {"==": lambda f, v: f == v, "!=": lambda f, v: f != v, "<": lambda f, v: f < v,
              "<=": lambda f, v: f <= v, ">": lambda f, v: f > v, ">=": lambda f, v: f >= v}


def _is_in(name: str, values: pa.Array, schema: pa.Schema, top: bool = False) -> pc.Expression:
    field = _field(name, schema)
    column_type = schema.field(name).type
    value_type = column_type.value_type if pa.types.is_dictionary(column_type) else column_type
    if pa.types.is_floating(value_type):  # Polars' float equality (NaN, -0.0) is not is_in's bit equality
        raise _Untranslatable(name)
    held = []
    for i in range(len(values)):
        value = _as_column_type(values[i:i + 1], column_type)
        if value is None:
            raise _Untranslatable(name)
        if value.is_valid:  # null never equals a row (nulls_equal=False)
            held.append(value.as_py())
    if not held:
        member = pc.scalar(False)
    else:
        member = field.isin(pa.array(held, type=value_type))
    if top:  # false and null both drop the row; a plain is_in is what zone maps read
        return member
    # Polars answers null for a null row, where pyarrow's is_in answers false (and ~ would turn it true).
    return pc.if_else(field.is_valid(), member, pa.scalar(None, pa.bool_()))


def _as_column_type(constant: pa.Array, column_type: pa.DataType) -> pa.Scalar | None:
    """The constant as a scalar of the column's (value) type when the
    conversion is exact and keeps Polars' meaning; None otherwise."""
    target = column_type.value_type if pa.types.is_dictionary(column_type) else column_type
    source = constant.type
    if pa.types.is_dictionary(source):
        constant = constant.cast(source.value_type)
        source = constant.type
    if pa.types.is_null(source):
        return pa.scalar(None, target)
    same_family = (
        (pa.types.is_integer(target) and pa.types.is_integer(source))
        or (pa.types.is_floating(target) and (pa.types.is_floating(source) or pa.types.is_integer(source)))
        or (_is_text(target) and _is_text(source))
        or (_is_bytes(target) and _is_bytes(source))
        or (pa.types.is_boolean(target) and pa.types.is_boolean(source))
        or (pa.types.is_date32(target) and pa.types.is_date32(source))
        or (pa.types.is_timestamp(target) and pa.types.is_timestamp(source)
            and (target.tz is None) == (source.tz is None))
    )
    if not same_family:
        return None
    if pa.types.is_floating(target) and pa.types.is_integer(source):
        v = constant[0].as_py()
        if v is not None and float(v) != v:  # beyond float precision: Polars may compare otherwise
            return None
    try:
        converted = constant.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if pa.types.is_floating(target) and pa.types.is_floating(source) and source.bit_width > target.bit_width:
        # A float64 literal over a float32 column: Polars compares in float64; exact only if it fits
        v, back = constant[0].as_py(), converted.cast(source)[0].as_py()
        if v is not None and v == v and back != v:
            return None
    return converted[0]


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
