"""Turning input rows (JSON objects, CSV records) into a columnar topic's
Arrow columns, one value at a time, with a reason for every value that does
not fit the schema. ``tidelog produce`` tries Arrow's own readers on a whole
batch first and comes here only for a batch they refuse, to find which rows
are at fault and why."""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

import pyarrow as pa

from .._arrow import to_ns


class RowError(ValueError):
    """A row that does not fit the topic's schema; the message says which field and why."""


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def converter(field: pa.Field, from_text: bool) -> Callable[[Any], Any]:
    """A function from one input value to a value ``pa.array(..., field.type)``
    takes, raising RowError when it does not fit. ``from_text``: the input is
    CSV, where every value is a string and an empty one is null."""
    t = field.type

    def null_or_error() -> None:
        if not field.nullable:
            raise RowError(f"field {field.name!r} is required")
        return None

    def fail(value: Any, what: str) -> RowError:
        return RowError(f"field {field.name!r}: {_describe(value)} is not {what}")

    if pa.types.is_integer(t):
        info = (pa.types.is_signed_integer(t), t.bit_width)
        lo, hi = (-(1 << (info[1] - 1)), (1 << (info[1] - 1)) - 1) if info[0] else (0, (1 << info[1]) - 1)

        def to_int(v: Any) -> Any:
            if v is None or (from_text and v == ""):
                return null_or_error()
            if from_text and isinstance(v, str):
                try:
                    v = int(v.strip())
                except ValueError:
                    raise fail(v, f"an integer ({t})") from None
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise fail(v, f"an integer ({t})")
            if not lo <= v <= hi:
                raise fail(v, f"in the range of {t}")
            return v
        return to_int
    if pa.types.is_floating(t):
        def to_float(v: Any) -> Any:
            if v is None or (from_text and v == ""):
                return null_or_error()
            if from_text and isinstance(v, str):
                try:
                    return float(v)
                except ValueError:
                    raise fail(v, f"a number ({t})") from None
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise fail(v, f"a number ({t})")
            return float(v)
        return to_float
    if pa.types.is_boolean(t):
        words = {"true": True, "false": False, "1": True, "0": False}

        def to_bool(v: Any) -> Any:
            if v is None or (from_text and v == ""):
                return null_or_error()
            if from_text and isinstance(v, str) and v.strip().lower() in words:
                return words[v.strip().lower()]
            if not isinstance(v, bool):
                raise fail(v, "true or false")
            return v
        return to_bool
    if pa.types.is_timestamp(t):
        per_unit = _UNIT_NS[t.unit]

        def to_timestamp(v: Any) -> Any:
            if v is None or (from_text and v == ""):
                return null_or_error()
            if isinstance(v, str):
                text = v.strip()
                if from_text and text.lstrip("-").isdigit():
                    return int(text)
                try:
                    return to_ns(text, f"field {field.name!r}") // per_unit
                except (ValueError, TypeError):
                    raise fail(v, "an ISO-8601 time or an integer") from None
            if isinstance(v, bool) or not isinstance(v, int):
                raise fail(v, f"an ISO-8601 time or an integer ({t.unit} since the epoch)")
            return v
        return to_timestamp
    if pa.types.is_date(t):
        def to_date(v: Any) -> Any:
            if v is None or (from_text and v == ""):
                return null_or_error()
            try:
                return _dt.date.fromisoformat(v.strip())
            except (AttributeError, ValueError):
                raise fail(v, "a date (YYYY-MM-DD)") from None
        return to_date
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        def to_text(v: Any) -> Any:
            if v is None:
                return null_or_error()
            if not isinstance(v, str):
                raise fail(v, "a string")
            return v
        return to_text
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        def to_bytes(v: Any) -> Any:
            if v is None:
                return null_or_error()
            if not isinstance(v, str):
                raise fail(v, "a string")
            return v.encode()
        return to_bytes

    def other(v: Any) -> Any:  # lists, structs, decimals...: Arrow's own conversion decides
        if v is None or (from_text and v == ""):
            return null_or_error()
        try:
            pa.scalar(v, t)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            raise fail(v, f"a {t}") from None
        return v
    return other


class RowConverter:
    """Rows (dicts from JSON, or dicts from a CSV header and record) to the
    columns of ``schema``; ``add`` raises RowError for a row that does not fit
    and keeps nothing of it."""

    def __init__(self, schema: pa.Schema, from_text: bool):
        self.schema = schema
        self.names = set(schema.names)
        self.convert = [(f.name, converter(f, from_text)) for f in schema]
        self.columns: list[list[Any]] = [[] for _ in schema]

    def add(self, row: Any) -> None:
        if not isinstance(row, dict):
            raise RowError(f"expected an object with the fields {', '.join(self.schema.names)}, "
                           f"got {type(row).__name__}")
        unknown = [k for k in row if k not in self.names]
        if unknown:
            raise RowError(f"field {unknown[0]!r} is not in the topic's schema ({', '.join(self.schema.names)})")
        values = [convert(row.get(name)) for name, convert in self.convert]
        for column, value in zip(self.columns, values):
            column.append(value)

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def take(self) -> pa.Table:
        """The rows added so far, as a table of the schema; starts over."""
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(self.columns, self.schema)],
                                     schema=self.schema)
        self.columns = [[] for _ in self.schema]
        return table
