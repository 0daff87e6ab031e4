"""Target 2: scan of an uncompressed topic into pyarrow plus a sum over a column.

A 1-partition, uncompressed topic holds 16 Mi rows (320 MiB) of
(int64 ts, int32 sensor_id, float64 value), written once (durability="none",
then flushed) and read once before timing, so the page cache is warm and the
segment is mapped.

* tidelog: ``pc.sum(topic.read()["value"])`` - decode every frame zero-copy
  out of the mapping into a ``pa.Table`` (all columns), then sum one column;
* baseline: ``pc.sum(table["value"])`` over a ``pa.Table`` already in memory
  holding the same batches (same chunking, so the sum itself does the same work):
  the ``arrow (in memory)`` contender of ``tidelog bench -w scans``, on the
  same data (the scan workload's deterministic sensor stream).

Parametrized by frame size: 64 Ki-row frames (the append benchmark's batches,
256 frames: the primary figure) and 1 Mi-row frames (16 frames), which shows
how much of the gap is per-frame overhead. Target: tidelog >= 0.8x the
in-memory rows/s.
"""
from __future__ import annotations

import os
import time

import pyarrow.compute as pc
import pytest

import tidelog
from benchlib import SCHEMA, comparison, contender_rounds, interleaved, median, record, seconds_of, sized
from tidelog._sensors import ROW_BYTES, SensorData
from tidelog.bench.workloads import ScanData

TOTAL_ROWS = sized(16 * 1024 * 1024, 1024 * 1024)
ROUNDS = sized(15, 3)


def scan_data(frame_rows: int) -> ScanData:
    """TOTAL_ROWS readings in ``frame_rows`` batches, as the scans workload's data (only its "scan" case runs)."""
    sensors = SensorData(TOTAL_ROWS, frame_rows, seed=7)
    return ScanData(sensors, (0, 1), (sensors.ts_of_row(0), sensors.ts_of_row(1)), [0])


@pytest.mark.parametrize("frame_rows", [64 * 1024, 1024 * 1024], ids=["64Ki-row-frames", "1Mi-row-frames"])
def test_scan_sum(benchmark, bench_dir, frame_rows):
    # Every batch distinct in memory: a table repeating a few batches would sum
    # out of the CPU cache and flatter the baseline.
    data = scan_data(frame_rows)
    log = tidelog.open(os.path.join(bench_dir, "log"))
    topic = log.create_topic("readings", schema=SCHEMA, partitions=1, timestamp="ts", durability="none",
                             segment_bytes=2**31 - 2**20)
    for b in data.sensors.batches():
        topic.append(b)
    log.flush()
    in_memory_rounds = contender_rounds("arrow (in memory)", "scans", {"size": TOTAL_ROWS * ROW_BYTES}, data,
                                        bench_dir, case={"query": "scan"})

    def stream():
        t0 = time.perf_counter()
        total = 0.0
        for batch in topic.scan(columns=["value"]):
            total += pc.sum(batch.column(0)).as_py()
        return time.perf_counter() - t0

    def subject():
        pc.sum(topic.read()["value"])

    try:
        with in_memory_rounds as in_memory:
            expected = in_memory()["check"]
            got = pc.sum(topic.read()["value"]).as_py()  # warms the page cache and the mapping
            assert got == pytest.approx(expected)
            times, base = interleaved(benchmark, subject, {"in_memory": seconds_of(in_memory), "scan_stream": stream},
                                      rounds=ROUNDS)
        read_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            topic.read()
            read_times.append(time.perf_counter() - t0)
    finally:
        log.close()
    tl_rate = TOTAL_ROWS / median(times)
    mem_rate = TOTAL_ROWS / median(base["in_memory"])
    stream_rate = TOTAL_ROWS / median(base["scan_stream"])
    label = f"{frame_rows // 1024} Ki-row frames"
    record(
        benchmark,
        [
            comparison(f"2. read()+pc.sum, {label} vs sum over in-memory pa.Table", tidelog=tl_rate,
                       baseline=mem_rate, unit="rows/s", ratio=tl_rate / mem_rate, target=">= 0.8",
                       passed=tl_rate / mem_rate >= 0.8, baseline_name="pc.sum(in-memory table)"),
            comparison(f"2. scan(columns=[value]) streaming sum, {label} vs in-memory", tidelog=stream_rate,
                       baseline=mem_rate, unit="rows/s", ratio=stream_rate / mem_rate, target=None, passed=None,
                       baseline_name="pc.sum(in-memory table)", note="per-batch sums, context only"),
        ],
        frames=data.sensors.nbatches,
        total_rows=TOTAL_ROWS,
        read_only_median_s=median(read_times),
        sum_in_memory_median_s=median(base["in_memory"]),
        per_frame_read_us=median(read_times) / data.sensors.nbatches * 1e6,
    )
