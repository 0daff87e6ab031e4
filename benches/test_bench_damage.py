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

Measured: clean reopen (median of rounds), a full scan + sum with
``on_corrupt="skip"`` (damaged) vs the default (intact). No target: the
ratios say that damage costs only the damaged bytes, in time as in data.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import warnings

import pyarrow.compute as pc

import tidelog
from benchlib import SCHEMA, comparison, make_batch, median, record, sized

ROUNDS = sized(5, 2)
TARGET_BYTES = sized(256 << 20, 96 << 20)


def _build(path: str) -> None:
    with tidelog.open(path) as log:
        t = log.create_topic("readings", schema=SCHEMA, timestamp="ts", durability="none", segment_bytes=32 << 20)
        batch = make_batch(1 << 16, 1)
        size = 0
        while size < TARGET_BYTES:
            t.append(batch)
            size += batch.nbytes


def _segments(path: str) -> list[str]:
    part = os.path.join(path, "topics", "readings", "0")
    return sorted(os.path.join(part, n) for n in os.listdir(part) if n.endswith(".log"))


def _damage(path: str, how: str) -> None:
    segs = _segments(path)
    if how == "bitrot-tail":
        seg = segs[-1]
        at = int(os.path.getsize(seg) * 0.98)
    else:
        seg = segs[len(segs) // 2 - 1]
        at = os.path.getsize(seg) // 4 // 4096 * 4096
    with open(seg, "r+b") as f:
        f.seek(at)
        if how == "bitrot-tail":
            b = f.read(1)[0]
            f.seek(at)
            f.write(bytes([b ^ 0x10]))
        else:
            f.write(bytes(4096 if how == "lost-4k" else 16 << 20))


def _open_s(path: str) -> float:
    t0 = time.perf_counter()
    log = tidelog.open(path)
    dt = time.perf_counter() - t0
    log.close()
    return dt


def _scan_s(path: str, skip: bool) -> tuple[float, int]:
    with tidelog.open(path, read_only=True) as log:
        t = log.topic("readings")
        t0 = time.perf_counter()
        rows, total = 0, 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tidelog.CorruptionWarning)
            for batch in t.scan(on_corrupt="skip" if skip else "raise"):
                total += pc.sum(batch.column("value")).as_py() or 0.0
                rows += batch.num_rows
        return time.perf_counter() - t0, rows


def test_bench_damage(benchmark):
    root = tempfile.mkdtemp(prefix="tidelog-bench-damage-")
    try:
        intact = os.path.join(root, "intact")
        _build(intact)
        kinds = ["bitrot-tail", "lost-4k", "lost-16m"]
        copies = {}
        for how in kinds:
            copies[how] = os.path.join(root, how)
            shutil.copytree(intact, copies[how])
            _damage(copies[how], how)
        opens = {k: [] for k in ["intact", *kinds]}
        scans = {k: [] for k in ["intact", *kinds]}
        rows = {}
        order = ["intact", *kinds]
        for r in range(ROUNDS):
            random.Random(r).shuffle(order)
            for k in order:
                path = intact if k == "intact" else copies[k]
                opens[k].append(_open_s(path))
                dt, rows[k] = _scan_s(path, skip=k != "intact")
                scans[k].append(dt)
        size = sum(os.path.getsize(s) for s in _segments(intact))
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
    finally:
        shutil.rmtree(root, ignore_errors=True)
