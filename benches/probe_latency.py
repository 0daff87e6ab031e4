"""Produce-to-consume latency across processes, tidelog beside an os.pipe, one
stamped 100-byte record every 250 us: the latency workload's method without the
rest of the suite (no other contender, no Kafka broker on the machine). See
docs/BENCHMARKS.md, "The limits revisited".

    python benches/probe_latency.py block 3000     # or spin, spin-then-block
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time

import tidelog

N = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
WAIT = sys.argv[1] if len(sys.argv) > 1 else "block"
WARMUP = 200  # samples dropped: the first wake-ups fault in code and pages
PAD = bytes(92)


def percentile(xs: list[int], q: float) -> int:
    xs = sorted(xs)
    return xs[int(q * (len(xs) - 1))]


def tidelog_consumer(path: str, wait: str, results, ready) -> None:
    log = tidelog.open(path, read_only=True)
    it = iter(log.consumer("lat", start="earliest", wait=wait))
    out = []
    ready.set()
    now = time.time_ns
    while True:
        v = next(it).value
        t = now()
        x = int.from_bytes(v[:8], "little")
        if x == 0:
            break
        out.append(t - x)
    results.put(out)


def pipe_consumer(conn, results, ready) -> None:
    fd, out, now = conn.fileno(), [], time.time_ns
    ready.set()
    while True:
        v = os.read(fd, 8)
        t = now()
        x = int.from_bytes(v, "little")
        if x == 0:
            break
        out.append(t - x)
    results.put(out)


def run_pipe() -> list[int]:
    reader, writer = mp.Pipe(duplex=False)
    results, ready = mp.Queue(), mp.Event()
    proc = mp.Process(target=pipe_consumer, args=(reader, results, ready))
    proc.start()
    ready.wait()
    w = writer.fileno()
    for _ in range(N):
        os.write(w, time.time_ns().to_bytes(8, "little"))
        time.sleep(250e-6)
    os.write(w, (0).to_bytes(8, "little"))
    out = results.get()
    proc.join()
    return out[WARMUP:]


def run_tidelog(wait: str) -> list[int]:
    with tempfile.TemporaryDirectory() as path:
        log = tidelog.open(path)
        log.create_topic("lat", durability="interval")
        producer = log.producer(linger_ms=0, acks="written")
        send = producer.send
        results, ready = mp.Queue(), mp.Event()
        proc = mp.Process(target=tidelog_consumer, args=(path, wait, results, ready))
        proc.start()
        ready.wait()
        for _ in range(N):
            send("lat", time.time_ns().to_bytes(8, "little") + PAD).result()
            time.sleep(250e-6)
        send("lat", bytes(100)).result()
        out = results.get()
        proc.join()
        producer.close()
        log.close()
        return out[WARMUP:]


def main() -> None:
    mp.set_start_method("spawn")
    for name, run in (("os.pipe", run_pipe), (f"tidelog {WAIT}", lambda: run_tidelog(WAIT))) * 2:
        xs = run()
        print(f"{name:22s} p50 {percentile(xs, .5) / 1e3:6.2f} us  p99 {percentile(xs, .99) / 1e3:6.2f} us  "
              f"n={len(xs)}")


if __name__ == "__main__":
    main()
