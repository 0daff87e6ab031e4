"""Upcasting: reading events written under an older schema as the current one.

The schema version of an event is recorded in its metadata: the JSON object
``{"schema_version": N}`` that ``Repository.save`` writes when the event's class
sets ``__schema_version__ = N`` with N > 1 (an event without it is version 1,
so classes start versioned for free). On read, the upcasters registered for
(type, version) run in a chain - 1 -> 2 -> 3 ... - until no upcaster is
registered for the (type, version) reached; then the data is decoded.

An upcaster is a function ``dict -> dict`` on the event's JSON data (it may
change the type, too: ``to_type=``). Events are never rewritten on disk:
upcasting happens on every read, so keep upcasters cheap and pure.

Concurrency: an ``Upcasters`` is filled at start-up and read afterwards; reading
it from many threads is safe, registering while others read is not.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from ._domain_errors import UpcastError

SCHEMA_VERSION_KEY = "schema_version"

UpcastFn = Callable[[dict], dict]


def schema_version_of(metadata: bytes | None) -> int:
    """The schema version recorded in an event's metadata (1 when none is)."""
    if not metadata or metadata[:1] != b"{":
        return 1
    try:
        meta = json.loads(metadata)
    except ValueError:
        return 1
    version = meta.get(SCHEMA_VERSION_KEY, 1) if isinstance(meta, dict) else 1
    return version if isinstance(version, int) and not isinstance(version, bool) and version >= 1 else 1


def current_schema_version(cls: type) -> int:
    """An event class's schema version: its ``__schema_version__`` (default 1)."""
    version = getattr(cls, "__schema_version__", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UpcastError(f"{cls.__name__}.__schema_version__ must be an int >= 1, not {version!r}")
    return version


class Upcasters:
    """A registry of upcasters: (type, from_version) -> function.

    ``register(type, from_version, to_type=None, to_version=None)`` is a
    decorator; the function takes the event data (a dict) of ``type`` at
    ``from_version`` and returns the data at ``to_version`` (default
    ``from_version + 1``) of ``to_type`` (default: the same type; a rename).
    """

    def __init__(self, upcasters: "Mapping[tuple[str, int], UpcastFn] | Upcasters | None" = None) -> None:
        self._chain: dict[tuple[str, int], tuple[UpcastFn, str, int]] = {}
        if isinstance(upcasters, Upcasters):
            self._chain.update(upcasters._chain)
        elif upcasters:
            for (type_name, from_version), fn in upcasters.items():
                self.add(type_name, from_version, fn)

    def add(self, type: str, from_version: int, fn: UpcastFn, *, to_type: str | None = None,
            to_version: int | None = None) -> None:
        if not isinstance(type, str) or not type:
            raise TypeError(f"an upcaster's type is a non-empty str, not {type!r}")
        if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1:
            raise ValueError(f"from_version is an int >= 1, not {from_version!r}")
        if not callable(fn):
            raise TypeError("an upcaster is a function dict -> dict")
        key = (type, from_version)
        if key in self._chain:
            raise ValueError(f"an upcaster for {type!r} version {from_version} is registered already")
        to_type = to_type or type
        if to_version is None:
            to_version = from_version + 1
        if not isinstance(to_version, int) or isinstance(to_version, bool) or to_version < 1 or \
                (to_type == type and to_version <= from_version):
            raise ValueError(f"to_version must be an int >= 1, above from_version for the same type, "
                             f"not {to_version!r}")
        self._chain[key] = (fn, to_type, to_version)

    def register(self, type: str, from_version: int = 1, *, to_type: str | None = None,
                 to_version: int | None = None) -> Callable[[UpcastFn], UpcastFn]:
        def deco(fn: UpcastFn) -> UpcastFn:
            self.add(type, from_version, fn, to_type=to_type, to_version=to_version)
            return fn
        return deco

    def __bool__(self) -> bool:
        return bool(self._chain)

    def source_types(self) -> list[str]:
        """Every type an upcaster reads (stored types that may become others)."""
        return sorted({t for t, _v in self._chain})

    def needs(self, type: str, version: int) -> bool:
        return (type, version) in self._chain

    def upcast(self, type: str, version: int, data: dict) -> tuple[str, int, dict]:
        """Runs the chain from (type, version); returns the (type, version, data) reached."""
        seen = 0
        while (step := self._chain.get((type, version))) is not None:
            fn, new_type, new_version = step
            try:
                out = fn(data)
            except Exception as e:
                err = UpcastError(f"upcaster {getattr(fn, '__name__', fn)!r} for {type!r} version {version} "
                                  f"failed: {e!r}")
                err.type, err.version = type, version
                raise err from e
            if not isinstance(out, dict):
                raise UpcastError(f"upcaster {getattr(fn, '__name__', fn)!r} for {type!r} version {version} "
                                  f"returned {builtins_type_name(out)}, not a dict")
            type, version, data = new_type, new_version, out
            seen += 1
            if seen > 10_000:
                raise UpcastError(f"the upcaster chain of {type!r} does not end")
        return type, version, data

    def upcast_stored(self, type: str, data: bytes, metadata: bytes | None) -> tuple[str, bytes, int]:
        """The stored event's (type, JSON data, schema version) after upcasting;
        the bytes untouched (no JSON round trip) when no upcaster applies."""
        version = schema_version_of(metadata)
        if not self._chain or (type, version) not in self._chain:
            return type, data, version
        try:
            decoded = json.loads(data) if data else {}
        except ValueError as e:
            raise UpcastError(f"event of type {type!r} version {version} is not JSON, so it cannot be upcast") from e
        if not isinstance(decoded, dict):
            raise UpcastError(f"event of type {type!r} version {version} is not a JSON object")
        type, version, out = self.upcast(type, version, decoded)
        return type, json.dumps(out, separators=(",", ":")).encode(), version


def builtins_type_name(obj: Any) -> str:
    return type(obj).__name__
