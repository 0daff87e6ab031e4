"""tidelog.duckdb: SQL over a registered topic reads only what the query needs
(projection and filter pushdown into topic.scan) and answers exactly what
DuckDB answers over the same rows held in memory."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("duckdb._sources")

import tidelog  # noqa: E402
import tidelog.duckdb  # noqa: E402
from _pushdown_data import INT_SCHEMA, T0, T0_NS, STEP_NS, fill, fill_clustered, fill_int, normalized  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402


def both(con, sql: str, name: str = "sensors"):
    """(rows over the registered topic, rows over the same data in memory as ``mem``)."""
    got = con.sql(sql.format(t=name)).fetchall()
    want = con.sql(sql.format(t="mem")).fetchall()
    return normalized(got), normalized(want)


@pytest.fixture
def setup(log):
    topic = fill(log)
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    yield con, topic, table
    con.close()


def test_the_module_is_duckdbs_and_the_real_duckdb_is_imported():
    import tidelog.analytics._duckdb_source as source

    assert source.duckdb is duckdb and duckdb.__name__ == "duckdb" and hasattr(source.duckdb, "connect")
    assert tidelog.duckdb.__name__ == "tidelog.duckdb" and not hasattr(tidelog.duckdb, "connect")
    assert tidelog.polars._polars().__name__ == "polars"


def test_projection_and_filter_are_pushed(setup):
    con, topic, table = setup
    got, want = both(con, "select value from {t} where sensor_id = 7")
    assert got == want and len(got) > 100
    read = table.reads[-1]
    assert read.columns == ["value"]   # the filter's column is not read into DuckDB: tidelog filters on it
    assert str(read.filter) == str(pc.field("sensor_id") == pa.scalar(7, pa.int32()))
    assert read.rows == len(got)       # DuckDB received only the matching rows
    plan = con.sql("explain select value from sensors where sensor_id = 7").fetchall()[0][1]
    assert "Filters:" in plan and "sensor_id" in plan.split("Filters:")[1]


def test_count_star_reads_one_column(setup):
    con, topic, table = setup
    assert con.sql("select count(*) from sensors").fetchall() == [(topic.read().num_rows,)]
    assert len(table.reads[-1].columns) == 1


def test_time_window_reads_only_its_frames(log):
    topic = fill_int(log, rows=40_000, frame_rows=1_000)          # 40 frames, 1 s each
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    lo, hi = T0_NS + 20_500 * STEP_NS, T0_NS + 21_700 * STEP_NS   # 1.2 s in the middle: 2 frames
    sql = f"select sensor_id, count(*), sum(value) from {{t}} where ts >= {lo} and ts < {hi} group by all"
    got, want = both(con, sql, "readings")
    assert got == want and sum(r[1] for r in got) == 1_200
    read = table.reads[-1]
    assert read.frames == 2 and read.rows == 1_200
    assert read.bytes < topic.describe()["bytes"] * 0.06
    got, want = both(con, f"select count(*) from {{t}} where ts between {lo} and {hi}", "readings")
    assert got == want == [(1_201,)] and table.reads[-1].frames == 2


def test_a_microsecond_time_index_is_pushed_too(log):
    schema = pa.schema([("ts", pa.timestamp("us")), ("v", pa.int64())])
    topic = log.create_topic("us", schema=schema, timestamp="ts", durability="none")
    for k in range(10):
        topic.append({"ts": pa.array([T0 + dt.timedelta(seconds=k, milliseconds=j) for j in range(100)],
                                     pa.timestamp("us")), "v": list(range(k * 100, k * 100 + 100))})
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    rows = con.sql("select min(v), max(v) from us where ts >= TIMESTAMP '2026-01-01 00:00:03.050' "
                   "and ts < TIMESTAMP '2026-01-01 00:00:04.020'").fetchall()
    assert rows == [(350, 419)]
    assert table.reads[-1].frames == 2


def test_nanosecond_timestamps_are_filtered_by_duckdb_correctly(setup):
    # DuckDB 2.0 does not offer filters on TIMESTAMP_NS columns to a Python source: it applies them itself.
    con, topic, table = setup
    got, want = both(con, "select ts, value from {t} where ts >= TIMESTAMP '2026-01-01 00:00:03' "
                          "and ts < TIMESTAMP_NS '2026-01-01 00:00:04.5' and sensor_id < 5")
    assert got == want and got
    assert "sensor_id" in str(table.reads[-1].filter) and "ts" not in str(table.reads[-1].filter)


@pytest.mark.parametrize("where", [
    "sensor_id in (1, 3, 5)", "not (sensor_id in (1, 3, 5))", "sensor_id between 3 and 6",
    "value > 25", "value >= 25", "value > 1000", "value < 15 or value > 25", "not (value > 25)", "value = 'NaN'::DOUBLE",
    "value is null", "value is not null and sensor_id != 4",
    "site = 'north'", "site != 'north'", "site in ('east', 'west')", "site is null", "not (site = 'north')",
    "note >= 'n05'", "note is null or note = 'n01'",
    "day = DATE '2026-01-02'", "day between DATE '2026-01-01' and DATE '2026-01-03'",
    "stamp >= TIMESTAMPTZ '2026-01-01 00:00:05+00'", "stamp < TIMESTAMPTZ '2026-01-01 00:00:05.0005+00'",
    "flag", "not flag", "flag is null", "flag = false",
    "ts is null", "ts is not null and sensor_id = 2",
    "(sensor_id = 1 or site = 'south') and not (value < 20)",
])
def test_filters_answer_as_duckdb_in_memory(setup, where):
    con, topic, table = setup
    got, want = both(con, f"select * from {{t}} where {where}")
    assert got == want


def test_untranslatable_filters_stay_with_duckdb(setup):
    con, topic, table = setup
    got, want = both(con, "select sensor_id, value from {t} where value * 2 > 50 and note like 'n1%' "
                          "and sensor_id % 2 = 0")
    assert got == want and got
    got, want = both(con, "select * from {t} where sensor_id = 3 and (value + 1 > 21 or note < 'n03')")
    assert got == want and got


def test_limit_stops_reading(log):
    topic = fill_int(log, rows=50_000, frame_rows=1_000)
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    assert len(con.sql("select * from readings limit 10").fetchall()) == 10
    assert table.reads[-1].frames < 10


def test_several_partitions_and_zstd(log):
    topic = fill(log, "z", partitions=3, compression="zstd")
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    got, want = both(con, "select sensor_id, count(*), sum(value) from {t} where sensor_id between 4 and 9 "
                          "and site = 'east' group by all", "z")
    assert got == want and got
    assert table.reads[-1].filter is not None


def test_byte_record_topics(log):
    orders = log.create_topic("orders", partitions=2)
    with log.producer() as p:
        for i in range(100):
            p.send("orders", value=b"v%d" % i, key=b"k%d" % (i % 10))
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, orders)
    rows = con.sql("select value from orders where key = 'k3'::BLOB order by value").fetchall()
    assert rows == sorted((b"v%d" % i,) for i in range(3, 100, 10))
    assert table.reads[-1].columns == ["value"] and "key" in str(table.reads[-1].filter)


def test_empty_topic(log):
    topic = log.create_topic("empty", schema=INT_SCHEMA, timestamp="ts")
    con = duckdb.connect()
    tidelog.duckdb.register(con, topic)
    assert con.sql("select count(*) from empty where sensor_id = 1").fetchall() == [(0,)]
    assert con.sql("select * from empty").fetchall() == []


def test_each_query_sees_new_rows_and_the_scan_arguments_apply(log):
    topic = fill_int(log, rows=2_000)
    con = duckdb.connect()
    tidelog.duckdb.register(con, topic)
    tidelog.duckdb.register(con, topic, "early", end_time=T0_NS + 500 * STEP_NS, with_offsets=True)
    assert con.sql("select count(*) from readings").fetchall() == [(2_000,)]
    topic.append({"ts": [T0_NS + 3_000 * STEP_NS], "sensor_id": [1], "value": [1.0]})
    assert con.sql("select count(*) from readings").fetchall() == [(2_001,)]
    rows = con.sql("select _partition, _offset from early where sensor_id = 7 order by _offset").fetchall()
    assert rows == [(0, k) for k in range(500) if k % 50 == 7]


def test_filters_on_offsets_are_left_to_duckdb(log):
    topic = fill_int(log, rows=3_000)
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic, with_offsets=True)
    assert con.sql("select count(*) from readings where _offset >= 2990 and sensor_id = 40").fetchall() == [(1,)]
    assert "_offset" not in str(table.reads[-1].filter)


def test_errors(log, setup):
    con, topic, table = setup
    with pytest.raises(duckdb.BinderException, match="nope"):
        con.sql("select nope from sensors").fetchall()
    with pytest.raises(duckdb.Error):
        con.sql("select * from sensors where note > 5").fetchall()
    with pytest.raises(tidelog.InvalidArgumentError, match="Topic"):
        tidelog.duckdb.register(con, topic.read())
    with pytest.raises(ValueError, match="unknown columns"):
        tidelog.duckdb.register(con, topic, "bad", columns=["nope"])
    with pytest.raises(tidelog.InvalidArgumentError, match="nope"):
        tidelog.duckdb.register(con, topic, "bad", filter=pc.field("nope") > 1)
    table.unregister()
    with pytest.raises(duckdb.CatalogException):
        con.sql("select * from sensors").fetchall()


def test_a_closed_log_raises_on_query(log_dir):
    log = tidelog.open(log_dir)
    topic = fill_int(log, rows=100)
    con = duckdb.connect()
    tidelog.duckdb.register(con, topic)
    log.close()
    with pytest.raises(Exception, match="closed"):
        con.sql("select * from readings").fetchall()


# --------------------------------------------------- random predicates
_INT = st.integers(-2, 22)
_LEAVES = st.one_of(
    st.builds(lambda op, v: f"sensor_id {op} {v}", st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _INT),
    st.builds(lambda vs: f"sensor_id in ({', '.join(map(str, vs))})", st.lists(_INT, min_size=1, max_size=4)),
    st.builds(lambda a, b: f"sensor_id between {a} and {b}", _INT, _INT),
    st.builds(lambda op, v: f"value {op} {v}", st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
              st.sampled_from(["20.0", "25.5", "'NaN'::DOUBLE", "-0.0", "'Infinity'::DOUBLE", "15"])),
    st.builds(lambda op, v: f"site {op} '{v}'", st.sampled_from(["=", "!=", "<", ">="]),
              st.sampled_from(["north", "south", "east", "west", "nowhere"])),
    st.builds(lambda op, v: f"note {op} 'n{v:02d}'", st.sampled_from(["=", "<", ">"]), st.integers(0, 14)),
    st.builds(lambda op, s: f"stamp {op} TIMESTAMPTZ '2026-01-01 00:00:{s:09.6f}+00'",
              st.sampled_from(["<", ">=", "="]), st.floats(0, 14, allow_nan=False).map(lambda x: round(x, 4))),
    st.builds(lambda op, d: f"day {op} DATE '2026-01-0{d}'", st.sampled_from(["=", "<", ">="]), st.integers(1, 3)),
    st.sampled_from(["flag", "flag is null", "value is null", "site is not null", "note is null", "ts is null"]),
    st.builds(lambda op, s: f"ts {op} TIMESTAMP_NS '2026-01-01 00:00:{s:012.9f}'",
              st.sampled_from(["<", ">="]), st.floats(0, 14, allow_nan=False).map(lambda x: round(x, 7))),
)
_PREDICATES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.builds(lambda a, b: f"({a} and {b})", inner, inner),
                            st.builds(lambda a, b: f"({a} or {b})", inner, inner),
                            st.builds(lambda a: f"(not {a})", inner)),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def random_setup(tmp_path_factory):
    log = tidelog.open(tmp_path_factory.mktemp("random") / "log")
    topic = fill(log, rows=6_000, frame_rows=500, partitions=2)
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    yield con, table
    con.close()
    log.close()


@settings(max_examples=150, deadline=None)
@given(where=_PREDICATES)
def test_random_filters_answer_as_duckdb_in_memory(random_setup, where):
    con, table = random_setup
    got, want = both(con, f"select * from {{t}} where {where}")
    assert got == want, where


# ------------------------------------- nanosecond windows read from the SQL
@pytest.mark.parametrize("sql, params", [
    ("select count(*), sum(value) from sensors where ts >= TIMESTAMP '2026-01-01 00:00:05' "
     "and ts < '2026-01-01 00:00:06.5' and sensor_id != 3", None),
    ("select count(*), sum(value) from sensors s where s.ts between $1 and $2", [T0 + dt.timedelta(seconds=5),
                                                                                  "2026-01-01 00:00:06.5"]),
    ("select count(*) from sensors where TIMESTAMP_NS '2026-01-01 00:00:06.000000001' > ts and ts >= $start "
     "and value > 20", {"start": T0 + dt.timedelta(seconds=5)}),
    ("select count(*) from sensors where ts = TIMESTAMP_NS '2026-01-01 00:00:05.001'", None),
    ("select count(*) from sensors where ts >= '2026-01-01 00:00:05.000000001'::TIMESTAMP_NS "
     "and ts < CAST('2026-01-01 00:00:06' AS TIMESTAMP_NS)", None),   # a postfix cast is located at its ::TYPE
])
def test_sql_reads_nanosecond_windows_from_the_query(log, sql, params):
    topic = fill(log, rows=12_000, frame_rows=500, partitions=1, null_ts=True)   # 24 frames of 0.5 s
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    want = con.sql(sql, params=params).fetchall()
    assert table.reads[-1].frames == 24                  # con.sql: DuckDB filters the whole topic itself
    got = tidelog.duckdb.sql(con, sql, params).fetchall()
    assert normalized(got) == normalized(want)
    assert table.reads[-1].frames <= 4 and table._window is None


@pytest.mark.parametrize("sql", [
    "select count(*) from sensors a join sensors b using (sensor_id, ts) where a.ts < '2026-01-01 00:00:01'",
    "select count(*) from sensors where ts < '2026-01-01 00:00:01' or sensor_id = 3",
    "select (select count(*) from sensors where ts < '2026-01-01 00:00:01'), (select count(*) from sensors)",
    "select count(*) from sensors where ts < now()::TIMESTAMP",
    "with two as (select * from sensors where sensor_id = 2) select count(*) from two "
    "where ts < '2026-01-01 00:00:01'",
])
def test_sql_pushes_no_window_it_cannot_prove(log, sql):
    topic = fill(log, rows=4_000, frame_rows=500, partitions=1)
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    want = con.sql(sql).fetchall()
    assert normalized(tidelog.duckdb.sql(con, sql).fetchall()) == normalized(want)
    assert all(r.frames == 8 for r in table.reads)


def test_sql_runs_other_statements_as_con_sql(log):
    topic = fill_int(log, rows=1_000)
    con = duckdb.connect()
    tidelog.duckdb.register(con, topic)
    tidelog.duckdb.sql(con, "create table copy as select * from readings where sensor_id = 1")
    assert con.sql("select count(*) from copy").fetchall() == [(20,)]


@pytest.mark.parametrize("where, frames", [
    ("sensor_id = 7", 1), ("sensor_id in (3, 4, 12)", 3), ("sensor_id between 5 and 6", 2),
    ("sensor_id > 17 and value < 100", 2), ("value >= 19", 20),   # NaN is above every number: every frame
    # Zone maps judge each bound alone, and a NaN (every frame has one) meets the lower one: frames 0-4.
    ("value between 2.5 and 4.5", 5), ("value > 2.5 and value < 4.5 and sensor_id > 0", 4),
    ("not (sensor_id != 9)", 1),
])
def test_zone_maps_skip_frames(log, where, frames):
    topic = fill_clustered(log)
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    got, want = both(con, f"select * from {{t}} where {where}", "clustered")
    assert got == want and got
    assert table.reads[-1].frames == frames


@pytest.mark.parametrize("kind", [pa.timestamp("s"), pa.timestamp("ms", tz="UTC"), pa.timestamp("us", tz="Asia/Tokyo")])
@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "="])
def test_time_indexes_of_every_unit(log, kind, op):
    schema = pa.schema([("ts", kind), ("v", pa.int64())])
    topic = log.create_topic("t", schema=schema, timestamp="ts", durability="none")
    unit = {"s": 1, "ms": 1_000, "us": 1_000_000}[kind.unit]
    base = int(T0.replace(tzinfo=dt.timezone.utc).timestamp()) * unit
    for k in range(10):
        topic.append(pa.record_batch([pa.array(range(base + k * 10 * unit, base + (k + 1) * 10 * unit, unit), kind),
                                      pa.array(range(k * 10, k * 10 + 10))], schema=schema))
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    literal = ("TIMESTAMPTZ '2026-01-01 00:00:45.5+00'" if kind.tz else "TIMESTAMP_S '2026-01-01 00:00:45'")
    for lit in (literal, literal.replace("45.5", "45")):
        got, want = both(con, f"select v from {{t}} where ts {op} {lit}", "t")
        assert got == want
        assert table.reads[-1].time_range is not None and table.reads[-1].filter is None
        assert table.reads[-1].frames <= 6


@pytest.fixture(scope="module")
def ns_setup(tmp_path_factory):
    log = tidelog.open(tmp_path_factory.mktemp("ns") / "log")
    topic = fill(log, rows=12_000, frame_rows=500, partitions=1, null_ts=True)   # 24 frames of 0.5 s
    con = duckdb.connect()
    table = tidelog.duckdb.register(con, topic)
    con.register("mem", topic.read())
    yield con, table
    con.close()
    log.close()


_SECONDS = st.floats(-1, 13, allow_nan=False).map(lambda x: round(x, 9))


def _at(s: float) -> str:
    return (T0 + dt.timedelta(microseconds=round(s * 1e6))).isoformat(sep=" ")


@settings(max_examples=60, deadline=None)
@given(lo=_SECONDS, width=st.floats(0, 4, allow_nan=False), low_op=st.sampled_from([">=", ">", "="]),
       high_op=st.sampled_from(["<", "<=", "between"]), as_parameters=st.booleans(),
       extra=st.sampled_from(["", " and sensor_id < 9", " and (site = 'east' or value > 22)"]))
def test_sql_random_windows_answer_as_duckdb(ns_setup, lo, width, low_op, high_op, as_parameters, extra):
    con, table = ns_setup
    a, b = _at(lo), _at(lo + width)
    if as_parameters:
        params = [dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)]
        x, y = "$1", "$2"
    else:
        params, x, y = None, f"TIMESTAMP_NS '{a}'", f"'{b}'"
    where = f"ts between {x} and {y}" if high_op == "between" else f"ts {low_op} {x} and ts {high_op} {y}"
    sql = f"select sensor_id, ts, value from {{t}} where {where}{extra}"
    table.reads.clear()
    got = tidelog.duckdb.sql(con, sql.format(t="sensors"), params).fetchall()
    assert normalized(got) == normalized(con.sql(sql.format(t="mem"), params=params).fetchall()), sql
    span = 0 if low_op == "=" and high_op != "between" else width
    # (DuckDB reads nothing at all when its optimizer finds the bounds contradict each other)
    assert table.reads.frames <= span * 2 + 2, (sql, list(table.reads))
