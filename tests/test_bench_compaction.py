"""The compaction workload of the benchmark suite (tidelog.bench.compaction): a
smoke run of every part with its baseline. No timing assertions: what it
measures is checked, not how fast."""
from __future__ import annotations

import math

from tidelog.bench import Options, run_suite
from tidelog.bench.contenders import TidelogCompaction
from tidelog.bench.workloads import find

ROLES = ["tidelog", "no cleaner", "read", "arrow"]


def test_smoke_run_of_every_part(tmp_path):
    wl = find("compaction")
    doc = run_suite(Options(mode="smoke", dir=str(tmp_path), raise_errors=True),
                    contenders=[TidelogCompaction(r) for r in ROLES], workloads=[wl])
    assert doc["errors"] == []
    rows = {(r["params"]["part"], r["params"].get("records"), r["case"].get("cache"), r["contender"]): r
            for r in doc["results"]}
    expected = {(part, records, cache, c) for part, records in (("clean", "columnar"), ("clean", "bytes"))
                for cache in ("cold", "warm") for c in ("tidelog compaction", "sequential read")}
    expected |= {("appends", None, None, "tidelog compaction"), ("appends", None, None, "tidelog appends, no cleaner"),
                 ("table", None, None, "tidelog compaction"), ("table", None, None, "arrow last row per key")}
    assert set(rows) == expected
    for r in rows.values():
        assert r["value"] is not None and math.isfinite(r["value"]) and r["value"] > 0, r
        if r["contender"] != r["limit"]:
            assert r["ratio_limit"] > 0, r
    for records in ("columnar", "bytes"):
        m = rows[("clean", records, "cold", "tidelog compaction")]["metrics"]
        assert m["records removed/s"] > 0 and 0 < m["bytes after/before"] < 0.5   # most records went
    assert rows[("appends", None, None, "tidelog compaction")]["metrics"]["cleaner passes"] >= 1
    assert list(tmp_path.iterdir()) == []   # every round's log removed


def test_table_matches_pyarrow(tmp_path):
    """table() and the pyarrow baseline keep the same rows: one per key, the latest."""
    from tidelog.bench.contenders.tidelog_compaction import last_row_per_key, table_rows
    import pyarrow as pa
    import tidelog

    wl = find("compaction")
    data = wl.make_data({"part": "table"}, "smoke")
    batches = table_rows(data)
    want = last_row_per_key(pa.Table.from_batches(batches), "sensor_id")
    with tidelog.open(str(tmp_path / "log")) as log:
        t = log.create_topic("kv", schema=batches[0].schema, key="sensor_id", timestamp="ts", durability="none")
        for b in batches:
            t.append(b)
        got = t.table()
    assert got.num_rows == data.keys == want.num_rows
    assert got.sort_by("sensor_id").equals(want.sort_by("sensor_id"))
