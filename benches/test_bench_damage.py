"""What damage costs: opening and scanning a damaged log, beside the same log intact.

A 1-partition columnar topic of ~256 MiB (64 Ki-row batches, 32 MiB segments),
closed cleanly. Three copies of it are damaged the ways FORMAT.md §8 treats
differently, and each is timed against the intact copy in the same rounds:

- ``bitrot-tail``: one bit flipped in a frame's payload 2 % before the end of
  the active segment (the open CRC-checks that region: it reports the frame
  and keeps the two after it);
- ``lost-4k``: a zeroed 4 KiB sector in a sealed segment (found by reads);
- ``lost-16m``: 16 MiB zeroed from a quarter into a 32 MiB sealed segment (a
  read, and each open's index check, search past it for the next intact
  frame: the resync rate).

The log, its damaged copies and the timed reopen and scan are the ``tidelog``
and ``tidelog intact`` contenders of ``tidelog bench -w damage``
(tidelog.bench.targets.Damage). Measured: clean reopen (median of rounds), a full scan + sum with
``on_corrupt="skip"`` (damaged) vs the default (intact). No target: the
ratios say that damage costs only the damaged bytes, in time as in data.
"""
from __future__ import annotations

import random

from benchlib import comparison, contender_rounds, median, record, sized
from tidelog.bench.targets import DAMAGE_KINDS, DamageData

ROUNDS = sized(5, 2)
TARGET_BYTES = sized(256 << 20, 96 << 20)


def test_bench_damage(benchmark, bench_dir):
    data = DamageData(TARGET_BYTES)
    params = {"size": TARGET_BYTES}
    kinds = list(DAMAGE_KINDS)
    opens = {k: [] for k in ["intact", *kinds]}
    scans = {k: [] for k in ["intact", *kinds]}
    rows = {}
    with contender_rounds("tidelog", "damage", params, data, bench_dir) as damaged, \
            contender_rounds("tidelog intact", "damage", params, data, bench_dir) as intact:
        order = ["intact", *kinds]
        for r in range(ROUNDS):
            random.Random(r).shuffle(order)
            for k in order:
                run = intact if k == "intact" else damaged
                damage = kinds[0] if k == "intact" else k
                opens[k].append(run({"damage": damage, "op": "reopen"})["seconds"])
                m = run({"damage": damage, "op": "scan"})
                scans[k].append(m["seconds"])
                rows[k] = m["rows"]
        size = m["bytes"]
    out = []
    for k in kinds:
        o, oi = median(opens[k]), median(opens["intact"])
        s, si = median(scans[k]), median(scans["intact"])
        out.append(comparison(f"reopen, {k}", tidelog=o * 1e3, baseline=oi * 1e3, unit="ms", ratio=o / oi,
                              target=None, passed=None, baseline_name="intact log",
                              note=f"opens {sorted(round(x * 1e3, 1) for x in opens[k])} ms"))
        out.append(comparison(f"scan+sum (skip damage), {k}", tidelog=size / s / 1e6,
                              baseline=size / si / 1e6, unit="MB/s", ratio=si / s, target=None, passed=None,
                              baseline_name="intact log",
                              note=f"{rows['intact'] - rows[k]} rows skipped of {rows['intact']}"))
    record(benchmark, out, log_bytes=size)
    for row in out:
        print(f"{row['name']:<40} {row['tidelog']:10.1f} {row['unit']:<5} intact {row['baseline']:10.1f}"
              f"  ratio {row['ratio']:.3f}  {row['note']}")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
