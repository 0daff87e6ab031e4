#!/usr/bin/env python3
"""20 MiB appends, each followed by fdatasync: what writing to blocks that were never
written costs, next to overwriting written ones, zeroing ahead of the writes, and
writing into blocks a deleted file freed. See docs/BENCHMARKS.md, "The limits revisited".

On the 2-core VM of the published run (ext4 on a virtual disk), the first write of a
block costs about 5x an overwrite whatever the file system does: zeroing ahead pays the
same first write (so it does not win), while blocks freed by a deleted file and
reallocated are fast again."""
import os, shutil, statistics, tempfile, time

CHUNK = 20 << 20
CHUNKS = 25
root = tempfile.mkdtemp(dir=os.environ.get("TMPDIR", "/tmp"))
data = os.urandom(CHUNK)
zeros = bytes(CHUNK)


def synced_writes(fd, buf=data):
    t0 = time.perf_counter()
    for c in range(CHUNKS):
        os.pwrite(fd, buf, c * CHUNK)
        os.fdatasync(fd)
    return CHUNKS * CHUNK / (time.perf_counter() - t0) / 1e6


def new_file(name):
    return os.open(os.path.join(root, name), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)


results = {k: [] for k in ("fresh blocks", "overwrite", "zero ahead (synced) + write",
                           "blocks freed by a deleted file")}
for k in range(3):
    fd = new_file(f"a{k}")
    results["fresh blocks"].append(synced_writes(fd))
    results["overwrite"].append(synced_writes(fd))
    os.close(fd)
    fd = new_file(f"b{k}")
    t0 = time.perf_counter()
    for c in range(CHUNKS):
        os.pwrite(fd, zeros, c * CHUNK)
    os.fdatasync(fd)
    zero_s = time.perf_counter() - t0
    write_rate = synced_writes(fd)
    results["zero ahead (synced) + write"].append(CHUNKS * CHUNK / (zero_s + CHUNKS * CHUNK / write_rate / 1e6) / 1e6)
    os.close(fd)
    os.unlink(os.path.join(root, f"b{k}"))
    os.sync()
    fd = new_file(f"c{k}")
    results["blocks freed by a deleted file"].append(synced_writes(fd))
    os.close(fd)
for name, rates in results.items():
    print(f"{name:32s} median {statistics.median(rates):6.0f} MB/s  ({min(rates):.0f}-{max(rates):.0f})")
shutil.rmtree(root)
