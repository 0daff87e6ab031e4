"""asyncio faces of the producer and the consumer.

No busy polling and no thread per record: a producer's delivery reaches the
event loop through ``loop.call_soon_threadsafe`` from the thread that completes
the batch; a caught-up consumer parks one helper thread in the native futex
wait (GIL released) and is woken through the loop the same way. Cancelling a
wait wakes that thread at once (``wake_waiters``) and joins it, so nothing is
left behind.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import pyarrow as pa

from ._consumer import Consumer
from ._producer import RecordMetadata


class AsyncProducer:
    """``await send(...)`` returns the RecordMetadata once delivered under acks."""

    def __init__(self, producer):
        self.producer = producer

    async def send(self, topic: str, value=None, key=None, headers=None, timestamp=None,
                   partition=None, timestamp_ms=None) -> RecordMetadata:
        """Sends one record and returns its RecordMetadata once delivered (see send_nowait)."""
        fut = self.producer.send(topic, value, key, headers, timestamp, partition, timestamp_ms=timestamp_ms)
        if fut.done():
            return fut.result()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def delivered(f):
            loop.call_soon_threadsafe(_settle, waiter, f)

        fut.add_done_callback(delivered)
        return await waiter

    def send_nowait(self, topic: str, value=None, key=None, headers=None, timestamp=None, partition=None,
                    timestamp_ms=None):
        """Queues a record without waiting; returns the DeliveryFuture.

        ``await send(...)`` returns once the record is delivered under the
        producer's acks: with ``acks="durable"`` each awaited send waits for a
        group-commit fdatasync, so sending records one ``await`` after another is
        one durable round trip each. To stream records, ``send_nowait`` many and
        await ``flush()`` (or ``asyncio.gather`` the ``send`` coroutines): they share
        one fdatasync."""
        return self.producer.send(topic, value, key, headers, timestamp, partition, timestamp_ms=timestamp_ms)

    async def send_many(self, topic: str, values, keys=None, headers=None, partition=None):
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.producer.send_many(topic, values, keys, headers, partition))

    async def flush(self, timeout=None) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, timeout)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.producer.close)

    async def __aenter__(self) -> "AsyncProducer":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _settle(waiter: asyncio.Future, fut) -> None:
    if waiter.done():
        return
    try:
        waiter.set_result(fut.result(0))
    except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
        waiter.set_exception(e)


class AsyncConsumer:
    """``async for record in consumer``; ``await poll(...)``, ``await poll_batch(...)``."""

    def __init__(self, consumer: Consumer):
        self.consumer = consumer
        self._log = consumer.log

    async def _wait(self, timeout: float | None) -> bool:
        """Until some partition publishes (True) or timeout passes (False)."""
        seq = self._log.notify_sequence()
        if self.consumer.has_data():
            return True
        loop = asyncio.get_running_loop()
        woke = loop.create_future()
        cancelled = threading.Event()

        def park():
            self._log.wait_notify(seq, timeout)
            if not cancelled.is_set():
                loop.call_soon_threadsafe(lambda: woke.done() or woke.set_result(None))

        helper = threading.Thread(target=park, name="tidelog-async-consumer", daemon=True)
        self.consumer._idle(True)
        helper.start()
        try:
            await woke
            return True
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            if helper.is_alive():
                cancelled.set()
                self._log.wake_waiters()
                helper.join()
            self.consumer._idle(False)

    async def poll(self, timeout: float | None = None):
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            r = self.consumer.poll(0)
            if r is not None:
                return r
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return None
            await self._wait(left)

    async def poll_batch(self, max_records: int = 100_000, timeout: float | None = None) -> pa.RecordBatch | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            b = self.consumer.poll_batch(max_records, 0)
            if b is not None:
                return b
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return None
            await self._wait(left)

    def __aiter__(self) -> "AsyncConsumer":
        return self

    async def __anext__(self):
        return await self.poll(None)

    # Positions and assignment do no I/O: plain methods, as aiokafka's seek/assignment.
    def assign(self, partitions) -> None:
        """Reads exactly these partitions: (topic, partition) pairs or
        TopicPartitions (see Consumer.assign)."""
        self.consumer.assign(partitions)

    def subscribe(self, topics) -> None:
        self.consumer.subscribe([topics] if isinstance(topics, str) else list(topics))

    def assignment(self) -> list[tuple[str, int]]:
        return self.consumer.assignment()

    def seek(self, topic, partition=None, offset=None) -> None:
        """The next record read from that partition is ``offset``: ``seek(topic,
        partition, offset)`` or ``seek(TopicPartition(...))`` (see Consumer.seek)."""
        self.consumer.seek(topic, partition, offset)

    def seek_to_time(self, topic: str, partition: int | None, timestamp: Any) -> None:
        self.consumer.seek_to_time(topic, partition, timestamp)

    def seek_to_beginning(self) -> None:
        self.consumer.seek_to_beginning()

    def seek_to_end(self) -> None:
        self.consumer.seek_to_end()

    def position(self, topic, partition=None):
        """The offset of the next record this consumer returns from that
        partition; for a list of TopicPartitions, the list with offsets (see
        Consumer.position)."""
        return self.consumer.position(topic, partition)

    def end_offsets(self, partitions=None) -> dict[tuple[str, int], int]:
        return self.consumer.end_offsets(partitions)

    async def commit(self, message=None, offsets=None) -> None:
        """A group consumer's durable commit (see GroupConsumer.commit), its fdatasync off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.consumer.commit(message, offsets))

    async def committed(self, partitions, timeout: float | None = None):
        return await asyncio.get_running_loop().run_in_executor(None, self.consumer.committed, partitions)

    async def close(self) -> None:
        """Stops consuming; a poll waiting in another task returns."""
        self.consumer.close()
        self._log.wake_waiters()

    def __getattr__(self, name: str) -> Any:  # anything else of Consumer
        return getattr(self.consumer, name)

    async def __aenter__(self) -> "AsyncConsumer":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
