"""``@applies``: the one mechanism by which aggregates and projections name the
method that handles an event type.

A handler is registered for an event *class* (matched against the class of the
decoded event, walking its MRO, so a handler for a base class takes every
subclass) or for an event *type name* (a ``str``: matched against the type the
event was stored under; use it for events you read as dicts, or whose class
you have not written). Classes take precedence over names.

Handler tables are built once per class, when the class is defined
(``__init_subclass__``), and are read-only afterwards: safe to share between
threads.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__tidelog_applies__"


def applies(*event_types: type | str) -> Callable[[F], F]:
    """Marks a method as the handler of ``event_types`` (event classes or stored
    type names). One method may handle several types; a type has one handler
    per class (a subclass may override its parent's)."""
    if not event_types:
        raise TypeError("@applies needs at least one event class or type name")
    for t in event_types:
        if not isinstance(t, (type, str)) or (isinstance(t, str) and not t):
            raise TypeError(f"@applies takes event classes or non-empty type names, not {t!r}")

    def mark(fn: F) -> F:
        if not callable(fn):
            raise TypeError("@applies decorates a method")
        setattr(fn, _MARK, tuple(getattr(fn, _MARK, ())) + tuple(event_types))
        return fn

    return mark


class HandlerTable:
    """Event class / type name -> (method name, number of positional parameters
    after ``self``). Built from a class's MRO: nearer classes override."""

    __slots__ = ("by_class", "by_name")

    def __init__(self, cls: type) -> None:
        self.by_class: dict[type, tuple[str, int]] = {}
        self.by_name: dict[str, tuple[str, int]] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                types = getattr(fn, _MARK, None)
                if not types:
                    continue
                arity = _positional_count(fn) - 1  # without self
                for t in types:
                    (self.by_class if isinstance(t, type) else self.by_name)[t] = (attr, arity)

    def lookup(self, event: Any, type_name: str | None) -> tuple[str, int] | None:
        """The handler of ``event`` (decoded) stored as ``type_name``, or None."""
        if self.by_class:
            for klass in type(event).__mro__:
                hit = self.by_class.get(klass)
                if hit is not None:
                    return hit
        if type_name is not None and self.by_name:
            return self.by_name.get(type_name)
        return None

    def classes(self) -> list[type]:
        return list(self.by_class)

    def names(self) -> list[str]:
        return list(self.by_name)


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 99
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _registered_names(serializer: Any) -> dict[type, str]:
    """class -> registered type name of a JsonSerializer-like serializer ({}
    when it does not expose one)."""
    registered = getattr(serializer, "registered", None)
    names = registered() if callable(registered) else None
    return names if isinstance(names, dict) else {}


def type_name_of(serializer: Any, cls: type) -> str:
    """The type name ``serializer`` stores instances of ``cls`` under: the name
    it was registered under, else an ``__event_type__`` class attribute, else
    the class's ``__name__`` (JsonSerializer's default)."""
    name = _registered_names(serializer).get(cls)
    if name:
        return str(name)
    return str(getattr(cls, "__event_type__", None) or cls.__name__)


def register_classes(serializer: Any, classes: list[type]) -> None:
    """Registers handled event classes with ``serializer`` so that stored events
    decode to them (not to dicts). A class the serializer knows already keeps
    its name; a name taken by another class is left to that class."""
    register = getattr(serializer, "register", None)
    if not callable(register):
        return
    known = _registered_names(serializer)
    taken = set(known.values())
    for cls in classes:
        if cls in (dict, object) or cls in known:
            continue
        name = type_name_of(serializer, cls)
        if name in taken:
            other = next(k for k, v in known.items() if v == name)
            warnings.warn(f"event class {cls.__module__}.{cls.__qualname__} is not registered with the serializer: "
                          f"its type name {name!r} is {other.__module__}.{other.__qualname__}'s, so stored "
                          f"{name!r} events decode to that class (register one under another name, or set "
                          "__event_type__)", stacklevel=3)
            continue
        register(cls, name)
        taken.add(name)
