"""Targets of log compaction: the ``compaction`` workload of ``tidelog bench``
(tidelog.bench.compaction), its contenders round by round, the baseline
measured in the same rounds (interleaved, so noise hits both alike).

* C1 cleaner throughput: ``topic.compact_now()`` over the sealed segments of a
  1-partition topic whose keys were updated many times each (most records go)
  >= 0.5x reading the same segment files sequentially (1 MiB ``os.readv``).
  MB/s of segment bytes compacted. The target is on the **cold** case: both
  sides start with the files evicted from the page cache, as a cleaner's
  segments mostly are (Kafka's cleaner reads segments written long before,
  which the page cache has usually dropped, and warm, the baseline is a
  memcpy, not a read bandwidth). The warm case is reported beside it, with no
  target. Two shapes: sensor rows (20-byte rows, int32 key of 100 k values,
  the target's) and byte records (16-byte keys, 100-byte values, reported).
  Every round compacts a fresh copy of the prepared log (copied outside the
  clock), the Log's own cleaner thread stopped.
* C2 appends while the cleaner runs: ``topic.append`` of 4 Ki-row batches to a
  compacted topic while a cleaner thread of the same process compacts four
  other pre-filled topics of the same log >= 0.85x the same appends with no
  cleaner (rows/s).
* C3 ``topic.table()`` over 2 M rows of 1 M keys >= 0.5x pyarrow computing
  the latest row per key over the same rows in memory (group_by key, max row
  number, take; only that timed). Input rows/s.

Medians over the measured rounds (the warm-up round dropped), the min-max
spread in the extra info and the notes.
"""
from __future__ import annotations

import contextlib

from benchlib import MODE, comparison, contender_rounds, interleaved, median, record, sized
from tidelog.bench.core import MB
from tidelog.bench.workloads import find

ROUNDS = sized(5, 3)


def _params(part: str, records: str | None = None) -> dict:
    return next(p for p in find("compaction").grid(MODE, {})
                if p["part"] == part and (records is None or p.get("records") == records))


def _rounds(benchmark, bench_dir, params: dict, subject: str, baseline: str, cases: list[dict]):
    """Measures of ``subject`` and ``baseline`` for every case, interleaved round
    by round (each round: the baseline, then the subject, case after case),
    warm-up dropped: ({case index: [subject measure]}, {case index: [baseline measure]})."""
    wl = find("compaction")
    data = wl.make_data(params, MODE)
    ms: dict[int, list[dict]] = {k: [] for k in range(len(cases))}
    base: dict[int, list[dict]] = {k: [] for k in range(len(cases))}
    with contextlib.ExitStack() as stack:
        subject_round = stack.enter_context(contender_rounds(subject, wl.name, params, data, bench_dir + "/s"))
        base_round = stack.enter_context(contender_rounds(baseline, wl.name, params, data, bench_dir + "/b"))
        def baselines() -> float:
            for k, case in enumerate(cases):
                base[k].append(base_round(case))
            return 0.0

        def subject_all() -> None:
            for k, case in enumerate(cases):
                ms[k].append(subject_round(case))

        times, _ = interleaved(benchmark, subject_all, {baseline: baselines}, rounds=ROUNDS)
    n = len(times)
    return data, {k: v[-n:] for k, v in ms.items()}, {k: v[-n:] for k, v in base.items()}


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.3g}-{max(xs):.3g}"


def _rates(measures: list[dict], what: str, scale: float = 1.0) -> list[float]:
    return [m[what] / m["seconds"] / scale for m in measures]


def _clean(benchmark, bench_dir, records: str, target: bool):
    params = _params("clean", records)
    cases = [{"cache": "cold"}, {"cache": "warm"}]
    data, ms, base = _rounds(benchmark, bench_dir, params, "tidelog compaction", "sequential read", cases)
    what = find("compaction").describe(data)
    shape = "sensor rows" if records == "columnar" else "byte records"
    rows, extra = [], {}
    for k, case in enumerate(cases):
        cache = case["cache"]
        t = _rates(ms[k], "bytes", MB)
        b = _rates(base[k], "bytes", MB)
        ratios = [x / y for x, y in zip(t, b)]
        ratio = median(t) / median(b)
        on_target = target and cache == "cold"
        removed = median([m["records_removed"] / m["seconds"] for m in ms[k]])
        rows.append(comparison(
            f"C1. compact_now() of {shape}, page cache {cache} ({what}) vs sequential read",
            tidelog=median(t), baseline=median(b), unit="MB/s", ratio=ratio,
            target=">= 0.5" if on_target else None, passed=ratio >= 0.5 if on_target else None,
            baseline_name=f"sequential read, {cache}",
            note=(f"spread {_spread(t)} vs {_spread(b)} MB/s; {removed / 1e6:.2f} M records removed/s"
                  + ("" if on_target else "; reported, no target"))))
        extra[f"{cache}_mb_s"] = t
        extra[f"{cache}_read_mb_s"] = b
        extra[f"{cache}_round_ratios"] = ratios
    extra["bytes_after_over_before"] = ms[0][0]["bytes_after"] / ms[0][0]["bytes"]
    record(benchmark, rows, **extra)
    for r in rows:
        print(f"{r['name']}: {r['tidelog']:.0f} vs {r['baseline']:.0f} MB/s, ratio {r['ratio']:.3f} ({r['note']})")


def test_cleaner_throughput_sensor_rows(benchmark, bench_dir):
    _clean(benchmark, bench_dir, "columnar", target=True)


def test_cleaner_throughput_byte_records(benchmark, bench_dir):
    _clean(benchmark, bench_dir, "bytes", target=False)


def test_appends_while_the_cleaner_runs(benchmark, bench_dir):
    params = _params("appends")
    data, ms, base = _rounds(benchmark, bench_dir, params, "tidelog compaction", "tidelog appends, no cleaner",
                             [{}])
    t = _rates(ms[0], "rows")
    b = _rates(base[0], "rows")
    ratio = median(t) / median(b)
    cleaner = [m["cleaner_bytes"] / m["seconds"] / MB for m in ms[0]]
    what = find("compaction").describe(data)
    rows = [comparison(f"C2. appends to a compacted topic while a cleaner compacts others ({what}) vs no cleaner",
                       tidelog=median(t), baseline=median(b), unit="rows/s", ratio=ratio, target=">= 0.85",
                       passed=ratio >= 0.85, baseline_name="no cleaner",
                       note=f"spread {_spread(t)} vs {_spread(b)} rows/s; the cleaner meanwhile "
                            f"{median(cleaner):.0f} MB/s")]
    record(benchmark, rows, rows_s=t, rows_s_no_cleaner=b, cleaner_mb_s=cleaner,
           round_ratios=[x / y for x, y in zip(t, b)], round_seconds=[m["seconds"] for m in ms[0]])
    print(f"{rows[0]['name']}: ratio {ratio:.3f} ({rows[0]['note']})")


def test_table_vs_pyarrow(benchmark, bench_dir):
    params = _params("table")
    data, ms, base = _rounds(benchmark, bench_dir, params, "tidelog compaction", "arrow last row per key", [{}])
    t = [m["seconds"] * 1e3 for m in ms[0]]
    b = [m["seconds"] * 1e3 for m in base[0]]
    ratio = median(b) / median(t)
    rows = [comparison(f"C3. topic.table() of {data.rows} rows, {data.keys} keys vs pyarrow group_by+take in memory",
                       tidelog=median(t), baseline=median(b), unit="ms", ratio=ratio, target=">= 0.5",
                       passed=ratio >= 0.5, baseline_name="arrow last row per key",
                       note=f"spread {_spread(t)} vs {_spread(b)} ms; ratio = pyarrow time / table() time")]
    record(benchmark, rows, table_ms=t, arrow_ms=b, round_ratios=[y / x for x, y in zip(t, b)])
    print(f"{rows[0]['name']}: {median(t):.1f} vs {median(b):.1f} ms, ratio {ratio:.3f}")
