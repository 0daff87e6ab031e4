"""A ticket's filter with its columns named again (``named``), so that the
scan reads what it promises: pyarrow turns Substrait's column positions into
``FieldPath`` references, which tidelog's filter reader (``tidelog._filter``:
time bounds, per-frame min/max skipping) does not follow.

The filter's Substrait message is read here (protobuf's wire format, the
part of Substrait that pyarrow writes for comparisons, boolean logic, null
checks and literals), rebuilt as a pyarrow expression over column names, and
used only if that expression, written as Substrait again, reads back as the
same tree as the one received (the function anchors aside): then both are the
same expression. Anything else (another producer's encoding, a function or
literal this reader does not rebuild) keeps the filter as received: still
applied, just without the skipping.
"""
from __future__ import annotations

import struct
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: Substrait function names -> the Arrow functions pyarrow's consumer calls.
_FUNCTIONS = {"equal": "equal", "not_equal": "not_equal", "lt": "less", "lte": "less_equal", "gt": "greater",
              "gte": "greater_equal", "and": "and_kleene", "or": "or_kleene", "not": "invert",
              "is_null": "is_null", "is_not_null": "is_valid"}
# Expression.Literal: field number -> (wire decoder, Arrow type)
_LITERALS = {1: ("varint", pa.bool_()), 2: ("varint", pa.int8()), 3: ("varint", pa.int16()),
             5: ("varint", pa.int32()), 7: ("varint", pa.int64()), 10: ("f32", pa.float32()),
             11: ("f64", pa.float64()), 12: ("bytes", pa.string()), 13: ("bytes", pa.binary()),
             16: ("varint", pa.date32())}


class _Unsupported(Exception):
    pass


def named(raw: bytes, expr: pc.Expression, schema: pa.Schema) -> pc.Expression:
    """``expr`` (deserialized from ``raw`` against ``schema``) with column
    names instead of positions, or ``expr`` itself (see the module docstring)."""
    try:
        tree = _tree(raw)
        rebuilt = _build(tree, schema.names)
        if _tree(bytes(rebuilt.to_substrait(schema))) == tree:
            return rebuilt
    except Exception:  # noqa: BLE001 - any surprise: the filter as received
        pass
    return expr


# ------------------------------------------------------- protobuf wire format
def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of every field of a message: an int (varint),
    bytes (length-delimited) or the raw 4 or 8 bytes (fixed32/64)."""
    out, at, n = [], 0, len(buf)
    while at < n:
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(buf, at)
        elif wire == 2:
            length, at = _varint(buf, at)
            if at + length > n:
                raise _Unsupported("truncated")
            value, at = bytes(buf[at:at + length]), at + length
        elif wire == 5:
            value, at = bytes(buf[at:at + 4]), at + 4
        elif wire == 1:
            value, at = bytes(buf[at:at + 8]), at + 8
        else:
            raise _Unsupported(f"wire type {wire}")
        out.append((number, value))
    return out


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(buf) or shift > 63:
            raise _Unsupported("bad varint")
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


# --------------------------------------------------- Substrait ExtendedExpression
def _tree(raw: bytes) -> tuple:
    """The filter's expression as nested tuples: each Expression as
    (kind, ...), a scalar function by its name (not its anchor), every field
    this reader does not interpret kept as raw bytes."""
    functions: dict[int, str] = {}
    expressions = []
    for number, value in _fields(raw):
        if number == 2:  # SimpleExtensionDeclaration
            for kind, declaration in _fields(value):
                if kind == 3:  # extension_function: anchor (2), name (3)
                    fields = dict(_fields(declaration))
                    functions[fields.get(2, 0)] = fields.get(3, b"").decode()
        elif number == 3:  # ExpressionReference: expression (1)
            expressions += [v for n, v in _fields(value) if n == 1]
    if len(expressions) != 1:
        raise _Unsupported("not one expression")
    return _expression(expressions[0], functions)


def _expression(buf: bytes, functions: dict[int, str]) -> tuple:
    ((number, body),) = _fields(buf)  # one rex_type
    if number == 1:
        return ("literal", tuple(_fields(body)))
    if number == 2:  # FieldReference: direct_reference (1) of a struct_field (2), from the root
        parts = _fields(body)
        direct = [v for n, v in parts if n == 1]
        if len(direct) != 1 or any(n not in (1, 4) for n, _ in parts):
            raise _Unsupported("reference")
        ((kind, segment),) = _fields(direct[0])
        struct_field = dict(_fields(segment)) if kind == 2 else None
        if struct_field is None or 2 in struct_field:
            raise _Unsupported("nested reference")
        return ("field", struct_field.get(1, 0))
    if number == 3:  # ScalarFunction: reference (1), arguments (4), the rest compared as bytes
        name, arguments, rest = None, [], []
        for n, v in _fields(body):
            if n == 1:
                name = functions[v]
            elif n == 4:
                ((kind, value),) = _fields(v)
                if kind != 3:
                    raise _Unsupported("argument")
                arguments.append(_expression(value, functions))
            else:
                rest.append((n, v))
        return ("call", name or functions[0], tuple(arguments), tuple(rest))
    raise _Unsupported(f"expression {number}")


def _build(tree: tuple, names: list[str]) -> pc.Expression:
    kind = tree[0]
    if kind == "field":
        return pc.field(names[tree[1]])
    if kind == "literal":
        return pc.scalar(_literal(dict(tree[1])))
    name, arguments = tree[1].split(":")[0], tree[2]
    if name not in _FUNCTIONS:
        raise _Unsupported(name)
    return pc.Expression._call(_FUNCTIONS[name], [_build(a, names) for a in arguments])


def _literal(fields: dict) -> pa.Scalar:
    for number, (wire, type_) in _LITERALS.items():
        if number not in fields:
            continue
        value = fields[number]
        if wire == "varint":
            if value >= 1 << 63:
                value -= 1 << 64
            return pa.scalar(bool(value) if type_ == pa.bool_() else value, type_)
        if wire == "f32":
            return pa.scalar(struct.unpack("<f", value)[0], type_)
        if wire == "f64":
            return pa.scalar(struct.unpack("<d", value)[0], type_)
        return pa.scalar(value.decode() if type_ == pa.string() else value, type_)
    raise _Unsupported("literal")
