"""The two interfaces of the suite, Contender and Workload, and the helpers they share.

A **workload** says what is measured: its parameter grid, the data (built once
per parameter set and handed to every contender, so all of them get the same
bytes), the metrics computed from one round's raw measure, and which
contender is its named physical-limit baseline.

A **contender** says how one system does it. Its interface is small::

    class MyStore(Contender):
        name = "mystore"
        kind = "peer"                      # "tidelog" | "limit" | "peer"
        requires = ("mystore",)            # import names; missing -> "not available", skipped

        def supports(self, workload, params): ...   # optional; default: has <workload>_run
        def setup(self, tmpdir, workload, params, data): ...
        def run(self, case) -> dict: ...   # one round, self-timed: {"seconds": ..., ...}
        def teardown(self): ...

The base class dispatches ``setup``/``run``/``teardown`` to ``<workload>_setup``,
``<workload>_run`` and ``<workload>_teardown`` methods, so a contender is one
class with a method trio for each workload it takes part in, and adding one
changes no workload (see contenders/duckdb_.py and contenders/lmdb_.py).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import statistics
import threading
import time
from typing import Any, Callable

import numpy as np
import pyarrow as pa

# The sensor readings come from the one generator shared with the demo and benches/.
from .._sensors import ROW_BYTES, SCHEMA, SENSORS, TS0, TS_STEP, SensorData, readings  # noqa: F401

# ------------------------------------------------------------------ data

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MB, GB = 1_000_000, 1_000_000_000


def sensor_batch(rows: int, seed: int, start_row: int = 0) -> pa.RecordBatch:
    """``rows`` sensor readings (int64 ts, int32 sensor_id, float64 value), 20 bytes a row.
    Row ``i`` has ts = TS0 + (start_row + i) * 1 ms, so batches made with
    consecutive ``start_row`` are in time order."""
    return readings(rows, seed, TS0 + start_row * TS_STEP)


def make_values(n: int, size: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct, incompressible values of ``size`` bytes."""
    blob = np.random.default_rng(seed).bytes(n * size)
    return [blob[i * size:(i + 1) * size] for i in range(n)]


def make_keys(n: int, start: int = 0) -> list[bytes]:
    """``n`` distinct 16-byte keys, b"key-000000000042"."""
    return [b"key-%012d" % i for i in range(start, start + n)]


# --------------------------------------------------------------- metrics

@dataclasses.dataclass(frozen=True)
class Metric:
    name: str                 # key in the metrics dict, e.g. "rows/s"
    higher_is_better: bool = True

    @property
    def unit(self) -> str:
        return self.name


def speed(value: float, metric: Metric) -> float:
    """A number where higher is better, whatever the metric's direction."""
    if value is None or value != value:
        return float("nan")
    if metric.higher_is_better:
        return value
    return 1.0 / value if value > 0 else float("inf")


def percentiles(samples, qs=(50, 99, 99.9)) -> list[float]:
    a = np.asarray(samples, dtype=np.float64)
    if not a.size:
        return [float("nan")] * len(qs)
    return [float(x) for x in np.percentile(a, qs)]


def median(xs) -> float:
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else float("nan")


@dataclasses.dataclass(frozen=True)
class Target:
    """A ratio a workload promises: ``subject``'s primary metric (as a speed,
    higher is better) over ``baseline``'s, on the rows whose params + case
    match ``match``, at least ``at_least``. The runner evaluates every target
    of the workloads it ran (``evaluate_targets``); ``tidelog bench`` prints
    them as met / not met with the measured ratio."""

    name: str
    subject: str          # contender names
    baseline: str
    match: dict
    at_least: float


def evaluate_targets(workload: str, targets: list[Target], rows: list[dict]) -> list[dict]:
    """The targets against a run's result rows: one dict each (ratio None and
    met None when a side was not measured, with the reason)."""
    out = []
    for t in targets:
        def find(name: str):
            for r in rows:
                if r["workload"] == workload and r["contender"] == name and \
                        all({**r["params"], **r["case"]}.get(k) == v for k, v in t.match.items()):
                    return r
            return None

        s, b = find(t.subject), find(t.baseline)
        entry = {"workload": workload, "name": t.name, "subject": t.subject, "baseline": t.baseline,
                 "match": dict(t.match), "at_least": t.at_least, "ratio": None, "met": None, "reason": None}
        if s is None or b is None or s["value"] is None or b["value"] is None:
            entry["reason"] = f"{t.subject if s is None or s['value'] is None else t.baseline} not measured"
        else:
            metric = Metric(s["metric"], s["higher_is_better"])
            ratio = speed(s["value"], metric) / speed(b["value"], metric)
            entry["ratio"], entry["met"] = ratio, bool(ratio >= t.at_least)
        out.append(entry)
    return out


# ------------------------------------------------------------ contenders

class Skip(Exception):
    """Raised by a contender's setup when it cannot run this parameter set
    (e.g. not enough memory); the runner records the reason and moves on."""


class Contender:
    """One system measured by the suite. See the module docstring."""

    name: str = ""
    kind: str = "peer"                       # "tidelog" | "limit" | "peer"
    requires: tuple[str, ...] = ()           # importable modules it needs
    placeholder: str | None = None           # a reserved slot: the reason it is not available
    slots: tuple[str, ...] = ()              # placeholder: the workloads it will take part in
    description: str = ""

    def available(self) -> str | None:
        """None if this contender can run here, else why not."""
        if self.placeholder:
            return self.placeholder
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return f"the '{mod}' package is not installed (pip install 'tidelog[bench]')"
        return None

    def supports(self, workload: str, params: dict) -> bool | str:
        """True if it takes part in ``workload`` at ``params``; False if not
        (silently); a string to be listed as skipped with that reason."""
        if self.placeholder:
            return workload in self.slots
        check = getattr(self, f"{workload}_supports", None)
        if check is not None:
            return check(params)
        return callable(getattr(self, f"{workload}_run", None))

    def prepare(self, mode: str) -> None:
        """Called once per run, before any workload, with the run's mode
        ("smoke", "quick", "full"): for state shared by the workloads (the
        Kafka contenders size their broker's warm-up by it)."""

    def setup(self, tmpdir: str, workload: str, params: dict, data: Any) -> None:
        self._workload = workload
        fn = getattr(self, f"{workload}_setup", None)
        if fn is not None:
            fn(tmpdir, params, data)

    def run(self, case: dict) -> dict:
        """One round; returns the raw measure (self-timed: setup work inside a
        round, such as crashing a writer, stays out of ``seconds``)."""
        return getattr(self, f"{self._workload}_run")(case)

    def background_pids(self) -> list[int]:
        """Processes this contender keeps running between its rounds (a peer's
        server), which workloads with ``pause_others`` stop while other
        contenders' rounds run (default: none)."""
        return []

    def teardown(self) -> None:
        fn = getattr(self, f"{self._workload}_teardown", None)
        if fn is not None:
            fn()

    def info(self) -> dict:
        return {"kind": self.kind, "description": self.description, "available": self.available() is None,
                "reason": self.available()}

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self._recipe = (args, kwargs)   # the constructor arguments, for __reduce__
        return self

    def __reduce__(self):
        """Pickles as a fresh copy, not set up: the class and its constructor
        arguments, none of the state a setup left (open logs, connections).
        What a child process (_child.py) needs to run the child-side methods."""
        args, kwargs = self._recipe
        return (_remake, (type(self), args, kwargs))

    def __repr__(self) -> str:
        return f"<contender {self.name!r} ({self.kind})>"


def _remake(cls, args: tuple, kwargs: dict) -> Contender:
    return cls(*args, **kwargs)


# ------------------------------------------------------------- workloads

class Workload:
    """What is measured. Subclasses set the class attributes and override the methods."""

    name: str = ""
    title: str = ""
    description: str = ""
    interleave: bool = True      # contenders set up together and run round by round, in turn
    # Stop (SIGSTOP) other contenders' background processes while a contender's
    # round runs: a peer's idle server on a 2-core machine adds microseconds to
    # everyone's wake-ups (the latency workload).
    pause_others: bool = False
    param_names: tuple[str, ...] = ()

    def grid(self, mode: str, opts: dict) -> list[dict]:
        raise NotImplementedError

    def cases(self, params: dict) -> list[dict]:
        return [{}]

    def make_data(self, params: dict, mode: str) -> Any:
        return None

    def limit(self, params: dict, case: dict) -> str | None:
        """The name of the physical-limit contender rows are compared with."""
        return None

    def primary(self, params: dict, case: dict) -> Metric:
        raise NotImplementedError

    def metrics(self, params: dict, case: dict, measure: dict) -> dict[str, float]:
        raise NotImplementedError

    def pooled(self, params: dict, case: dict, measures: list[dict]) -> dict[str, float]:
        """Metrics computed over all rounds together (e.g. latency percentiles
        over every sample); they replace the per-round medians."""
        return {}

    def label(self, params: dict, case: dict) -> str:
        return " ".join(f"{k}={v}" for k, v in {**params, **case}.items())

    def interleaved(self, params: dict) -> bool:
        """Whether the contenders run round-robin for these parameters (all set
        up at once) or one after the other."""
        return self.interleave

    def settle(self, params: dict, case: dict) -> None:
        """Runs before every contender's round, outside its clock: brings the
        machine to the same state for each (default: nothing)."""

    def rounds(self, mode: str, opts: dict) -> tuple[int, int]:
        """(warm-up rounds, measured rounds)."""
        if mode == "smoke":
            return 0, 1
        if mode == "quick":
            return 1, 3
        return 1, opts.get("rounds") or 5

    def targets(self, mode: str, opts: dict) -> list[Target]:
        """The ratios this workload promises (see Target); none by default."""
        return []

    def info(self) -> dict:
        return {"title": self.title, "description": self.description, "interleave": self.interleave}


# --------------------------------------------------------------- helpers

def human_bytes(n: float) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("kB", 1000)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{int(n)} B"


def human_count(n: int) -> str:
    for unit, size in (("Mi", MiB), ("Ki", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def parse_size(text: str) -> int:
    """'100M', '1G', '5GB', '512MiB', '1e9' -> bytes (decimal units, binary with 'i')."""
    t = text.strip().upper().rstrip("B")
    mult = 1
    for suffix, m in (("KI", KiB), ("MI", MiB), ("GI", GiB), ("K", 1000), ("M", MB), ("G", GB), ("T", 1000 * GB)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    return int(float(t) * mult)


def free_disk(path: str) -> int:
    return shutil.disk_usage(path).free


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def need_disk(path: str, nbytes: int, what: str) -> None:
    """Skip unless ``nbytes`` (plus 1 GiB headroom) fit on the file system of ``path``."""
    free = free_disk(path)
    if free < nbytes + GiB:
        raise Skip(f"{what} needs {human_bytes(nbytes)} + 1 GiB headroom, {human_bytes(free)} free on {path}")


def need_memory(nbytes: int, what: str) -> None:
    avail = available_memory()
    if avail < nbytes + 2 * GiB:
        raise Skip(f"{what} needs {human_bytes(nbytes)} of memory + 2 GiB headroom, {human_bytes(avail)} available")


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def run_threads(n: int, per_thread: int, make_op: Callable[[int], Callable[[int], None]]) -> dict:
    """Runs ``n`` threads that start together at a barrier; thread ``k`` calls
    ``op(i)`` ``per_thread`` times, where ``op = make_op(k)`` (built before the
    barrier). Returns wall seconds (barrier to last join) and every call's
    latency in ns."""
    ops = [make_op(k) for k in range(n)]
    lat: list[list[int]] = [[] for _ in range(n)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(n + 1)
    clock = time.perf_counter_ns

    def worker(k: int) -> None:
        op, out = ops[k], lat[k]
        try:
            barrier.wait()
            for i in range(per_thread):
                t0 = clock()
                op(i)
                out.append(clock() - t0)
        except BaseException as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"seconds": seconds, "acks": n * per_thread, "latencies_ns": [x for xs in lat for x in xs]}


def drop_page_cache(path: str) -> None:
    """Evicts a folder's clean pages from the page cache (posix_fadvise DONTNEED per file)."""
    for root, _, files in os.walk(path):
        for f in files:
            try:
                fd = os.open(os.path.join(root, f), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
