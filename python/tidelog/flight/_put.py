"""The appends of one DoPut stream: ``AppendPipeline``."""
from __future__ import annotations

import json
import queue
import threading

import pyarrow as pa

#: Batches received and not yet appended, per stream: what the receiving runs
#: ahead of the appends (memory: at most this many batches of max_batch_bytes).
QUEUE_BATCHES = 8


def encode_put_result(index: int, result) -> bytes:
    """The app metadata of the PutResult for batch ``index`` of a DoPut stream:
    ``{"batch": index, "rows": n, "offsets": {"partition": [first, last]}}``."""
    offsets = {str(p): [first, last] for p, (first, last) in result.offsets.items()}
    return json.dumps({"batch": index, "rows": result.rows, "offsets": offsets}, separators=(",", ":")).encode()


class AppendPipeline:
    """Appends the batches of one DoPut stream, in order, on a thread of its
    own, and acknowledges each once it is durable.

    The thread appends every batch received so far (written, offsets
    assigned), waits once for them all to be durable, then sends their
    acknowledgements; meanwhile the call's thread receives the next batches.
    So a stream pays one fdatasync per group of batches that arrived during
    the previous one, not one per batch, and no batch is acknowledged before
    an fdatasync that started after it was written.

    A thread Python made, not gRPC's: ``topic.append`` keeps a per-thread
    Arrow IPC writer for large batches, and one left on a gRPC thread crashes
    the process when that thread's Python state is torn down after the call.

    On the first failure (an append, a flush, sending an acknowledgement) the
    batches appended before it are still flushed and acknowledged, the ones
    after it are dropped unwritten, and ``put``/``finish`` raise it.
    """

    def __init__(self, topic, writer):
        self._topic = topic
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self.error: BaseException | None = None
        self.failed_batch: int | None = None  # the batch whose append failed, if one did
        # "fsync" topics: only the last append of a group waits for durability, in
        # the group commit as appends in-process do: every write notes a flush
        # deadline of now, tickets are global and increasing, so the fdatasync
        # that covers its ticket covers the writes before it (docs/ARCHITECTURE.md,
        # the committer). Other modes: one topic.flush() after the group.
        self._group_commit = topic.config.durability == "fsync"
        self._thread = threading.Thread(target=self._run, name=f"tidelog flight put {topic.name}", daemon=True)
        self._thread.start()

    def put(self, index: int, batch: pa.RecordBatch) -> None:
        """Hands batch ``index`` over (blocks while QUEUE_BATCHES wait);
        raises the pipeline's failure if there was one."""
        if self.error is not None:
            raise self.error
        self._queue.put((index, batch))

    def finish(self) -> None:
        """Waits until every batch handed over is appended, durable and
        acknowledged; raises the pipeline's failure if there was one."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        done = False
        while not done:
            items = [self._queue.get()]  # what has arrived: at least one, all there is
            while items[-1] is not None:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if items[-1] is None:
                done = True
                items.pop()
            if self.error is not None:
                continue  # after a failure, the rest is drained unwritten
            written = []  # (index, AppendResult)
            for k, (index, batch) in enumerate(items):
                try:
                    last = k == len(items) - 1
                    written.append((index, self._topic.append(batch, durable=last and self._group_commit)))
                except BaseException as e:  # noqa: BLE001 - reported by put/finish
                    self.error, self.failed_batch = e, index
                    break
            if not written:
                continue
            try:
                if self.error is not None or not self._group_commit:
                    self._topic.flush()
                for index, result in written:
                    self._writer.write(encode_put_result(index, result))
            except BaseException as e:  # noqa: BLE001 - reported by put/finish
                self.error = self.error or e
