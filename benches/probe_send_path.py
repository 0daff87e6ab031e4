#!/usr/bin/env python3
"""The sending side of produce-to-consume latency: one producer.send().result() of a
100-byte record and one 164-byte os.pwrite, back to back and after a 0.5 ms pause
(what the latency workload does between records). See docs/BENCHMARKS.md, "The limits
revisited": the pause makes every step cold."""
import os
import statistics
import tempfile
import time

import tidelog

root = tempfile.mkdtemp()
log = tidelog.open(os.path.join(root, "log"))
log.create_topic("lat", durability="interval")
producer = log.producer(linger_ms=0, acks="written")
fd = os.open(os.path.join(root, "raw"), os.O_RDWR | os.O_CREAT, 0o644)
os.posix_fallocate(fd, 0, 64 << 20)
value, raw, offset = b"x" * 100, b"x" * 164, 0
for pause_s in (0, 0.0005):
    sends, writes = [], []
    for _ in range(3000):
        if pause_s:
            time.sleep(pause_s)
        a = time.perf_counter_ns()
        producer.send("lat", value).result()
        sends.append(time.perf_counter_ns() - a)
    for _ in range(3000):  # alone, so the send does not warm it
        if pause_s:
            time.sleep(pause_s)
        a = time.perf_counter_ns()
        os.pwrite(fd, raw, offset)
        writes.append(time.perf_counter_ns() - a)
        offset += 168
    print(f"pause {pause_s * 1e3:.1f} ms: send().result() p50 {statistics.median(sends) / 1e3:.2f} us, "
          f"pwrite of 164 bytes p50 {statistics.median(writes) / 1e3:.2f} us")
producer.close()
log.close()
