"""The demo's stages, in order, and what it prints."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, TextIO

import numpy as np

import tidelog
import tidelog.es

from .._sensors import TICK_SCHEMA
from ..errors import InvalidArgumentError, UnknownGroupError
from . import _alerts, _analytics, _feed, _live_mqtt
from ._read_model import SensorAlerts, summary
from ._show import Show
from ._sqlite import sqlite_ingest
from ._workspace import prepare

TOPIC = "readings"
WINDOW_NS = 5 * 60 * 1_000_000_000     # the query's window: the last five minutes


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """What ``tidelog demo`` runs (its command-line options)."""

    rows: int = 10_000_000          # readings of history (the backfill)
    sensors: int = 1_000
    batch_rows: int = 65_536        # rows per appended batch of history
    directory: str | None = None    # the log folder (None: a new temporary folder, kept)
    sqlite_rows: int = 2_000_000    # rows of the same ingest into SQLite, for the comparison line
    live_seconds: float = 15.0      # how long the sensors report live
    workers: int = 2                # alerting worker processes in the consumer group
    mqtt: str = "auto"              # "auto" (a private Mosquitto when installed), a broker URL, "off"

    def check(self) -> None:
        for name, low in (("rows", 1), ("sensors", 1), ("batch_rows", 1), ("workers", 1), ("sqlite_rows", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                flag = "--" + name.replace("_", "-").replace("batch-rows", "batch")
                raise InvalidArgumentError(f"{flag} takes a whole number of at least {low}, not {value!r}")
        if not (0 <= self.live_seconds <= 3600):
            raise InvalidArgumentError(f"--live-seconds takes 0 to 3600 seconds, not {self.live_seconds!r}")


def _rate(n: float, seconds: float) -> str:
    return f"{n / max(seconds, 1e-9):,.0f}"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _dir_bytes(path: str, skip: str | None = None) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        if skip is not None:
            dirs[:] = [d for d in dirs if os.path.join(root, d) != skip]
        total += sum(os.stat(os.path.join(root, f)).st_blocks * 512 for f in files)
    return total


def _wait_caught_up(log: Any, workers: int, total_rows: int, show: Show, timeout_s: float) -> float:
    """Seconds until the alerting group has ``workers`` members and no lag."""
    stage = show.stage("workers through history", total_rows)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s:
            try:
                d = log.describe_group(_alerts.GROUP)
            except UnknownGroupError:
                d = None
            if d is not None and d.lag:
                left = sum(v or 0 for v in d.lag.values())
                stage.update(total_rows - left, f"{len(d.members)} members")
                if len(d.members) == workers and not left:
                    return time.monotonic() - t0
            time.sleep(0.05)
    finally:
        stage.close()
    raise RuntimeError(f"the alerting workers did not catch up within {timeout_s:.0f} s")


def run_demo(options: DemoOptions = DemoOptions(), out: TextIO | None = None) -> int:
    options.check()
    _live_mqtt.plan(options.mqtt)   # a bad --mqtt is refused before anything is written
    show = Show(out)
    ws = prepare(options.directory)
    o = options
    history_ticks = -(-o.rows // o.sensors)
    show.line(f"tidelog demo: {o.sensors:,} sensors, {o.rows:,} readings of history "
              f"({history_ticks * 0.1 / 60:,.1f} minutes at 10 readings/s each), then {o.live_seconds:g} s live")
    if ws.replaced:
        show.line(f"  (replaced the data of an earlier demo in {ws.log_dir})")
    figures: dict[str, Any] = {}
    now_ns = time.time_ns()
    start_ns = _feed.history_start_ns(o.rows, o.sensors, now_ns)
    with tidelog.open(ws.log_dir) as log:
        ws.mark()
        topic = log.create_topic(TOPIC, schema=TICK_SCHEMA, partitions=4, key="sensor_id", timestamp="ts",
                                 durability="fsync")
        store = log.event_store(_alerts.STORE)

        # 1. History: durable columnar ingest.
        stage = show.stage("history -> readings", o.rows)
        t0 = time.perf_counter()
        raw = 0
        for batch in _feed.backfill(o.rows, o.sensors, o.batch_rows, start_ns):
            topic.append(batch)
            raw += batch.nbytes
            stage.advance(batch.num_rows, f"{_rate(stage.done, time.perf_counter() - t0)} rows/s")
        ingest_s = time.perf_counter() - t0
        stage.close()
        stats = log.stats()
        figures["ingest_rows_s"] = o.rows / ingest_s
        show.line(f"1 ingest   {o.rows:,} readings appended durably (fsync mode) in {ingest_s:.2f} s: "
                  f"{_rate(o.rows, ingest_s)} rows/s, {_mb(raw / ingest_s)}/s, "
                  f"{stats['fdatasyncs']:,} fdatasyncs for {stats['appends']:,} partition appends")

        # 2. A consumer group of worker processes turns readings into event-sourced alerts.
        runner = tidelog.es.SqliteProjectionRunner(store, SensorAlerts(), ws.side("alerts.sqlite"))
        live_from_ns = time.time_ns()
        procs, stop, results = _alerts.start_workers(ws.log_dir, TOPIC, live_from_ns, o.workers)
        try:
            with runner:
                catch_up_s = _wait_caught_up(log, o.workers, o.rows, show, timeout_s=300)
                show.line(f"2 alerting {o.workers} worker processes in consumer group '{_alerts.GROUP}' started "
                          f"and went through the history in {catch_up_s:.1f} s "
                          f"(alert above {_alerts.RAISE_ABOVE:g}, clear below {_alerts.CLEAR_BELOW:g})")

                # 3. Live: the sensors report every 100 ms (through MQTT when a broker answers).
                stage = show.stage("live sensors", max(1, int(round(o.live_seconds * 10))))
                live_rows, live_s, path = _live_mqtt.run_live(o.mqtt, log, topic, o.sensors, o.live_seconds,
                                                              lambda i, n: stage.update(i, f"tick {i}/{n}"))
                stage.close()
                gathered = _alerts.finish_workers(procs, stop, results)
                runner.wait_for(store.end_position, timeout=60)
        finally:
            stop.set()
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join()
        lat = np.asarray([v for g in gathered for v in g["latency_us"]])
        p50, p99 = (np.percentile(lat, [50, 99]) if lat.size else (float("nan"),) * 2)
        figures["latency_us"] = (p50, p99)
        rows_done = sum(g["rows"] for g in gathered)
        model = summary(ws.side("alerts.sqlite"))
        show.line(f"3 live     {live_rows:,} readings in {live_s:.1f} s {path}; the workers processed "
                  f"{rows_done:,} rows in all, reading -> worker latency across processes (durable first) p50 {p50 / 1e3:.1f} ms, "
                  f"p99 {p99 / 1e3:.1f} ms")
        show.line(f"4 events   {store.event_count:,} alert events in the event store '{_alerts.STORE}' "
                  f"({model['raised']:,} raised, {model['cleared']:,} cleared, on {model['sensors']:,} sensors); "
                  f"the projection's read model has {model['active']:,} sensors alerting now, "
                  f"the noisiest: " + ", ".join(f"sensor {s} ({n}x)" for s, n in model["noisiest"]))

        # 4. A query over the last five minutes.
        q = _analytics.window_query(topic, now_ns + int(live_s * 1e9) - WINDOW_NS, time.time_ns() + 1)
        read = f", reading {_mb(q.bytes_read)} of the topic's {_mb(q.bytes_total)}" if q.bytes_read is not None else ""
        show.line(f"5 query    {q.engine}: the hottest sensors of the last five minutes ({q.rows_in_window:,} rows) "
                  f"in {q.seconds * 1e3:.0f} ms{read}: "
                  + ", ".join(f"sensor {s} max {hi:.1f}" for s, hi, _ in q.hottest[:3]))

        # 5. A Parquet export.
        export = _analytics.export_parquet(topic, ws.side("export"))
        show.line(f"6 export   {export.rows:,} rows to {export.files} Parquet file(s), {_mb(export.bytes)} (zstd), "
                  f"in {export.seconds:.2f} s: {_rate(export.rows, export.seconds)} rows/s")

    # 6. The same ingest into SQLite.
    log_bytes = _dir_bytes(ws.log_dir, skip=ws.side_dir)
    figures["log_bytes"] = log_bytes
    if o.sqlite_rows:
        sqlite_path = ws.side("readings.sqlite")
        taken, sqlite_s = sqlite_ingest(sqlite_path, _feed.backfill(o.rows, o.sensors, o.batch_rows, start_ns),
                                        o.sqlite_rows)
        sqlite_rate = taken / sqlite_s
        sqlite_bytes = sum(os.path.getsize(sqlite_path + s) for s in ("", "-wal") if os.path.exists(sqlite_path + s))
        show.line(f"7 SQLite   the same durable ingest (WAL, synchronous=FULL, a transaction per batch) of "
                  f"{taken:,} rows: {_rate(taken, sqlite_s)} rows/s, {sqlite_bytes / max(taken, 1):.0f} bytes a row "
                  f"(tidelog: {log_bytes / (o.rows + live_rows):.0f})")
        show.line(f"  tidelog ingests {figures['ingest_rows_s'] / sqlite_rate:.1f}x faster than SQLite, durably")
    show.line("")
    show.line(f"The data is in {ws.log_dir} ({_mb(log_bytes)} of log; alerts.sqlite, readings.sqlite and the "
              f"Parquet export in {ws.side_dir}). Try:")
    show.line(f"  tidelog topics describe {ws.log_dir} {TOPIC}")
    show.line(f"  tidelog verify {ws.log_dir}")
    show.line(f"  tidelog groups describe {ws.log_dir} {_alerts.GROUP}")
    show.line(f"Nothing is left running. Remove it all with: rm -r {ws.log_dir}")
    return 0
