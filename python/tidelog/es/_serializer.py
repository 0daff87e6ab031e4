"""Domain objects <-> (event type, bytes): the store's JSON serializer."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

from ..errors import SerializationError


_loads = json.loads


def _default(obj: Any) -> Any:
    import datetime
    import decimal
    import uuid

    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class JsonSerializer:
    """Events as JSON: dataclasses, ``msgspec.Struct`` instances and dicts
    (with ``{"type": ...}``, or pass ``type=``). ``register(cls)`` makes
    ``deserialize`` build ``cls`` again from its type name (the class name, or
    the name given); unregistered types come back as dicts.

    Thread-safe once types are registered."""

    def __init__(self) -> None:
        self._types: dict[str, type] = {}
        self._names: dict[type, str] = {}
        self._structs: set[type] = set()  # registered msgspec.Struct classes

    def register(self, cls: type, name: str | None = None) -> type:
        """Registers ``cls`` under ``name`` (default: its ``__name__``); usable as a decorator."""
        name = name or cls.__name__
        self._types[name] = cls
        self._names[cls] = name
        if _is_msgspec_struct_type(cls):
            self._structs.add(cls)
        return cls

    def registered(self) -> dict[type, str]:
        """The registered classes and their type names (a copy)."""
        return dict(self._names)

    def type_name(self, obj: Any) -> str:
        cls = type(obj)
        if cls in self._names:
            return self._names[cls]
        if isinstance(obj, dict):
            t = obj.get("type")
            if not isinstance(t, str) or not t:
                raise SerializationError("a dict event needs a 'type' str entry (or append a NewEvent)")
            return t
        return cls.__name__

    def serialize(self, obj: Any) -> tuple[str, bytes]:
        """(type name, bytes) of a domain object; SerializationError if it cannot be."""
        name = self.type_name(obj)
        try:
            if _is_msgspec_struct(obj):
                import msgspec

                return name, msgspec.json.encode(obj)
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                body: Any = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            elif isinstance(obj, dict):
                body = {k: v for k, v in obj.items() if k != "type"}
            elif hasattr(obj, "__dict__"):
                body = dict(vars(obj))
            else:
                raise TypeError(f"cannot serialize a {type(obj).__name__}")
            return name, json.dumps(body, default=_default, separators=(",", ":")).encode()
        except (TypeError, ValueError, OverflowError) as e:
            raise SerializationError(f"event {name!r} does not serialize to JSON: {e}; nothing was written") from e

    def deserialize(self, type_name: str, data: bytes) -> Any:
        """The object for (type name, bytes): an instance of the registered class, else a dict."""
        cls = self._types.get(type_name)
        try:
            if cls in self._structs:
                import msgspec

                return msgspec.json.decode(data, type=cls)
            body = _loads(data.decode()) if data else {}
        except ValueError as e:
            raise SerializationError(f"event {type_name!r}: its data is not JSON: {e}") from e
        if cls is None:
            return body
        try:
            return cls(**body)
        except TypeError as e:
            raise SerializationError(f"event {type_name!r} does not fit {cls.__name__}: {e}") from e


def _is_msgspec_struct(obj: Any) -> bool:
    return _is_msgspec_struct_type(type(obj))


def _is_msgspec_struct_type(cls: type) -> bool:
    return any(getattr(b, "__module__", "").startswith("msgspec") and b.__name__ == "Struct" for b in cls.__mro__[1:])


Serializer = Callable[[Any], tuple[str, bytes]]
