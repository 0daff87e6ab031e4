"""asyncio faces of the producer and consumer (issue 3): round trips, wake-ups
through the event loop, and cancellation that leaves no thread or fd behind."""
from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

import pyarrow as pa
import pytest

import tidelog
from _helpers import kafka_partition

HELPER = "tidelog-async-consumer"


@pytest.fixture
def topic(log):
    return log.create_topic("a", partitions=3, durability="none")


def run(coro, timeout=30):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


def helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == HELPER]


def open_fds() -> int:
    """Open descriptors, after a garbage collection: a log left unreachable by
    an earlier test closes its files when the collector finds it, which must
    not count as this test's doing."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("acks,durability", [("written", "none"), ("durable", "fsync")])
def test_async_round_trip(log, acks, durability):
    log.create_topic("rt", partitions=3, durability=durability)

    async def main():
        p = log.async_producer(linger_ms=1, acks=acks)
        metas = await asyncio.gather(*(
            p.send("rt", value=b"v%d" % i, key=b"k%d" % (i % 10), headers=[("i", b"%d" % i)]) for i in range(200)))
        assert all(isinstance(m, tidelog.RecordMetadata) for m in metas)
        for i, m in enumerate(metas):
            assert m.topic == "rt" and m.partition == kafka_partition(b"k%d" % (i % 10), 3)
        one = await p.send("rt", value=b"explicit", partition=2, timestamp=123)
        assert (one.partition, one.timestamp) == (2, 123)
        fut = p.send_nowait("rt", value=b"nowait", partition=0)
        assert isinstance(fut, tidelog.DeliveryFuture)
        assert await p.flush() == 0
        assert fut.done()
        res = await p.send_many("rt", [b"bulk-%d" % i for i in range(10)], partition=1)
        assert res.rows == 10
        await p.close()

        c = log.async_consumer("rt")
        got = []
        async for r in c:
            got.append(r)
            if len(got) == 212:
                break
        assert sorted(r.value for r in got) == sorted(
            [b"v%d" % i for i in range(200)] + [b"explicit", b"nowait"] + [b"bulk-%d" % i for i in range(10)])
        by_pos = {(r.partition, r.offset): r for r in got}
        for i, m in enumerate(metas):
            r = by_pos[(m.partition, m.offset)]
            assert r.value == b"v%d" % i and r.headers == [("i", b"%d" % i)] and r.timestamp == m.timestamp
        assert await c.poll(0.05) is None
        c.seek_to_beginning()  # the sync consumer's methods are there too
        total = 0
        while (b := await c.poll_batch(50, timeout=0.05)) is not None:
            assert isinstance(b, pa.RecordBatch) and b.num_rows <= 50
            assert b.schema.names[:3] == ["topic", "partition", "offset"]
            total += b.num_rows
        assert total == 212

    run(main())


def test_async_consumer_wakes_when_a_record_arrives(log, topic):
    async def main():
        c = log.async_consumer("a")
        ticks = 0

        async def ticker():  # the loop keeps running while the consumer waits
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async def produce_later():
            await asyncio.sleep(0.3)
            async with log.async_producer(linger_ms=0, acks="written") as p:
                return await p.send("a", value=b"late", partition=1), time.monotonic()

        tick_task = asyncio.create_task(ticker())
        prod = asyncio.create_task(produce_later())
        t0 = time.monotonic()
        r = await asyncio.wait_for(c.__anext__(), 10)
        got_at = time.monotonic()
        meta, sent_at = await prod
        tick_task.cancel()
        assert (r.partition, r.offset, r.value) == (1, meta.offset, b"late")
        assert got_at - t0 >= 0.25
        assert ticks >= 10, "the event loop was blocked while the consumer waited"
        b_task = asyncio.create_task(c.poll_batch(10, timeout=10))
        await asyncio.sleep(0.1)
        assert not b_task.done()
        async with log.async_producer(linger_ms=0, acks="written") as p:
            await p.send("a", value=b"for the batch", partition=2)
        b = await b_task
        assert b["value"].to_pylist() == [b"for the batch"]
        assert helper_threads() == []

    run(main())


def test_async_poll_timeouts(log, topic):
    async def main():
        c = log.async_consumer("a")
        t0 = time.monotonic()
        assert await c.poll(0.2) is None
        assert 0.18 <= time.monotonic() - t0 < 2
        t0 = time.monotonic()
        assert await c.poll_batch(10, timeout=0.2) is None
        assert 0.18 <= time.monotonic() - t0 < 2
        assert await c.poll(0) is None
        assert helper_threads() == []

    run(main())


async def _warm_consumer(log):
    """A consumer that has read a record (files mapped, notifier open)."""
    async with log.async_producer(linger_ms=0, acks="written") as p:
        await p.send("a", value=b"warm-up", partition=0)
    c = log.async_consumer("a")
    r = await c.poll(5)
    assert r is not None and r.value == b"warm-up"
    # one wait that times out, so anything a first wait creates exists already
    assert await c.poll(0.01) is None
    return c


def test_cancel_async_for_leaves_no_thread_or_fd(log, topic):
    async def main():
        c = await _warm_consumer(log)
        await asyncio.sleep(0.05)
        fds_before = open_fds()
        threads_before = threading.active_count()
        assert helper_threads() == []

        async def consume():
            async for r in c:
                return r

        for _ in range(5):
            task = asyncio.create_task(consume())
            await asyncio.sleep(0.15)
            assert not task.done()
            assert len(helper_threads()) == 1, "one helper thread parks in the native wait"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert helper_threads() == [], "cancel left the helper thread behind"
            assert threading.active_count() == threads_before
            assert open_fds() == fds_before

        # The consumer still works, and the cancelled waits lost nothing.
        async with log.async_producer(linger_ms=0, acks="written") as p:
            meta = await p.send("a", value=b"after cancel", partition=2)
        r = await c.poll(5)
        assert (r.partition, r.offset, r.value) == (2, meta.offset, b"after cancel")
        await asyncio.sleep(0.05)
        assert helper_threads() == []
        assert open_fds() == fds_before

    run(main())


def test_cancel_poll_by_timeout_leaves_no_thread_or_fd(log, topic):
    async def main():
        c = await _warm_consumer(log)
        await asyncio.sleep(0.05)
        fds_before = open_fds()
        threads_before = threading.active_count()
        for _ in range(20):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.poll(), 0.02)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.poll_batch(10), 0.02)
        assert helper_threads() == []
        assert threading.active_count() == threads_before
        assert open_fds() == fds_before

    run(main())


def test_many_waiting_consumers_are_woken_and_cleaned_up(log, topic):
    async def main():
        consumers = [log.async_consumer("a") for _ in range(4)]
        tasks = [asyncio.create_task(c.poll(10)) for c in consumers]
        await asyncio.sleep(0.15)
        assert len(helper_threads()) == 4
        async with log.async_producer(linger_ms=0, acks="written") as p:
            await p.send("a", value=b"fan-out", partition=0)
        records = await asyncio.gather(*tasks)
        assert [r.value for r in records] == [b"fan-out"] * 4
        await asyncio.sleep(0.05)
        assert helper_threads() == []

    run(main())


def test_async_producer_errors(log, topic):
    async def main():
        p = log.async_producer(acks="written", max_record_bytes=10)
        with pytest.raises(tidelog.UnknownTopicError):
            await p.send("nope", value=b"x")
        with pytest.raises(tidelog.RecordTooLargeError):
            await p.send("a", value=bytes(11))
        with pytest.raises(ValueError):
            await p.send("a", value=b"x", partition=7)
        with pytest.raises(TypeError):
            await p.send("a", value=b"x", headers=[(1, b"name is not a str")])
        await p.close()
        with pytest.raises(tidelog.LogClosedError):
            await p.send("a", value=b"x")
        with pytest.raises(tidelog.InvalidGroupIdError):
            log.async_consumer("a", group="no/slash")

    run(main())
    assert sum(topic.end_offsets().values()) == 0


def test_async_producer_context_manager_flushes(log, topic):
    async def main():
        async with log.async_producer(linger_ms=60_000, acks="written") as p:
            futs = [p.send_nowait("a", value=b"%d" % i, partition=0) for i in range(5)]
            assert not any(f.done() for f in futs)
        assert all(f.done() for f in futs)
        assert topic.end_offsets()[0] == 5

    run(main())
