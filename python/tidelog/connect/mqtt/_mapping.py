"""The mapping from MQTT messages (JSON payload, topic levels, arrival time) to a topic's columns.

A mapping file is TOML (docs/guide/mqtt.md has the reference and an example)::

    mqtt_topic = "sensors/{site}/{sensor_id}"   # levels in braces become sources
    id = "msg_id"                               # the column that identifies a message
    on_error = "skip"                           # or "stop"

    [columns]
    ts = { json = "time", unit = "ms", type = "timestamp[ms]" }
    sensor_id = { level = "sensor_id", type = "int32" }
    value = "reading.value"                     # shorthand for { json = "reading.value" }

``Mapping.bind(schema)`` checks it against the topic's schema and returns a
``RowMapper``, which turns a list of received messages into one
``pa.RecordBatch`` plus the messages that did not fit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tomllib
from typing import Any, Callable

import pyarrow as pa

from ...errors import MappingError
from ._coerce import UNITS, BadValue, coercer_for, ns_to_unit, type_from_name

ON_ERROR = ("skip", "stop")
SOURCES = ("json", "level", "const", "arrival", "mqtt_topic")
_COLUMN_KEYS = set(SOURCES) | {"type", "unit", "default"}
_TOP_KEYS = {"mqtt_topic", "id", "on_error", "columns", "topic"}
#: create_topic settings a mapping may give for a topic the bridge creates.
TOPIC_SETTINGS = {"partitions", "key", "timestamp", "durability", "compression", "retention_ms", "retention_bytes",
                  "segment_bytes"}
_MISSING = object()
_LEVEL = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _json_loads() -> Callable[[bytes], Any]:
    """The fastest JSON decoder installed (orjson, msgspec, else the standard library's)."""
    try:
        import orjson

        return orjson.loads
    except ImportError:
        pass
    try:
        import msgspec

        return msgspec.json.Decoder().decode
    except ImportError:
        return json.loads


@dataclasses.dataclass(frozen=True)
class ColumnSource:
    """Where one column's values come from: ``kind`` is one of SOURCES;
    ``arg`` the JSON path (a tuple of keys and list indexes), the topic level
    (a name from the pattern, or an index), or the constant."""

    column: str
    kind: str
    arg: Any = None
    type: pa.DataType | None = None
    unit: str | None = None
    default: Any = _MISSING


@dataclasses.dataclass(frozen=True)
class Mapping:
    """A parsed mapping. ``columns`` None: every column of the schema from the
    JSON key of its name (the default without a mapping file)."""

    columns: tuple[ColumnSource, ...] | None = None
    mqtt_topic: str | None = None
    id: str | None = None
    on_error: str = "skip"
    topic: dict = dataclasses.field(default_factory=dict)

    # ----------------------------------------------------------- loading
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Mapping":
        """Reads a TOML mapping file (``MappingError`` if it cannot be read or used)."""
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as e:
            raise MappingError(f"mapping file {os.fspath(path)}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise MappingError(f"mapping file {os.fspath(path)} is not valid TOML: {e}") from None
        try:
            return cls.from_dict(doc)
        except MappingError as e:
            raise MappingError(f"mapping file {os.fspath(path)}: {e}") from None

    @classmethod
    def from_dict(cls, doc: dict) -> "Mapping":
        """A mapping from the dict a TOML file holds (the same keys)."""
        if not isinstance(doc, dict):
            raise MappingError("a mapping is a table of settings")
        unknown = set(doc) - _TOP_KEYS
        if unknown:
            raise MappingError(f"unknown setting {sorted(unknown)[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
        on_error = doc.get("on_error", "skip")
        if on_error not in ON_ERROR:
            raise MappingError(f"on_error must be \"skip\" or \"stop\", not {on_error!r}")
        pattern = doc.get("mqtt_topic")
        if pattern is not None:
            _pattern_levels(pattern)
        columns = doc.get("columns")
        sources = None
        if columns is not None:
            if not isinstance(columns, dict) or not columns:
                raise MappingError("[columns] must map column names to sources")
            sources = tuple(_column_source(name, spec, pattern) for name, spec in columns.items())
        ident = doc.get("id")
        if ident is not None and (not isinstance(ident, str) or (sources is not None
                                                                  and ident not in {s.column for s in sources})):
            raise MappingError(f"id names column {ident!r}, which the mapping does not have")
        topic = doc.get("topic", {})
        if not isinstance(topic, dict) or set(topic) - TOPIC_SETTINGS:
            bad = sorted(set(topic) - TOPIC_SETTINGS) if isinstance(topic, dict) else ["(not a table)"]
            raise MappingError(f"[topic]: unknown setting {bad[0]!r} (known: {', '.join(sorted(TOPIC_SETTINGS))})")
        return cls(sources, pattern, ident, on_error, dict(topic))

    # ----------------------------------------------------------- schema
    def schema(self) -> pa.Schema | None:
        """The schema the mapping declares (every column with a ``type``), or
        None when some column has none: the topic must then exist."""
        if self.columns is None or any(s.type is None for s in self.columns):
            return None
        return pa.schema([(s.column, s.type) for s in self.columns])

    def bind(self, schema: pa.Schema, on_error: str | None = None) -> "RowMapper":
        """The row mapper into ``schema``; ``MappingError`` where the mapping
        does not fit it (a column it lacks, another type, a non-nullable
        column without a source)."""
        sources = self.columns
        if sources is None:
            sources = tuple(ColumnSource(f.name, "json", (f.name,)) for f in schema)
        names = set(schema.names)
        for s in sources:
            if s.column not in names:
                raise MappingError(f"column {s.column!r} is not in the topic's schema ({', '.join(schema.names)})")
            field = schema.field(s.column)
            if s.type is not None and s.type != field.type:
                raise MappingError(f"column {s.column!r} is {field.type} in the topic, {s.type} in the mapping")
            if s.unit is not None and not pa.types.is_timestamp(field.type):
                raise MappingError(f"column {s.column!r}: unit is for timestamp columns")
            if s.kind == "arrival" and not (pa.types.is_timestamp(field.type) or pa.types.is_int64(field.type)):
                raise MappingError(f"column {s.column!r}: arrival time needs a timestamp or int64 column")
        given = {s.column for s in sources}
        for field in schema:
            if field.name not in given and not field.nullable:
                raise MappingError(f"column {field.name!r} is not nullable and the mapping gives it no source")
        if self.id is not None and self.id not in names:
            raise MappingError(f"id names column {self.id!r}, which the topic does not have")
        return RowMapper(schema, sources, self.mqtt_topic, self.id, on_error or self.on_error)


def _pattern_levels(pattern: Any) -> list[str | None]:
    """The names captured by each level of an MQTT topic pattern (None: a
    literal level or '+'); '#' may end it."""
    if not isinstance(pattern, str) or not pattern:
        raise MappingError("mqtt_topic must be a topic pattern such as \"sensors/{site}/{sensor_id}\"")
    levels = pattern.split("/")
    names: list[str | None] = []
    for i, level in enumerate(levels):
        m = _LEVEL.match(level)
        if m:
            if m.group(1) in names:
                raise MappingError(f"mqtt_topic {pattern!r} names level {m.group(1)!r} twice")
            names.append(m.group(1))
        elif level == "#" and i != len(levels) - 1:
            raise MappingError(f"mqtt_topic {pattern!r}: '#' must be the last level")
        elif "{" in level or "}" in level or ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise MappingError(f"mqtt_topic {pattern!r}: level {level!r} is neither literal, '+', '#' nor {{name}}")
        else:
            names.append(None)
    return names


def _column_source(name: str, spec: Any, pattern: str | None) -> ColumnSource:
    if isinstance(spec, str):
        spec = {"json": spec}
    if not isinstance(spec, dict):
        raise MappingError(f"column {name!r}: a source is a JSON path or a table such as {{ json = \"a.b\" }}")
    unknown = set(spec) - _COLUMN_KEYS
    if unknown:
        raise MappingError(f"column {name!r}: unknown key {sorted(unknown)[0]!r} (known: "
                           f"{', '.join(sorted(_COLUMN_KEYS))})")
    kinds = [k for k in SOURCES if k in spec]
    if len(kinds) != 1:
        raise MappingError(f"column {name!r} needs exactly one source of {', '.join(SOURCES)}"
                           + (f" (it has {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    arg = spec[kind]
    if kind == "json":
        if not isinstance(arg, str) or not arg or any(not part for part in arg.split(".")):
            raise MappingError(f"column {name!r}: json must be a dotted path such as \"reading.value\"")
        arg = tuple(int(p) if p.isdigit() else p for p in arg.split("."))
    elif kind == "level":
        if isinstance(arg, bool) or not isinstance(arg, (str, int)):
            raise MappingError(f"column {name!r}: level is a name from mqtt_topic or a level number (0 = first)")
        if isinstance(arg, str):
            if pattern is None or arg not in _pattern_levels(pattern):
                raise MappingError(f"column {name!r}: level {arg!r} is not named in mqtt_topic ({pattern!r})")
        elif arg < 0:
            raise MappingError(f"column {name!r}: level numbers start at 0")
    elif kind in ("arrival", "mqtt_topic") and arg is not True:
        raise MappingError(f"column {name!r}: write {kind} = true")
    typ = None
    if "type" in spec:
        try:
            typ = type_from_name(str(spec["type"]))
        except ValueError as e:
            raise MappingError(f"column {name!r}: {e}") from None
    unit = spec.get("unit")
    if unit is not None and unit not in UNITS:
        raise MappingError(f"column {name!r}: unit must be one of {', '.join(UNITS)}, not {unit!r}")
    return ColumnSource(name, kind, arg, typ, unit, spec.get("default", _MISSING))


# ------------------------------------------------------------------ mapping rows
@dataclasses.dataclass
class MappedBatch:
    """What ``RowMapper.map`` made of a list of messages: ``batch`` (None when
    no row is left), ``duplicates`` (dropped by id), ``bad`` ((index, MQTT
    topic, reason) of each message that did not fit), ``stopped_at`` (the
    index of the bad message that stopped the mapping under
    on_error="stop": it and the messages after it are not in the batch)."""

    batch: pa.RecordBatch | None
    duplicates: int = 0
    bad: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)
    stopped_at: int | None = None


class RowMapper:
    """Turns received messages ``(packet_id, mqtt_topic: bytes, payload: bytes,
    arrival_ns)`` into rows of ``schema``."""

    _LEVEL_CACHE_MAX = 65_536

    def __init__(self, schema: pa.Schema, sources: tuple[ColumnSource, ...], pattern: str | None,
                 id_column: str | None, on_error: str):
        if on_error not in ON_ERROR:
            raise MappingError(f"on_error must be \"skip\" or \"stop\", not {on_error!r}")
        self.schema = schema
        self.on_error = on_error
        by_name = {s.column: s for s in sources}
        self._fields = [f for f in schema]
        names = _pattern_levels(pattern) if pattern is not None else None
        self._pattern = names
        # the pattern as MQTT matches it: literal levels, '+' (named ones too) and '#'
        self._match = None if pattern is None or names is None else [
            "+" if name is not None else level for name, level in zip(names, pattern.split("/"))]
        self._levels_cache: dict[bytes, tuple[str, list[str]]] = {}
        self._loads = _json_loads()
        self._needs_json = any(s.kind == "json" for s in sources)
        self._steps: list[tuple[Any, ...]] = []
        for field in self._fields:
            s = by_name.get(field.name)
            self._steps.append(self._step(field, s) if s is not None else (None, None, None, True, _MISSING))
        self._id_index = schema.names.index(id_column) if id_column is not None else None

    def _step(self, field: pa.Field, s: ColumnSource):
        """(extract(doc, topic, levels, arrival), coerce, const, nullable, default) for one column."""
        try:
            coerce = coercer_for(field.type, s.unit) if s.kind != "arrival" else None
        except ValueError as e:
            raise MappingError(f"column {field.name!r}: {e}") from None
        default = s.default
        if default is not _MISSING:
            default = self._coerce_setting(field, coerce, default, "default")
        if s.kind == "const":
            return None, None, self._coerce_setting(field, coerce, s.arg, "const"), field.nullable, default
        if s.kind == "json":
            path = s.arg
            if len(path) == 1:
                key = path[0]

                def extract(doc, topic, levels, arrival):
                    return doc.get(key, _MISSING)
            else:
                def extract(doc, topic, levels, arrival):
                    for k in path:
                        try:
                            doc = doc[k]
                        except (KeyError, IndexError, TypeError):
                            return _MISSING
                    return doc
        elif s.kind == "level":
            index = s.arg if not isinstance(s.arg, str) else (self._pattern or []).index(s.arg)

            def extract(doc, topic, levels, arrival):
                return levels[index] if index < len(levels) else _MISSING
        elif s.kind == "mqtt_topic":
            def extract(doc, topic, levels, arrival):
                return topic
        else:  # arrival
            typ = field.type
            to_unit = (lambda ns: ns_to_unit(ns, typ)) if pa.types.is_timestamp(typ) else (lambda ns: ns)

            def extract(doc, topic, levels, arrival):
                return to_unit(arrival)
        return extract, coerce, None, field.nullable, default

    @staticmethod
    def _coerce_setting(field: pa.Field, coerce, value: Any, what: str) -> Any:
        if isinstance(value, dt.datetime) and pa.types.is_timestamp(field.type):
            value = value.isoformat()
        try:
            return coerce(value) if coerce is not None else value
        except BadValue as e:
            raise MappingError(f"column {field.name!r}: {what} {e}") from None

    def _levels(self, topic: bytes) -> tuple[str, list[str]]:
        got = self._levels_cache.get(topic)
        if got is not None:
            return got
        try:
            text = topic.decode()
        except UnicodeDecodeError:
            raise BadValue("the MQTT topic is not UTF-8") from None
        levels = text.split("/")
        if self._match is not None and not _matches(self._match, levels):
            raise BadValue(f"MQTT topic {text!r} does not match mqtt_topic {'/'.join(self._match)!r}")
        if len(self._levels_cache) >= self._LEVEL_CACHE_MAX:
            self._levels_cache.clear()
        got = self._levels_cache[topic] = (text, levels)
        return got

    def map(self, messages: list[tuple], keep_id: Callable[[Any], bool] | None = None) -> MappedBatch:
        """Rows of ``messages``; ``keep_id(id)`` (the mapping names an id):
        False drops the row as a duplicate (it records the id otherwise)."""
        steps = self._steps
        columns: list[list] = [[] for _ in steps]
        loads = self._loads
        needs_json = self._needs_json
        id_index = self._id_index if keep_id is not None else None
        out = MappedBatch(None)
        for i, (_pid, topic, payload, arrival) in enumerate(messages):
            try:
                doc = None
                if needs_json:
                    try:
                        doc = loads(payload)
                    except ValueError:
                        raise BadValue(f"the payload is not JSON ({_preview(payload)})") from None
                    if type(doc) is not dict:
                        raise BadValue(f"the payload is not a JSON object ({_preview(payload)})")
                text, levels = self._levels(topic)
                row = []
                for (extract, coerce, const, nullable, default), field in zip(steps, self._fields):
                    if extract is None:
                        row.append(const)
                        continue
                    v = extract(doc, text, levels, arrival)
                    if v is _MISSING or v is None:
                        if default is not _MISSING:
                            v = default
                        elif not nullable:
                            raise BadValue(f"column {field.name!r}: no value "
                                           f"({'missing' if v is _MISSING else 'null'}) and the column is not "
                                           "nullable")
                        else:
                            v = None
                    elif coerce is not None:
                        try:
                            v = coerce(v)
                        except BadValue as e:
                            raise BadValue(f"column {field.name!r}: {e}") from None
                    row.append(v)
            except BadValue as e:
                out.bad.append((i, _topic_text(topic), str(e)))
                if self.on_error == "stop":
                    out.stopped_at = i
                    break
                continue
            if id_index is not None and keep_id is not None and not keep_id(row[id_index]):
                out.duplicates += 1
                continue
            for col, v in zip(columns, row):
                col.append(v)
        if columns and columns[0]:
            out.batch = pa.RecordBatch.from_arrays(
                [pa.array(col, type=f.type) for col, f in zip(columns, self._fields)], schema=self.schema)
        return out


def _matches(pattern: list[str], levels: list[str]) -> bool:
    for i, p in enumerate(pattern):
        if p == "#":
            return True
        if i >= len(levels) or (p != "+" and p != levels[i]):
            return False
    return len(levels) == len(pattern)


def _topic_text(topic: bytes) -> str:
    return topic.decode(errors="replace")


def _preview(payload: bytes) -> str:
    text = bytes(payload[:40]).decode(errors="replace")
    return repr(text + ("..." if len(payload) > 40 else ""))
