"""What the DuckDB and Polars faces of a topic (``tidelog.duckdb``,
``tidelog.polars``) share, and DuckDB's source: the machinery of pushdown.

Contract:

* A query over a topic reads it through ``topic.scan(columns=..., filter=...,
  start_time=..., end_time=...)``: the engine's projection becomes
  ``columns``; its comparisons of the time index become the scan's time range
  (``_reads.TimeWindow``), so the time index finds the frames; the rest of its
  predicate, where it translates exactly, becomes ``filter``, which zone maps
  use to skip frames (see ``docs/guide/analytics.md`` for what each engine
  pushes). The engine still applies its own predicate to what it gets, except
  for the filters DuckDB hands over as exact.
* ``_reads.Reads`` records what each query read (columns, filter, time range,
  frames and bytes decoded, rows handed over), so a user can check that a query
  touched only what it needed.
* Only the public faces import DuckDB or Polars, on first use; nothing here is
  imported by ``import tidelog``. Arrows point down: this package uses the
  core's public read API only.
"""
