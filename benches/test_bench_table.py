"""What a durable table's put costs (_core.DurableTable, FORMAT.md "Durable tables").

A consumer group commits its offsets as one put + sync: lock, catch up, one
record appended, unlock, fdatasync. Two baselines, measured in the same rounds
(interleaved, so noise hits all alike): the floor on this machine, a raw
``os.pwrite`` of the same number of bytes over the start of a file that already
holds them, then ``os.fdatasync`` (no size change to commit: what the target,
put+sync <= 1.2x of it, is measured against), and the same pwrite at the end of
a growing file (the fdatasync also commits the new size: what an append-only
journal without preallocation pays). Also measured: the put alone (no sync:
what coordination state written without fdatasync costs) against a raw
``os.pwrite`` of the same bytes.

Per-operation latencies; medians and the p10-p90 spread are reported. The table
rewrites its journal when it passes 1 MiB (about 7,000 of these puts): rounds
are short enough to include one now and then, as a real table would.
"""
from __future__ import annotations

import os
import time

from benchlib import comparison, record, sized
from tidelog import _core
from tidelog.bench.core import percentiles

ROUNDS = sized(9, 3)
PER_ROUND = sized(300, 60)
KEY = b"offsets/orders/0"
VALUE = b"x" * 40  # an offset, a leader epoch and metadata, roughly
RECORD_BYTES = 32 + 8 + len(KEY) + len(VALUE)  # journal record header + change header + key + value


def _table_round(t: _core.DurableTable, sync: bool) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for i in range(PER_ROUND):
        t0 = clock()
        with t:
            token = t.put([(KEY, VALUE)])
        if sync:
            t.sync(token)
        out.append(clock() - t0)
    return out


def _raw_round(fd: int, pos: list[int], sync: bool, in_place: bool = False) -> list[int]:
    """pwrite (+ fdatasync) of one record's bytes: at pos[0], which then moves
    on (appending), or over the first 64 records' bytes again (in_place)."""
    out = []
    data = b"r" * RECORD_BYTES
    clock = time.perf_counter_ns
    for i in range(PER_ROUND):
        at = (i % 64) * RECORD_BYTES if in_place else pos[0]
        t0 = clock()
        os.pwrite(fd, data, at)
        if sync:
            os.fdatasync(fd)
        pos[0] += RECORD_BYTES
        out.append(clock() - t0)
    return out


def _summary(samples: list[int]) -> tuple[float, float, float]:
    p10, p50, p90 = percentiles(samples, (10, 50, 90))
    return p50 / 1e3, p10 / 1e3, p90 / 1e3


def test_bench_table_put_sync(benchmark, bench_dir):
    table = _core.DurableTable(os.path.join(bench_dir, "table"))
    fd = os.open(os.path.join(bench_dir, "raw"), os.O_RDWR | os.O_CREAT, 0o644)
    in_place_fd = os.open(os.path.join(bench_dir, "raw-in-place"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(in_place_fd, b"r" * (64 * RECORD_BYTES), 0)
    os.fdatasync(in_place_fd)
    pos = [0]
    samples: dict[str, list[int]] = {"table put+sync": [], "raw pwrite+fdatasync in place": [],
                                     "raw pwrite+fdatasync": [], "table put": [], "raw pwrite": []}
    try:
        for r in range(ROUNDS + 1):  # round 0 warms up
            got = {
                "raw pwrite+fdatasync in place": _raw_round(in_place_fd, [0], True, in_place=True),
                "raw pwrite+fdatasync": _raw_round(fd, pos, True),
                "table put+sync": _table_round(table, True),
                "raw pwrite": _raw_round(fd, pos, False),
                "table put": _table_round(table, False),
            }
            if r:
                for k, v in got.items():
                    samples[k] += v
    finally:
        os.close(fd)
        os.close(in_place_fd)
        table.close()
    rows = []
    for name, base in (("table put+sync", "raw pwrite+fdatasync in place"), ("table put+sync", "raw pwrite+fdatasync"),
                       ("table put", "raw pwrite")):
        t50, t10, t90 = _summary(samples[name])
        b50, b10, b90 = _summary(samples[base])
        rows.append(comparison(f"{name} ({RECORD_BYTES} B)", tidelog=t50, baseline=b50, unit="us",
                               ratio=b50 / t50, target=None, passed=None, baseline_name=base,
                               note=f"p10-p90 {t10:.1f}-{t90:.1f} us vs {b10:.1f}-{b90:.1f} us"))
    record(benchmark, rows, samples_per_contender=len(samples["table put"]))
    for row in rows:
        print(f"{row['name']:<28} {row['tidelog']:9.1f} us  {row['baseline_name']:<30} {row['baseline']:9.1f} us"
              f"  (baseline/table {row['ratio']:.2f})  {row['note']}")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
