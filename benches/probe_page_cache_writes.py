#!/usr/bin/env python3
"""Not-durable ingest of large batches: tidelog vs os.pwrite variants, same bytes, same process:
rewriting the same offsets (the old os.write limit), appending at fresh offsets of a file preallocated
ahead (the new limit), appending to a growing file. Usage: ROWS BATCHES ROUNDS (default 65536 120 5).
See docs/BENCHMARKS.md, "The limits revisited"."""
import os, sys, time, tempfile, statistics, shutil
import tidelog
from tidelog.bench.core import sensor_batch

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 65536
nb = int(sys.argv[2]) if len(sys.argv) > 2 else 120
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
batches = [sensor_batch(rows, seed=i, start_row=i * rows) for i in range(nb)]
payloads = [b.serialize() for b in batches]
size = sum(len(p) for p in payloads)
root = tempfile.mkdtemp(dir=os.environ.get("SCRATCH", "/tmp"))
res = {}

def rec(name, secs):
    res.setdefault(name, []).append(size / secs / 1e6)

# tidelog, a fresh topic that grows across rounds (as the suite)
log = tidelog.open(os.path.join(root, "log"))
t = log.create_topic("s", schema=batches[0].schema, timestamp="ts", durability="none")
# os.pwrite same offsets (the suite's baseline)
fd1 = os.open(os.path.join(root, "same.bin"), os.O_RDWR | os.O_CREAT, 0o644); os.posix_fallocate(fd1, 0, size)
# os.pwrite at fresh offsets of a file that grows (fallocate each round's region outside the clock)
fd2 = os.open(os.path.join(root, "fresh.bin"), os.O_RDWR | os.O_CREAT, 0o644)
fd3 = os.open(os.path.join(root, "extend.bin"), os.O_RDWR | os.O_CREAT, 0o644)
off2 = off3 = 0
for r in range(rounds + 1):
    t0 = time.perf_counter()
    for b in batches: t.append(b)
    s = time.perf_counter() - t0
    if r: rec("tidelog none", s)
    t0 = time.perf_counter(); off = 0
    for p in payloads: off += os.pwrite(fd1, p, off)
    s = time.perf_counter() - t0
    if r: rec("pwrite same offsets", s)
    os.posix_fallocate(fd2, off2, size)
    t0 = time.perf_counter()
    for p in payloads: off2 += os.pwrite(fd2, p, off2)
    s = time.perf_counter() - t0
    if r: rec("pwrite fresh (fallocated)", s)
    t0 = time.perf_counter()
    for p in payloads: off3 += os.pwrite(fd3, p, off3)
    s = time.perf_counter() - t0
    if r: rec("pwrite fresh (extending)", s)
for k, v in res.items():
    print(f"{k:28s} median {statistics.median(v):8.0f} MB/s  min {min(v):8.0f} max {max(v):8.0f}")
print("bytes per round", size)
log.close(); shutil.rmtree(root)
