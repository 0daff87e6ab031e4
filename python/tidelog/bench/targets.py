"""The workloads behind the remaining target benchmarks of benches/: per-record
producer and consumer throughput (``records``, targets P1-P3), the copies an
append makes (``copies``, target 5) and what damage costs (``damage``).

The benches (benches/test_bench_*.py) run the same contenders on the same data
classes round by round with their own sizes and turn the measures into the
target comparisons; ``tidelog bench -w records copies damage`` shows the same
figures as table rows. Modes as in workloads.py.
"""
from __future__ import annotations

import dataclasses

import pyarrow as pa

from .core import GB, KiB, MB, MiB, Metric, Workload, human_bytes, human_count, make_keys, make_values, sensor_batch

# ----------------------------------------------------------------- 7 records


@dataclasses.dataclass
class RecordsData:
    """``values`` (and a 16-byte key each) for one operation of the records workload."""

    values: list[bytes]
    keys: list[bytes]
    slow_records: int       # records per round for slow contenders (SQLite)
    op: str                 # "send" | "send_many" | "consume"
    form: str = "list"      # send_many: "list" of bytes or "arrow" (a pa.array of binary)

    @property
    def records(self) -> int:
        return len(self.values)

    @property
    def arrow(self) -> pa.Array:
        """The values as one ``pa.array`` of binary (built once, on first use)."""
        if getattr(self, "_arrow", None) is None:
            self._arrow = pa.array(self.values, pa.binary())
        return self._arrow

    @property
    def value_bytes_blob(self) -> bytes:
        """The values' bytes back to back: what a log writes, no framing."""
        return self.arrow.buffers()[2].to_pybytes()

    def take(self) -> list[tuple[bytes, bytes]]:
        """(key, value) rows for slow contenders: the first ``slow_records``."""
        n = max(1, min(self.records, self.slow_records))
        return list(zip(self.keys[:n], self.values[:n]))

    @staticmethod
    def build(op: str, records: int, slow_records: int, seed: int, form: str = "list",
              value_bytes: int = 100) -> "RecordsData":
        return RecordsData(make_values(records, value_bytes, seed=seed), make_keys(records), slow_records, op, form)


class Records(Workload):
    name = "records"
    title = "7. Producer and consumer, record by record"
    description = (
        "100-byte values on a byte-record topic, `acks=\"written\"`, durability=\"interval\" (the promise of a "
        "page-cache write). *send*: one `producer.send()` per record from one Python thread (default linger 5 ms, "
        "1 MiB batches, `flush()` inside the clock) into a fresh 4-partition topic, unkeyed and keyed (16-byte "
        "keys); SQLite (synchronous=OFF) runs `executemany` of the same (key, value) rows; the floor is the same "
        "loop calling a C function of three arguments. *send_many*: one call for all values, from a list of bytes "
        "(floor: `pa.array` of the list) or from a `pa.array` (floor: `os.write` of the value bytes). *consume*: "
        "all records written by a default producer, page cache warm, read `for rec in consumer`, by "
        "`poll_batch(100_000)`, and by `topic.read()` (SQLite: iterating a select, `fetchmany`, `fetchall`)."
    )
    param_names = ("op", "form")
    # records per round (fast contenders, slow contenders) by operation
    BUDGET = {
        "smoke": {"send": (500, 200), "send_many": (1000, 1000), "consume": (1000, 500)},
        "quick": {"send": (20_000, 5_000), "send_many": (50_000, 50_000), "consume": (50_000, 10_000)},
        "full": {"send": (200_000, 50_000), "send_many": (500_000, 500_000), "consume": (500_000, 100_000)},
    }
    SEEDS = {"send": 1, "send_many": 2, "consume": 3}

    def grid(self, mode, opts):
        return [{"op": "send"}, {"op": "send_many", "form": "list"}, {"op": "send_many", "form": "arrow"},
                {"op": "consume"}]

    def cases(self, params):
        if params["op"] == "send":
            return [{"keys": False}, {"keys": True}]
        if params["op"] == "consume":
            return [{"how": "iterate"}, {"how": "poll_batch"}, {"how": "read"}]
        return [{}]

    def make_data(self, params, mode):
        op = params["op"]
        n, slow = self.BUDGET[mode][op]
        return RecordsData.build(op, n, slow, self.SEEDS[op], params.get("form", "list"))

    def limit(self, params, case):
        if params["op"] == "send":
            return "python call floor"
        if params["op"] == "send_many":
            return "pa.array conversion" if params["form"] == "list" else "os.write"
        return None

    def primary(self, params, case):
        return Metric("records/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        out = {"records/s": m["records"] / s}
        if m.get("frames"):
            out["records/frame"] = m["records"] / m["frames"]
        return out

    def label(self, params, case):
        op = params["op"]
        if op == "send":
            return f"send(), {'keyed' if case.get('keys') else 'unkeyed'}" if case else "send()"
        if op == "send_many":
            return f"send_many, {'list of bytes' if params['form'] == 'list' else 'pa.array binary'}"
        return f"consume, {case['how']}" if case else "consume"


# ------------------------------------------------------------------ 8 copies


@dataclasses.dataclass
class CopiesData:
    batch: pa.RecordBatch
    payload: pa.Buffer          # batch.serialize(): the bytes every contender moves

    @property
    def nbytes(self) -> int:
        return self.payload.size

    @staticmethod
    def build(rows: int, seed: int = 11) -> "CopiesData":
        batch = sensor_batch(rows, seed)
        return CopiesData(batch, batch.serialize())


class Copies(Workload):
    name = "copies"
    title = "8. Copies made by one large append"
    description = (
        "One large uncompressed batch appended to a fresh topic with durability=\"none\" (no fdatasync: the copy "
        "into the page cache is what is left to see), beside the same bytes (`batch.serialize()`) copied with "
        "`np.copyto` into a preallocated array (one user-space copy), written with one `os.write` into a "
        "preallocated file (the kernel's copy, the one the design allows) and into a growing file, and "
        "CRC32C'd (`tidelog._core.crc32c`, work an append does besides copying). Wall GB/s, and GB/s of the "
        "thread's CPU time (user + system), which other processes disturb less."
    )
    param_names = ("rows",)
    ROWS = {"smoke": [16 * KiB], "quick": [512 * KiB], "full": [4 * MiB]}

    def grid(self, mode, opts):
        return [{"rows": r} for r in self.ROWS[mode]]

    def make_data(self, params, mode):
        return CopiesData.build(params["rows"])

    def limit(self, params, case):
        return "os.write"

    def primary(self, params, case):
        return Metric("GB/s")

    def metrics(self, params, case, m):
        out = {"GB/s": m["bytes"] / m["seconds"] / GB}
        if m.get("cpu_seconds"):
            out["cpu GB/s"] = m["bytes"] / m["cpu_seconds"] / GB
        return out

    def label(self, params, case):
        return f"{human_count(params['rows'])} rows ({human_bytes(params['rows'] * 20)})"


# ------------------------------------------------------------------ 9 damage


DAMAGE_KINDS = ("bitrot-tail", "lost-4k", "lost-16m")


@dataclasses.dataclass
class DamageData:
    """A 1-partition columnar log of about ``size`` bytes in ``segment_bytes``
    segments, and how to damage copies of it (FORMAT.md section 8):

    - ``bitrot-tail``: one bit flipped 2 % before the end of the active segment;
    - ``lost-4k``: a zeroed 4 KiB sector in a sealed segment;
    - ``lost-16m``: ``lost_span`` bytes (16 MiB but in smoke mode) zeroed from a
      quarter into a sealed segment."""

    size: int
    segment_bytes: int = 32 * MiB
    lost_span: int = 16 * MiB
    batch_rows: int = 64 * KiB


class Damage(Workload):
    name = "damage"
    title = "9. What damage costs"
    description = (
        "A 1-partition columnar log (64 Ki-row batches, 32 MiB segments), closed cleanly; copies of it damaged "
        "the ways FORMAT.md section 8 treats differently (a flipped bit near the end of the active segment, a "
        "zeroed 4 KiB sector and 16 MiB zeroed in sealed segments). *reopen*: `tidelog.open` of the damaged "
        "copy; *scan*: a full scan + sum with `on_corrupt=\"skip\"`; each beside the intact log."
    )
    param_names = ("size",)
    SIZES = {"smoke": [8 * MiB], "quick": [96 * MiB], "full": [256 * MiB]}

    def grid(self, mode, opts):
        return [{"size": s} for s in self.SIZES[mode]]

    def cases(self, params):
        return [{"damage": k, "op": op} for k in DAMAGE_KINDS for op in ("reopen", "scan")]

    def make_data(self, params, mode):
        if mode == "smoke":
            return DamageData(params["size"], segment_bytes=2 * MiB, lost_span=1 * MiB, batch_rows=4 * KiB)
        return DamageData(params["size"])

    def limit(self, params, case):
        return "tidelog intact"

    def primary(self, params, case):
        return Metric("ms", False) if case["op"] == "reopen" else Metric("MB/s")

    def metrics(self, params, case, m):
        if case["op"] == "reopen":
            return {"ms": m["seconds"] * 1e3}
        return {"MB/s": m["bytes"] / m["seconds"] / MB, "rows": m["rows"]}

    def label(self, params, case):
        base = human_bytes(params["size"])
        return f"{base} {case['damage']} {case['op']}" if case else base


__all__ = ["Records", "RecordsData", "Copies", "CopiesData", "Damage", "DamageData", "DAMAGE_KINDS"]
