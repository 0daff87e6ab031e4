"""Target 5: the write path makes at most one copy of the payload.

One large uncompressed batch (4 Mi rows of (int64, int32, float64) = 80 MiB,
under the 128 MiB frame limit of a 256 MiB segment, so one frame) appended
with durability="none" (no fdatasync: the copy into the page cache is all
that is left to see), against, on the same bytes (``batch.serialize()``):

* memcpy: ``np.copyto`` into a preallocated, pre-faulted array - the price of
  one user-space copy;
* write: one ``os.write`` of the serialized batch into a file preallocated
  with ``posix_fallocate`` (tidelog's segments are preallocated too) - the
  kernel's copy into the page cache, the one copy the design allows;
* write (extending): the same into a plain, growing file, for reference;
* crc32c: tidelog's own CRC32C over the same bytes (``tidelog._core.crc32c``),
  work the append must do besides copying.

Each tidelog round appends to a fresh topic (the previous one is deleted and
every file flushed outside the timed region, so no round pays for another's
writeback). The figure of merit is the time tidelog spends beyond
write + crc32c, expressed in memcpys of the payload:
``extra = (t_append - t_write - t_crc) / t_memcpy``; a second copy anywhere
(into a Python bytes object, an Arrow buffer, a staging buffer) would add ~1.
Target: extra < 0.5. Also recorded: bytes allocated during an append
(tracemalloc peak and the Arrow memory pool's), which a copy would show.
"""
from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np
import pyarrow as pa

import tidelog
from tidelog import _core
from benchlib import SCHEMA, comparison, interleaved, make_batch, median, record, sized

ROWS = sized(4 * 1024 * 1024, 512 * 1024)
ROUNDS = sized(15, 3)


def test_append_copies(benchmark, bench_dir):
    batch = make_batch(ROWS, 11)
    payload = batch.serialize()
    nbytes = payload.size
    src = np.frombuffer(payload, dtype=np.uint8)
    dst = np.empty_like(src)
    dst[:] = 1  # fault the pages in
    raw_path = os.path.join(bench_dir, "raw.bin")
    ext_path = os.path.join(bench_dir, "raw-extending.bin")
    log = tidelog.open(os.path.join(bench_dir, "log"))
    state = {"n": 0, "topic": None}

    cpu: dict[str, list[float]] = {"append": [], "memcpy": [], "write": [], "write_extending": [], "crc32c": []}

    def clock(name, fn):
        """Runs fn, returns its wall time and records its thread CPU time (user +
        system: the kernel's copy in write() counts), which other processes on
        this shared VM disturb far less than wall time."""
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        elapsed, used = time.perf_counter() - t0, time.thread_time() - c0
        cpu[name].append(used)
        return elapsed

    def memcpy() -> float:
        return clock("memcpy", lambda: np.copyto(dst, src))

    def write_file(path: str, preallocate: bool) -> float:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if preallocate:
                os.posix_fallocate(fd, 0, nbytes + (1 << 20))
            written = []
            elapsed = clock("write" if preallocate else "write_extending", lambda: written.append(os.write(fd, payload)))
            assert written == [nbytes]
            os.fdatasync(fd)  # outside the clock: no dirty pages left for the next timed step
        finally:
            os.close(fd)
        return elapsed

    def crc() -> float:
        return clock("crc32c", lambda: _core.crc32c(payload))

    def fresh_topic():
        if state["topic"] is not None:
            log.delete_topic(state["topic"].name)
        state["n"] += 1
        state["topic"] = log.create_topic(f"big{state['n']}", schema=SCHEMA, partitions=1, timestamp=None,
                                          durability="none")
        log.flush()

    def subject():
        clock("append", lambda: state["topic"].append(batch))

    try:
        times, base = interleaved(
            benchmark, subject,
            {"memcpy": memcpy, "write": lambda: write_file(raw_path, True),
             "write_extending": lambda: write_file(ext_path, False), "crc32c": crc},
            rounds=ROUNDS, before_subject=fresh_topic, after_subject=log.flush,
        )
        # Allocations made by one more append (outside any timing).
        fresh_topic()
        pool = pa.default_memory_pool()
        pool_before, peak_before = pool.bytes_allocated(), pool.max_memory()
        tracemalloc.start()
        state["topic"].append(batch)
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        pool_after, peak_after = pool.bytes_allocated(), pool.max_memory()
    finally:
        log.close()

    t_app, t_mem, t_wr = median(times), median(base["memcpy"]), median(base["write"])
    t_ext, t_crc = median(base["write_extending"]), median(base["crc32c"])
    c = {k: median(v[1:] if len(v) > 1 else v) for k, v in cpu.items()}  # first entry: the warm-up round
    extra_wall = (t_app - t_wr - t_crc) / t_mem
    extra_cpu = (c["append"] - c["write"] - c["crc32c"]) / c["memcpy"]
    gbps = lambda t: nbytes / t / 1e9  # noqa: E731
    record(
        benchmark,
        [
            comparison("5. append 80 MiB (none) vs os.write into preallocated file", tidelog=gbps(t_app),
                       baseline=gbps(t_wr), unit="GB/s", ratio=t_wr / t_app, target=None, passed=None,
                       baseline_name="os.write (fallocated)", note="wall time"),
            comparison("5. append 80 MiB vs os.write into a growing file", tidelog=gbps(t_app),
                       baseline=gbps(t_ext), unit="GB/s", ratio=t_ext / t_app, target=None, passed=None,
                       baseline_name="os.write (extending)", note="wall time"),
            comparison("5. extra copies, thread CPU time: (append - write - crc32c) / memcpy", tidelog=extra_cpu,
                       baseline=1.0, unit="memcpys", ratio=extra_cpu, target="< 0.5",
                       passed=extra_cpu < 0.5,
                       baseline_name=f"a 2nd copy; memcpy {gbps(c['memcpy']):.1f} GB/s, crc32c {gbps(c['crc32c']):.1f} GB/s"),
            comparison("5. extra copies, wall time: (append - write - crc32c) / memcpy", tidelog=extra_wall,
                       baseline=1.0, unit="memcpys", ratio=extra_wall, target=None, passed=None,
                       baseline_name=f"a 2nd copy; memcpy {gbps(t_mem):.1f} GB/s, crc32c {gbps(t_crc):.1f} GB/s",
                       note="noisier: includes waiting for a CPU"),
        ],
        payload_bytes=nbytes,
        wall_s={"append": t_app, "memcpy": t_mem, "write": t_wr, "write_extending": t_ext, "crc32c": t_crc},
        thread_cpu_s=c,
        crc32c_hardware=bool(_core.crc32c_hardware()),
        python_alloc_peak_bytes_during_append=py_peak,
        arrow_pool_bytes_delta_during_append=pool_after - pool_before,
        arrow_pool_peak_increase_during_append=peak_after - peak_before,
        arrow_pool_in_use_before_append=pool_before,
    )
