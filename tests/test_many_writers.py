"""Many processes, one log: several processes open one log folder read-write at
once, and a process SIGKILLed among them costs nothing acknowledged.

- the acceptance test: 4 writer processes (2 columnar ``topic.append``, 2
  producers, all durable) and a reader process on one single-partition topic:
  every record once, offsets dense, each writer's order kept, the reader's view a
  prefix of the final log;
- topics across processes: created by one, used by another; a create race has
  one winner; a delete makes the other process's next append fail, and the name
  can be created again;
- ``exclusive=True`` against shared handles, both ways, ``LogLockedError`` naming
  the holder; ``read_only=True`` beside either;
- a writer SIGKILLed among durable appends, 10 times: the survivor goes on within
  a second, every acknowledged record is there once, verify finds the log clean.

Child processes come from a forkserver that has tidelog imported already (a
fresh interpreter, as "spawn", but a child starts in a fraction of a second).
Timing is random; what is asserted is not.
"""
from __future__ import annotations

import collections
import multiprocessing as mp
import os
import random
import signal
import threading
import time

import pyarrow as pa
import pytest

import tidelog
from tidelog import _verify
from tidelog._topic import RECORD_SCHEMA

TOPIC = "mw"
WAIT_S = 60  # what a child may take to answer (a slow, sanitized build on 2 cores)


def _ctx():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "pyarrow", "tidelog", __name__])
    return ctx


# ----------------------------------------------------------------------------- records
def value_of(writer: int, seq: int) -> bytes:
    return b"w%d:s%d" % (writer, seq)


def parse_value(value: bytes) -> tuple[int, int]:
    w, s = value.split(b":")
    assert w[:1] == b"w" and s[:1] == b"s", value
    return int(w[1:]), int(s[1:])


def records_batch(values: list[bytes]) -> pa.RecordBatch:
    """Byte records for ``topic.append`` (a topic created without a schema)."""
    n = len(values)
    schema = RECORD_SCHEMA
    return pa.RecordBatch.from_arrays(
        [pa.array([time.time_ns()] * n, pa.int64()).cast(schema.field("timestamp").type),
         pa.array([None] * n, pa.binary()), pa.array(values, pa.binary()),
         pa.array([None] * n, schema.field("headers").type)],
        schema=schema)


def append_durable(topic, values: list[bytes]) -> int:
    """Appends ``values`` to partition 0, durably; the first offset."""
    first, last = topic.append(records_batch(values), durable=True).offsets[0]
    assert last - first + 1 == len(values)
    return first


def send_durable(producer, name: str, values: list[bytes]) -> list[int]:
    """Sends ``values``, waits for every acknowledgement; their offsets."""
    futures = [producer.send(name, value=v) for v in values]
    return [f.result(WAIT_S).offset for f in futures]


def read_values(log, name: str = TOPIC) -> list[bytes]:
    """Partition 0 of ``name`` from its start, checking that offsets are dense from 0."""
    topic = log.topic(name)
    end = topic.end_offsets()[0]
    assert topic.start_offsets()[0] == 0
    table = topic.read(0, end, partitions=0, with_offsets=True)
    assert table.column("_offset").to_pylist() == list(range(end)), "offsets are not dense"
    return table.column("value").to_pylist()


def assert_verify_clean(path) -> None:
    report = _verify.verify(path, progress="never")
    assert not report.damaged, _verify.format_report(report)


def journal(fd: int, line: str) -> None:
    """One line, written straight to the file (no user-space buffer): what a
    SIGKILL leaves is every line whose write returned."""
    os.write(fd, line.encode() + b"\n")


def journal_lines(path) -> list[list[str]]:
    """Complete lines (a line cut by a kill has no newline and was never acknowledged)."""
    return JournalTail(path).new_lines()


class JournalTail:
    """Reads a growing journal: each call returns the complete lines added since the last."""

    def __init__(self, path):
        self.path = path
        self.position = 0
        self.lines: list[list[str]] = []  # every complete line so far

    def new_lines(self) -> list[list[str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.position)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self.position += len(complete)
        new = [line.split() for line in complete.decode().split("\n")[:-1]]
        self.lines += new
        return new


# ----------------------------------------------------------------------------- a log in another process
def _actor(path: str, open_kwargs: dict, conn) -> None:
    """A log handle in a child process, driven over ``conn``: ("op", args...) ->
    ("ok", result) | ("err", class name, message, pid)."""
    try:
        log = tidelog.open(path, **open_kwargs)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("err", type(e).__name__, str(e), getattr(e, "pid", None)))
        return
    conn.send(("ok", os.getpid()))
    producer = None
    while True:
        op, *args = conn.recv()
        try:
            if op == "create":
                name, partitions, at = args
                if at is not None:
                    time.sleep(max(0.0, at - time.monotonic()))
                result = log.create_topic(name, partitions=partitions).partitions
            elif op == "partitions":
                result = log.topic(args[0]).partitions
            elif op == "append":
                result = append_durable(log.topic(args[0]), args[1])
            elif op == "send":
                producer = producer or log.producer(acks="durable", linger_ms=0)
                result = send_durable(producer, args[0], args[1])
            elif op == "read":
                result = read_values(log, args[0])
            elif op == "delete":
                result = log.delete_topic(args[0])
            elif op == "topics":
                result = log.topics()
            elif op == "close":
                if producer is not None:
                    producer.close()
                log.close()
                result = None
            else:
                raise ValueError(f"unknown op {op!r}")
            conn.send(("ok", result))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            conn.send(("err", type(e).__name__, str(e), getattr(e, "pid", None)))
        if op == "close":
            return


class RemoteError(Exception):
    def __init__(self, kind: str, message: str, pid):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.pid = kind, message, pid


class Remote:
    """A log opened in another process; ``remote("append", name, values)``
    runs there and returns its result or raises RemoteError."""

    def __init__(self, path, **open_kwargs):
        ctx = _ctx()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_actor, args=(os.fspath(path), open_kwargs, child), daemon=True)
        self.proc.start()
        child.close()
        self.pid = self.proc.pid
        self.open_error: RemoteError | None = None
        try:
            self._result()
        except RemoteError as e:
            self.open_error = e
            self.proc.join(WAIT_S)

    def send(self, op: str, *args) -> None:
        self.conn.send((op, *args))

    def _result(self):
        assert self.conn.poll(WAIT_S), f"process {self.pid} did not answer"
        reply = self.conn.recv()
        if reply[0] == "err":
            raise RemoteError(*reply[1:])
        return reply[1]

    def __call__(self, op: str, *args):
        self.send(op, *args)
        return self._result()

    def close(self) -> None:
        if self.open_error is None and self.proc.is_alive():
            self("close")
        self.proc.join(WAIT_S)
        assert self.proc.exitcode == 0, self.proc.exitcode
        self.conn.close()

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # the test failed: no more questions
            self.proc.kill()
            self.proc.join(WAIT_S)


# ----------------------------------------------------------------------------- a: the acceptance test
WRITERS = 4
RECORDS_PER_WRITER = 200


def _writer(path: str, writer: int, go, journal_path: str) -> None:
    rng = random.Random(writer)
    log = tidelog.open(path)
    topic = log.topic(TOPIC)
    producer = log.producer(acks="durable", linger_ms=rng.choice([0, 2])) if writer >= 2 else None
    fd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    go.wait(WAIT_S)
    seq = 0
    while seq < RECORDS_PER_WRITER:
        values = [value_of(writer, s) for s in range(seq, min(RECORDS_PER_WRITER, seq + rng.randint(1, 5)))]
        if producer is None:
            first = append_durable(topic, values)
            offsets = range(first, first + len(values))
        else:
            offsets = send_durable(producer, TOPIC, values)
        journal(fd, "\n".join(f"{writer} {seq + i} {o}" for i, o in enumerate(offsets)))
        seq += len(values)
    if producer is not None:
        producer.close()
    log.close()


def _reader(path: str, total: int, go, out_path: str) -> None:
    log = tidelog.open(path)
    consumer = log.consumer([TOPIC])
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    go.wait(WAIT_S)
    seen = 0
    deadline = time.monotonic() + WAIT_S
    while seen < total and time.monotonic() < deadline:
        batch = consumer.poll_batch(max_records=1000, timeout=0.5)
        if batch is None:
            continue
        offsets = batch.column("offset").to_pylist()
        values = batch.column("value").to_pylist()
        journal(fd, "\n".join(f"{o} {v.decode()}" for o, v in zip(offsets, values)))
        seen += len(offsets)
    consumer.close()
    log.close()


def test_many_writers_one_partition(tmp_path):
    """4 writer processes (2 columnar appends, 2 producers; durable) and 1 reader
    process on one single-partition topic at once: every record exactly once,
    offsets dense, each writer's records in its order, and what the reader saw
    is the final log's prefix."""
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        log.create_topic(TOPIC)
    ctx = _ctx()
    go = ctx.Barrier(WRITERS + 1)  # every process has the log open before the first append
    total = WRITERS * RECORDS_PER_WRITER
    seen_path = tmp_path / "reader.txt"
    procs = [ctx.Process(target=_writer, args=(str(path), w, go, str(tmp_path / f"acks-{w}.txt")))
             for w in range(WRITERS)]
    procs.append(ctx.Process(target=_reader, args=(str(path), total, go, str(seen_path))))
    for p in procs:
        p.start()
    t0 = time.monotonic()
    for p in procs:
        p.join(WAIT_S * 2)
        if p.exitcode is None:
            p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)
    print(f"\n{total} records from {WRITERS} processes, read along by a fifth: {time.monotonic() - t0:.2f} s")

    with tidelog.open(path, read_only=True) as ro:
        final = read_values(ro)
    assert len(final) == total
    counts = collections.Counter(final)
    assert sorted(counts) == sorted(value_of(w, s) for w in range(WRITERS) for s in range(RECORDS_PER_WRITER))
    assert set(counts.values()) == {1}, "a record is there more than once"
    by_writer: dict[int, list[int]] = collections.defaultdict(list)
    for v in final:
        w, s = parse_value(v)
        by_writer[w].append(s)
    for w in range(WRITERS):
        assert by_writer[w] == list(range(RECORDS_PER_WRITER)), f"writer {w}'s records out of order"
    # every acknowledgement named the offset where the record is
    for w in range(WRITERS):
        acks = journal_lines(tmp_path / f"acks-{w}.txt")
        assert len(acks) == RECORDS_PER_WRITER
        for writer, seq, offset in acks:
            assert final[int(offset)] == value_of(int(writer), int(seq))
    # the reader's view: offsets from 0 without a gap, equal to the final log there
    seen = journal_lines(seen_path)
    assert [int(o) for o, _ in seen] == list(range(len(seen)))
    assert [v.encode() for _, v in seen] == final[:len(seen)]
    assert len(seen) == total
    assert_verify_clean(path)


# ----------------------------------------------------------------------------- b: topics across processes
def test_topic_created_by_one_process_is_used_by_another(tmp_path):
    path = tmp_path / "log"
    with tidelog.open(path) as a, Remote(path) as b:
        a.create_topic("shared")                      # after b opened the log
        assert "shared" in b("topics")
        first = b("append", "shared", [b"from-b-0", b"from-b-1"])
        assert first == 0
        assert b("send", "shared", [b"from-b-2"]) == [2]
        assert read_values(a, "shared") == [b"from-b-0", b"from-b-1", b"from-b-2"]
        append_durable(a.topic("shared"), [b"from-a-3"])
        assert b("read", "shared") == [b"from-b-0", b"from-b-1", b"from-b-2", b"from-a-3"]
    assert_verify_clean(path)


def test_concurrent_create_topic_has_one_winner(tmp_path):
    """Two processes create the same topic at the same moment (5 rounds): one
    gets it, the other TopicExistsError, and both then see the winner's topic."""
    path = tmp_path / "log"
    tidelog.open(path).close()
    with Remote(path) as p1, Remote(path) as p2:
        for round_ in range(5):
            name = f"race-{round_}"
            at = time.monotonic() + 0.2
            p1.send("create", name, 1, at)
            p2.send("create", name, 2, at)
            outcomes = []
            for remote in (p1, p2):
                try:
                    outcomes.append(("ok", remote._result()))
                except RemoteError as e:
                    outcomes.append((e.kind, None))
            kinds = sorted(k for k, _ in outcomes)
            assert kinds == ["TopicExistsError", "ok"], outcomes
            winner_partitions = next(r for k, r in outcomes if k == "ok")
            assert p1("partitions", name) == p2("partitions", name) == winner_partitions
        assert p1("topics") == p2("topics") == [f"race-{i}" for i in range(5)]
    with tidelog.open(path, read_only=True) as ro:
        assert ro.topics() == [f"race-{i}" for i in range(5)]
    assert_verify_clean(path)


# ----------------------------------------------------------------------------- c: delete across processes
@pytest.mark.parametrize("deleter", ["here", "there"])
def test_delete_topic_while_another_process_has_it_open(tmp_path, deleter):
    """A topic deleted by one process: the other's next append (or send) raises
    UnknownTopicError instead of writing into a deleted file; the name can be
    created again, and both then use the new, empty topic."""
    path = tmp_path / "log"
    with tidelog.open(path) as a, Remote(path) as b:
        a.create_topic("doomed")
        assert b("append", "doomed", [b"old-0"]) == 0
        assert b("send", "doomed", [b"old-1"]) == [1]
        append_durable(a.topic("doomed"), [b"old-2"])
        if deleter == "here":
            a.delete_topic("doomed")
            with pytest.raises(RemoteError) as info:
                b("append", "doomed", [b"lost?"])
            assert info.value.kind == "UnknownTopicError", info.value
            assert "doomed" not in b("topics")
            b("create", "doomed", 1, None)
        else:
            b("delete", "doomed")
            with pytest.raises(tidelog.UnknownTopicError):
                append_durable(a.topic("doomed"), [b"lost?"])
            assert "doomed" not in a.topics()
            a.create_topic("doomed")
        assert b("append", "doomed", [b"new-0"]) == 0
        append_durable(a.topic("doomed"), [b"new-1"])
        assert read_values(a, "doomed") == b("read", "doomed") == [b"new-0", b"new-1"]
    assert_verify_clean(path)


@pytest.mark.parametrize("deleter", ["here", "there"])
def test_producer_of_a_topic_deleted_and_created_again(tmp_path, deleter):
    """A producer's sends to a topic deleted by any handle raise UnknownTopicError,
    and once the topic is created again they go to the new topic."""
    path = tmp_path / "log"
    with tidelog.open(path) as a, Remote(path) as b:
        a.create_topic("doomed")
        producer = a.producer(acks="durable", linger_ms=0)
        assert send_durable(producer, "doomed", [b"old-0"]) == [0]
        if deleter == "here":
            a.delete_topic("doomed")
        else:
            b("delete", "doomed")
        with pytest.raises(tidelog.UnknownTopicError):
            send_durable(producer, "doomed", [b"lost?"])
        b("create", "doomed", 1, None)
        assert send_durable(producer, "doomed", [b"new-0"]) == [0]
        producer.close()
        assert b("read", "doomed") == [b"new-0"]


# ----------------------------------------------------------------------------- d: open modes
def _assert_locked(info, holder_pid: int) -> None:
    assert info.value.pid == holder_pid, (info.value.pid, holder_pid, str(info.value))
    assert str(holder_pid) in str(info.value), str(info.value)


def test_exclusive_open_is_refused_while_shared_handles_are_open(tmp_path):
    path = tmp_path / "log"
    with Remote(path) as holder:
        holder("create", TOPIC, 1, None)
        holder("append", TOPIC, [b"x"])
        with pytest.raises(tidelog.LogLockedError) as info:
            tidelog.open(path, exclusive=True)
        _assert_locked(info, holder.pid)
        with Remote(path, exclusive=True) as other:
            assert other.open_error is not None and other.open_error.kind == "LogLockedError"
            assert other.open_error.pid == holder.pid and str(holder.pid) in other.open_error.message
        with tidelog.open(path, read_only=True) as ro:       # a reader beside shared handles
            assert read_values(ro) == [b"x"]
        with tidelog.open(path) as shared:                   # and another shared handle
            append_durable(shared.topic(TOPIC), [b"y"])
        assert holder("read", TOPIC) == [b"x", b"y"]
    with tidelog.open(path, exclusive=True) as log:          # the last shared handle closed: free
        assert read_values(log) == [b"x", b"y"]
    assert_verify_clean(path)


def test_shared_and_exclusive_opens_are_refused_while_an_exclusive_handle_is_open(tmp_path):
    path = tmp_path / "log"
    with Remote(path, exclusive=True) as holder:
        assert holder.open_error is None
        holder("create", TOPIC, 1, None)
        holder("append", TOPIC, [b"x"])
        for kwargs in ({}, {"exclusive": True}):
            with pytest.raises(tidelog.LogLockedError) as info:
                tidelog.open(path, **kwargs)
            _assert_locked(info, holder.pid)
        with tidelog.open(path, read_only=True) as ro:       # a reader beside the exclusive handle
            assert read_values(ro) == [b"x"]
            holder("append", TOPIC, [b"y"])
            assert read_values(ro) == [b"x", b"y"]
    with tidelog.open(path) as log:                          # released: shared opens work again
        assert read_values(log) == [b"x", b"y"]
    assert_verify_clean(path)


def test_exclusive_and_shared_in_one_process(tmp_path):
    path = tmp_path / "log"
    with tidelog.open(path, exclusive=True):
        with pytest.raises(tidelog.LogLockedError) as info:
            tidelog.open(path)
        _assert_locked(info, os.getpid())
    with tidelog.open(path) as one, tidelog.open(path) as two:   # shared: several handles in one process
        one.create_topic(TOPIC)
        append_durable(two.topic(TOPIC), [b"from-two"])
        assert read_values(one) == [b"from-two"]
        with pytest.raises(tidelog.LogLockedError) as info:
            tidelog.open(path, exclusive=True)
        _assert_locked(info, os.getpid())


# ----------------------------------------------------------------------------- e: SIGKILL among durable appends
KILL_CYCLES = 10
SURVIVOR = 0


def _kill_writer(path: str, writer: int, use_producer: bool, journal_path: str, stop_path: str | None) -> None:
    """Appends durably until stopped (or killed), journaling each acknowledgement:
    "seq offset started finished" (monotonic seconds)."""
    rng = random.Random(writer)
    log = tidelog.open(path)
    topic = log.topic(TOPIC)
    producer = log.producer(acks="durable", linger_ms=0) if use_producer else None
    fd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    journal(fd, f"ready {time.monotonic()}")
    seq = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (stop_path and os.path.exists(stop_path)):
        values = [value_of(writer, s) for s in range(seq, seq + rng.randint(1, 4))]
        started = time.monotonic()
        if producer is None:
            first = append_durable(topic, values)
            offsets = range(first, first + len(values))
        else:
            offsets = send_durable(producer, TOPIC, values)
        finished = time.monotonic()
        journal(fd, "\n".join(f"{seq + i} {o} {started} {finished}" for i, o in enumerate(offsets)))
        seq += len(values)
    if producer is not None:
        producer.close()
    log.close()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_sigkilled_writer_costs_nothing_acknowledged(tmp_path):
    """A survivor process appends durably throughout; 10 times a second writer
    (columnar appends or a producer, in turn) is SIGKILLed at a random moment
    among its durable appends. The survivor's appends go on within a second of
    each kill; every acknowledged record of either is in the log once, at the
    offset its acknowledgement named; offsets are dense; verify finds no damage."""
    path = tmp_path / "log"
    with tidelog.open(path) as log:
        log.create_topic(TOPIC)
    ctx = _ctx()
    rng = random.Random(12)
    stop_path = str(tmp_path / "stop")
    survivor_journal = tmp_path / "journal-0.txt"
    survivor = ctx.Process(target=_kill_writer, args=(str(path), SURVIVOR, False, str(survivor_journal), stop_path))
    survivor.start()
    survivor_tail = JournalTail(survivor_journal)
    stalls = []
    try:
        _wait_for(lambda: (survivor_tail.new_lines(), survivor_tail.lines[1:])[1], WAIT_S,
                  "the survivor's first append")
        for cycle in range(1, KILL_CYCLES + 1):
            victim_tail = JournalTail(tmp_path / f"journal-{cycle}.txt")
            victim = ctx.Process(target=_kill_writer,
                                 args=(str(path), cycle, cycle % 2 == 0, victim_tail.path, None))
            victim.start()
            _wait_for(lambda: (victim_tail.new_lines(), victim_tail.lines[1:] or not victim.is_alive())[1],
                      WAIT_S, f"victim {cycle}'s first append")
            time.sleep(rng.uniform(0, 0.3))
            assert victim.is_alive(), f"victim {cycle} exited with {victim.exitcode}"
            killed_at = time.monotonic()
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(WAIT_S)
            assert victim.exitcode == -signal.SIGKILL
            done_after: list[float] = []

            def survivor_went_on():
                for line in survivor_tail.new_lines():
                    if line[0] != "ready" and float(line[2]) >= killed_at:
                        done_after.append(float(line[3]))
                return done_after or not survivor.is_alive()

            _wait_for(survivor_went_on, WAIT_S, f"the survivor's append after kill {cycle}")
            assert survivor.is_alive(), f"the survivor exited with {survivor.exitcode}"
            stalls.append(done_after[0] - killed_at)
    finally:
        open(stop_path, "w").close()
        survivor.join(WAIT_S)
        if survivor.exitcode is None:
            survivor.kill()
    assert survivor.exitcode == 0
    print(f"\nsurvivor: first durable append begun after a kill done after "
          + ", ".join(f"{s * 1000:.0f}" for s in stalls) + f" ms (max {max(stalls) * 1000:.0f} ms)")
    assert max(stalls) < 1.0, stalls

    with tidelog.open(path) as log:
        final = read_values(log)
    assert len(set(final)) == len(final), "a record is there more than once"
    acked = 0
    positions: dict[int, list[int]] = collections.defaultdict(list)
    for v in final:
        w, s = parse_value(v)
        positions[w].append(s)
    for writer in range(KILL_CYCLES + 1):
        lines = journal_lines(tmp_path / f"journal-{writer}.txt")[1:]
        for seq, offset, _, _ in lines:
            assert int(offset) < len(final) and final[int(offset)] == value_of(writer, int(seq)), \
                f"writer {writer}: acknowledged record {seq} at offset {offset} is not there"
        acked += len(lines)
        # each writer's records in its order, and nothing of it past what it wrote
        assert positions[writer] == list(range(len(positions[writer]))), f"writer {writer}: out of order"
        assert len(positions[writer]) >= len(lines)
    assert set(positions) <= set(range(KILL_CYCLES + 1))
    print(f"{acked} acknowledged records checked, {len(final)} in the log")
    assert_verify_clean(path)
