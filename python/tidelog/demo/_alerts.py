"""The demo's alerting: worker processes in a consumer group turn readings
into event-sourced alerts, and a projection keeps the alerts' read model.

Each sensor is an event stream ``sensor-<id>`` in the event store ``demo``.
A worker keeps, per sensor of its partitions, whether the sensor is alerting;
a reading above ``RAISE_ABOVE`` raises an alert, one below ``CLEAR_BELOW``
clears it (hysteresis: noise around one threshold does not flap). The alerts
of one polled batch go to the store in one atomic ``append_many``, with each
stream's expected version, and only then does the worker commit the batch's
offsets. A worker that dies between the two leaves the batch to be polled
again; the transitions it already stored are recognised by their reading's
timestamp (not newer than the stream's last event) and not stored twice.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import time
from typing import Any

import numpy as np
import pyarrow as pa

RAISE_ABOVE = 32.0
CLEAR_BELOW = 29.0
STORE = "demo"
GROUP = "alerting"


@dataclasses.dataclass(frozen=True)
class AlertRaised:
    sensor_id: int
    ts_ns: int
    value: float


@dataclasses.dataclass(frozen=True)
class AlertCleared:
    sensor_id: int
    ts_ns: int
    value: float


@dataclasses.dataclass
class SensorState:
    alerting: bool
    version: int       # the stream's last version (-1: no events yet)
    last_ts_ns: int    # the reading behind the stream's last event


def stream_of(sensor_id: int) -> str:
    return f"sensor-{sensor_id}"


def load_state(store: Any, sensor_id: int) -> SensorState:
    """A sensor's state from its stream's last event (what a restarted worker,
    or the member a partition moved to, starts from)."""
    last = store.last_event(stream_of(sensor_id))
    if last is None:
        return SensorState(False, -1, -1)
    event = last.decode()
    ts_ns = event["ts_ns"] if isinstance(event, dict) else event.ts_ns
    return SensorState(last.type.endswith("AlertRaised"), last.version, int(ts_ns))


def transitions(batch: pa.RecordBatch, states: dict[int, SensorState]) -> list[tuple[int, Any]]:
    """The alerts ``batch``'s readings cause, per sensor in time order, given
    and updating ``states`` (sensors not in it start not alerting)."""
    ids = batch.column("sensor_id").to_numpy(zero_copy_only=False)
    values = batch.column("value").to_numpy(zero_copy_only=False)
    ts = batch.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    candidates = (values > RAISE_ABOVE) | (values < CLEAR_BELOW)
    out: list[tuple[int, Any]] = []
    if not candidates.any():
        return out
    # Only readings past a threshold can change a state; walk those per sensor.
    idx = np.flatnonzero(candidates)
    order = np.lexsort((ts[idx], ids[idx]))
    idx = idx[order]
    for i in idx.tolist():
        sensor = int(ids[i])
        state = states[sensor]
        if ts[i] <= state.last_ts_ns:
            continue             # stored before a restart: already an event
        v = float(values[i])
        if not state.alerting and v > RAISE_ABOVE:
            state.alerting = True
            out.append((sensor, AlertRaised(sensor, int(ts[i]), v)))
        elif state.alerting and v < CLEAR_BELOW:
            state.alerting = False
            out.append((sensor, AlertCleared(sensor, int(ts[i]), v)))
    return out


def worker(log_dir: str, topic: str, live_from_ns: int, stop: Any, results: Any) -> None:
    """One member of the ``alerting`` group, in its own process: polls Arrow
    batches, stores alerts, commits; stops once ``stop`` is set and it has
    caught up. Puts its figures on ``results``."""
    import tidelog

    rows = batches = raised = cleared = 0
    latencies: list[np.ndarray] = []
    with tidelog.open(log_dir) as log:
        store = log.event_store(STORE)
        consumer = log.consumer([topic], group=GROUP, enable_auto_commit=False)
        states: dict[int, SensorState] = {}
        try:
            while True:
                batch = consumer.poll_batch(65_536, timeout=0.1)
                if batch is None:
                    if stop.is_set() and consumer.assignment() and not any(consumer.lag().values()):
                        break
                    continue
                polled_ns = time.time_ns()
                ts = batch.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
                live = ts[ts >= live_from_ns]
                if live.size:
                    latencies.append((polled_ns - live) / 1e3)
                for sensor in np.unique(batch.column("sensor_id").to_numpy(zero_copy_only=False)).tolist():
                    if sensor not in states:
                        states[sensor] = load_state(store, sensor)
                alerts = transitions(batch, states)
                if alerts:
                    per_stream: dict[int, list[Any]] = {}
                    for sensor, event in alerts:
                        per_stream.setdefault(sensor, []).append(event)
                    appends = [(stream_of(s), events, states[s].version) for s, events in per_stream.items()]
                    store.append_many(appends)
                    for s, events in per_stream.items():
                        states[s].version += len(events)
                        states[s].last_ts_ns = events[-1].ts_ns
                    raised += sum(isinstance(e, AlertRaised) for _, e in alerts)
                    cleared += sum(isinstance(e, AlertCleared) for _, e in alerts)
                consumer.commit()
                rows += batch.num_rows
                batches += 1
        finally:
            consumer.close()
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    results.put({"rows": rows, "batches": batches, "raised": raised, "cleared": cleared,
                 "latency_us": lat[:: max(1, lat.size // 20_000)].tolist()})


def start_workers(log_dir: str, topic: str, live_from_ns: int, count: int) -> tuple[list[Any], Any, Any]:
    """``count`` worker processes (spawned: a fresh interpreter each, as
    separate services would be). Returns (processes, stop event, results queue)."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(log_dir, topic, live_from_ns, stop, results), daemon=True,
                         name=f"tidelog-demo-alerts-{i}") for i in range(count)]
    for p in procs:
        p.start()
    return procs, stop, results


def finish_workers(procs: list[Any], stop: Any, results: Any, timeout_s: float = 120.0) -> list[dict]:
    """Signals the workers to stop once caught up and gathers their figures;
    any worker still running after ``timeout_s`` is killed (nothing is left
    running)."""
    stop.set()
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        for _ in procs:
            out.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
    finally:
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
    failed = [p for p in procs if p.exitcode not in (0, None)]
    if failed or len(out) != len(procs):
        raise RuntimeError(f"{len(procs) - len(out)} alerting worker(s) failed (exit codes "
                           f"{[p.exitcode for p in procs]})")
    return out
