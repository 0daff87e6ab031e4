#!/usr/bin/env python3
"""64-byte appends, each followed by fdatasync, into a zero-filled, a fallocated and a growing
file: what fresh blocks cost a sync. See docs/BENCHMARKS.md, "The limits revisited"."""
import os, time, statistics, tempfile, shutil
root = tempfile.mkdtemp(dir="/tmp")
N = 2000; rec = b"x" * 64
def run(name, setup):
    fd = os.open(os.path.join(root, name), os.O_RDWR | os.O_CREAT, 0o644)
    setup(fd)
    off = 0; lat = []
    t0 = time.perf_counter()
    for i in range(N):
        a = time.perf_counter_ns()
        os.pwrite(fd, rec, off); off += 4096 if name.endswith("page") else len(rec)
        os.fdatasync(fd)
        lat.append(time.perf_counter_ns() - a)
    s = time.perf_counter() - t0
    os.close(fd)
    print(f"{name:24s} {N/s:8.0f} syncs/s  p50 {statistics.median(lat)/1e3:7.1f} us")
size = 64 << 20
for k in range(2):
    run(f"zerofilled{k}", lambda fd: (os.pwrite(fd, b"\0" * size, 0), os.fsync(fd)))
    run(f"fallocated{k}", lambda fd: (os.posix_fallocate(fd, 0, size), os.fsync(fd)))
    run(f"extending{k}", lambda fd: None)
shutil.rmtree(root)
