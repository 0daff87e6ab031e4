"""A newcomer's first hour: what a user of confluent-kafka, kafka-python, pyarrow
or Polars does without reading the fine print must not lose data or hang.

Each test runs the user's script in a real child process where the behaviour
depends on process exit or on signals.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import tidelog


def _run(code: str, *args, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


# ------------------------------------------------------------- 1. records at close and exit
def test_pending_records_are_delivered_at_interpreter_exit(tmp_path):
    """Ten sends with a long linger and no flush(): the interpreter's exit delivers them."""
    r = _run("""
        import sys, tidelog
        log = tidelog.open(sys.argv[1])
        log.create_topic("orders")
        p = log.producer(linger_ms=5000)
        futures = [p.send("orders", value=b"v%d" % i) for i in range(10)]
        # no flush(), no close(): the script just ends
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    with tidelog.open(tmp_path, read_only=True) as log:
        assert log.topic("orders").read()["value"].to_pylist() == [b"v%d" % i for i in range(10)]


def test_log_close_delivers_and_closes_its_producers(tmp_path):
    with tidelog.open(tmp_path) as log:
        log.create_topic("orders")
        p = log.producer(linger_ms=5000)
        futures = [p.send("orders", value=b"v%d" % i) for i in range(10)]
    assert [f.result(timeout=1).offset for f in futures] == list(range(10))
    with pytest.raises(tidelog.LogClosedError):
        p.send("orders", value=b"late")
    with tidelog.open(tmp_path, read_only=True) as log:
        assert log.topic("orders").end_offsets() == {0: 10}


def test_records_that_cannot_be_delivered_fail_at_once(tmp_path):
    """A producer whose log went away fails its pending futures with DeliveryError
    when it is closed, instead of leaving them pending."""
    log = tidelog.open(tmp_path)
    log.create_topic("orders")
    p = log.producer(linger_ms=60_000)
    fut = p.send("orders", value=b"x")
    log.topic("orders")._close()  # the partitions are gone under the producer
    p.close(timeout=1)
    assert fut.done()
    with pytest.raises(tidelog.TidelogError):
        fut.result(timeout=0)
    log.close()


# ----------------------------------------------------------------- 2. Ctrl-C
BLOCKED = """
    import sys, time, tidelog
    log = tidelog.open(sys.argv[1])
    log.create_topic("t")
    how = sys.argv[2]
    print("ready", flush=True)
    try:
        if how == "iterate":
            for rec in log.consumer(["t"]):
                pass
        elif how == "poll":
            log.consumer(["t"]).poll()
        elif how == "poll_batch":
            log.consumer(["t"]).poll_batch()
        elif how == "wait_for_data":
            log.topic("t")._partitions[0].wait_for_data(0)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(7)
"""


@pytest.mark.parametrize("how", ["iterate", "poll", "poll_batch", "wait_for_data"])
def test_ctrl_c_interrupts_a_blocked_consumer(tmp_path, how):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(BLOCKED), str(tmp_path), how],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # well inside the blocking wait
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 7, (out, err)
    assert "interrupted" in out
    assert took < 2.0, f"KeyboardInterrupt took {took:.2f} s to arrive"
