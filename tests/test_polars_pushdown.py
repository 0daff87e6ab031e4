"""tidelog.polars: a LazyFrame over a topic reads only what the query needs
(projection, predicate and limit pushdown into topic.scan) and answers exactly
what Polars answers over the same rows held in memory."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest

pl = pytest.importorskip("polars")

import tidelog  # noqa: E402
import tidelog.polars  # noqa: E402
from _pushdown_data import INT_SCHEMA, T0, T0_NS, STEP_NS, fill, fill_clustered, fill_int, normalized  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

UTC = dt.timezone.utc


def same(lf_query, topic, **scan_kwargs) -> tuple[list, list, tidelog.polars.Reads]:
    """(rows of the query over the topic, rows over topic.read() in memory, what the scan read)."""
    reads = tidelog.polars.Reads()
    got = lf_query(tidelog.polars.scan(topic, reads=reads, **scan_kwargs)).collect()
    want = lf_query(pl.DataFrame(topic.read(**scan_kwargs)).lazy()).collect()
    assert got.schema == want.schema
    return normalized(got.rows()), normalized(want.rows()), reads


@pytest.fixture
def topic(log):
    return fill(log)


def test_the_real_polars_is_imported():
    assert pl.__name__ == "polars" and tidelog.polars.__name__ == "tidelog.polars"
    assert hasattr(pl, "LazyFrame")


def test_schema_follows_the_topic(topic):
    lf = tidelog.polars.scan(topic)
    assert isinstance(lf, pl.LazyFrame)
    assert lf.collect_schema() == pl.DataFrame(topic.read()).schema
    assert lf.collect_schema()["site"] == pl.Categorical


def test_projection_is_pushed(topic):
    got, want, reads = same(lambda lf: lf.select("value", "sensor_id"), topic)
    assert got == want
    assert sorted(reads[-1].columns) == ["sensor_id", "value"]


def test_predicate_is_pushed_with_its_columns(topic):
    q = lambda lf: lf.filter(pl.col("sensor_id") == 7).select("value")  # noqa: E731
    got, want, reads = same(q, topic)
    assert got == want and len(got) > 100
    read = reads[-1]
    assert set(read.columns) == {"value", "sensor_id"}
    assert str(read.filter) == str(pc.field("sensor_id") == pa.scalar(7, pa.int32()))
    assert read.rows == len(got)


def test_time_window_reads_only_its_frames(log):
    topic = fill(log, rows=40_000, frame_rows=1_000, partitions=1, null_ts=False)   # 40 frames, 1 s each
    t0, t1 = T0 + dt.timedelta(seconds=20.5), T0 + dt.timedelta(seconds=21.7)
    q = lambda lf: lf.filter(pl.col("ts").is_between(t0, t1, closed="left")).group_by("sensor_id").agg(  # noqa: E731
        pl.len(), pl.col("value").sum())
    got, want, reads = same(q, topic)
    assert got == want and sum(r[1] for r in got) == 1_200
    assert reads[-1].frames == 2 and reads[-1].rows == 1_200
    assert reads[-1].bytes < topic.describe()["bytes"] * 0.06
    # the same window as a zoned datetime, and as two comparisons
    q = lambda lf: lf.filter((pl.col("ts") >= t0) & (pl.col("ts") < t1)).select(pl.len())  # noqa: E731
    got, want, reads = same(q, topic)
    assert got == want == [(1_200,)] and reads[-1].frames == 2


def test_head_stops_the_scan(log):
    topic = fill_int(log, rows=50_000, frame_rows=1_000)
    reads = tidelog.polars.Reads()
    df = tidelog.polars.scan(topic, reads=reads).head(10).collect()
    assert df.height == 10 and reads[-1].frames == 1
    assert df.equals(pl.DataFrame(topic.read(0, 10)))


def test_untranslatable_parts_are_applied_by_polars(topic):
    q = lambda lf: lf.filter((pl.col("sensor_id") == 3) & pl.col("note").str.starts_with("n1")  # noqa: E731
                             & ((pl.col("value") * 2) > 40))
    got, want, reads = same(q, topic)
    assert got == want and got
    assert str(reads[-1].filter) == str(pc.field("sensor_id") == pa.scalar(3, pa.int32()))
    q = lambda lf: lf.filter((pl.col("sensor_id") == 3) | pl.col("note").str.starts_with("n1"))  # noqa: E731
    got, want, reads = same(q, topic)
    assert got == want and got and reads[-1].filter is None


@pytest.mark.parametrize("predicate", [
    pl.col("value") > 25, pl.col("value") >= 25.0, pl.col("value") > 1000, pl.col("value") < 15, ~(pl.col("value") > 25),
    pl.col("value") == 0.0, pl.col("value").is_nan(), pl.col("value").is_null(), pl.col("value") != 20,
    pl.col("sensor_id").is_in([1, 3, 5]), ~pl.col("sensor_id").is_in([1, 3, 5]), pl.col("sensor_id").is_in([]),
    pl.col("sensor_id").is_between(3, 6), pl.col("sensor_id").is_between(3, 6, closed="none"),
    pl.lit(5) < pl.col("sensor_id"), pl.col("sensor_id") > 2**40, pl.col("sensor_id") > 2.5,
    pl.col("site") == "north", pl.col("site") != "north", pl.col("site").is_in(["east", "west"]),
    pl.col("site").is_null(), ~(pl.col("site") == "north"),
    pl.col("note") >= "n05", pl.col("note").is_null() | (pl.col("note") == "n01"),
    pl.col("day") == dt.date(2026, 1, 2), pl.col("day").is_between(dt.date(2026, 1, 1), dt.date(2026, 1, 3)),
    pl.col("stamp") >= dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    pl.col("stamp") < dt.datetime(2026, 1, 1, 1, 0, 5, 500, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    pl.col("flag"), ~pl.col("flag"), pl.col("flag").is_null(), pl.col("flag") == False,  # noqa: E712
    pl.col("ts").is_null(), pl.col("ts").is_not_null() & (pl.col("sensor_id") == 2),
    pl.col("ts") > dt.datetime(2026, 1, 1, 0, 0, 7), pl.col("ts") <= pl.lit(T0_NS + 7_000_123_456).cast(pl.Datetime("ns")),
    (pl.col("ts") < dt.datetime(2026, 1, 1, 0, 0, 2)) | pl.col("ts").is_null(),
    ((pl.col("sensor_id") == 1) | (pl.col("site") == "south")) & ~(pl.col("value") < 20),
])
def test_predicates_answer_as_polars_in_memory(topic, predicate):
    got, want, reads = same(lambda lf: lf.filter(predicate), topic)
    assert got == want


def test_time_zones_and_units(log):
    schema = pa.schema([("ts", pa.timestamp("ms", tz="Europe/Paris")), ("v", pa.int64())])
    topic = log.create_topic("paris", schema=schema, timestamp="ts", durability="none")
    for k in range(10):
        base = int(T0.replace(tzinfo=UTC).timestamp() * 1000) + k * 1000
        topic.append(pa.record_batch([pa.array(range(base, base + 100), schema.field("ts").type),
                                      pa.array(range(k * 100, k * 100 + 100))], schema=schema))
    t0 = dt.datetime(2026, 1, 1, 1, 0, 3, tzinfo=ZoneInfo("Europe/Paris"))   # 00:00:03 UTC
    q = lambda lf: lf.filter(pl.col("ts") >= t0).select(pl.col("v").min())  # noqa: E731
    got, want, reads = same(q, topic)
    assert got == want == [(300,)] and reads[-1].frames == 7


def test_several_partitions_zstd_and_scan_arguments(log):
    topic = fill(log, "z", partitions=3, compression="zstd")
    q = lambda lf: lf.filter(pl.col("sensor_id").is_between(4, 9) & (pl.col("site") == "east")).group_by(  # noqa: E731
        "sensor_id").agg(pl.col("value").sum())
    got, want, reads = same(q, topic)
    assert got == want and got and reads[-1].filter is not None
    got, want, reads = same(q, topic, partitions=[1, 2], start_time=T0 + dt.timedelta(seconds=3))
    assert got == want and got
    got, want, reads = same(lambda lf: lf.filter(pl.col("_offset") < 10), topic, with_offsets=True)
    assert got == want and len(got) == 30 and reads[-1].filter is None


def test_empty_topic(log):
    topic = log.create_topic("empty", schema=INT_SCHEMA, timestamp="ts")
    lf = tidelog.polars.scan(topic)
    assert lf.filter(pl.col("sensor_id") == 1).collect().shape == (0, 3)
    assert lf.select(pl.len()).collect().item() == 0


def test_count_and_frames_of_no_column(topic):
    reads = tidelog.polars.Reads()
    assert tidelog.polars.scan(topic, reads=reads).select(pl.len()).collect().item() == topic.read().num_rows
    assert len(reads[-1].columns) == 1


def test_uncompressed_frames_reach_polars_without_a_copy(log):
    topic = fill_int(log, rows=1_000, frame_rows=1_000)
    batch = next(iter(topic.scan()))
    df = tidelog.polars.scan(topic).collect()
    assert df["value"].to_arrow().buffers()[1].address == batch.column("value").buffers()[1].address


def test_errors(log, topic):
    with pytest.raises(ValueError, match="unknown columns"):
        tidelog.polars.scan(topic, columns=["nope"])
    with pytest.raises(tidelog.InvalidArgumentError, match="nope"):
        tidelog.polars.scan(topic, filter=pc.field("nope") > 1)
    with pytest.raises(tidelog.InvalidArgumentError, match="Topic"):
        tidelog.polars.scan(topic.read())
    with pytest.raises(tidelog.InvalidArgumentError, match="Reads"):
        tidelog.polars.scan(topic, reads=[])
    lf = tidelog.polars.scan(topic)
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        lf.filter(pl.col("nope") > 1).collect()
    with pytest.raises(pl.exceptions.PolarsError):
        lf.filter(pl.col("note") > 5).collect()


def test_a_closed_log_raises_on_collect(log_dir):
    log = tidelog.open(log_dir)
    lf = tidelog.polars.scan(fill_int(log, rows=100))
    log.close()
    with pytest.raises(Exception, match="closed"):
        lf.collect()


# --------------------------------------------------- random predicates
_INT = st.integers(-2, 22)
_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])


def _cmp(column, op, value):
    c = pl.col(column)
    return {"==": c == value, "!=": c != value, "<": c < value, "<=": c <= value, ">": c > value,
            ">=": c >= value}[op]


_LEAVES = st.one_of(
    st.builds(lambda op, v: _cmp("sensor_id", op, v), _OPS, _INT),
    st.builds(lambda vs: pl.col("sensor_id").is_in(vs), st.lists(_INT, max_size=4)),
    st.builds(lambda a, b, c: pl.col("sensor_id").is_between(a, b, closed=c), _INT, _INT,
              st.sampled_from(["both", "left", "right", "none"])),
    st.builds(lambda op, v: _cmp("value", op, v), _OPS, st.sampled_from([20.0, 25.5, -0.0, float("inf"), 15])),
    st.builds(lambda op, v: _cmp("site", op, v), st.sampled_from(["==", "!="]),
              st.sampled_from(["north", "south", "east", "west", "nowhere"])),
    st.builds(lambda vs: pl.col("site").is_in(vs), st.lists(st.sampled_from(["north", "east", "x"]), max_size=3)),
    st.builds(lambda op, v: _cmp("note", op, f"n{v:02d}"), _OPS, st.integers(0, 14)),
    st.builds(lambda op, s: _cmp("stamp", op, T0.replace(tzinfo=UTC) + dt.timedelta(seconds=s)), _OPS,
              st.floats(0, 14, allow_nan=False).map(lambda x: round(x, 4))),
    st.builds(lambda op, d: _cmp("day", op, dt.date(2026, 1, d)), _OPS, st.integers(1, 3)),
    st.builds(lambda op, s: _cmp("ts", op, T0 + dt.timedelta(seconds=s)), _OPS,
              st.floats(0, 14, allow_nan=False).map(lambda x: round(x, 6))),
    st.sampled_from([pl.col("flag"), pl.col("flag").is_null(), pl.col("value").is_null(),
                     pl.col("site").is_not_null(), pl.col("note").is_null(), pl.col("ts").is_null(),
                     pl.col("value").is_nan()]),
)
_PREDICATES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.builds(lambda a, b: a & b, inner, inner), st.builds(lambda a, b: a | b, inner, inner),
                            st.builds(lambda a: ~a, inner)),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def random_topic(tmp_path_factory):
    log = tidelog.open(tmp_path_factory.mktemp("random") / "log")
    topic = fill(log, rows=6_000, frame_rows=500, partitions=2)
    yield topic, pl.DataFrame(topic.read()).lazy()
    log.close()


@settings(max_examples=150, deadline=None)
@given(predicate=_PREDICATES)
def test_random_predicates_answer_as_polars_in_memory(random_topic, predicate):
    topic, memory = random_topic
    got = tidelog.polars.scan(topic).filter(predicate).collect()
    want = memory.filter(predicate).collect()
    assert normalized(got.rows()) == normalized(want.rows()), predicate


@pytest.mark.parametrize("predicate, frames", [
    (pl.col("sensor_id") == 7, 1), (pl.col("sensor_id").is_in([3, 4, 12]), 3),
    (pl.col("sensor_id").is_between(5, 6), 2), ((pl.col("sensor_id") > 17) & (pl.col("value") < 100), 2),
    (pl.col("value") >= 19, 20),   # NaN is above every number: every frame
    # Zone maps judge each bound alone, and a NaN (every frame has one) meets the lower one: frames 0-4.
    (pl.col("value").is_between(2.5, 4.5), 5), (~(pl.col("sensor_id") != 9), 1),
])
def test_zone_maps_skip_frames(log, predicate, frames):
    topic = fill_clustered(log)
    got, want, reads = same(lambda lf: lf.filter(predicate), topic)
    assert got == want and got
    assert reads[-1].frames == frames


@pytest.mark.parametrize("engine", ["in-memory", "streaming", "auto"])
def test_every_engine_pushes_down(log, engine):
    topic = fill(log, rows=20_000, frame_rows=1_000, partitions=2)       # 40 frames: 20 s in each partition
    reads = tidelog.polars.Reads()
    lf = tidelog.polars.scan(topic, reads=reads)
    q = lf.filter((pl.col("ts") >= T0 + dt.timedelta(seconds=15)) & (pl.col("sensor_id") == 3)).select("value")
    got = q.collect(engine=engine)
    want = pl.DataFrame(topic.read()).lazy().filter((pl.col("ts") >= T0 + dt.timedelta(seconds=15))
                                                    & (pl.col("sensor_id") == 3)).select("value").collect()
    assert normalized(got.rows()) == normalized(want.rows())
    assert reads[-1].frames == 10 and reads[-1].time_range[0] == T0_NS + 15 * 10**9
    assert lf.head(5).collect(engine=engine).height == 5 and reads[-1].frames == 1


def test_reads_keep_the_latest_scans(log):
    topic = fill_int(log, rows=3_000)
    reads = tidelog.polars.Reads(keep=2)
    lf = tidelog.polars.scan(topic, reads=reads)
    for n in (1, 2, 3):
        lf.head(n).collect()
    assert len(reads) == 2 and [r.rows for r in reads] == [1_000, 1_000] and reads.frames == 2
    reads.clear()
    assert len(reads) == 0 and reads.bytes == 0
    with pytest.raises(ValueError, match="keep"):
        tidelog.polars.Reads(keep=0)


@pytest.mark.parametrize("predicate", [
    pl.col("f") > 0.1, pl.col("f") > pl.lit(0.1, dtype=pl.Float64), pl.col("f") <= pl.lit(0.1, dtype=pl.Float64),
    pl.col("f") == pl.lit(0.5, dtype=pl.Float64), pl.col("f") >= 0.5, pl.col("i") < 2**31, pl.col("i") > 2.5,
    pl.col("i") == pl.lit(3, dtype=pl.Int64), pl.col("u") > -1, pl.col("u").is_in([0, 1, 2**40]),
])
def test_literals_of_other_widths_compare_as_polars_does(log, predicate):
    schema = pa.schema([("f", pa.float32()), ("i", pa.int32()), ("u", pa.uint8())])
    topic = log.create_topic("widths", schema=schema, durability="none")
    topic.append({"f": pa.array([0.1, 0.2, 0.5, float("nan"), None], pa.float32()),
                  "i": pa.array([1, 2, 3, None, 5], pa.int32()), "u": pa.array([0, 1, 2, 3, None], pa.uint8())})
    got, want, reads = same(lambda lf: lf.filter(predicate), topic)
    assert got == want


def test_importing_the_modules_imports_neither_library():
    import subprocess
    import sys

    code = ("import sys, tidelog; tidelog.duckdb, tidelog.polars; "
            "print('duckdb' in sys.modules, 'polars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
