"""tidelog's Flight endpoint in the flight workload (tidelog.bench.flight), and
its baselines: a plain pyarrow Flight server of the same batches in memory
(doget), the same durable appends in-process (doput).

Each server runs in a process of its own: tidelog's is ``python -m
tidelog.cli serve DIR --flight 127.0.0.1:0`` (what users run), the pyarrow
one a spawned worker (``_child.Worker``) holding the table. The client, in the
bench process, is the same code for both.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pyarrow as pa

from .. import _child
from ..core import ROW_BYTES, SCHEMA, Contender, need_disk, need_memory, rmtree
from ._common import store_dir

TOPIC = "sensors"
SERVER_START_TIMEOUT_S = 60


def start_tidelog_server(path: str) -> tuple[subprocess.Popen, str]:
    """``tidelog serve PATH --flight 127.0.0.1:0`` and the location it printed
    (its stderr goes to a temporary file, ``proc.stderr_file``, for the report
    of a failure)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "tidelog.cli", "serve", path, "--flight", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=err)
    proc.stderr_file = err
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            break
    if b"Arrow Flight on " not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"tidelog serve did not start: {line!r} {_stderr(proc)!r}")
    return proc, line.decode().split("Arrow Flight on ", 1)[1].split(" ", 1)[0]


def _stderr(proc: subprocess.Popen) -> str:
    f = proc.stderr_file
    f.seek(0)
    text = f.read()[-4000:].decode(errors="replace")
    f.close()
    return text


def stop_tidelog_server(proc: subprocess.Popen) -> None:
    """SIGTERM, and a clean exit expected (status 0)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    err = _stderr(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"tidelog serve exited with {proc.returncode}: {err}")


def read_stream(reader) -> int:
    """Reads every batch of a DoGet stream; returns the rows (what both sides' client does)."""
    rows = 0
    for chunk in reader:
        rows += chunk.data.num_rows
    return rows


def in_memory_server(table: pa.Table):
    """A pyarrow Flight server on a free loopback port that streams ``table``
    for any ticket (pyarrow.flight imported only by the processes that use it)."""
    import pyarrow.flight as flight

    class InMemoryServer(flight.FlightServerBase):
        def do_get(self, context, ticket):
            return flight.RecordBatchStream(table)

    return InMemoryServer("grpc://127.0.0.1:0")


class TidelogFlight(Contender):
    """``role``: "tidelog" (DoGet and DoPut through ``tidelog serve``),
    "arrow" (DoGet from a plain pyarrow server of the table in memory) or
    "local" (the DoPut part's batches appended in-process)."""

    NAMES = {"tidelog": "tidelog flight", "arrow": "pyarrow flight (in memory)", "local": "tidelog append (local)"}
    PARTS = {"tidelog": ("doget", "doput"), "arrow": ("doget",), "local": ("doput",)}
    requires = ("pyarrow.flight",)

    def __init__(self, role: str = "tidelog"):
        self.role = role
        self.name = self.NAMES[role]
        self.kind = "tidelog" if role == "tidelog" else "limit"
        self.description = {
            "tidelog": "`tidelog serve --flight` in its own process; DoGet of the whole topic, DoPut with one "
                       "durable acknowledgement per batch",
            "arrow": "a pyarrow.flight server in its own process streaming the same batches from a pa.Table in "
                     "memory (RecordBatchStream)",
            "local": "the same batches appended in the bench process, topic.append(batch, durable=True) each",
        }[role]

    def flight_supports(self, params):
        return params["part"] in self.PARTS[self.role]

    def flight_setup(self, tmpdir, params, data):
        import pyarrow.flight as flight

        import tidelog
        import tidelog.flight as tf

        self.data, self.path = data, store_dir(tmpdir, self.name)
        self.proc = self.worker = self.client = self.log = None
        if self.role == "arrow":
            need_memory(data.sensors.nbytes, "the in-memory table")
            (self.worker,) = _child.POOL.take(1)
            self.worker.call(self, "flight_arrow_serve", total_rows=data.sensors.total_rows,
                             batch_rows=data.sensors.batch_rows, seed=data.sensors.seed)
            port = self.worker.expect("ready", 600)
            self.client = flight.connect(f"grpc://127.0.0.1:{port}")
            self.ticket = flight.Ticket(b"all")
            return
        need_disk(tmpdir, data.rows * ROW_BYTES * 3, "the Flight log")  # doput: two rounds' topics at most
        log_path = os.path.join(self.path, "log")
        self.log = tidelog.open(log_path)
        if data.part == "doget":
            topic = self.log.create_topic(TOPIC, schema=SCHEMA, timestamp="ts", durability="none")
            for batch in data.sensors.batches():
                topic.append(batch)
            self.log.flush()
            self.ticket = tf.ticket(TOPIC)
        else:
            self.topic, self.rounds = None, 0
        if self.role == "tidelog":
            self.proc, location = start_tidelog_server(log_path)
            self.client = flight.connect(location)

    def flight_run(self, case):
        if self.data.part == "doget":
            t0 = time.perf_counter()
            rows = read_stream(self.client.do_get(self.ticket))
            seconds = time.perf_counter() - t0
            if rows != self.data.rows:
                raise AssertionError(f"{rows} rows read of {self.data.rows}")
            return {"seconds": seconds, "rows": rows}
        batches = self.data.batches
        self._fresh_topic()
        if self.role == "local":
            append = self.topic.append
            t0 = time.perf_counter()
            for b in batches:
                append(b, durable=True)
            return {"seconds": time.perf_counter() - t0, "rows": self.data.rows, "batches": len(batches)}
        import tidelog.flight as tf

        t0 = time.perf_counter()
        writer, acks = self.client.do_put(tf.descriptor(self.topic.name), SCHEMA)
        acked = []
        if case["client"] == "lock-step":
            for b in batches:
                writer.write_batch(b)
                acked.append(tf.decode_put_result(acks.read()))
            writer.done_writing()
            seconds = time.perf_counter() - t0
            writer.close()
            return self._put_measure(seconds, acked)

        def read_acks() -> None:  # beside the writes, as a streaming client reads them
            for _ in batches:
                acked.append(tf.decode_put_result(acks.read()))

        reader = threading.Thread(target=read_acks, name="bench acks")
        reader.start()
        for b in batches:
            writer.write_batch(b)
        writer.done_writing()
        reader.join()
        seconds = time.perf_counter() - t0
        writer.close()
        return self._put_measure(seconds, acked)

    def _fresh_topic(self) -> None:
        """Every DoPut round appends to a new, empty topic (the previous one is
        deleted first, outside the clock), so that rounds compare alike and the
        scratch disk holds two rounds at most. The server finds it by name."""
        if self.topic is not None:
            self.log.delete_topic(self.topic.name)
        self.rounds += 1
        self.topic = self.log.create_topic(f"{TOPIC}-{self.rounds}", schema=SCHEMA, timestamp="ts",
                                           durability="fsync")

    def _put_measure(self, seconds: float, acked: list) -> dict:
        rows = sum(a["rows"] for a in acked)
        if rows != self.data.rows or [a["batch"] for a in acked] != list(range(len(self.data.batches))):
            raise AssertionError(f"{rows} rows acknowledged of {self.data.rows}, {len(acked)} acknowledgements")
        return {"seconds": seconds, "rows": rows, "batches": len(acked)}

    def flight_teardown(self):
        if self.client is not None:
            self.client.close()
        if self.worker is not None:
            self.worker.send("stop")
            self.worker.expect("done", 60)
            _child.POOL.give([self.worker])
        failure = None
        if self.proc is not None:
            try:
                stop_tidelog_server(self.proc)
            except RuntimeError as e:
                failure = e
        if self.log is not None:
            self.log.close()
        rmtree(self.path)
        if failure is not None:
            raise failure

    # ------------------------------------------------------- child side
    def flight_arrow_serve(self, conn, total_rows: int, batch_rows: int, seed: int) -> None:
        """In a spawned worker: serves the rows as an in-memory table until told to stop."""
        from ..core import SensorData

        table = pa.Table.from_batches(list(SensorData(total_rows, batch_rows, seed).batches()))
        server = in_memory_server(table)
        try:
            conn.send(("ready", server.port))
            msg = conn.recv()
            if msg != "stop":
                raise RuntimeError(f"the in-memory Flight server expected 'stop', got {msg!r}")
        finally:
            server.shutdown()


__all__ = ["TidelogFlight", "in_memory_server", "read_stream", "start_tidelog_server", "stop_tidelog_server"]
