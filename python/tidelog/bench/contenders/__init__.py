"""The contenders of the suite. ``default_contenders()`` is the registry: a
new contender is one class (see core.Contender) plus one line here."""
from __future__ import annotations

from ..core import Contender
from .duckdb_ import DuckDB
from .limits import ArrowInMemory, ArrowIpcFile, NumpyCopy, OpenMmap, OsPipe, OsWrite, WriteFdatasync
from .lmdb_ import Lmdb
from .placeholders import EventSourcing, Kafka
from .sqlite_ import Sqlite
from .tidelog_ import Tidelog, TidelogProducer


def default_contenders() -> list[Contender]:
    return [
        # tidelog
        Tidelog("fsync"), Tidelog("interval"), Tidelog("none"), TidelogProducer(),
        # physical limits
        NumpyCopy(), OsWrite(), WriteFdatasync(True), WriteFdatasync(False), ArrowInMemory(), ArrowIpcFile(), OpenMmap(), OsPipe(),
        # peers
        Sqlite("NORMAL"), Sqlite("FULL"), DuckDB(), Lmdb(True), Lmdb(False),
        # reserved slots, not measured yet
        Kafka(), EventSourcing(),
    ]


def find(name: str) -> Contender:
    for c in default_contenders():
        if c.name == name:
            return c
    raise KeyError(f"no contender {name!r}")


__all__ = ["default_contenders", "find", "Contender", "Tidelog", "TidelogProducer", "NumpyCopy", "OsWrite",
           "WriteFdatasync", "ArrowInMemory", "ArrowIpcFile", "OpenMmap", "OsPipe", "Sqlite", "DuckDB", "Lmdb",
           "Kafka", "EventSourcing"]
