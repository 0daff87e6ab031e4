"""Type coercions from decoded JSON (and topic-level strings) to a column's Arrow type.

A coercer takes one value and returns what ``pa.array(values, type)`` takes
for that type, or raises ``BadValue`` saying why the value does not fit. The
common case (the JSON value already has the column's type) costs one type
check; the rules are in the guide (docs/guide/mqtt.md, "Type coercions").
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

import pyarrow as pa

Coercer = Callable[[Any], Any]

_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class BadValue(ValueError):
    """A value that does not fit its column (the message says why)."""


def type_from_name(name: str) -> pa.DataType:
    """``"int32"``, ``"float64"``, ``"string"``, ``"bool"``, ``"timestamp[ms]"``,
    ``"timestamp[ns, UTC]"`` ...: the Arrow type of that name (ValueError if none)."""
    text = name.strip()
    if text.startswith("timestamp[") and text.endswith("]"):
        unit, _, tz = text[len("timestamp["):-1].partition(",")
        if unit.strip() not in _UNIT_NS:
            raise ValueError(f"timestamp unit {unit.strip()!r} is not one of s, ms, us, ns")
        return pa.timestamp(unit.strip(), tz=tz.strip() or None)
    aliases = {"str": "string", "utf8": "string", "boolean": "bool", "float": "float32", "double": "float64",
               "bytes": "binary"}
    text = aliases.get(text, text)
    factory = getattr(pa, text, None)
    if text not in _SIMPLE or factory is None:
        raise ValueError(f"unknown column type {name!r} (int8..int64, uint8..uint64, float32, float64, bool, "
                         "string, large_string, binary, timestamp[s|ms|us|ns])")
    return factory()


_SIMPLE = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
           "bool", "string", "large_string", "binary", "large_binary"}


def coercer_for(typ: pa.DataType, unit: str | None = None) -> Coercer:
    """The coercer into ``typ``; ``unit`` (timestamps): the unit of numeric
    epoch values (default: the column's own unit)."""
    if pa.types.is_integer(typ):
        return _int_coercer(typ)
    if pa.types.is_floating(typ):
        return _to_float
    if pa.types.is_boolean(typ):
        return _to_bool
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _to_str
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return _to_bytes
    if pa.types.is_timestamp(typ):
        return _timestamp_coercer(typ.unit, unit or typ.unit)
    raise ValueError(f"columns of type {typ} cannot be mapped from JSON (use integers, floats, bool, strings, "
                     "binary or timestamps)")


def _int_coercer(typ: pa.DataType) -> Coercer:
    bits = typ.bit_width
    lo, hi = (0, 2 ** bits - 1) if pa.types.is_unsigned_integer(typ) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    def to_int(v: Any) -> int:
        t = type(v)
        if t is not int:
            if t is float and v.is_integer():
                v = int(v)
            elif t is str:
                try:
                    v = int(v)
                except ValueError:
                    raise BadValue(f"{v!r} is not an integer") from None
            else:
                raise BadValue(f"{_show(v)} is not an integer")
        if not lo <= v <= hi:
            raise BadValue(f"{v} is out of range for {typ}")
        return v

    return to_int


def _to_float(v: Any) -> float:
    t = type(v)
    if t is float or t is int:
        return v
    if t is str:
        try:
            return float(v)
        except ValueError:
            raise BadValue(f"{v!r} is not a number") from None
    raise BadValue(f"{_show(v)} is not a number")


_TRUE = {"true": True, "1": True, "false": False, "0": False}


def _to_bool(v: Any) -> bool:
    t = type(v)
    if t is bool:
        return v
    if t is int and v in (0, 1):
        return bool(v)
    if t is str and v.lower() in _TRUE:
        return _TRUE[v.lower()]
    raise BadValue(f"{_show(v)} is not a boolean")


def _to_str(v: Any) -> str:
    t = type(v)
    if t is str:
        return v
    if t is int or t is float or t is bool:
        return json.dumps(v)
    if t is dict or t is list:
        return json.dumps(v, separators=(",", ":"))
    raise BadValue(f"{_show(v)} is not a string")


def _to_bytes(v: Any) -> bytes:
    if type(v) is bytes:
        return v
    if type(v) is str:
        return v.encode()
    raise BadValue(f"{_show(v)} is not a string")


def _timestamp_coercer(column_unit: str, value_unit: str) -> Coercer:
    per_value = _UNIT_NS[value_unit]
    per_column = _UNIT_NS[column_unit]

    def to_timestamp(v: Any) -> int:
        t = type(v)
        if t is int:
            return v if per_value == per_column else v * per_value // per_column
        if t is float:
            return int(round(v * per_value / per_column))
        if t is str:
            return iso_to_unit(v, per_column)
        raise BadValue(f"{_show(v)} is not a time (a number in {value_unit} since the epoch or ISO-8601 text)")

    return to_timestamp


def iso_to_unit(text: str, per_unit: int) -> int:
    """ISO-8601 text (naive = UTC) as an int in units of ``per_unit`` ns since the epoch."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a time (ISO-8601 text or a number)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    delta = t - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return ns // per_unit


def ns_to_unit(ns: int, typ: pa.DataType) -> int:
    """``ns`` nanoseconds since the epoch in the unit of timestamp type ``typ``."""
    return ns // _UNIT_NS[typ.unit]


def _show(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (dict, list, bool, type(None))) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


UNITS = tuple(_UNIT_NS)
