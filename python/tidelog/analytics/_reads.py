"""What the DuckDB and Polars pushdown (``tidelog.duckdb``, ``tidelog.polars``)
share: ``Reads``, what the queries over a topic read from it (one entry per
scan an engine started, with what was pushed into it: columns, time range,
filter; and what it touched: frames, their bytes, rows handed over), how a
user checks that a query read only what it needed; and ``TimeWindow``, the
comparisons of a query with the time index turned into the scan's time range."""
from __future__ import annotations

import collections
import threading
from typing import Any

import pyarrow.compute as pc


class Read:
    """One scan an engine started: what it asked for and, as it goes, what it read.

    ``columns``: the columns read (None: all); ``filter``: the
    ``pyarrow.compute.Expression`` handed to ``topic.scan(filter=...)`` (None:
    none); ``time_range``: the (start_time, end_time) nanoseconds the time
    index's comparisons became (None: none); ``frames``/``bytes``: frames decoded and their stored payload bytes
    (``Scan.frames_read``/``bytes_read``); ``rows``: rows handed to the engine.
    """

    __slots__ = ("columns", "filter", "time_range", "rows", "_scan")

    def __init__(self, scan: Any, columns: list[str] | None, row_filter: pc.Expression | None,
                 time_range: tuple[int | None, int | None] | None = None):
        self._scan = scan
        self.columns = columns
        self.filter = row_filter
        self.time_range = time_range
        self.rows = 0

    @property
    def frames(self) -> int:
        return self._scan.frames_read

    @property
    def bytes(self) -> int:
        return self._scan.bytes_read

    def __repr__(self) -> str:
        return (f"Read(columns={self.columns}, filter={self.filter}, time_range={self.time_range}, "
                f"frames={self.frames}, bytes={self.bytes}, rows={self.rows})")


class Reads:
    """The scans of a registered topic (DuckDB) or a LazyFrame (Polars), oldest
    first, with their totals: the latest ``keep`` of them (a long-lived table
    queried forever keeps a bounded record). Thread-safe: engines scan from
    worker threads."""

    def __init__(self, keep: int = 1000) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive int, not {keep!r}")
        self._lock = threading.Lock()
        self._reads: collections.deque[Read] = collections.deque(maxlen=keep)

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
        with self._lock:
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


class TimeWindow:
    """The part of a query's filter that bounds the topic's time index, as the
    ``start_time``/``end_time`` of ``topic.scan`` (nanoseconds, start
    inclusive, end exclusive) instead of a filter: the scan then finds the
    frames through the time index and slices the rows at the window's edges by
    binary search, where a filter would be evaluated on every row it reads.
    Exact: a time range keeps the rows whose timestamp compares so, and no row
    without one, as the comparisons do."""

    def __init__(self) -> None:
        self.start: int | None = None
        self.end: int | None = None

    def add(self, op: str, ns: int) -> None:
        """Narrows by ``time_index op ns`` (``op`` one of == < <= > >=; ``ns`` a
        value of the index in nanoseconds: a range in nanoseconds selects the
        same rows of a coarser index, whose values it rounds up)."""
        if op in (">=", "=="):
            self._start(ns)
        if op == ">":
            self._start(ns + 1)
        if op == "<":
            self._end(ns)
        if op in ("<=", "=="):
            self._end(ns + 1)

    def _start(self, ns: int) -> None:
        self.start = ns if self.start is None else max(self.start, ns)

    def _end(self, ns: int) -> None:
        self.end = ns if self.end is None else min(self.end, ns)

    def range(self) -> tuple[int | None, int | None] | None:
        """(start, end) ns as scan_kwargs gives them (None: unbounded), or None for no window."""
        if not self:
            return None
        kw = self.scan_kwargs()
        return kw.get("start_time"), kw.get("end_time")

    def scan_kwargs(self) -> dict:
        """``start_time``/``end_time`` for ``topic.scan`` (an empty window stays
        empty: start == end). Bounds beyond int64 nanoseconds are left out
        (they bound nothing); an end below the first nanosecond reads nothing."""
        out = {}
        start, end = self.start, self.end
        if start is not None and end is not None and end <= start:
            end = start
        if start is not None and start > _INT64_MIN:
            out["start_time"] = min(start, _INT64_MAX)
        if end is not None and end <= _INT64_MAX:
            out["end_time"] = max(end, _INT64_MIN)
        return out

    def __bool__(self) -> bool:
        return self.start is not None or self.end is not None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
