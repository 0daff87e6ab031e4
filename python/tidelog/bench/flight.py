"""The ``flight`` workload: tidelog's Arrow Flight endpoint (``tidelog serve
--flight``, tidelog.flight), served by its own process, used by a
``pyarrow.flight.FlightClient`` in the bench process.

Two parts, each its own parameter set:

* ``doget``: one DoGet of a whole topic of sensor rows (64 Ki-row frames,
  written before timing, so the page cache is warm), the client reading every
  batch, beside a plain ``pyarrow.flight`` server in its own process serving
  the same batches from an in-memory ``pa.Table`` (``RecordBatchStream``, no
  Python per batch): rows/s. The same client code reads both.
* ``doput``: one DoPut stream of batches of ``batch_rows`` sensor rows to a
  one-partition topic (durability="fsync"), one durable acknowledgement per
  batch, the round ending at the last one, beside the same batches appended
  in the bench process with ``topic.append(batch, durable=True)``, one after
  the other: rows/s. Two clients: *streaming* sends every batch while a
  second thread reads the acknowledgements; *lock-step* waits for each
  batch's acknowledgement before it sends the next (the local loop's
  pattern, plus a round trip per batch).

The contenders are in contenders/tidelog_flight.py.
"""
from __future__ import annotations

import dataclasses

import pyarrow as pa

from .core import GB, KiB, MB, ROW_BYTES, Metric, SensorData, Target, Workload, human_bytes, human_count

TIDELOG = "tidelog flight"
ARROW_SERVER = "pyarrow flight (in memory)"
LOCAL_APPEND = "tidelog append (local)"


@dataclasses.dataclass
class FlightData:
    """One part's data: ``sensors`` (doget: the topic's rows) or ``batches`` (doput: what each round sends)."""

    part: str                                       # "doget" | "doput"
    sensors: SensorData | None = None
    batches: list[pa.RecordBatch] = dataclasses.field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.sensors.total_rows if self.sensors is not None else sum(b.num_rows for b in self.batches)


class Flight(Workload):
    name = "flight"
    title = "15. Arrow Flight"
    description = (
        "`tidelog serve --flight` in its own process, a `pyarrow.flight.FlightClient` in the bench process. "
        "*doget*: one DoGet of a whole topic of sensor rows (64 Ki-row frames, page cache warm), every batch read, "
        "beside a plain pyarrow Flight server in its own process streaming the same batches from an in-memory "
        "`pa.Table`. *doput*: one DoPut stream of sensor batches to a 1-partition topic, one durable "
        "acknowledgement per batch, beside `topic.append(batch, durable=True)` of the same batches in-process; "
        "the *streaming* client reads acknowledgements in a second thread, the *lock-step* one waits for each "
        "before sending the next batch."
    )
    param_names = ("part", "size", "batch_rows")
    DOGET_SIZES = {"smoke": [2 * MB], "quick": [20 * MB], "full": [100 * MB, 1 * GB]}
    DOGET_BATCH_ROWS = {"smoke": 4 * KiB, "quick": 64 * KiB, "full": 64 * KiB}
    # doput: (batch_rows, batches per round)
    DOPUT = {"smoke": [(256, 8), (4 * KiB, 4)], "quick": [(1 * KiB, 300), (64 * KiB, 20)],
             "full": [(1 * KiB, 2_000), (64 * KiB, 100)]}

    def grid(self, mode, opts):
        sizes = self.DOGET_SIZES[mode]
        if opts.get("max_size"):
            sizes = [s for s in sizes if s <= opts["max_size"]] or sizes[:1]
        out = [{"part": "doget", "size": s, "batch_rows": self.DOGET_BATCH_ROWS[mode]} for s in sizes]
        out += [{"part": "doput", "size": rows * n * ROW_BYTES, "batch_rows": rows} for rows, n in self.DOPUT[mode]]
        return out

    def cases(self, params):
        if params["part"] == "doput":
            return [{"client": "streaming"}, {"client": "lock-step"}]
        return [{}]

    def make_data(self, params, mode):
        rows = params["size"] // ROW_BYTES
        if params["part"] == "doget":
            return FlightData("doget", sensors=SensorData(rows, params["batch_rows"], seed=rows % 991))
        sensors = SensorData(rows, params["batch_rows"], seed=7)
        return FlightData("doput", batches=list(sensors.batches()))

    def limit(self, params, case):
        return ARROW_SERVER if params["part"] == "doget" else LOCAL_APPEND

    def primary(self, params, case):
        return Metric("rows/s")

    def metrics(self, params, case, m):
        s = m["seconds"]
        out = {"rows/s": m["rows"] / s, "MB/s": m["rows"] * ROW_BYTES / s / MB}
        if params["part"] == "doput":
            out["batches/s"] = m["batches"] / s
        return out

    def targets(self, mode, opts):
        out = []
        for g in self.grid(mode, opts):
            if g["part"] == "doget":
                out.append(Target(f"{human_bytes(g['size'])} DoGet >= 0.8x {ARROW_SERVER}", TIDELOG, ARROW_SERVER,
                                  {"part": "doget", "size": g["size"]}, 0.8))
            else:
                # On a stream, as DoPut is meant to be used; the lock-step client's rows show what a
                # round trip and a hand-over between threads per batch cost on top of the fdatasync.
                out.append(Target(f"DoPut of {human_count(g['batch_rows'])}-row batches, durable, streaming "
                                  f"client, >= 0.7x {LOCAL_APPEND}", TIDELOG, LOCAL_APPEND,
                                  {"part": "doput", "batch_rows": g["batch_rows"], "client": "streaming"}, 0.7))
        return out

    def label(self, params, case):
        if params["part"] == "doget":
            return f"DoGet of {human_bytes(params['size'])}"
        n = params["size"] // ROW_BYTES // params["batch_rows"]
        client = f", {case['client']} client" if case.get("client") else ""
        return f"DoPut of {n} x {human_count(params['batch_rows'])}-row batches, durable{client}"


__all__ = ["ARROW_SERVER", "Flight", "FlightData", "LOCAL_APPEND", "TIDELOG"]
