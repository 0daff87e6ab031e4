"""The alerts' read model: a projection of the ``demo`` event store into
SQLite (``DIR/demo/alerts.sqlite``), kept exactly once by the event store's
projection runner (each batch of events and the checkpoint in one SQLite
transaction)."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from ..es import Projection, applies
from ._alerts import AlertCleared, AlertRaised


class SensorAlerts(Projection):
    stream_prefixes = ("sensor-",)

    def setup(self, db: Any) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS sensor_alerts (sensor_id INTEGER PRIMARY KEY, raised INTEGER, "
                   "cleared INTEGER, active INTEGER, last_value REAL, last_ts_ns INTEGER)")

    def drop(self, db: Any) -> None:
        db.execute("DROP TABLE IF EXISTS sensor_alerts")

    @applies(AlertRaised)
    def raised(self, db: Any, event: AlertRaised) -> None:
        db.execute("INSERT INTO sensor_alerts VALUES (?, 1, 0, 1, ?, ?) ON CONFLICT (sensor_id) DO UPDATE SET "
                   "raised = raised + 1, active = 1, last_value = excluded.last_value, "
                   "last_ts_ns = excluded.last_ts_ns", (event.sensor_id, event.value, event.ts_ns))

    @applies(AlertCleared)
    def cleared(self, db: Any, event: AlertCleared) -> None:
        db.execute("UPDATE sensor_alerts SET cleared = cleared + 1, active = 0, last_value = ?, last_ts_ns = ? "
                   "WHERE sensor_id = ?", (event.value, event.ts_ns, event.sensor_id))


def summary(path: str) -> dict:
    """What a dashboard would ask the read model."""
    with closing(sqlite3.connect(path)) as db:
        sensors, raised, cleared, active = db.execute(
            "SELECT count(*), coalesce(sum(raised), 0), coalesce(sum(cleared), 0), coalesce(sum(active), 0) "
            "FROM sensor_alerts").fetchone()
        noisiest = db.execute("SELECT sensor_id, raised FROM sensor_alerts ORDER BY raised DESC, sensor_id "
                              "LIMIT 3").fetchall()
    return {"sensors": sensors, "raised": raised, "cleared": cleared, "active": active, "noisiest": noisiest}
