"""Consumer wait strategies: ``wait="block"`` (futex, the default), ``"spin"``
(busy-polls the log's shared publish counter, no system call) and
``"spin-then-block"`` (spins ``spin_us``, then sleeps). Each must deliver
records published by another thread and by another process, honour poll
timeouts, wake for ``wake_waiters`` (how groups announce a rebalance), and
refuse bad settings with a typed error. Latency figures are the benchmark's
(tidelog bench -w latency), not these tests'."""
from __future__ import annotations

import threading
import time

import pytest

import tidelog
from tidelog.errors import InvalidArgumentError
from _helpers import run_python

STRATEGIES = ["block", "spin", "spin-then-block"]


@pytest.fixture
def topic(log):
    return log.create_topic("ev", partitions=2, durability="none")


@pytest.mark.parametrize("wait", STRATEGIES)
def test_records_from_another_thread_arrive(log, topic, wait):
    c = log.consumer("ev", wait=wait, spin_us=200)
    values = [b"v%d" % i for i in range(50)]

    def send():
        with log.producer(linger_ms=0, acks="written") as p:
            for v in values:
                p.send("ev", v).result(5)
                time.sleep(0.001)

    t = threading.Thread(target=send)
    t.start()
    got = []
    while len(got) < len(values):
        r = c.poll(10)
        assert r is not None, f"only {len(got)} records"
        got.append(r.value)
    t.join()
    assert sorted(got) == sorted(values)
    c.close()


@pytest.mark.parametrize("wait", STRATEGIES)
def test_records_from_another_process_arrive(tmp_path, wait):
    path = str(tmp_path / "log")
    with tidelog.open(path) as log:
        log.create_topic("ev", durability="interval")
        c = log.consumer("ev", wait=wait)
        proc = run_python(
            "import sys, time, tidelog\n"
            "log = tidelog.open(sys.argv[1])\n"
            "p = log.producer(linger_ms=0, acks='written')\n"
            "for i in range(20):\n"
            "    p.send('ev', b'x%d' % i).result(5); time.sleep(0.002)\n"
            "p.close(); log.close()\n", path, timeout=60)
        assert proc.returncode == 0
        got = [c.poll(10) for _ in range(20)]
        assert [r.value for r in got] == [b"x%d" % i for i in range(20)]
        c.close()


@pytest.mark.parametrize("wait", STRATEGIES)
def test_poll_timeout_is_honoured_and_batches_too(log, topic, wait):
    c = log.consumer("ev", wait=wait, spin_us=1000)
    t0 = time.monotonic()
    assert c.poll(0.2) is None
    assert 0.18 <= time.monotonic() - t0 < 2.0
    assert c.poll_batch(10, timeout=0.05) is None
    c.close()


@pytest.mark.parametrize("wait", ["spin", "spin-then-block"])
def test_wake_waiters_wakes_a_spinning_poll(log, topic, wait):
    """A woken poll re-checks its state and goes on waiting: the wake-up is
    visible as a return of the native wait, counted here through has_data()."""
    c = log.consumer("ev", wait=wait, spin_us=100)
    checks = []
    real = c.has_data
    c.has_data = lambda: checks.append(1) or real()
    done = threading.Event()

    def poll():
        c.poll(3)
        done.set()

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.1)
    before = len(checks)
    log.wake_waiters()
    time.sleep(0.1)
    assert len(checks) > before
    with log.producer(linger_ms=0, acks="written") as p:
        p.send("ev", b"x").result(5)
    assert done.wait(5)
    t.join()
    c.close()


def test_a_group_member_can_spin(log, topic):
    c = log.consumer("ev", group="g", wait="spin")
    with log.producer(linger_ms=0, acks="written") as p:
        p.send("ev", b"a", partition=0).result(5)
        p.send("ev", b"b", partition=1).result(5)
    got = {c.poll(10).value, c.poll(10).value}
    assert got == {b"a", b"b"}
    c.close()


@pytest.mark.parametrize("bad", [{"wait": "busy"}, {"wait": None}, {"wait": "spin", "spin_us": -1},
                                 {"wait": "spin-then-block", "spin_us": "50"},
                                 {"wait": "spin-then-block", "spin_us": True},
                                 {"wait": "spin-then-block", "spin_us": 2e6}])
def test_bad_wait_settings_are_refused(log, topic, bad):
    with pytest.raises(InvalidArgumentError):
        log.consumer("ev", **bad)


def test_async_consumers_only_block(log, topic):
    with pytest.raises(InvalidArgumentError, match="wait"):
        log.async_consumer("ev", wait="spin")


# ------------------------------------------------ the direct path's deferred wake-ups
# send() with linger_ms=0 appends while it holds the GIL; the wake-ups of that
# publish are deferred until the GIL is released (native/wake_deferral.h). Every
# record must still wake its consumer, and the deferral must end with the send.

@pytest.mark.parametrize("value_bytes", [100, 300_000])  # a small append (GIL held) and a large one (nogil)
def test_direct_sends_wake_a_blocked_consumer_thread_each_time(log, value_bytes):
    log.create_topic("direct", durability="interval")
    c = log.consumer("direct", wait="block")
    got: list = []
    ready = threading.Event()

    def consume():
        ready.set()
        for _ in range(30):
            r = c.poll(10)
            got.append(None if r is None else r.offset)

    t = threading.Thread(target=consume)
    t.start()
    ready.wait()
    with log.producer(linger_ms=0, acks="written") as p:
        for i in range(30):
            time.sleep(0.002)  # the consumer is asleep again by now
            assert p.send("direct", bytes([i % 256]) * value_bytes).result(5).offset == i
            assert tidelog._core.wake_deferral_state() == (False, False)
    t.join(30)
    assert got == list(range(30))
    c.close()


def test_the_deferral_ends_when_the_append_fails(log):
    topic = log.create_topic("gone", durability="interval")
    p = log.producer(linger_ms=0, acks="written")
    p.send("gone", b"x").result(5)
    topic.partition(0).native.close()  # the append below fails in the native core
    fut = None
    try:
        fut = p.send("gone", b"y")
    except tidelog.TidelogError:
        pass
    if fut is not None:
        with pytest.raises(tidelog.TidelogError):
            fut.result(5)
    assert tidelog._core.wake_deferral_state() == (False, False)
