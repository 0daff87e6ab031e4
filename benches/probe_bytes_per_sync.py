#!/usr/bin/env python3
"""Appending new pages, page cache only: plain os.pwrite against sync_file_range(WRITE) every 1 or
8 MiB (RocksDB's bytes_per_sync), 64 Ki-row sensor batches as Arrow IPC, 7 rounds per file. Run twice
in order: the first file runs before writeback lags. See docs/BENCHMARKS.md, "The limits revisited"."""
import os, sys, time, ctypes, statistics, tempfile, shutil
from tidelog.bench.core import sensor_batch
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
WRITE = 2
rows, nb, rounds = 65536, 60, 6
payloads = [sensor_batch(rows, seed=i, start_row=i * rows).serialize() for i in range(nb)]
size = sum(len(p) for p in payloads)
root = tempfile.mkdtemp(dir="/tmp")
def run(name, every):
    fd = os.open(os.path.join(root, name), os.O_RDWR | os.O_CREAT, 0o644)
    off = 0; out = []; last = 0
    for r in range(rounds + 1):
        os.posix_fallocate(fd, off, size)
        t0 = time.perf_counter()
        for p in payloads:
            off += os.pwrite(fd, p, off)
            if every and off - last >= every:
                libc.sync_file_range(fd, last, off - last, WRITE); last = off
        s = time.perf_counter() - t0
        if r: out.append(size / s / 1e6)
    os.close(fd)
    print(f"{name:30s} median {statistics.median(out):6.0f} MB/s min {min(out):6.0f} max {max(out):6.0f}")
for order in range(2):
    run(f"plain{order}", 0)
    run(f"sfr1M{order}", 1 << 20)
    run(f"sfr8M{order}", 8 << 20)
shutil.rmtree(root)
