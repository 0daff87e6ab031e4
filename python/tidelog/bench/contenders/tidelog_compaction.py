"""tidelog in the compaction workload (tidelog.bench.compaction), and its
baselines: reading the same segment files sequentially (clean), the same
appends with no cleaner (appends), pyarrow's last row per key in memory
(table).

Every side that measures a log builds it itself from the same deterministic
rows (``keyed_readings``, ``fill_topic``), so every contender gets the same
bytes. The Log's own cleaner thread is stopped right after each open
(``_quiet``): it would otherwise start a pass of its own on a compacted topic
within a second, and a timed pass must be the only one.

Concurrency: like every contender, one thread drives it (the runner's or a
bench's); the appends part runs one cleaner thread of its own beside it.
"""
from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pyarrow as pa

from ..core import SCHEMA, TS0, TS_STEP, Contender, Skip, drop_page_cache, need_disk, readings, rmtree
from ._common import store_dir

CLEAN_TOPIC = "state"
APPEND_TOPIC = "events"
TABLE_TOPIC = "kv"
READ_CHUNK = 1 << 20


# ------------------------------------------------------------------- data

def keyed_readings(rows: int, keys: int, seed: int, start_row: int = 0) -> pa.RecordBatch:
    """Sensor readings (SCHEMA) whose ``sensor_id`` is uniform over ``keys`` values."""
    b = readings(rows, seed, TS0 + start_row * TS_STEP)
    ids = np.random.default_rng(seed + 1_000_003).integers(0, keys, rows, dtype=np.int32)
    return pa.record_batch([b.column(0), pa.array(ids), b.column(2)], schema=SCHEMA)


def key_values(keys: int) -> list[bytes]:
    """The byte-record topics' keys: 16 bytes each, b"key-000000000042"."""
    return [b"key-%012d" % i for i in range(keys)]


def fill_topic(log, name: str, data, seed: int = 0) -> None:
    """A 1-partition topic ``name`` (cleanup_policy="delete": nothing cleans it
    until it is altered) of at least ``data.size`` bytes in ``data.segment_bytes``
    segments, keys updated many times each; byte records when ``data.records``
    is "bytes", else keyed sensor rows."""
    size, i = 0, 0
    if data.records == "bytes":
        log.create_topic(name, partitions=1, durability="none", segment_bytes=data.segment_bytes)
        every_key = key_values(data.keys)
        rng = np.random.default_rng(seed)
        blob = rng.bytes(data.batch_rows * data.value_bytes)
        values = [blob[j * data.value_bytes:(j + 1) * data.value_bytes] for j in range(data.batch_rows)]
        with log.producer(acks="written") as p:
            while size < data.size:
                ids = rng.integers(0, data.keys, data.batch_rows)
                p.send_many(name, values, keys=[every_key[k] for k in ids], partition=0)
                size += data.batch_rows * (data.value_bytes + 16)
    else:
        topic = log.create_topic(name, schema=SCHEMA, key="sensor_id", timestamp="ts", durability="none",
                                 segment_bytes=data.segment_bytes)
        while size < data.size:
            batch = keyed_readings(data.batch_rows, data.keys, seed + i, i * data.batch_rows)
            topic.append(batch)
            size += batch.nbytes
            i += 1
    log.flush()


def sealed_segments(path: str, topic: str) -> list[str]:
    """The segment files of partition 0 of ``topic`` but the newest (active) one, oldest first."""
    folder = os.path.join(path, "topics", topic, "0")
    names = sorted((n for n in os.listdir(folder) if n.endswith(".log")), key=lambda n: int(n.split(".")[0]))
    return [os.path.join(folder, n) for n in names[:-1]]


def settle(path: str, drop: bool) -> None:
    """Every file of ``path`` written back (fdatasync), and evicted from the
    page cache when ``drop``: a copy's writeback stays out of the clock."""
    if drop:
        drop_page_cache(path)
        return
    for root, _, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)


def read_files(files: list[str]) -> int:
    """Reads ``files`` sequentially into one 1 MiB buffer; returns the bytes read."""
    buf = memoryview(bytearray(READ_CHUNK))
    n = 0
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            while True:
                k = os.readv(fd, [buf])
                if not k:
                    break
                n += k
        finally:
            os.close(fd)
    return n


def _quiet(log) -> None:
    """Stops the Log's own cleaner thread (see the module docstring). Topics
    are loaded at open and nothing here creates or alters one afterwards, so
    it does not start again."""
    log._stop_cleaner()


def table_rows(data, seed: int = 5) -> list[pa.RecordBatch]:
    """``data.rows`` sensor rows in 64 Ki-row batches whose ``sensor_id`` takes
    each of ``data.keys`` values about rows/keys times, in shuffled order."""
    rng = np.random.default_rng(seed)
    reps = -(-data.rows // data.keys)
    ids = np.concatenate([rng.permutation(data.keys).astype(np.int32) for _ in range(reps)])[:data.rows]
    out = []
    for at in range(0, data.rows, data.batch_rows):
        n = min(data.batch_rows, data.rows - at)
        b = readings(n, seed + at, TS0 + at * TS_STEP)
        out.append(pa.record_batch([b.column(0), pa.array(ids[at:at + n]), b.column(2)], schema=SCHEMA))
    return out


def last_row_per_key(table: pa.Table, key: str) -> pa.Table:
    """pyarrow's latest row per key of an in-memory table: group_by the key, the
    largest row number, take (what ``topic.table()`` computes after reading)."""
    order = pa.array(np.arange(table.num_rows, dtype=np.int64))
    grouped = pa.table({"k": table.column(key), "i": order}).group_by("k", use_threads=False).aggregate(
        [("i", "max")])
    return table.take(pa.array(np.sort(np.asarray(grouped.column("i_max"), dtype=np.int64))))


# -------------------------------------------------------------- contenders

class TidelogCompaction(Contender):
    """``role``: "tidelog" (compact_now, appends while a cleaner runs,
    table()), "no cleaner" (the appends alone), "read" (the clean part's
    segment files read sequentially) or "arrow" (the table part's rows as a
    pa.Table, last row per key)."""

    NAMES = {"tidelog": "tidelog compaction", "no cleaner": "tidelog appends, no cleaner",
             "read": "sequential read", "arrow": "arrow last row per key"}
    PARTS = {"tidelog": ("clean", "appends", "table"), "no cleaner": ("appends",), "read": ("clean",),
             "arrow": ("table",)}

    def __init__(self, role: str = "tidelog"):
        self.role = role
        self.name = self.NAMES[role]
        self.kind = "tidelog" if role in ("tidelog", "no cleaner") else "limit"
        self.description = {
            "tidelog": "clean: topic.compact_now() on a fresh copy of the log; appends: topic.append while a "
                       "cleaner thread compacts other topics of the log in a loop; table: topic.table()",
            "no cleaner": "the appends part's topic.append loop with no cleaner running",
            "read": "the clean part's segment files read sequentially into a 1 MiB buffer (os.readv)",
            "arrow": "the table part's rows as one in-memory pa.Table: group_by(key) max row number, take",
        }[role]

    def compaction_supports(self, params):
        return params["part"] in self.PARTS[self.role]

    def compaction_setup(self, tmpdir, params, data):
        self.data, self.path = data, store_dir(tmpdir, self.name)
        part = data.part
        if part == "table":
            return self._table_setup()
        need_disk(tmpdir, 3 * data.size * max(1, data.cleaner_topics), "the compaction logs")
        self.template = os.path.join(self.path, "template")
        import tidelog

        with tidelog.open(self.template) as log:
            if part == "clean":
                fill_topic(log, CLEAN_TOPIC, data)
            else:
                for k in range(data.cleaner_topics):
                    fill_topic(log, f"clean{k}", data, seed=1000 * k)
        if part == "clean":
            self.segments = sealed_segments(self.template, CLEAN_TOPIC)
            if not self.segments:
                raise Skip("the clean part's topic has no sealed segment")
        else:
            self.batches = [keyed_readings(data.append_rows, data.keys, 77 + i, i * data.append_rows)
                            for i in range(64)]

    def compaction_run(self, case):
        part = self.data.part
        if part == "clean":
            return self._clean_round(case["cache"])
        if part == "appends":
            return self._appends_round()
        return self._table_round()

    def compaction_teardown(self):
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
            self.log = None
        rmtree(self.path)

    # ------------------------------------------------------------- clean
    def _clean_round(self, cache: str) -> dict:
        if self.role == "read":
            if cache == "cold":
                drop_page_cache(os.path.dirname(self.segments[0]))
            t0 = time.perf_counter()
            n = read_files(self.segments)
            return {"seconds": time.perf_counter() - t0, "bytes": n}
        import tidelog

        work = os.path.join(self.path, "work")
        rmtree(work)
        shutil.copytree(self.template, work)
        try:
            with tidelog.open(work) as log:
                log.alter_topic(CLEAN_TOPIC, cleanup_policy="compact")
                _quiet(log)
                topic = log.topic(CLEAN_TOPIC)
                settle(work, drop=cache == "cold")
                t0 = time.perf_counter()
                r = topic.compact_now()
                seconds = time.perf_counter() - t0
        finally:
            rmtree(work)
        if r["segments_rewritten"] != len(self.segments):
            raise AssertionError(f"{r['segments_rewritten']} segments rewritten of {len(self.segments)}")
        return {"seconds": seconds, "bytes": r["bytes_before"], "bytes_after": r["bytes_after"],
                "records_removed": r["records_removed"], "passes": r["passes"]}

    # ----------------------------------------------------------- appends
    def _appends_round(self) -> dict:
        import tidelog
        from ...compaction import Cleaner

        data = self.data
        work = os.path.join(self.path, "work")
        rmtree(work)
        shutil.copytree(self.template, work)
        settle(work, drop=False)
        cleaned = {"bytes": 0, "passes": 0, "error": None}
        try:
            with tidelog.open(work) as log:
                targets = []
                for k in range(data.cleaner_topics):
                    log.alter_topic(f"clean{k}", cleanup_policy="compact")
                    targets.append(log.topic(f"clean{k}"))
                topic = log.create_topic(APPEND_TOPIC, schema=SCHEMA, key="sensor_id", timestamp="ts",
                                         durability="interval", cleanup_policy="compact")
                _quiet(log)

                def clean_all():
                    cleaner = Cleaner()
                    try:
                        for t in targets:
                            while True:
                                r = cleaner.clean(t, 0, wait=True, force=True)
                                if r is None:
                                    break
                                cleaned["passes"] += 1
                                cleaned["bytes"] += r.bytes_before
                                if r.done:
                                    break
                    except BaseException as e:  # noqa: BLE001 - re-raised by the round
                        cleaned["error"] = e

                batches, append, n = self.batches, topic.append, len(self.batches)
                rows, i = 0, 0
                clock = time.perf_counter
                if self.role == "tidelog":
                    # appends for as long as the cleaner's passes last
                    thread = threading.Thread(target=clean_all, name="bench cleaner", daemon=True)
                    t0 = clock()
                    thread.start()
                    busy = thread.is_alive
                    while busy():
                        append(batches[i % n])
                        rows += data.append_rows
                        i += 1
                else:
                    t0 = clock()
                    end = t0 + data.seconds
                    while clock() < end:
                        append(batches[i % n])
                        rows += data.append_rows
                        i += 1
                seconds = clock() - t0
                if self.role == "tidelog":
                    thread.join()
        finally:
            rmtree(work)
        if cleaned["error"] is not None:
            raise cleaned["error"]
        out = {"seconds": seconds, "rows": rows}
        if self.role == "tidelog":
            if cleaned["passes"] < data.cleaner_topics:
                raise AssertionError(f"{cleaned['passes']} cleaner passes over {data.cleaner_topics} topics")
            out.update(cleaner_bytes=cleaned["bytes"], cleaner_passes=cleaned["passes"])
        return out

    # ------------------------------------------------------------- table
    def _table_setup(self) -> None:
        batches = table_rows(self.data)
        if self.role == "arrow":
            self.table = pa.Table.from_batches(batches).combine_chunks()
            return
        import tidelog

        self.log = tidelog.open(os.path.join(self.path, "log"))
        topic = self.log.create_topic(TABLE_TOPIC, schema=SCHEMA, key="sensor_id", timestamp="ts",
                                      durability="none", cleanup_policy="compact")
        _quiet(self.log)
        for b in batches:
            topic.append(b)
        self.log.flush()
        self.topic = topic
        topic.read()  # the page cache and the mapping warm, as the arrow side's rows are in memory

    def _table_round(self) -> dict:
        if self.role == "arrow":
            t0 = time.perf_counter()
            out = last_row_per_key(self.table, "sensor_id")
            seconds = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            out = self.topic.table()
            seconds = time.perf_counter() - t0
        if out.num_rows != self.data.keys:
            raise AssertionError(f"{out.num_rows} rows, {self.data.keys} keys")
        return {"seconds": seconds, "rows": self.data.rows}


__all__ = ["TidelogCompaction", "fill_topic", "keyed_readings", "last_row_per_key", "read_files",
           "sealed_segments", "settle", "table_rows"]
