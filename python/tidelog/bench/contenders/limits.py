"""The physical limits: what the hardware, the kernel and plain Arrow allow
with no log at all. Every tidelog figure is read against one of them."""
from __future__ import annotations

import itertools
import mmap
import os
import queue
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core import SCHEMA, Contender, need_disk, need_memory, rmtree, run_threads
from .. import _child
from ._common import (
    STOP, LocalConsumer, batch_payloads, chunks, consume_loop, crash_writer_if_asked, fill_recovery_store,
    paced_round, store_dir, timed_windows, ts_range_sum,
)


class NumpyCopy(Contender):
    """Memory bandwidth: the batch's column buffers copied with numpy into a preallocated buffer."""

    name = "numpy copy"
    kind = "limit"
    description = ("memory bandwidth: np.copyto of each batch's column buffers into a preallocated array "
                   "(shown with the not-durable rows)")

    def ingest_supports(self, params):
        return not params["durable"]

    def ingest_setup(self, tmpdir, params, data):
        # zero-copy views of each (possibly sliced) batch's column values: exactly its bytes
        self.bufs = [[c.to_numpy(zero_copy_only=True).view(np.uint8) for c in b.columns] for b in data.batches]
        self.rows = data.rows
        total = sum(x.size for bs in self.bufs for x in bs)
        self.dst = np.empty(total, np.uint8)
        self.dst[:] = 0  # fault the pages in

    def ingest_run(self, case):
        dst, copyto = self.dst, np.copyto
        t0 = time.perf_counter()
        off = 0
        for bs in self.bufs:
            for x in bs:
                n = x.size
                copyto(dst[off:off + n], x)
                off += n
        return {"seconds": time.perf_counter() - t0, "rows": self.rows}

    def ingest_teardown(self):
        self.dst = self.bufs = None

    def copies_setup(self, tmpdir, params, data):
        self.src = np.frombuffer(data.payload, dtype=np.uint8)
        self.dst = np.empty_like(self.src)
        self.dst[:] = 1  # fault the pages in

    def copies_run(self, case):
        src, dst, copyto = self.src, self.dst, np.copyto
        c0, t0 = time.thread_time(), time.perf_counter()
        copyto(dst, src)
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.thread_time() - c0, "bytes": src.size}

    def copies_teardown(self):
        self.src = self.dst = None


class OsWrite(Contender):
    """The page-cache write: os.pwrite of the same bytes appended to a file preallocated ahead, no fdatasync.

    ``preallocate=False`` ("os.write (extending)", the copies workload only):
    one os.write into a plain file that grows, for reference."""

    kind = "limit"

    def __init__(self, preallocate: bool = True):
        self.preallocate = preallocate
        self.name = "os.write" if preallocate else "os.write (extending)"
        self.description = (
            "os.pwrite of the same bytes (Arrow IPC messages / 1 MiB chunks of values) appended to a file "
            "preallocated ahead, each round after the last (new pages, as a log writes); "
            "records: one os.write of the value bytes" if preallocate else
            "one os.write of the same bytes into a plain, growing file")

    def supports(self, workload, params):
        if not self.preallocate and workload != "copies":
            return False
        return super().supports(workload, params)

    def _prepare(self, tmpdir, payloads):
        self.dir = store_dir(tmpdir, self.name)
        self.payloads = payloads
        self.round_bytes = max(sum(len(p) for p in payloads), 1)
        self.fd = os.open(os.path.join(self.dir, "data.bin"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.end = 0

    def _write_round(self) -> float:
        """One round appends the bytes after the previous round's, into space
        allocated before the clock: new pages every round, as a log writes.
        (Rewriting the same offsets every round measured a memcpy into pages
        already cached and dirty: it never meets the kernel's dirty-page
        throttling that every append of new data meets once writeback lags,
        and made large not-durable batches look 10x slower than the limit.)"""
        fd, pwrite = self.fd, os.pwrite
        os.posix_fallocate(fd, self.end, self.round_bytes)
        off = self.end
        t0 = time.perf_counter()
        for p in self.payloads:
            off += pwrite(fd, p, off)
        seconds = time.perf_counter() - t0
        self.end = off
        return seconds

    def _close(self):
        os.close(self.fd)
        rmtree(self.dir)

    def ingest_supports(self, params):
        return not params["durable"]

    def ingest_setup(self, tmpdir, params, data):
        self._prepare(tmpdir, batch_payloads(data.batches))
        self.rows = data.rows

    def ingest_run(self, case):
        return {"seconds": self._write_round(), "rows": self.rows}

    def ingest_teardown(self):
        self._close()

    def produce_supports(self, params):
        return not params["durable"]

    def produce_setup(self, tmpdir, params, data):
        self._prepare(tmpdir, chunks(data.values))
        self.records = len(data.values)

    def produce_run(self, case):
        return {"seconds": self._write_round(), "records": self.records}

    def produce_teardown(self):
        self._close()

    # records (send_many from a pa.array): one os.write of the value bytes, the one copy
    def records_supports(self, params):
        return params["op"] == "send_many" and params["form"] == "arrow"

    def records_setup(self, tmpdir, params, data):
        self.dir = store_dir(tmpdir, self.name)
        self.path = os.path.join(self.dir, "raw.bin")
        self.blob, self.records = data.value_bytes_blob, data.records

    def records_run(self, case):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            t0 = time.perf_counter()
            os.write(fd, self.blob)
            return {"seconds": time.perf_counter() - t0, "records": self.records}
        finally:
            os.close(fd)

    def records_teardown(self):
        rmtree(self.dir)

    # copies: one os.write of the serialized batch; fdatasync outside the clock, so no dirty pages are left
    # for the next timed step
    def copies_setup(self, tmpdir, params, data):
        self.dir = store_dir(tmpdir, self.name)
        self.path = os.path.join(self.dir, "raw.bin")
        self.payload = data.payload

    def copies_run(self, case):
        payload, n = self.payload, self.payload.size
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if self.preallocate:
                os.posix_fallocate(fd, 0, n + (1 << 20))
            c0, t0 = time.thread_time(), time.perf_counter()
            written = os.write(fd, payload)
            out = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.thread_time() - c0, "bytes": n}
            if written != n:
                raise AssertionError(f"os.write wrote {written} of {n} bytes")
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return out

    def copies_teardown(self):
        rmtree(self.dir)


class PythonCallFloor(Contender):
    """What a Python loop over the records costs before any log: the send loop
    calling ``slice(topic, value, key)``, a C call of three arguments that
    allocates one object (as send() allocates its future)."""

    name = "python call floor"
    kind = "limit"
    description = "the send() loop calling slice(topic, value, key): the interpreter's share of a per-record call"

    def records_supports(self, params):
        return params["op"] == "send"

    def records_setup(self, tmpdir, params, data):
        self.data = data

    def records_run(self, case):
        call, keys, values = slice, self.data.keys, self.data.values
        t0 = time.perf_counter()
        for k, v in zip(keys, values):
            call("events", v, k)
        return {"seconds": time.perf_counter() - t0, "records": len(values)}


class PaArrayConversion(Contender):
    """The conversion any list-of-bytes path pays: ``pa.array(values, pa.binary())``."""

    name = "pa.array conversion"
    kind = "limit"
    description = "pa.array(values, pa.binary()) of the list of bytes, the conversion a list path pays"

    def records_supports(self, params):
        return params["op"] == "send_many" and params["form"] == "list"

    def records_setup(self, tmpdir, params, data):
        self.values = data.values

    def records_run(self, case):
        values, array, binary = self.values, pa.array, pa.binary()
        t0 = time.perf_counter()
        array(values, binary)
        return {"seconds": time.perf_counter() - t0, "records": len(values)}


class Crc32c(Contender):
    """tidelog's CRC32C (``tidelog._core.crc32c``, SSE4.2 when available) over the
    same bytes: work an append does besides copying."""

    name = "crc32c"
    kind = "limit"
    requires = ("tidelog",)
    description = "tidelog._core.crc32c over the same bytes (work an append must do besides copying)"

    def copies_setup(self, tmpdir, params, data):
        self.payload = data.payload

    def copies_run(self, case):
        from tidelog import _core

        payload, crc = self.payload, _core.crc32c
        c0, t0 = time.thread_time(), time.perf_counter()
        crc(payload)
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.thread_time() - c0,
                "bytes": payload.size, "hardware": bool(_core.crc32c_hardware())}


class WriteFdatasync(Contender):
    """The durable write: os.pwrite + os.fdatasync per batch.

    ``preallocate=True`` (the named limit, "write+fdatasync"): into a file whose
    blocks were allocated and zero-filled beforehand, so each fdatasync flushes
    data only, no file-system metadata - the floor of "durable per batch".
    ``preallocate=False`` ("append+fdatasync"): appending to a plain file that
    grows, so each fdatasync also commits the new size, as an appending log does)."""

    kind = "limit"

    def __init__(self, preallocate: bool = True):
        self.preallocate = preallocate
        self.name = "write+fdatasync" if preallocate else "append+fdatasync"
        self.description = (("os.pwrite + os.fdatasync per batch into a preallocated, zero-filled file (data-only "
                             "syncs)" if preallocate else
                             "os.write + os.fdatasync per batch appending to a growing file (each sync commits the "
                             "new size too)")
                            + "; per 1 MiB of values (produce); per record from each thread (threads)")

    def _prepare(self, tmpdir, payloads, capacity: int | None = None):
        self.dir = store_dir(tmpdir, self.name)
        self.payloads = payloads
        path = os.path.join(self.dir, "data.bin")
        if self.preallocate:
            self.capacity = capacity or max(sum(len(p) for p in payloads), 1)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            zeros = bytes(1 << 20)
            for off in range(0, self.capacity, len(zeros)):
                os.pwrite(self.fd, zeros[:min(len(zeros), self.capacity - off)], off)
            os.fsync(self.fd)
        else:
            self.capacity = None
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.slot = itertools.count()

    def _write_round(self) -> tuple[float, int]:
        fd, sync = self.fd, os.fdatasync
        t0 = time.perf_counter()
        if self.preallocate:
            pwrite, off = os.pwrite, 0
            for p in self.payloads:
                off += pwrite(fd, p, off)
                sync(fd)
        else:
            write = os.write
            for p in self.payloads:
                write(fd, p)
                sync(fd)
        return time.perf_counter() - t0, len(self.payloads)

    def _close(self):
        os.close(self.fd)
        rmtree(self.dir)

    def ingest_supports(self, params):
        return params["durable"]

    def ingest_setup(self, tmpdir, params, data):
        self._prepare(tmpdir, batch_payloads(data.batches))
        self.rows = data.rows

    def ingest_run(self, case):
        seconds, syncs = self._write_round()
        return {"seconds": seconds, "rows": self.rows, "fdatasyncs": syncs}

    def ingest_teardown(self):
        self._close()

    def produce_supports(self, params):
        return params["durable"] and self.preallocate

    def produce_setup(self, tmpdir, params, data):
        self._prepare(tmpdir, chunks(data.values))
        self.records = len(data.values)

    def produce_run(self, case):
        seconds, _ = self._write_round()
        return {"seconds": seconds, "records": self.records}

    def produce_teardown(self):
        self._close()

    def threads_setup(self, tmpdir, params, data):
        self.data = data
        self.value_bytes = len(data.values[0])
        self._prepare(tmpdir, None, capacity=len(data.values) * self.value_bytes)

    def _thread_op(self, k: int):
        fd, sync = self.fd, os.fdatasync
        mine = self.data.values[k * self.data.per_thread:]
        if not self.preallocate:
            write = os.write

            def op(i):
                write(fd, mine[i])
                sync(fd)
            return op
        pwrite, slot, size, cap = os.pwrite, self.slot, self.value_bytes, self.capacity

        def op(i):
            pwrite(fd, mine[i], (next(slot) * size) % cap)
            sync(fd)
        return op

    def threads_run(self, case):
        m = run_threads(self.data.threads, self.data.per_thread, self._thread_op)
        m["fdatasyncs"] = m["acks"]
        return m

    def threads_teardown(self):
        self._close()


class GroupCommitFloor(Contender):
    """The threads workload's hand-off floor: the ideal group commit in
    Python. Each thread puts its 100-byte record on a queue and waits on its
    own event; one flusher thread takes everything queued, writes it with one
    os.pwrite into a preallocated, zero-filled file, fdatasyncs once and sets
    the events. What any group commit costs here at least: the thread
    hand-offs (two per ack) and the fdatasyncs, nothing else."""

    name = "group commit floor"
    kind = "limit"
    description = ("threads hand 100-byte records to one flusher thread (queue + an event per thread); it writes "
                   "all queued with one os.pwrite, fdatasyncs once, wakes them")

    def supports(self, workload, params):
        return workload == "threads"

    def threads_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = store_dir(tmpdir, self.name)
        size = len(data.values) * len(data.values[0]) * 8 + (1 << 20)
        self.fd = os.open(os.path.join(self.dir, "floor.bin"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self.fd, bytes(size), 0)
        os.fsync(self.fd)
        self.capacity, self.off, self.syncs = size, 0, 0
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.flusher = threading.Thread(target=self._flush_loop, daemon=True)
        self.flusher.start()

    def _flush_loop(self):
        q, fd = self.q, self.fd
        while True:
            item = q.get()
            if item is None:
                return
            batch = [item]
            while True:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            batch = [b for b in batch if b is not None]
            data = b"".join(v for v, _ in batch)
            if self.off + len(data) > self.capacity:
                self.off = 0
            os.pwrite(fd, data, self.off)
            self.off += len(data)
            os.fdatasync(fd)
            self.syncs += 1
            for _, done in batch:
                done.set()
            if stop:
                return

    def _thread_op(self, k: int):
        put, mine = self.q.put, self.data.values[k * self.data.per_thread:]
        done = threading.Event()

        def op(i):
            done.clear()
            put((mine[i], done))
            done.wait()

        return op

    def threads_run(self, case):
        s0 = self.syncs
        m = run_threads(self.data.threads, self.data.per_thread, self._thread_op)
        m["fdatasyncs"] = self.syncs - s0
        return m

    def threads_teardown(self):
        self.q.put(None)
        self.flusher.join(10)
        os.close(self.fd)
        rmtree(self.dir)


class ArrowInMemory(Contender):
    """The same batches as a pa.Table in memory: the ceiling of any Arrow read."""

    name = "arrow (in memory)"
    kind = "limit"
    description = "the batches held in memory: pc.sum over the column; binary search over sorted ts; index a batch"

    def scans_setup(self, tmpdir, params, data):
        need_memory(data.nbytes, "the in-memory table")
        self.batches = list(data.sensors.batches())
        self.table = pa.Table.from_batches(self.batches)
        self.batch_rows = data.sensors.batch_rows
        self.data = data

    def scans_run(self, case):
        q, data = case["query"], self.data
        if q == "scan":
            t0 = time.perf_counter()
            total = pc.sum(self.table["value"]).as_py()
            return {"seconds": time.perf_counter() - t0, "rows": self.table.num_rows, "check": total}
        if q == "range":
            batches = self.batches
            return timed_windows(data.range_ts, lambda t0, t1: ts_range_sum(len(batches), batches.__getitem__, t0, t1))
        batches, br = self.batches, self.batch_rows
        total = 0.0
        t0 = time.perf_counter()
        for k in data.points:
            total += batches[k // br].column(2)[k % br].as_py()
        return {"seconds": time.perf_counter() - t0, "lookups": len(data.points), "check": total}

    def scans_teardown(self):
        self.batches = self.table = None


class ArrowIpcFile(Contender):
    """A pyarrow IPC file: written batch by batch; read through a memory map."""

    name = "pyarrow IPC"
    kind = "limit"
    description = ("pyarrow IPC file: RecordBatchFileWriter.write_batch per batch (+ fdatasync when durable); "
                   "reads via pa.memory_map, zero-copy")

    def ingest_supports(self, params):
        return "partitions" not in params     # one file: the 1-partition case

    def ingest_setup(self, tmpdir, params, data):
        self.dir = store_dir(tmpdir, self.name)
        path = os.path.join(self.dir, "data.arrow")
        self.sink = pa.OSFile(path, "wb")
        self.writer = pa.ipc.new_file(self.sink, SCHEMA)
        self.sync_fd = os.open(path, os.O_RDONLY) if params["durable"] else None
        self.batches = data.batches
        self.rows = data.rows

    def ingest_run(self, case):
        write, fd, sync = self.writer.write_batch, self.sync_fd, os.fdatasync
        t0 = time.perf_counter()
        if fd is None:
            for b in self.batches:
                write(b)
        else:
            for b in self.batches:
                write(b)
                sync(fd)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "rows": self.rows, "fdatasyncs": len(self.batches) if fd is not None else None}

    def ingest_teardown(self):
        self.writer.close()
        self.sink.close()
        if self.sync_fd is not None:
            os.close(self.sync_fd)
        rmtree(self.dir)

    def scans_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.nbytes * 1.1), "the IPC file")
        self.dir = store_dir(tmpdir, self.name)
        path = os.path.join(self.dir, "data.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as w:
            for b in data.sensors.batches():
                w.write_batch(b)
        self.reader = pa.ipc.open_file(pa.memory_map(path))
        self.batch_rows = data.sensors.batch_rows
        self.data = data

    def scans_run(self, case):
        q, data, reader = case["query"], self.data, self.reader
        if q == "scan":
            t0 = time.perf_counter()
            table = reader.read_all()
            total = pc.sum(table["value"]).as_py()
            return {"seconds": time.perf_counter() - t0, "rows": table.num_rows, "check": total}
        if q == "range":
            n = reader.num_record_batches
            return timed_windows(data.range_ts, lambda t0, t1: ts_range_sum(n, reader.get_batch, t0, t1))
        get, br = reader.get_batch, self.batch_rows
        total = 0.0
        t0 = time.perf_counter()
        for k in data.points:
            total += get(k // br).column(2)[k % br].as_py()
        return {"seconds": time.perf_counter() - t0, "lookups": len(data.points), "check": total}

    def scans_teardown(self):
        self.reader = None
        rmtree(self.dir)


class OpenMmap(Contender):
    """The floor of opening a store: open, fstat and map a data file, touch its last page."""

    name = "open+mmap"
    kind = "limit"
    description = "os.open + fstat + mmap of one data file of that size, read its last byte"

    def recovery_writer(self, path, size, value_bytes, keep_writing, ready):
        fd = os.open(os.path.join(path, "data.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        chunk = np.random.default_rng(1).bytes(1 << 20)
        while os.fstat(fd).st_size < size:
            os.write(fd, chunk)
        small = chunk[:16 * value_bytes]
        os.write(fd, small)
        os.fdatasync(fd)
        ready()
        while keep_writing:
            os.write(fd, small)
            os.fdatasync(fd)
        os.close(fd)

    def recovery_setup(self, tmpdir, params, data):
        need_disk(tmpdir, int(data.size * 1.2), "the data file")
        self.data = data
        self.path = fill_recovery_store(self, tmpdir, data)

    def recovery_run(self, case):
        crash_writer_if_asked(self, case, self.path, self.data)
        t0 = time.perf_counter()
        fd = os.open(os.path.join(self.path, "data.bin"), os.O_RDONLY)
        size = os.fstat(fd).st_size
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        m[size - 1]
        m.close()
        os.close(fd)
        return {"seconds": time.perf_counter() - t0}

    def recovery_teardown(self):
        rmtree(self.path)


class _PipeEnds:
    """A one-way pipe to a reader in a thread (``os.pipe``: ``reader`` is its
    fd) or in another process (a multiprocessing Pipe: ``reader`` is the
    Connection to hand to the child, after which ``reader.close()`` drops this
    process's copy). ``write_fd`` is the writing end here."""

    def __init__(self, where: str):
        if where == "process":
            r, w = _child.context().Pipe(duplex=False)
            self.reader, self.write_fd, self._ends = r, w.fileno(), (r, w)
        else:
            r, w = os.pipe()
            self.reader, self.write_fd, self._ends = r, w, None
            self._fds = (r, w)

    def close(self) -> None:
        if self._ends is not None:
            for c in self._ends:
                c.close()
        else:
            for fd in self._fds:
                os.close(fd)


class _PacedLatency:
    """The latency workload's timed round for a floor whose setup set ``data``,
    ``consumer`` and ``put`` (sends one stamped value)."""

    def latency_run(self, case):
        d = self.data
        paced_round(self.put, d.per_round, d.pace_s, d.value_bytes)
        return {"latencies_ns": self.consumer.samples()}


class OsPipe(_PacedLatency, Contender):
    """The OS wake-up floor: an 8-byte timestamp through a pipe to a blocked reader."""

    name = "os.pipe"
    kind = "limit"
    description = "os.write of the 8-byte timestamp into a pipe; a blocked os.read (thread or process) receives it"

    def latency_setup(self, tmpdir, params, data):
        self.data = data
        self.pipe = pipe = _PipeEnds(data.where)
        w, write = pipe.write_fd, os.write
        self.put = lambda v: write(w, v[:8])
        if data.where == "process":
            self.consumer = _child.RemoteConsumer(self, pipe.reader)
            pipe.reader.close()
        else:
            r = pipe.reader
            self.consumer = LocalConsumer(lambda conn: consume_loop(lambda: os.read(r, 8), conn))

    def latency_consume(self, info, conn):
        fd = info.fileno()
        consume_loop(lambda: os.read(fd, 8), conn)

    def latency_teardown(self):
        self.put(STOP.to_bytes(8, "little"))
        self.consumer.close()
        self.pipe.close()


class _FileChannel:
    """A record appended to a file, then one byte into a pipe: ``put`` writes the
    value at the next offset (the file wraps at ``CAPACITY``) and writes the
    byte; ``take`` blocks in ``os.read`` on the pipe, then reads the value back
    through a shared read-only mapping of the file. One writer, one reader,
    each side opens its own ends."""

    CAPACITY = 16 << 20  # sparse: only the pages written take space

    def __init__(self, path: str, pipe_fd: int, value_bytes: int, writer: bool):
        self._fd = os.open(path, os.O_RDWR if writer else os.O_RDONLY)
        self._pipe, self._n, self._offset = pipe_fd, value_bytes, 0
        self._map = None if writer else mmap.mmap(self._fd, self.CAPACITY, prot=mmap.PROT_READ)

    @classmethod
    def create(cls, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, cls.CAPACITY)
        finally:
            os.close(fd)

    def _next_offset(self) -> int:
        at = self._offset if self._offset + self._n <= self.CAPACITY else 0
        self._offset = at + self._n
        return at

    def put(self, value: bytes) -> None:
        os.pwrite(self._fd, value, self._next_offset())
        os.write(self._pipe, b"\x01")

    def take(self) -> bytes:
        os.read(self._pipe, 1)
        at = self._next_offset()
        return self._map[at:at + self._n]

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        os.close(self._fd)


class FilePipe(_PacedLatency, Contender):
    """The hand-off floor of a log kept in a file: the least work a record passes
    through between two processes when it must land in the page cache before
    the reader is woken (one write system call into a file, one pipe wake-up,
    a read through a shared mapping), with none of a log's framing, checksums,
    offsets or index. ``os.pipe`` alone moves only the 8-byte timestamp."""

    name = "file + pipe"
    kind = "limit"
    description = ("os.pwrite of the 100-byte stamped record into a file, then one byte into a pipe; a blocked "
                   "os.read (thread or process) wakes and reads the record through a shared mapping of the file")

    def supports(self, workload, params):
        return workload == "latency"

    def latency_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = store_dir(tmpdir, self.name)
        path = os.path.join(self.dir, "records.bin")
        _FileChannel.create(path)
        self.pipe = pipe = _PipeEnds(data.where)
        self.channel = _FileChannel(path, pipe.write_fd, data.value_bytes, writer=True)
        self.put = self.channel.put
        self.reader = None
        if data.where == "process":
            self.consumer = _child.RemoteConsumer(self, (pipe.reader, path, data.value_bytes))
            pipe.reader.close()
        else:
            self.reader = reader = _FileChannel(path, pipe.reader, data.value_bytes, writer=False)
            self.consumer = LocalConsumer(lambda conn: consume_loop(reader.take, conn))

    def latency_consume(self, info, conn):
        pipe, path, value_bytes = info
        reader = _FileChannel(path, pipe.fileno(), value_bytes, writer=False)
        try:
            consume_loop(reader.take, conn)
        finally:
            reader.close()

    def latency_teardown(self):
        self.put(STOP.to_bytes(8, "little") + bytes(self.data.value_bytes - 8))
        self.consumer.close()
        self.channel.close()
        if self.reader is not None:
            self.reader.close()
        self.pipe.close()
        rmtree(self.dir)


# FUTEX_WAIT / FUTEX_WAKE (shared: the word may be in a file mapped by two processes) and the futex
# system call's number on the machines tidelog's wheels are built for.
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}


class _FutexChannel:
    """An 8-byte value and a futex word in a shared file mapping: ``put`` stores
    the value, bumps the word and wakes one waiter; ``take`` sleeps until the
    word moves (ctypes calls release the GIL), then reads the value. One writer."""

    def __init__(self, path: str):
        import ctypes

        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, 16)
        self._word = ctypes.c_uint32.from_buffer(self._map, 0)
        self._addr = ctypes.c_void_p(ctypes.addressof(self._word))
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall
        self._nr = _SYS_FUTEX[os.uname().machine]
        self._seen = self._word.value

    def put(self, value: bytes) -> None:
        self._map[8:16] = value[:8]
        self._word.value = (self._word.value + 1) & 0xFFFFFFFF
        self._syscall(self._nr, self._addr, _FUTEX_WAKE, 1, None, None, 0)

    def take(self) -> bytes:
        word, seen = self._word, self._seen
        while word.value == seen:
            self._syscall(self._nr, self._addr, _FUTEX_WAIT, seen, None, None, 0)
        self._seen = word.value
        return self._map[8:16]

    def close(self) -> None:
        del self._word
        self._map.close()
        os.close(self._fd)


class FutexWake(_PacedLatency, Contender):
    """The wake-up floor of a log shared by processes: what tidelog's blocking
    consumers sleep on (a futex word in a shared mapping), from Python, with no
    log. A pipe's wake-up is a "sync" wake-up, which the kernel runs on the
    writer's CPU; a futex wake-up is not, so on a small VM it can cost more
    than the pipe's even before any work."""

    name = "futex wake"
    kind = "limit"
    description = ("the 8-byte timestamp stored in a shared file mapping, a futex word bumped and FUTEX_WAKE "
                   "(ctypes); a reader blocked in FUTEX_WAIT (thread or process) receives it")

    def supports(self, workload, params):
        return workload == "latency" and os.uname().sysname == "Linux" and os.uname().machine in _SYS_FUTEX

    def latency_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = store_dir(tmpdir, self.name)
        self.path = os.path.join(self.dir, "futex.bin")
        with open(self.path, "wb") as f:
            f.write(bytes(16))
        self.channel = _FutexChannel(self.path)
        self.put = self.channel.put
        self.reader = None
        if data.where == "process":
            self.consumer = _child.RemoteConsumer(self, self.path)
        else:
            self.reader = reader = _FutexChannel(self.path)
            self.consumer = LocalConsumer(lambda conn: consume_loop(reader.take, conn))

    def latency_consume(self, path, conn):
        reader = _FutexChannel(path)
        try:
            consume_loop(reader.take, conn)
        finally:
            reader.close()

    def latency_teardown(self):
        self.channel.put(STOP.to_bytes(8, "little"))
        self.consumer.close()
        self.channel.close()
        if self.reader is not None:
            self.reader.close()
        rmtree(self.dir)


__all__ = ["NumpyCopy", "OsWrite", "WriteFdatasync", "ArrowInMemory", "ArrowIpcFile", "OpenMmap", "OsPipe", "FilePipe", "FutexWake",
           "PythonCallFloor", "PaArrayConversion", "Crc32c"]
