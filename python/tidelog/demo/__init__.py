"""``tidelog demo``: the whole story in one command.

Simulated sensors report (history first, then live, through MQTT when a
broker answers) -> durable columnar ingest -> a consumer group of worker
processes turning readings into alerts -> alerts as events in an event store
-> a projection keeping the alerts' read model in SQLite -> a SQL query over
the last five minutes (DuckDB, else Polars, else pyarrow) -> a Parquet
export, with the same ingest into SQLite as the comparison line.

Contract: ``run_demo(DemoOptions(...))`` writes into ``directory`` (the log
folder: every ``tidelog`` verb works on it; the demo's other files in its
``demo/`` subfolder), or into a new temporary folder it names at the end,
and keeps the data. It refuses a non-empty folder an earlier demo did not
make, and replaces one that an earlier demo made. It needs no network, and
leaves no process or thread running when it returns or raises.
"""
from ._run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
