"""The contenders of the suite. ``default_contenders()`` is the registry: a
new contender is one class (see core.Contender) plus one line here."""
from __future__ import annotations

from ..core import Contender
from .duckdb_ import DuckDB
from .limits import (
    ArrowInMemory, ArrowIpcFile, Crc32c, FilePipe, FutexWake, GroupCommitFloor, NumpyCopy, OpenMmap, OsPipe, OsWrite, PaArrayConversion, PythonCallFloor,
    WriteFdatasync,
)
from .lmdb_ import Lmdb
from .eventsourcing_ import EventSourcingLib
from .kafka_ import Kafka, KafkaJavaLatency, KafkaJavaProducer
from .sqlite_ import Sqlite
from .tidelog_ import Tidelog, TidelogColumnar, TidelogProducer, TidelogSpin
from .tidelog_compaction import TidelogCompaction
from .tidelog_events import ProjectionViewAlone, TidelogEvents
from .tidelog_export import TidelogExport
from .tidelog_flight import TidelogFlight
from .tidelog_mqtt import TidelogMqtt
from .tidelog_groups import SmallFdatasync, TidelogGroups
from .tidelog_processes import TidelogProcesses
from .tidelog_pushdown import TidelogPushdown
from .tidelog_targets import TidelogIntact


def default_contenders() -> list[Contender]:
    return [
        # tidelog
        Tidelog("fsync"), Tidelog("interval"), Tidelog("none"), TidelogProducer(), TidelogColumnar(), TidelogIntact(),
        TidelogSpin(),
        TidelogProcesses("many"), TidelogProcesses("one"), TidelogProcesses("exclusive"),
        TidelogProcesses("threads"),
        TidelogGroups("group"), TidelogGroups("one"),
        TidelogCompaction("tidelog"), TidelogCompaction("no cleaner"),
        TidelogEvents(), EventSourcingLib("tidelog"), TidelogExport("tidelog"),
        TidelogFlight("tidelog"), TidelogFlight("arrow"), TidelogFlight("local"), TidelogPushdown("pushdown"),
        TidelogMqtt("bridge"),
        # physical limits
        NumpyCopy(), OsWrite(), OsWrite(preallocate=False), WriteFdatasync(True), WriteFdatasync(False),
        ArrowInMemory(), ArrowIpcFile(), OpenMmap(), OsPipe(), FilePipe(), FutexWake(), PythonCallFloor(), PaArrayConversion(), Crc32c(),
        GroupCommitFloor(), SmallFdatasync(), SmallFdatasync(append=True), TidelogCompaction("read"), TidelogCompaction("arrow"),
        ProjectionViewAlone(), EventSourcingLib("popo"), TidelogExport("arrow"), TidelogPushdown("memory"),
        TidelogPushdown("needed"), TidelogMqtt("sub"),
        # peers
        Sqlite("NORMAL"), Sqlite("FULL"), Sqlite("OFF"), DuckDB(), Lmdb(True), Lmdb(False),
        EventSourcingLib("sqlite"), Kafka(), KafkaJavaProducer(), KafkaJavaLatency(), TidelogPushdown("whole scan"),
    ]


def find(name: str) -> Contender:
    for c in default_contenders():
        if c.name == name:
            return c
    raise KeyError(f"no contender {name!r}")


__all__ = ["default_contenders", "find", "Contender", "Tidelog", "TidelogProducer", "TidelogSpin", "TidelogColumnar", "TidelogIntact", "TidelogProcesses",
           "TidelogGroups", "SmallFdatasync", "TidelogCompaction",
           "NumpyCopy",
           "OsWrite", "WriteFdatasync", "ArrowInMemory", "ArrowIpcFile", "OpenMmap", "OsPipe", "FilePipe", "FutexWake", "PythonCallFloor",
           "PaArrayConversion", "Crc32c", "GroupCommitFloor", "Sqlite", "DuckDB", "Lmdb", "Kafka", "KafkaJavaProducer", "KafkaJavaLatency", "TidelogEvents",
           "ProjectionViewAlone", "EventSourcingLib", "TidelogExport", "TidelogFlight", "TidelogPushdown", "TidelogMqtt"]
