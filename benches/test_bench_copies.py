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

The contenders of ``tidelog bench -w copies`` (tidelog.bench.targets.Copies):
``tidelog none``, ``numpy copy``, ``os.write``, ``os.write (extending)`` and
``crc32c``, each timing itself (wall and thread CPU time).

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

import contextlib

from benchlib import collect, comparison, contender_rounds, interleaved, median, record, sized
from tidelog.bench.targets import CopiesData

ROWS = sized(4 * 1024 * 1024, 512 * 1024)
ROUNDS = sized(15, 3)
BASELINES = {"memcpy": "numpy copy", "write": "os.write", "write_extending": "os.write (extending)",
             "crc32c": "crc32c"}


def test_append_copies(benchmark, bench_dir):
    data = CopiesData.build(ROWS)
    nbytes = data.nbytes
    params = {"rows": ROWS}
    appends: list[dict] = []
    measures: dict[str, list[dict]] = {k: [] for k in BASELINES}
    with contextlib.ExitStack() as stack:
        def rounds_of(name: str):
            return stack.enter_context(contender_rounds(name, "copies", params, data, bench_dir))

        tl = rounds_of("tidelog none")

        def baseline(key: str):
            run = rounds_of(BASELINES[key])

            def one() -> float:
                measures[key].append(run())
                return measures[key][-1]["seconds"]
            return one

        times, base = interleaved(benchmark, collect(tl, appends), {k: baseline(k) for k in BASELINES},
                                  rounds=ROUNDS)
        # Allocations made by one more append (outside any timing).
        alloc = tl({"allocations": True})

    def cpu(ms: list[dict]) -> float:
        return median([m["cpu_seconds"] for m in ms[len(ms) - len(times):]])

    t_app = median([m["seconds"] for m in appends[len(appends) - len(times):]])
    t_mem, t_wr = median(base["memcpy"]), median(base["write"])
    t_ext, t_crc = median(base["write_extending"]), median(base["crc32c"])
    c = {"append": cpu(appends), **{k: cpu(v) for k, v in measures.items()}}
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
        crc32c_hardware=bool(measures["crc32c"][-1]["hardware"]),
        python_alloc_peak_bytes_during_append=alloc["python_alloc_peak_bytes"],
        arrow_pool_bytes_delta_during_append=alloc["arrow_pool_bytes_delta"],
        arrow_pool_peak_increase_during_append=alloc["arrow_pool_peak_increase"],
        arrow_pool_in_use_before_append=alloc["arrow_pool_in_use_before"],
    )
