"""The reading side of one DoGet stream: ``ReadAhead``."""
from __future__ import annotations

import queue
import threading
from typing import Iterator

#: Batches read ahead of the one gRPC is sending. They are views of the log's
#: mapping (zero-copy when uncompressed), so this bounds references, not copies.
READ_AHEAD_BATCHES = 4
_END = object()


class ReadAhead:
    """Iterates a scan's batches, read by a thread of its own up to
    READ_AHEAD_BATCHES ahead: reading and decoding the next frames (Python
    work, with the GIL) overlaps with gRPC sending the current one (native,
    without it), instead of each waiting for the other. Bounded: the reader
    waits while the queue is full, so gRPC's flow control still paces it.

    Iterate it once, from one thread; ``close()`` (also when the iteration
    ends early, as when a client goes away) stops the reader at its next
    batch. A failure of the scan is raised by the iteration, in its place.
    """

    def __init__(self, scan, name: str):
        self._scan = scan
        self._queue: queue.Queue = queue.Queue(maxsize=READ_AHEAD_BATCHES)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"tidelog flight get {name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for batch in self._scan:
                if not self._offer(batch):
                    return
        except BaseException as e:  # noqa: BLE001 - raised by the iteration
            self._offer(e)
            return
        self._offer(_END)

    def _offer(self, item) -> bool:
        """Puts ``item``, waiting for room; False once the consumer is gone."""
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stopped.set()
