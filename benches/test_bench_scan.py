"""Target 2: scan of an uncompressed topic into pyarrow plus a sum over a column.

A 1-partition, uncompressed topic holds 16 Mi rows (320 MiB) of
(int64 ts, int32 sensor_id, float64 value), written once (durability="none",
then flushed) and read once before timing, so the page cache is warm and the
segment is mapped.

* tidelog (the ``tidelog`` contender of ``tidelog bench -w scans``, query
  "scan", segments of 2 GiB - 1 MiB so the topic is one segment):
  ``pc.sum(topic.read()["value"])`` - decode every frame zero-copy
  out of the mapping into a ``pa.Table`` (all columns), then sum one column;
* baseline: ``pc.sum(table["value"])`` over a ``pa.Table`` already in memory
  holding the same batches (same chunking, so the sum itself does the same work):
  the ``arrow (in memory)`` contender of ``tidelog bench -w scans``, on the
  same data (the scan workload's deterministic sensor stream).

Parametrized by frame size (the scans workload's ``frame_rows`` cases): 64 Ki-row frames (the append benchmark's batches,
256 frames: the primary figure) and 1 Mi-row frames (16 frames), which shows
how much of the gap is per-frame overhead. Target: tidelog >= 0.8x the
in-memory rows/s.
"""
from __future__ import annotations

import pytest

from benchlib import collect, comparison, contender_rounds, interleaved, median, record, seconds_of, sized
from tidelog._sensors import ROW_BYTES, SensorData
from tidelog.bench.workloads import ScanData

TOTAL_ROWS = sized(16 * 1024 * 1024, 1024 * 1024)
ROUNDS = sized(15, 3)


def scan_data(frame_rows: int) -> ScanData:
    """TOTAL_ROWS readings in ``frame_rows`` batches, as the scans workload's data (only its "scan" case runs)."""
    sensors = SensorData(TOTAL_ROWS, frame_rows, seed=7)
    return ScanData(sensors, [(0, 1)], [(sensors.ts_of_row(0), sensors.ts_of_row(1))], [0],
                    segment_bytes=2**31 - 2**20)


@pytest.mark.parametrize("frame_rows", [64 * 1024, 1024 * 1024], ids=["64Ki-row-frames", "1Mi-row-frames"])
def test_scan_sum(benchmark, bench_dir, frame_rows):
    # Every batch distinct in memory: a table repeating a few batches would sum
    # out of the CPU cache and flatter the baseline.
    data = scan_data(frame_rows)
    params = {"size": TOTAL_ROWS * ROW_BYTES, "frame_rows": frame_rows}
    scans: list[dict] = []
    with contender_rounds("tidelog", "scans", params, data, bench_dir, case={"query": "scan"}) as tl, \
            contender_rounds("arrow (in memory)", "scans", params, data, bench_dir, case={"query": "scan"}) as mem:
        expected = mem()["check"]
        assert tl()["check"] == pytest.approx(expected)  # warms the page cache and the mapping
        times, base = interleaved(benchmark, collect(tl, scans),
                                  {"in_memory": seconds_of(mem),
                                   "scan_stream": lambda: tl({"query": "stream"})["seconds"]},
                                  rounds=ROUNDS)
        read_times = [tl({"query": "read"})["seconds"] for _ in range(5)]
    tl_rate = TOTAL_ROWS / median([m["seconds"] for m in scans[len(scans) - len(times):]])
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
