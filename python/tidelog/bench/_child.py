"""Child processes of the suite: writers that fill a store or are SIGKILLed
mid-append (recovery), consumers in another process (latency), and the
spawned workers of the processes workload (at the end of this module).

The first two are forked from a multiprocessing *forkserver* that imported tidelog,
pyarrow and the contenders once, so a child starts in milliseconds rather than
paying a Python start-up and imports each time. A child gets its contender
pickled (a fresh copy: class and constructor arguments, see
``core.Contender.__reduce__``) and calls the contender's child-side method.

This module imports nothing from the suite: the contenders import it, and it
knows them only as the objects they hand it (the import graph stays a tree).
The forkserver preload list names the contenders package as a string, an
optimisation the children do not depend on.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time

_CTX = None


def context():
    global _CTX
    if _CTX is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tidelog", "pyarrow", "numpy", "tidelog.bench.contenders"])
        _CTX = ctx
    return _CTX


# ---------------------------------------------------------------- writers

def _writer_main(conn, contender, path: str, size: int, value_bytes: int, keep_writing: bool) -> None:
    try:
        contender.recovery_writer(path, size, value_bytes, keep_writing, lambda: conn.send(("ready", None)))
        conn.send(("done", None))
    except BaseException as e:  # reported to the parent
        conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


@contextlib.contextmanager
def _main_hidden():
    """Hides the ``__main__`` module's file and spec while a child starts:
    multiprocessing would otherwise re-run the main script in the child (a
    user's script without an ``if __name__ == "__main__"`` guard, or fail on
    ``<stdin>``). The children's code lives in this module; they need nothing
    from ``__main__``."""
    main = sys.modules.get("__main__")
    saved = {}
    if main is not None:
        for attr in ("__file__", "__spec__"):
            if attr in main.__dict__:
                saved[attr] = main.__dict__.pop(attr)
        main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def _start(target, *args):
    ctx = context()
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    with _main_hidden():
        proc.start()
    child.close()
    return proc, parent


def _expect(proc, conn, what: str, timeout: float):
    if not conn.poll(timeout):
        proc.kill()
        proc.join()
        raise RuntimeError(f"child did not report {what!r} within {timeout:.0f} s (exit {proc.exitcode})")
    try:
        kind, payload = conn.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"child died before {what!r} (exit {proc.exitcode})") from None
    if kind == "error":
        proc.join()
        raise RuntimeError(f"child failed: {payload}")
    if kind != what:
        raise RuntimeError(f"child said {kind!r}, expected {what!r}")
    return payload


def fill(contender, path: str, size: int, value_bytes: int, timeout: float = 1800) -> None:
    """A child fills the store at ``path`` up to ``size`` bytes of records, closes it cleanly and exits."""
    proc, conn = _start(_writer_main, contender, path, size, value_bytes, False)
    try:
        _expect(proc, conn, "ready", timeout)
        _expect(proc, conn, "done", timeout)
    finally:
        proc.join(timeout)
        conn.close()
    if proc.exitcode != 0:
        raise RuntimeError(f"filler exited with {proc.exitcode}")


def crash(contender, path: str, value_bytes: int, linger_s: float, timeout: float = 120) -> None:
    """A child opens the store, appends small durable transactions, and is SIGKILLed ``linger_s`` after
    its first append."""
    proc, conn = _start(_writer_main, contender, path, 0, value_bytes, True)
    try:
        _expect(proc, conn, "ready", timeout)
        time.sleep(linger_s)
    finally:
        if proc.pid is not None and proc.exitcode is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        conn.close()


# -------------------------------------------------------------- consumers

def _consumer_main(conn, contender, info) -> None:
    try:
        contender.latency_consume(info, conn)
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


class RemoteConsumer:
    """A consumer in a child process. The child sends ("ready", None) once it
    is blocked waiting, then ("samples", [ns, ...]) after every round marker,
    and exits on the stop marker."""

    def __init__(self, contender, info):
        self.proc, self.conn = _start(_consumer_main, contender, info)
        _expect(self.proc, self.conn, "ready", 120)

    def samples(self, timeout: float = 60) -> list[int]:
        return _expect(self.proc, self.conn, "samples", timeout)

    def close(self) -> None:
        self.proc.join(10)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join()
        self.conn.close()


# ---------------------------------------------------------- spawned workers

_SPAWN = None


def spawn_context():
    """The "spawn" start method: a fresh interpreter per worker, nothing inherited
    from the parent (no fork of a process holding open logs, threads or locks)."""
    global _SPAWN
    if _SPAWN is None:
        _SPAWN = multiprocessing.get_context("spawn")
    return _SPAWN


def _serve(conn) -> None:
    """A spawned worker: serves requests one at a time until it receives None. A
    request is (contender, method name, kwargs); the worker calls
    ``contender.<method>(conn, **kwargs)``, which may talk over ``conn`` on the way
    (see wait_go, or the latency consumer's samples), and then sends ("done",
    its return value). A failed request is reported and ends the worker (its
    state is unknown)."""
    while True:
        request = conn.recv()
        if request is None:
            return
        contender, method, kwargs = request
        try:
            result = getattr(contender, method)(conn, **kwargs)
        except BaseException as e:  # reported to the parent
            conn.send(("error", f"{type(e).__name__}: {e}"))
            raise
        conn.send(("done", result))


def wait_go(conn) -> None:
    """Worker side of a start in step (run_together): says "ready", returns on "go"."""
    conn.send(("ready", None))
    msg = conn.recv()
    if msg != "go":
        raise RuntimeError(f"worker expected 'go', got {msg!r}")


class Worker:
    """One spawned worker process and its pipe. Concurrency: driven by one thread
    of the parent at a time; it serves one request at a time."""

    def __init__(self):
        ctx = spawn_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        with _main_hidden():
            self.proc.start()
        child.close()

    def call(self, contender, method: str, **kwargs) -> None:
        """Starts ``contender.<method>(conn, **kwargs)`` in the worker (the contender
        travels pickled: a fresh copy, see core.Contender.__reduce__)."""
        self.conn.send((contender, method, kwargs))

    def send(self, msg) -> None:
        self.conn.send(msg)

    def expect(self, what: str, timeout: float = 600):
        return _expect(self.proc, self.conn, what, timeout)

    def alive(self) -> bool:
        return self.proc.exitcode is None

    def kill(self) -> None:
        if self.proc.exitcode is None:
            self.proc.kill()
        self.proc.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(10)
        self.kill()


class WorkerPool:
    """Idle spawned workers kept between requests, so that a round pays no
    interpreter start-up or imports (a spawn costs about 0.5 s): ``take(n)``
    hands out ``n`` (starting the missing ones), ``give`` takes back the ones
    still healthy. Concurrency: one thread of the parent."""

    def __init__(self):
        self._idle: list[Worker] = []

    def take(self, n: int) -> list[Worker]:
        self._idle = [w for w in self._idle if w.alive()]
        out = [self._idle.pop() for _ in range(min(n, len(self._idle)))]
        out += [Worker() for _ in range(n - len(out))]
        return out

    def give(self, workers: list[Worker]) -> None:
        for w in workers:
            if w.alive():
                self._idle.append(w)
            else:
                w.kill()

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for w in idle:
            w.stop()


POOL = WorkerPool()


def run_together(contender, method: str, kwargs_list: list[dict], timeout: float = 600) -> list:
    """Runs ``contender.<method>(conn, **kwargs)`` in one spawned worker per entry
    of ``kwargs_list``, started in step: each prepares (opens the log, builds its
    data), calls ``wait_go(conn)``, and all get "go" once all are ready. Returns
    their return values, in order. A failure kills the workers of this call."""
    workers = POOL.take(len(kwargs_list))
    try:
        for w, kwargs in zip(workers, kwargs_list):
            w.call(contender, method, **kwargs)
        for w in workers:
            w.expect("ready", timeout)
        for w in workers:
            w.send("go")
        results = [w.expect("done", timeout) for w in workers]
    except BaseException:
        for w in workers:
            w.kill()
        raise
    POOL.give(workers)
    return results


class SpawnedConsumer:
    """A latency consumer in a spawned worker, with the RemoteConsumer interface:
    ``contender.<method>(conn, **kwargs)`` sends ("ready", None) once blocked,
    ("samples", [ns, ...]) after every round marker, and returns on the stop marker."""

    def __init__(self, contender, method: str, **kwargs):
        (self.worker,) = POOL.take(1)
        try:
            self.worker.call(contender, method, **kwargs)
            self.worker.expect("ready", 120)
        except BaseException:
            self.worker.kill()
            raise

    def samples(self, timeout: float = 60) -> list[int]:
        return self.worker.expect("samples", timeout)

    def close(self) -> None:
        """After the stop marker was sent: waits for the consumer to finish and returns its worker."""
        try:
            self.worker.expect("done", 30)
        except BaseException:
            self.worker.kill()
            raise
        POOL.give([self.worker])
