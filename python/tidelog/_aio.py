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
                   partition=None) -> RecordMetadata:
        fut = self.producer.send(topic, value, key, headers, timestamp, partition)
        if fut.done():
            return fut.result()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def delivered(f):
            loop.call_soon_threadsafe(_settle, waiter, f)

        fut.add_done_callback(delivered)
        return await waiter

    def send_nowait(self, topic: str, value=None, key=None, headers=None, timestamp=None, partition=None):
        """Queues a record without waiting; returns the DeliveryFuture."""
        return self.producer.send(topic, value, key, headers, timestamp, partition)

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
        self._native = consumer._native_log

    async def _wait(self, timeout: float | None) -> bool:
        """Until some partition publishes (True) or timeout passes (False)."""
        seq = self._native.notify_sequence()
        if self.consumer._has_data():
            return True
        loop = asyncio.get_running_loop()
        woke = loop.create_future()
        cancelled = threading.Event()

        def park():
            self._native.wait_notify(seq, timeout)
            if not cancelled.is_set():
                loop.call_soon_threadsafe(lambda: woke.done() or woke.set_result(None))

        helper = threading.Thread(target=park, name="tidelog-async-consumer", daemon=True)
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
                self._native.wake_waiters()
                helper.join()

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

    def __getattr__(self, name: str) -> Any:  # seek, assign, position, end_offsets, ...
        return getattr(self.consumer, name)

    async def __aenter__(self) -> "AsyncConsumer":
        return self

    async def __aexit__(self, *exc) -> None:
        self.consumer.close()
