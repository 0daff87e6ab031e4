"""What the queries of DuckDB or Polars over a topic read from it (``tidelog.duckdb``,
``tidelog.polars``): one entry per scan the engine started, with what was pushed
into it (columns, filter) and what it touched (frames, their bytes, rows handed
over). How a user checks that a query read only what it needed."""
from __future__ import annotations

import threading
from typing import Any

import pyarrow.compute as pc


class Read:
    """One scan an engine started: what it asked for and, as it goes, what it read.

    ``columns``: the columns read (None: all); ``filter``: the
    ``pyarrow.compute.Expression`` handed to ``topic.scan(filter=...)`` (None:
    none); ``frames``/``bytes``: frames decoded and their stored payload bytes
    (``Scan.frames_read``/``bytes_read``); ``rows``: rows handed to the engine.
    """

    __slots__ = ("columns", "filter", "rows", "_scan")

    def __init__(self, scan: Any, columns: list[str] | None, row_filter: pc.Expression | None):
        self._scan = scan
        self.columns = columns
        self.filter = row_filter
        self.rows = 0

    @property
    def frames(self) -> int:
        return self._scan.frames_read

    @property
    def bytes(self) -> int:
        return self._scan.bytes_read

    def __repr__(self) -> str:
        return (f"Read(columns={self.columns}, filter={self.filter}, frames={self.frames}, bytes={self.bytes}, "
                f"rows={self.rows})")


class Reads:
    """The scans of a registered topic (DuckDB) or a LazyFrame (Polars), oldest
    first, with their totals. Thread-safe: engines scan from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: list[Read] = []

    def _add(self, read: Read) -> Read:
        with self._lock:
            self._reads.append(read)
        return read

    def clear(self) -> None:
        """Forgets the scans so far (say, before the query to look at)."""
        with self._lock:
            self._reads.clear()

    def __len__(self) -> int:
        return len(self._reads)

    def __getitem__(self, i: int) -> Read:
        return self._reads[i]

    def __iter__(self):
        return iter(list(self._reads))

    @property
    def frames(self) -> int:
        """Frames decoded by every scan so far."""
        return sum(r.frames for r in self)

    @property
    def bytes(self) -> int:
        """Stored payload bytes of those frames."""
        return sum(r.bytes for r in self)

    @property
    def rows(self) -> int:
        """Rows handed to the engine."""
        return sum(r.rows for r in self)

    def __repr__(self) -> str:
        return f"<Reads: {len(self)} scans, {self.frames} frames, {self.bytes} bytes, {self.rows} rows>"
