#!/usr/bin/env python3
"""Same code, two backends: 1 M records of 100 bytes sent and consumed through
tidelog's API on a local log and on a real Kafka broker, and the same traffic
through raw confluent-kafka on the same broker, interleaved round by round
(medians and min-max). docs/BENCHMARKS.md, "Same code, two backends".

    python benches/kafka_backend_overhead.py [--records 1000000] [--rounds 5] [--json out.json]

Starts one single-node broker (tidelog.bench.kafka, warmed up 10 s), or uses
``--bootstrap host:port``.

What is timed, per contender and round (one fresh 1-partition topic each):
- produce: ``send()`` of every record, then ``flush()`` (all acknowledged,
  acks=all; tidelog's futures resolved). raw: ``produce()`` with a delivery
  callback per record (what an application that checks its acks runs), and
  without one (fire and forget, for reference).
- consume: every record read one by one (``poll()``, value touched). raw:
  ``consume(10000)`` batches, every message's value touched, and (the same
  work as a tidelog Record) every field read.
- consume: ``for rec in consumer`` (the same records, without a call per record).
- consume batch: tidelog's ``poll_batch()`` (Arrow columns) beside raw ``consume``.

Every overhead compares runs made back to back in the same round: ``poll_batch``
right beside raw ``consume``; ``poll()`` and iteration on either side of raw
``consume`` reading every field.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid

VALUE = b"x" * 100


def raw_produce(bootstrap: str, topic: str, n: int, callback: bool) -> float:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "partitioner": "murmur2_random"})
    acked = [0]

    def delivered(err, msg):
        if err is None:
            acked[0] += 1

    t0 = time.perf_counter()
    produce = p.produce
    for _ in range(n):
        while True:
            try:
                if callback:
                    produce(topic, VALUE, on_delivery=delivered)
                else:
                    produce(topic, VALUE)
                break
            except BufferError:
                p.poll(0.01)
        # (librdkafka calls the callbacks only inside poll/flush: served every 1000 records)
        if callback and not _ % 1000:
            p.poll(0)
    p.flush()
    dt = time.perf_counter() - t0
    assert not callback or acked[0] == n
    return dt


def raw_consume(bootstrap: str, topic: str, n: int, every_field: bool = False) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 1, "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    t0 = time.perf_counter()
    while got < n:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                if every_field:  # what a tidelog Record carries
                    (m.topic(), m.partition(), m.offset(), m.timestamp(), m.key(), m.value(), m.headers())
                else:
                    m.value()
                got += 1
    dt = time.perf_counter() - t0
    c.close()
    return dt


def tidelog_produce(log, topic: str, n: int) -> float:
    with log.producer() as p:
        send = p.send
        t0 = time.perf_counter()
        for _ in range(n):
            fut = send(topic, VALUE)
        p.flush()
        fut.result()
        return time.perf_counter() - t0


def tidelog_consume(log, topic: str, n: int) -> float:
    with log.consumer() as c:
        c.assign([(topic, 0)])
        got = 0
        poll = c.poll
        t0 = time.perf_counter()
        while got < n:
            r = poll(1.0)
            if r is not None:
                r.value
                got += 1
        return time.perf_counter() - t0


def tidelog_iterate(log, topic: str, n: int) -> float:
    with log.consumer() as c:
        c.assign([(topic, 0)])
        got = 0
        t0 = time.perf_counter()
        for r in c:
            r.value
            got += 1
            if got == n:
                break
        return time.perf_counter() - t0


def tidelog_consume_batch(log, topic: str, n: int) -> float:
    with log.consumer() as c:
        c.assign([(topic, 0)])
        got = 0
        t0 = time.perf_counter()
        while got < n:
            b = c.poll_batch(100_000, 1.0)
            if b is not None:
                got += b.num_rows
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import tidelog

    broker = None
    if args.bootstrap is None:
        from tidelog.bench.kafka import shared_broker

        broker = shared_broker()
        bootstrap = broker.bootstrap
    else:
        bootstrap = args.bootstrap
    kafka = tidelog.connect(f"kafka://{bootstrap}")
    n = args.records
    times: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)
        print(f"  {name:38s} {n / seconds / 1e3:8.0f} k rec/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        local = tidelog.open(f"{tmp}/log")
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            # Interleaved: raw and tidelog on the same broker, one after the other, every round.
            raw_topic, raw_cb_topic, tk_topic, lo_topic = (f"b{r}-{k}-{uuid.uuid4().hex[:6]}" for k in "rctl")
            for t in (raw_topic, raw_cb_topic, tk_topic):
                kafka.create_topic(t)
            local.create_topic(lo_topic, durability="fsync")
            # Each overhead's two sides run back to back (a raw baseline right beside the tidelog path
            # compared with it), the steps' order reversed every round.
            steps = [
                [("produce: raw confluent, callback/record", lambda: raw_produce(bootstrap, raw_cb_topic, n, True)),
                 ("produce: tidelog on Kafka", lambda: tidelog_produce(kafka, tk_topic, n))],
                [("produce: raw confluent, no callback", lambda: raw_produce(bootstrap, raw_topic, n, False)),
                 ("produce: tidelog local", lambda: tidelog_produce(local, lo_topic, n))],
                [("consume: raw confluent", lambda: raw_consume(bootstrap, raw_topic, n)),
                 ("consume: tidelog on Kafka, poll_batch()", lambda: tidelog_consume_batch(kafka, tk_topic, n))],
                [("consume: tidelog on Kafka, poll()", lambda: tidelog_consume(kafka, tk_topic, n)),
                 ("consume: raw confluent, every field", lambda: raw_consume(bootstrap, raw_topic, n, True)),
                 ("consume: tidelog on Kafka, for rec in consumer", lambda: tidelog_iterate(kafka, tk_topic, n))],
                [("consume: tidelog local, poll()", lambda: tidelog_consume(local, lo_topic, n)),
                 ("consume: tidelog local, for rec in consumer", lambda: tidelog_iterate(local, lo_topic, n)),
                 ("consume: tidelog local, poll_batch()", lambda: tidelog_consume_batch(local, lo_topic, n))],
            ]
            for step in steps:  # each step's runs back to back, their order reversed every round
                for label, run in (step if r % 2 == 0 else step[::-1]):
                    note(label, run())
            for t in (raw_topic, raw_cb_topic, tk_topic):
                kafka.delete_topic(t)
            local.delete_topic(lo_topic)
        local.close()
    kafka.close()
    summary = {}
    print(f"\n{n:,} records x 100 B, {args.rounds} rounds; median (min-max) k records/s")
    for name, ts in times.items():
        rates = sorted(n / t for t in ts)
        summary[name] = {"median": statistics.median(rates), "min": rates[0], "max": rates[-1]}
        print(f"  {name:38s} {summary[name]['median'] / 1e3:8.0f}  ({rates[0] / 1e3:.0f}-{rates[-1] / 1e3:.0f})")

    def overhead(ours: str, raw: str) -> float:
        """The median over rounds of (our time / raw time - 1): paired within each round, so load that
        comes and goes on a shared machine hits both sides of a ratio alike."""
        return statistics.median(a / b - 1 for a, b in zip(times[ours], times[raw]))

    result = {
        "produce_overhead_vs_raw_with_callbacks": overhead("produce: tidelog on Kafka",
                                                           "produce: raw confluent, callback/record"),
        "produce_overhead_vs_raw_fire_and_forget": overhead("produce: tidelog on Kafka",
                                                            "produce: raw confluent, no callback"),
        "consume_overhead_poll_vs_raw": overhead("consume: tidelog on Kafka, poll()", "consume: raw confluent"),
        "consume_overhead_poll_vs_raw_every_field": overhead("consume: tidelog on Kafka, poll()",
                                                             "consume: raw confluent, every field"),
        "consume_overhead_iteration_vs_raw_every_field": overhead("consume: tidelog on Kafka, for rec in consumer",
                                                                  "consume: raw confluent, every field"),
        "consume_overhead_poll_batch_vs_raw": overhead("consume: tidelog on Kafka, poll_batch()",
                                                       "consume: raw confluent"),
    }
    for k, v in result.items():
        print(f"  {k}: {v * 100:+.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": n, "rounds": args.rounds, "rates": summary, "overheads": result}, f, indent=1)
    if broker is not None:
        from tidelog.bench.kafka import stop_shared_broker

        stop_shared_broker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
