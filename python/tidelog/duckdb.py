"""DuckDB over tidelog topics, reading only what a query needs.

``register(con, topic)`` puts a topic under a name on a DuckDB connection;
every query that reads the name then hands tidelog the columns it uses and
the filters of its WHERE clause that DuckDB offers a scan, and tidelog reads
only those columns of only the frames that can hold matching rows::

    table = tidelog.duckdb.register(con, sensors)     # time index: timestamp("us")
    con.sql("select sensor_id, avg(value) from sensors where sensor_id in (1, 2) "
            "and ts >= '2026-01-01 10:00' and ts < '2026-01-01 10:05' group by all")
    table.reads[-1]   # Read(columns=['sensor_id', 'value'], filter=is_in(sensor_id, ...),
                      #      time_range=(start ns, end ns), frames=2, bytes=..., rows=...)

What is pushed (DuckDB >= 2.0, whose Arrow scan offers a Python source the
filters of a query):

* projections: the columns the query uses (``columns=`` of ``topic.scan``);
* filters: comparisons (= != < <= > >=, BETWEEN) of a column with a constant,
  IN lists, IS [NOT] NULL, and AND / OR / NOT of them, as DuckDB's optimizer
  leaves them on the scan. Those of the time index (in the top-level AND)
  become the scan's ``start_time``/``end_time``: the time index finds the
  frames; the others become a ``pyarrow.compute.Expression`` handed to
  ``topic.scan(filter=...)``, whose zone maps skip frames. A filter is
  pushed only where tidelog evaluates it exactly as DuckDB would (NULLs, NaN,
  time zones, units); DuckDB keeps the others and applies them itself, so a
  query's answer never depends on what was pushed.

What DuckDB applies itself: anything else (functions of columns, LIKE,
comparisons of two columns, joins' runtime filters), LIMIT, aggregates, and
any filter on a nanosecond timestamp (TIMESTAMP_NS): DuckDB 2.0 offers those
to no Python source. ``sql(con, query, params)`` pushes the time window such
filters put on a nanosecond time index, read from DuckDB's parse of the query.
``EXPLAIN`` shows what was pushed under the scan's Filters; ``reads`` shows
what tidelog read (see ``tidelog.analytics``).

Arguments: ``con`` a DuckDB connection; ``topic`` a ``tidelog.Topic`` (one of
byte records reads as its timestamp, key, value and headers columns);
``name`` the table name (default: the topic's; quote names with dots or
dashes in SQL); any other keyword is a ``topic.scan`` argument applied to every
query (``start_time``, ``partitions``, ``with_offsets``, ``filter``, ...).
Each query scans afresh, so it sees every row appended before it started.
Errors: ``InvalidArgumentError`` for anything but a topic, the ``topic.scan``
errors for bad scan arguments (raised by ``register``, before any query),
``ImportError`` naming the package when DuckDB is missing or older than 2.0;
errors of a query (a closed log, damage) surface as DuckDB's errors naming
the table.

Concurrency: a table belongs to its connection, as DuckDB's registrations do;
use a cursor (and a registration) per thread, as with any DuckDB connection.
"""
from __future__ import annotations

import weakref
from typing import Any

from .analytics._reads import Read, Reads

__all__ = ["register", "sql", "Read", "Reads"]


def register(con: Any, topic: Any, name: str | None = None, **scan_kwargs: Any) -> Any:
    """Registers ``topic`` on the DuckDB connection ``con`` as the table
    ``name`` (default: the topic's name), with projection and filter pushdown.
    Returns the registered table: ``.name``, ``.topic``, ``.reads`` (what the
    queries read), ``.connection``, ``.unregister()``. The connection holds the
    table (as DuckDB holds any registered object) and the table holds its
    connection weakly."""
    from .analytics._duckdb_source import TopicTable, registered_on

    table = TopicTable(topic, name, scan_kwargs)
    con.register(table.name, table)
    for replaced in registered_on(con):
        if replaced.name.lower() == table.name.lower():
            replaced._con = None
    table._con = weakref.ref(con)
    return table


def sql(con: Any, query: str, params: Any = None) -> Any:
    """Runs ``query`` on ``con`` now, as ``con.sql(query, params=params)``, and
    returns its result as a relation over the rows (``fetchall()``, ``df()``,
    ``pl()``, ``arrow()``...). Before, it reads from the query the time window
    it keeps of every registered topic whose time index is a nanosecond
    timestamp (``TIMESTAMP_NS``: DuckDB filters those itself, so ``con.sql``
    reads the whole topic): comparisons and BETWEEN of the time index with a
    literal, a cast of one or a parameter, in the top-level AND of the WHERE
    of a SELECT that reads the topic's table alone (not in a join); the scan
    then reads only the frames of that window. DuckDB still applies every
    filter, so the answer is what ``con.sql`` gives."""
    from .analytics._duckdb_source import registered_on, time_windows

    tables = [t for t in registered_on(con) if t.windowed]
    windows = time_windows(con, query, params, tables) if tables else {}
    if not windows:
        return con.sql(query, params=params)
    for table, window in windows.items():
        table._window = window
    try:
        result = con.sql(query, params=params).to_arrow_table()
    finally:
        for table in windows:
            table._window = None
    return con.from_arrow(result)
