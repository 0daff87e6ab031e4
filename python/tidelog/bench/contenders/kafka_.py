"""Apache Kafka: confluent-kafka (librdkafka) against a real single-node KRaft
broker that the suite starts itself (tidelog.bench.kafka), and Kafka's own Java
producer (ProducerPerformance) where it is the fairer baseline.

Settings that make the comparison fair (see the kit's notes in BENCHMARKS.md):
- acks=all everywhere. "Durable" rows use topics with ``flush.messages=1``:
  Kafka then fsyncs once per appended batch before acknowledging; without it
  an acknowledged record is in the page cache (Kafka relies on replication).
- Producers batch as tidelog's does (linger 5 ms, 1 MiB batches) where tidelog
  batches, and linger 0 where each send waits for its own ack.
- Consumers fetch with ``fetch.queue.backoff.ms=1`` (librdkafka's default of
  1000 ms leaves a Python consumer idle most of the time) and
  ``fetch.wait.max.ms=1``.
- The broker is warmed up once after it starts (a fresh broker's first latency
  rounds are 10-100x slower), and every setup makes a fresh topic.
"""
from __future__ import annotations

import itertools
import re
import subprocess
import threading
import time

from ..core import Contender, run_threads
from ..kafka.broker import tool_env
from .. import _child
from ._common import STOP, LocalConsumer, consume_loop, paced_round, stamp_value

_topic_numbers = itertools.count()
WARMUP_S = {"smoke": 1.0, "quick": 5.0, "full": 10.0}   # a fresh broker's warm-up, by the run's mode
MAX_MESSAGE_BYTES = 64 << 20          # columnar ingest: one Arrow IPC batch per record (1 Mi rows = 20 MiB)


def _fresh_topic(broker, stem: str, durable: bool) -> str:
    name = f"{stem}-{next(_topic_numbers)}-{time.monotonic_ns()}"
    config = {"max.message.bytes": MAX_MESSAGE_BYTES}
    if durable:
        config["flush.messages"] = 1
    broker.create_topic(name, config=config)
    return name


class _Producer:
    """confluent_kafka.Producer with the suite's error accounting: a delivery
    failure of any record fails the round (counted in a callback, as a user must)."""

    def __init__(self, bootstrap: str, **conf):
        from confluent_kafka import Producer

        self.failures: list = []
        failures = self.failures

        def on_delivery(err, _msg):
            if err is not None:
                failures.append(err)

        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
                           "message.max.bytes": MAX_MESSAGE_BYTES + (1 << 20),
                           "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 4 << 20,
                           "on_delivery": on_delivery, **conf})

    def produce_all(self, topic: str, values, keys=None) -> None:
        produce, poll = self.p.produce, self.p.poll
        pairs = zip(keys, values) if keys is not None else ((None, v) for v in values)
        for k, v in pairs:
            try:
                produce(topic, v, k)
            except BufferError:          # the local queue is full: serve deliveries, then retry
                poll(0.001)
                produce(topic, v, k)
        self.flush()

    def flush(self) -> None:
        left = self.p.flush(60)
        if left:
            raise RuntimeError(f"kafka: {left} records not delivered after 60 s")
        if self.failures:
            raise RuntimeError(f"kafka: {len(self.failures)} deliveries failed, first: {self.failures[0]}")


def _consumer(bootstrap: str, topic: str, offset: int, **conf):
    """A consumer of ``topic``'s partition 0 from ``offset`` (no group coordination: assign)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tidelog-bench", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 1, "fetch.queue.backoff.ms": 1, **conf})
    c.assign([TopicPartition(topic, 0, offset)])
    return c


def _next_value(consumer):
    """A blocking "next record's value" over a confluent consumer."""
    poll = consumer.poll

    def next_value():
        while True:
            m = poll(1.0)
            if m is None:
                continue
            if m.error():
                raise RuntimeError(f"kafka consumer: {m.error()}")
            return m.value()

    return next_value


class _KafkaPeer(Contender):
    """What the Kafka contenders share: the broker (one per run) and its checks."""

    kind = "peer"
    requires = ("confluent_kafka",)

    def available(self):
        from ..kafka import unavailable_reason

        return super().available() or unavailable_reason()

    def prepare(self, mode):
        from ..kafka import set_warmup_seconds

        set_warmup_seconds(WARMUP_S.get(mode, 10.0))

    @property
    def broker(self):
        from ..kafka import shared_broker

        return shared_broker()

    def background_pids(self):
        from ..kafka import running_shared_broker

        broker = running_shared_broker()
        pid = broker.pid() if broker is not None else None
        return [pid] if pid else []

    def _teardown_topic(self):
        topic = getattr(self, "topic", None)
        if topic:
            self.broker.delete_topic(topic)
            self.topic = None


class Kafka(_KafkaPeer):
    name = "kafka"
    description = ("confluent-kafka (librdkafka) against a local single-node Kafka 4.1 broker (KRaft), acks=all; "
                   "durable rows on topics with flush.messages=1")

    # ------------------------------------------------------------- ingest
    def ingest_supports(self, params):
        return "keyed multi-partition ingest: tidelog-only in this suite" if params.get("partitions", 1) > 1 else True

    def ingest_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "ingest", params["durable"])
        self.producer = _Producer(self.broker.bootstrap, **{"linger.ms": 0})
        # One Arrow IPC message per Kafka record: the fair columnar use of Kafka.
        # Serialized before the clock, as the other contenders get their bytes ready.
        self.payloads = [b.serialize() for b in data.batches]
        self.rows = sum(b.num_rows for b in data.batches)

    def ingest_run(self, case):
        p, topic = self.producer, self.topic
        produce = p.p.produce
        t0 = time.perf_counter()
        for payload in self.payloads:    # each append returns once acknowledged, as topic.append does
            produce(topic, payload)
            p.flush()
        return {"seconds": time.perf_counter() - t0, "rows": self.rows, "appends": len(self.payloads)}

    def ingest_teardown(self):
        self.producer = None
        self._teardown_topic()

    # ------------------------------------------------------------ produce
    def produce_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "produce", params["durable"])
        self.producer = _Producer(self.broker.bootstrap)
        self.values = data.values

    def produce_run(self, case):
        t0 = time.perf_counter()
        self.producer.produce_all(self.topic, self.values)
        return {"seconds": time.perf_counter() - t0, "records": len(self.values)}

    def produce_teardown(self):
        self.producer = None
        self._teardown_topic()

    # ------------------------------------------------------------ records
    def records_supports(self, params):
        return params["op"] in ("send", "consume")

    def records_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "records", durable=False)
        self.op, self.values, self.keys = data.op, data.values, data.keys
        self.producer = _Producer(self.broker.bootstrap)
        if data.op == "consume":
            self.producer.produce_all(self.topic, self.values, self.keys)

    def records_run(self, case):
        if self.op == "send":
            t0 = time.perf_counter()
            self.producer.produce_all(self.topic, self.values, self.keys if case.get("keys") else None)
            return {"seconds": time.perf_counter() - t0, "records": len(self.values)}
        from confluent_kafka import OFFSET_BEGINNING

        how, want = case["how"], len(self.values)
        c = _consumer(self.broker.bootstrap, self.topic, OFFSET_BEGINNING)
        try:
            n = 0
            t0 = time.perf_counter()  # (the fetches start with the first poll)
            if how == "iterate":            # one poll() per record: `for rec in consumer`
                poll = c.poll
                while n < want:
                    m = poll(1.0)
                    if m is not None and not m.error():
                        n += 1
            else:                           # consume(num_messages=...): poll_batch, and what read() would be
                # 1,000 a call: librdkafka's best batch here (1,000: ~0.63 M rec/s, 10,000: ~0.52 M,
                # 100,000: ~0.46 M, measured on this machine class); never more than is left, as
                # consume() waits its timeout for a full batch.
                consume = c.consume
                while n < want:
                    n += sum(1 for m in consume(num_messages=min(1_000, want - n), timeout=0.1) if not m.error())
            seconds = time.perf_counter() - t0
        finally:
            c.close()
        return {"seconds": seconds, "records": n}

    def records_teardown(self):
        self.producer = None
        self._teardown_topic()

    # ------------------------------------------------------------ threads
    def threads_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "threads", durable=True)
        self.producer = _Producer(self.broker.bootstrap, **{"linger.ms": 0})
        self.data = data
        self._serving = True
        p = self.producer.p

        def serve():                        # delivery callbacks run in poll(): one thread serves them all
            while self._serving:
                p.poll(0.05)

        self._server = threading.Thread(target=serve, daemon=True)
        self._server.start()

    def _thread_op(self, k: int):
        produce, topic = self.producer.p.produce, self.topic
        mine = self.data.values[k * self.data.per_thread:]
        done = threading.Event()
        failed: list = []

        def on_delivery(err, _msg):
            if err is not None:
                failed.append(err)
            done.set()

        def op(i: int) -> None:
            done.clear()
            produce(topic, mine[i], on_delivery=on_delivery)
            if not done.wait(60) or failed:
                raise RuntimeError(f"kafka: send not acknowledged: {failed or 'timeout'}")

        return op

    def threads_run(self, case):
        return run_threads(self.data.threads, self.data.per_thread, self._thread_op)

    def threads_teardown(self):
        self._serving = False
        self._server.join(5)
        self.producer = None
        self._teardown_topic()

    # ------------------------------------------------------------ latency
    def latency_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "latency", durable=False)
        self.producer = _Producer(self.broker.bootstrap, **{"linger.ms": 0})
        self.data = data
        info = {"bootstrap": self.broker.bootstrap, "topic": self.topic}
        if data.where == "process":
            self.consumer = _child.RemoteConsumer(self, info)
        else:
            c = _consumer(self.broker.bootstrap, self.topic, 0)
            self._local = c
            self.consumer = LocalConsumer(lambda conn: consume_loop(_next_value(c), conn))

    def latency_consume(self, info, conn):
        """Child side: a consumer in another process."""
        c = _consumer(info["bootstrap"], info["topic"], 0)
        try:
            consume_loop(_next_value(c), conn)
        finally:
            c.close()

    def _send_acked(self, value: bytes) -> None:
        self.producer.p.produce(self.topic, value)
        self.producer.flush()

    def latency_run(self, case):
        d = self.data
        paced_round(self._send_acked, d.per_round, d.pace_s, d.value_bytes)
        return {"latencies_ns": self.consumer.samples()}

    def latency_teardown(self):
        try:
            self._send_acked(stamp_value(self.data.value_bytes)(STOP))
            self.consumer.close()
            if getattr(self, "_local", None) is not None:
                self._local.close()
                self._local = None
        finally:
            self.producer = None
            self._teardown_topic()


class KafkaJavaLatency(_KafkaPeer):
    """Produce-to-consume latency with Kafka's Java clients (LatencyProbe.java,
    run by the JDK's single-file launcher): a consumer thread in the sender's
    JVM, so only the "thread" case. Kafka's EndToEndLatency tool measures the
    same but reports whole milliseconds; the probe keeps every sample in ns."""

    name = "kafka (Java clients)"
    description = ("Kafka's Java producer (acks=all, linger 0) and consumer (fetch.max.wait.ms=1) in one JVM, "
                   "LatencyProbe.java; 2,000 unmeasured records first in each JVM (its JIT starts cold)")
    WARMUP = 2000

    def available(self):
        import shutil

        return super().available() or (None if shutil.which("javac") else "javac not found (the JDK's compiler "
                                                                           "runs LatencyProbe.java)")

    def supports(self, workload, params):
        return workload == "latency" and params["where"] == "thread"

    def latency_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "latency-java", durable=False)
        self.data = data

    def latency_run(self, case):
        from pathlib import Path

        b, d = self.broker, self.data
        probe = Path(__file__).resolve().parent.parent / "kafka" / "LatencyProbe.java"
        cmd = ["java", "-Xmx256m", "-cp", b.classpath(), str(probe), b.bootstrap, self.topic, str(d.per_round),
               str(d.value_bytes), str(int(d.pace_s * 1e9)), str(self.WARMUP)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=tool_env())
        samples = [int(x) for x in done.stdout.split()] if done.returncode == 0 else []
        if len(samples) != d.per_round:
            raise RuntimeError(f"LatencyProbe failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
        return {"latencies_ns": samples}

    def latency_teardown(self):
        self._teardown_topic()


_PERF_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


class KafkaJavaProducer(_KafkaPeer):
    """Kafka's own Java producer, through its ProducerPerformance tool (the rate
    it reports, JVM start-up excluded): what a Java user of Kafka gets, the
    fairer baseline for Kafka's per-record produce than a Python client."""

    name = "kafka (Java producer)"
    description = ("org.apache.kafka.tools.ProducerPerformance, acks=all, linger 5 ms, 1 MiB batches, against the "
                   "same broker; durable rows on topics with flush.messages=1")

    def supports(self, workload, params):
        return workload == "produce"

    def produce_setup(self, tmpdir, params, data):
        self.topic = _fresh_topic(self.broker, "produce-java", params["durable"])
        self.records, self.size = len(data.values), data.value_bytes

    def produce_run(self, case):
        b = self.broker
        cmd = ["java", "-Xmx512m", "-cp", b.classpath(), "org.apache.kafka.tools.ProducerPerformance",
               "--topic", self.topic, "--num-records", str(self.records), "--record-size", str(self.size),
               "--throughput", "-1", "--producer-props", f"bootstrap.servers={b.bootstrap}", "acks=all",
               "linger.ms=5", "batch.size=1048576"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=tool_env())
        found = _PERF_LINE.findall(done.stdout)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"ProducerPerformance failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
        sent, rate = found[-1]        # the last line is the whole run's summary
        sent, rate = int(sent), float(rate)
        return {"seconds": sent / rate, "records": sent}

    def produce_teardown(self):
        self._teardown_topic()
