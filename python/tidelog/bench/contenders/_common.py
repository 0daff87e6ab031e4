"""Helpers shared by several contenders."""
from __future__ import annotations

import os
import queue
import re
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _child

ROUND_END = 0      # latency markers: the 8-byte timestamp field of a record/message
STOP = 1


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def store_dir(tmpdir: str, name: str) -> str:
    path = os.path.join(tmpdir, safe_name(name))
    os.makedirs(path, exist_ok=True)
    return path


def fill_recovery_store(contender, tmpdir: str, data) -> str:
    """The recovery workload's store of ``contender``: its folder, filled up to
    ``data.size`` by a writer child that then closes it cleanly."""
    path = store_dir(tmpdir, contender.name)
    _child.fill(contender, path, data.size, data.value_bytes)
    return path


def crash_writer_if_asked(contender, case: dict, path: str, data) -> None:
    """Before a timed "sigkill" round: a fresh writer child appends to the
    store at ``path`` and is SIGKILLed mid-write."""
    if case["after"] == "sigkill":
        _child.crash(contender, path, data.value_bytes, data.linger_s)


def stamp_value(size: int):
    """A function making a ``size``-byte value whose first 8 bytes are ``ns``."""
    pad = b"x" * max(0, size - 8)
    return lambda ns: ns.to_bytes(8, "little") + pad


def paced_round(send, per_round: int, pace_s: float, value_bytes: int) -> None:
    """Sends ``per_round`` stamped values, ``pace_s`` apart, then the round-end marker."""
    make = stamp_value(value_bytes)
    now, sleep = time.time_ns, time.sleep
    for _ in range(per_round):
        send(make(now()))
        sleep(pace_s)
    send(make(ROUND_END))


def consume_loop(next_value, conn) -> None:
    """Consumer side of the latency workload: ``next_value()`` blocks for the
    next value; stamped values become samples, sent back at each round end."""
    now = time.time_ns
    out: list[int] = []
    conn.send(("ready", None))
    while True:
        v = next_value()
        t = now()
        x = int.from_bytes(v[:8], "little")
        if x == ROUND_END:
            conn.send(("samples", out))
            out = []
        elif x == STOP:
            return
        else:
            out.append(t - x)


class LocalConsumer:
    """A consumer thread in this process, with the RemoteConsumer interface."""

    def __init__(self, body):
        self._q: queue.Queue = queue.Queue()
        self._error: BaseException | None = None

        def run():
            try:
                body(self)
            except BaseException as e:  # reported by samples()
                self._error = e
                self._q.put(("error", repr(e)))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._get("ready", 60)

    def send(self, msg) -> None:
        self._q.put(msg)

    def _get(self, what: str, timeout: float):
        try:
            kind, payload = self._q.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"consumer thread did not report {what!r}") from None
        if kind == "error":
            raise RuntimeError(f"consumer thread failed: {payload}")
        return payload

    def samples(self, timeout: float = 60) -> list[int]:
        return self._get("samples", timeout)

    def close(self) -> None:
        self._thread.join(10)


def ts_range_sum(nbatches: int, get_batch, t0: int, t1: int, ts_col: int = 0, value_col: int = 2):
    """Rows and sum of ``value`` of the rows with t0 <= ts < t1, over batches
    sorted by ts (and sorted within): a binary search over the batches, then
    over the ts of the boundary batches. What a careful user of plain Arrow
    data (in memory or an IPC file) would write."""
    lo, hi = 0, nbatches
    while lo < hi:                      # first batch whose last ts >= t0
        mid = (lo + hi) // 2
        b = get_batch(mid)
        if b.column(ts_col)[b.num_rows - 1].as_py() < t0:
            lo = mid + 1
        else:
            hi = mid
    rows, total = 0, 0.0
    i = lo
    while i < nbatches:
        b = get_batch(i)
        ts = b.column(ts_col).to_numpy()
        if ts[0] >= t1:
            break
        a, z = int(np.searchsorted(ts, t0)), int(np.searchsorted(ts, t1))
        if z > a:
            rows += z - a
            total += pc.sum(b.column(value_col).slice(a, z - a)).as_py()
        i += 1
    return rows, total


def timed_windows(windows, query) -> dict:
    """The scans workload's range round: ``query(t0, t1) -> (rows, sum)`` for
    each window, timed together; also the first window's own time (the caches
    as the previous contender left them)."""
    rows, total, first = 0, 0.0, None
    clock = time.perf_counter
    t0 = clock()
    for lo, hi in windows:
        n, s = query(lo, hi)
        rows, total = rows + n, total + s
        if first is None:
            first = clock() - t0
    return {"seconds": clock() - t0, "first_seconds": first, "rows": rows, "check": total, "queries": len(windows)}


def batch_payloads(batches: list[pa.RecordBatch]) -> list[pa.Buffer]:
    """Each batch as its Arrow IPC message (what an Arrow-native log writes)."""
    return [b.serialize() for b in batches]


def chunks(values: list[bytes], chunk_bytes: int = 1 << 20) -> list[bytes]:
    """The values concatenated, cut in about ``chunk_bytes`` pieces (a producer's batches)."""
    out, cur, size = [], [], 0
    for v in values:
        cur.append(v)
        size += len(v)
        if size >= chunk_bytes:
            out.append(b"".join(cur))
            cur, size = [], 0
    if cur:
        out.append(b"".join(cur))
    return out
