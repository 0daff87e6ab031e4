"""DoGet tickets: a versioned JSON object naming a topic and the selection of
``topic.scan`` to stream (docs/guide/flight.md, "Tickets").

Both sides live here: ``ticket()`` builds one on a client, ``Request.parse``
checks one on the server before anything is read (a ``TicketError`` names the
field and what it takes).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import operator
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from .. import _arrow
from ._substrait import named

#: The ticket format this build writes and reads ("version" in the JSON).
TICKET_VERSION = 1
#: Every field a version-1 ticket may hold; "version" and "topic" are required.
TICKET_FIELDS = ("version", "topic", "partitions", "start_offset", "end_offset", "start_time", "end_time",
                 "columns", "filter", "with_offsets", "on_corrupt")


class TicketError(ValueError):
    """A ticket (or a command descriptor holding one) that is not a valid
    ticket: not JSON, an unknown field or version, a field of the wrong type."""


def ticket(topic: Any, start_offset: Any = None, end_offset: Any = None, *, start_time: Any = None,
           end_time: Any = None, partitions: int | Iterable[int] | None = None, columns: list[str] | None = None,
           filter: pc.Expression | None = None, schema: pa.Schema | None = None,  # noqa: A002 - pyarrow's name
           with_offsets: bool = False, on_corrupt: str = "raise") -> flight.Ticket:
    """A ``pyarrow.flight.Ticket`` that streams what ``topic.scan(...)`` with
    the same arguments returns: pass it to ``FlightClient.do_get``.

    ``topic``: the topic's name, or a ``tidelog.Topic`` (its name and schema).
    Offsets: an int for every partition, or a dict ``{partition: offset}``.
    Times: int nanoseconds, ``datetime`` (naive = UTC), ISO-8601 string,
    ``numpy.datetime64`` or ``pandas.Timestamp``; sent as int nanoseconds.
    ``filter``: a ``pyarrow.compute.Expression``, sent as Substrait, which
    refers to columns by position: it needs the topic's full ``schema``
    (taken from a ``Topic``; from a server, ``client.get_schema(descriptor)``
    or ``FlightInfo.schema`` of ``list_flights``). ``on_corrupt="skip"``
    steps over damaged data (the server warns and counts it) instead of
    ending the stream with a ``CorruptionError``.
    """
    return flight.Ticket(ticket_json(topic, start_offset, end_offset, start_time=start_time, end_time=end_time,
                                     partitions=partitions, columns=columns, filter=filter, schema=schema,
                                     with_offsets=with_offsets, on_corrupt=on_corrupt))


def ticket_json(topic: Any, start_offset: Any = None, end_offset: Any = None, *, start_time: Any = None,
                end_time: Any = None, partitions: Any = None, columns: Any = None, filter: Any = None,  # noqa: A002
                schema: pa.Schema | None = None, with_offsets: bool = False, on_corrupt: str = "raise") -> bytes:
    """The JSON bytes of ``ticket()`` (also what a command descriptor of
    ``get_flight_info`` and ``get_schema`` holds)."""
    if not isinstance(topic, str):
        name = getattr(topic, "name", None)
        if not isinstance(name, str) or not isinstance(getattr(topic, "schema", None), pa.Schema):
            raise TypeError(f"topic must be a topic name (str) or a tidelog.Topic, not {type(topic).__name__}")
        schema = topic.schema if schema is None else schema
        topic = name
    out: dict[str, Any] = {"version": TICKET_VERSION, "topic": topic}
    if partitions is not None:
        one = hasattr(partitions, "__index__")  # an int, numpy's too
        out["partitions"] = [operator.index(partitions)] if one else [operator.index(p) for p in partitions]
    for key, value in (("start_offset", start_offset), ("end_offset", end_offset)):
        if value is not None:
            out[key] = ({str(int(p)): _arrow.as_offset(v, key) for p, v in value.items()}
                        if isinstance(value, dict) else _arrow.as_offset(value, key))
    for key, value in (("start_time", start_time), ("end_time", end_time)):
        if value is not None:
            out[key] = _arrow.to_ns(value, key)
    if columns is not None:
        if isinstance(columns, str):
            raise TypeError("columns must be a list of column names, not a str")
        out["columns"] = list(columns)
    if filter is not None:
        if not isinstance(filter, pc.Expression):
            raise TypeError(f"filter must be a pyarrow.compute.Expression, not {type(filter).__name__}")
        if schema is None:
            raise TypeError("a filter is sent as Substrait, which refers to columns by position: pass the "
                            "topic's schema (schema=client.get_schema(tidelog.flight.descriptor(name)).schema) "
                            "or a tidelog.Topic")
        out["filter"] = encode_filter(filter, schema)
    if with_offsets:
        out["with_offsets"] = True
    if on_corrupt != "raise":
        if on_corrupt != "skip":
            raise ValueError(f"on_corrupt must be 'raise' or 'skip', not {on_corrupt!r}")
        out["on_corrupt"] = on_corrupt
    return json.dumps(out, separators=(",", ":")).encode()


def encode_filter(expr: pc.Expression, schema: pa.Schema) -> str:
    """``expr`` as base64 Substrait (an ExtendedExpression bound to ``schema``)."""
    try:
        return base64.b64encode(bytes(expr.to_substrait(schema))).decode("ascii")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        reason = str(e).splitlines()[0]
        if "Literal" in reason:  # pyarrow's Substrait writes no timestamp literals
            reason += "; put time bounds in start_time/end_time instead (they also use the time index)"
        raise ValueError(f"filter {expr} cannot be sent as Substrait against {schema.names}: {reason}") from None


def decode_filter(text: Any, schema: pa.Schema) -> pc.Expression:
    """The expression of a ticket's "filter", checked to have been bound to
    ``schema`` (the topic's): Substrait refers to columns by position. Its
    columns are named again where that can be done exactly (``named``), so
    that the scan skips what the filter rules out."""
    if not isinstance(text, str):
        raise TicketError(f"ticket field 'filter' must be a base64 string of Substrait, not {_json_type(text)}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TicketError("ticket field 'filter' is not valid base64") from None
    import pyarrow.substrait as substrait

    try:
        bound = substrait.deserialize_expressions(raw)
    except (pa.ArrowException, ValueError) as e:
        raise TicketError(f"ticket field 'filter' is not a Substrait ExtendedExpression: "
                          f"{str(e).splitlines()[0]}") from None
    if len(bound.expressions) != 1:
        raise TicketError(f"ticket field 'filter' must hold one expression, not {len(bound.expressions)}")
    if not _same_fields(bound.schema, schema):
        raise TicketError(f"the filter was built against the columns {_describe(bound.schema)}, but the topic "
                          f"has {_describe(schema)}: Substrait refers to columns by position, so build it with "
                          f"the topic's schema")
    (expr,) = bound.expressions.values()
    return named(raw, expr, schema)


def _same_fields(a: pa.Schema, b: pa.Schema) -> bool:
    return a.names == b.names and all(x.type.equals(y.type) for x, y in zip(a, b))


def _describe(schema: pa.Schema) -> str:
    return "[" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "]"


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


@dataclasses.dataclass(frozen=True)
class Request:
    """A parsed ticket: the topic and the keyword arguments of ``topic.scan``
    (the filter still base64 Substrait: it is decoded against the topic's schema)."""

    topic: str
    scan: dict
    filter: str | None

    @classmethod
    def parse(cls, raw: bytes) -> "Request":
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TicketError(f"the ticket is not JSON ({e}); build it with tidelog.flight.ticket(...)") from None
        if not isinstance(doc, dict):
            raise TicketError(f"the ticket must be a JSON object, not {_json_type(doc)}")
        unknown = sorted(k for k in doc if k not in TICKET_FIELDS)
        if unknown:
            raise TicketError(f"unknown ticket fields {unknown}; a version-{TICKET_VERSION} ticket has "
                              f"{list(TICKET_FIELDS)}")
        version = doc.get("version")
        if type(version) is not int or version != TICKET_VERSION:
            raise TicketError(f"ticket 'version' must be {TICKET_VERSION} (the version this server reads), "
                              f"not {version!r}")
        topic = doc.get("topic")
        if not isinstance(topic, str):
            raise TicketError(f"ticket field 'topic' must be a topic name (a string), not {_json_type(topic)}")
        scan: dict[str, Any] = {}
        if "partitions" in doc:
            parts = doc["partitions"]
            if not isinstance(parts, list) or not all(type(p) is int for p in parts):
                raise TicketError("ticket field 'partitions' must be an array of partition numbers")
            scan["partitions"] = parts
        for key in ("start_offset", "end_offset"):
            if key in doc:
                scan[key] = _offset(key, doc[key])
        for key in ("start_time", "end_time"):
            if key in doc:
                value = doc[key]
                if type(value) is not int and not isinstance(value, str):
                    raise TicketError(f"ticket field {key!r} must be int nanoseconds since the epoch or an "
                                      f"ISO-8601 string, not {_json_type(value)}")
                scan[key] = value
        if "columns" in doc:
            columns = doc["columns"]
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise TicketError("ticket field 'columns' must be an array of column names")
            scan["columns"] = columns
        if "with_offsets" in doc:
            if not isinstance(doc["with_offsets"], bool):
                raise TicketError(f"ticket field 'with_offsets' must be true or false, not "
                                  f"{_json_type(doc['with_offsets'])}")
            scan["with_offsets"] = doc["with_offsets"]
        if "on_corrupt" in doc:
            if doc["on_corrupt"] not in ("raise", "skip"):
                raise TicketError(f"ticket field 'on_corrupt' must be \"raise\" or \"skip\", not "
                                  f"{doc['on_corrupt']!r}")
            scan["on_corrupt"] = doc["on_corrupt"]
        text = doc.get("filter")
        if "filter" in doc and not isinstance(text, str):
            raise TicketError(f"ticket field 'filter' must be a base64 string of Substrait, not {_json_type(text)}")
        return cls(topic, scan, text)


def _offset(key: str, value: Any) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, dict):
        out = {}
        for p, v in value.items():
            if not p.isdigit() or type(v) is not int:
                raise TicketError(f"ticket field {key!r} must map partition numbers (\"0\", \"1\", ...) to "
                                  f"offsets (numbers), not {p!r}: {v!r}")
            out[int(p)] = v
        return out
    raise TicketError(f"ticket field {key!r} must be an offset (a number) or an object mapping partitions to "
                      f"offsets, not {_json_type(value)}")
