"""Targets of many processes on one log: the ``processes`` workload of
``tidelog bench`` (tidelog.bench.many_processes), its contenders round by round.

* acks: 4 spawned processes x 4 threads, each thread sending one 100-byte
  record through its process's producer (``acks="durable"``, ``linger_ms=0``)
  and waiting for the ack, all on one shared log; beside 1 process x 1 thread
  doing the same. Targets: >= 3x the acks/s, and >= 8 acks per fdatasync (the
  sum of every process's ``log.stats()["fdatasyncs"]`` delta).
* columnar: 2 processes appending 64 Ki-row sensor batches durably to one
  1-partition topic, beside 1 process appending the same rows alone. Target:
  >= 0.9x the rows/s.
* latency: produce-to-consume p50/p99 with the consumer in another process
  that opened the log read-write, beside the latency workload's setup (writer
  ``exclusive=True``, consumer ``read_only``). Reported, no target.

Every acks and columnar round writes a fresh log in a fresh folder; medians
over the measured rounds (the warm-up round dropped), the spread in the
extra info.
"""
from __future__ import annotations

import pytest

from benchlib import MODE, comparison, contender_rounds, interleaved, median, record, sized
from tidelog.bench.contenders.tidelog_processes import shared_mode_available
from tidelog.bench.workloads import find

ROUNDS = sized(7, 3)

pytestmark = pytest.mark.skipif(not shared_mode_available(),
                                reason="this build has no shared read-write mode (one writer process per log)")


def _params(part: str) -> dict:
    return next(p for p in find("processes").grid(MODE, {}) if p["part"] == part)


def _rounds(benchmark, bench_dir, params: dict, subject: str, baseline: str) -> tuple[list[dict], list[dict]]:
    """Measures of ``subject`` and ``baseline`` contenders, interleaved round by round, warm-up dropped."""
    wl = find("processes")
    data = wl.make_data(params, MODE)
    subject_ms: list[dict] = []
    base_ms: list[dict] = []
    with contender_rounds(subject, wl.name, params, data, bench_dir + "/subject") as subject_round, \
            contender_rounds(baseline, wl.name, params, data, bench_dir + "/baseline") as base_round:
        def base() -> float:
            m = base_round()
            base_ms.append(m)
            return m.get("seconds", 0.0)

        times, _ = interleaved(benchmark, lambda: subject_ms.append(subject_round()), {"base": base},
                               rounds=ROUNDS)
    n = len(times)
    return subject_ms[-n:], base_ms[-n:]


def _spread(xs: list[float]) -> list[float]:
    return [min(xs), max(xs)] if xs else []


def test_acks_from_4_processes_x_4_threads(benchmark, bench_dir):
    params = _params("acks")
    many, one = _rounds(benchmark, bench_dir, params, "tidelog processes", "tidelog 1 process")
    many_rate = [m["acks"] / m["seconds"] for m in many]
    one_rate = [m["acks"] / m["seconds"] for m in one]
    per_sync = [m["acks"] / m["fdatasyncs"] for m in many]
    ratio = median(many_rate) / median(one_rate)
    acks_per_sync = sum(m["acks"] for m in many) / sum(m["fdatasyncs"] for m in many)
    shape = f"{params['processes']} processes x {params['threads']} threads"
    record(
        benchmark,
        [
            comparison(f"M1. durable acks, {shape} vs 1 process x 1 thread", tidelog=median(many_rate),
                       baseline=median(one_rate), unit="acks/s", ratio=ratio, target=">= 3", passed=ratio >= 3,
                       baseline_name="1 process x 1 thread"),
            comparison(f"M1. acks per fdatasync, {shape} (sum of log.stats() deltas)", tidelog=acks_per_sync,
                       baseline=1.0, unit="acks/fdatasync", ratio=acks_per_sync, target=">= 8",
                       passed=acks_per_sync >= 8, baseline_name="1 per fdatasync"),
        ],
        acks_per_s=median(many_rate), acks_per_s_spread=_spread(many_rate),
        single_acks_per_s=median(one_rate), single_acks_per_s_spread=_spread(one_rate),
        round_ratios=[a / b for a, b in zip(many_rate, one_rate)],
        acks_per_fdatasync_rounds=per_sync,
        acks_per_log_fdatasync=(sum(m["acks"] for m in many) / sum(m["log_fdatasyncs"] for m in many)
                                if all(m.get("log_fdatasyncs") for m in many) else None),
    )
    assert all(m["check"] == m["acks"] for m in many + one)


def test_columnar_from_2_processes(benchmark, bench_dir):
    params = _params("columnar")
    many, one = _rounds(benchmark, bench_dir, params, "tidelog processes", "tidelog 1 process")
    many_rate = [m["rows"] / m["seconds"] for m in many]
    one_rate = [m["rows"] / m["seconds"] for m in one]
    ratio = median(many_rate) / median(one_rate)
    record(
        benchmark,
        [comparison(f"M2. durable 64 Ki-row appends to 1 partition, {params['processes']} processes vs 1 alone",
                    tidelog=median(many_rate), baseline=median(one_rate), unit="rows/s", ratio=ratio,
                    target=">= 0.9", passed=ratio >= 0.9, baseline_name="1 process")],
        rows_per_s_spread=_spread(many_rate), single_rows_per_s_spread=_spread(one_rate),
        round_ratios=[a / b for a, b in zip(many_rate, one_rate)],
    )
    assert all(m["check"] == m["rows"] for m in many + one)


@pytest.mark.parametrize("durability", ["interval", "fsync"])
def test_latency_consumer_in_another_process(benchmark, bench_dir, durability):
    from tidelog.bench.core import percentiles

    params = {"part": "latency", "durability": durability}
    shared, exclusive = _rounds(benchmark, bench_dir, params, "tidelog processes", "tidelog 1 process exclusive")
    s50, s99 = (x / 1e3 for x in percentiles([x for m in shared for x in m["latencies_ns"]], (50, 99)))
    e50, e99 = (x / 1e3 for x in percentiles([x for m in exclusive for x in m["latencies_ns"]], (50, 99)))
    base = "writer exclusive, consumer read_only"
    record(
        benchmark,
        [comparison(f"M3. latency p50, {durability} topic, consumer opened read-write", tidelog=s50, baseline=e50,
                    unit="us", ratio=e50 / s50, target=None, passed=None, baseline_name=base,
                    note="reported, no target"),
         comparison(f"M3. latency p99, {durability} topic, consumer opened read-write", tidelog=s99, baseline=e99,
                    unit="us", ratio=e99 / s99, target=None, passed=None, baseline_name=base,
                    note="reported, no target")],
        samples=sum(len(m["latencies_ns"]) for m in shared),
    )
