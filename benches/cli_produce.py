"""``tidelog produce`` throughput: JSON lines (and CSV) into a columnar topic,
beside same-run baselines that do less:

- ``cat FILE > /dev/null``: reading the file (the floor);
- ``pyarrow.json.read_json(FILE)``: parsing it into Arrow and nothing else;
- ``topic.append(pyarrow.json.read_json(FILE))``: the same through the Python API
  in one append, durable (what a program that holds the whole file in memory does);
- ``tidelog produce DIR sensors FILE``: the command, in blocks of --batch-bytes,
  each one durable append.

Every contender is a new process (so each pays the interpreter's start), they run
interleaved, round by round in a new order each round, on a fresh log each time;
the figure is the median wall time over the rounds with its min-max.

    python benches/cli_produce.py [--rows 1000000] [--rounds 5] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SCHEMA = "ts:timestamp[ns],sensor_id:int32,value:float64"
PY = sys.executable


def write_inputs(folder: str, rows: int) -> tuple[str, str]:
    rng = random.Random(7)
    jsonl, csv = os.path.join(folder, "readings.jsonl"), os.path.join(folder, "readings.csv")
    with open(jsonl, "w") as j, open(csv, "w") as c:
        c.write("ts,sensor_id,value\n")
        for i in range(rows):
            ts = f"2024-01-01T{(i // 3_600_000) % 24:02d}:{(i // 60_000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}"
            sid, value = rng.randrange(1000), round(rng.uniform(-50, 50), 3)
            j.write(json.dumps({"ts": ts, "sensor_id": sid, "value": value}) + "\n")
            c.write(f"{ts},{sid},{value}\n")
    return jsonl, csv


def fresh_log(folder: str) -> str:
    path = tempfile.mkdtemp(dir=folder, prefix="log-")
    subprocess.run([PY, "-m", "tidelog", "topics", "create", path, "sensors", "-p", "4", "--key", "sensor_id",
                    "--timestamp", "ts", "--schema", SCHEMA], check=True, capture_output=True)
    return path


API_APPEND = """
import sys, pyarrow.json as pj, tidelog
with tidelog.open(sys.argv[1]) as log:
    t = log.topic("sensors")
    table = pj.read_json(sys.argv[2], parse_options=pj.ParseOptions(explicit_schema=t.schema))
    t.append(table)
"""


def contenders(jsonl: str, csv: str) -> dict:
    return {
        "cat > /dev/null": lambda log: ["sh", "-c", f"cat {jsonl} > /dev/null"],
        "python: import pyarrow.json, read_json": lambda log: [PY, "-c", "import sys, pyarrow.json as pj; "
                                                               "pj.read_json(sys.argv[1])", jsonl],
        "python: topic.append(read_json(file))": lambda log: [PY, "-c", API_APPEND, log, jsonl],
        "tidelog produce (JSON lines)": lambda log: [PY, "-m", "tidelog", "produce", log, "sensors", jsonl, "-q"],
        "tidelog produce (CSV)": lambda log: [PY, "-m", "tidelog", "produce", log, "sensors", csv, "-q"],
        "python -m tidelog --version (start-up)": lambda log: [PY, "-m", "tidelog", "--version"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(dir=args.dir, prefix="cli-produce-")
    try:
        jsonl, csv = write_inputs(folder, args.rows)
        sizes = {"json": os.path.getsize(jsonl), "csv": os.path.getsize(csv)}
        cs = contenders(jsonl, csv)
        times: dict[str, list[float]] = {name: [] for name in cs}
        order = list(cs)
        for round_no in range(args.rounds + 1):  # round 0 warms the page cache and is not counted
            random.Random(round_no).shuffle(order)
            for name in order:
                log = fresh_log(folder)
                t0 = time.perf_counter()
                subprocess.run(cs[name](log), check=True, capture_output=True)
                if round_no:
                    times[name].append(time.perf_counter() - t0)
                shutil.rmtree(log)
        base = statistics.median(times["python: import pyarrow.json, read_json"])
        print(f"{args.rows:,} rows: JSON lines {sizes['json'] / 1e6:.1f} MB, CSV {sizes['csv'] / 1e6:.1f} MB; "
              f"{args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
        print(f"{'contender':<42} {'median s':>9} {'min-max s':>13} {'rows/s':>11} {'vs read_json':>12}")
        for name, ts in times.items():
            med = statistics.median(ts)
            rate = "" if "start-up" in name else f"{args.rows / med:,.0f}"
            print(f"{name:<42} {med:>9.3f} {min(ts):>6.3f}-{max(ts):<6.3f} {rate:>11} {base / med:>11.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
