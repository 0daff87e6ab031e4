"""A writer forked from a process that already appended names itself in the
append intent it leaves when it dies (the core caches its pid and refreshes the
cache in every fork's child; native/process_id.h)."""
from __future__ import annotations

import os
import subprocess
import sys

import tidelog

# Appends once (the pid is cached), forks, and the child appends through a log it
# opens itself: TIDELOG_TEST_KILL_AT=append.after_pwritev:2 kills it there, holding
# the append lock with its intent written. Prints the child's pid.
PARENT = r"""
import os, sys, tidelog
log = tidelog.open(sys.argv[1])
producer = log.producer(linger_ms=0)
producer.send("t", b"from the parent").result()
pid = os.fork()
if pid == 0:
    child = tidelog.open(sys.argv[1])
    child.producer(linger_ms=0).send("t", b"from the child").result()
    os._exit(3)  # not reached: the kill point fires in the append above
_, status = os.waitpid(pid, 0)
print(pid, os.WIFSIGNALED(status) and os.WTERMSIG(status), flush=True)
os._exit(0)
"""


def test_a_forked_child_that_dies_mid_append_is_reported_by_its_own_pid(tmp_path):
    path = str(tmp_path / "log")
    with tidelog.open(path) as survivor:  # keeps the session: the next append repairs under the lock
        survivor.create_topic("t", durability="interval")
        env = dict(os.environ, TIDELOG_TEST_KILL_AT="append.after_pwritev:2")
        run = subprocess.run([sys.executable, "-c", PARENT, path], env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        child_pid, signal_number = (int(x) for x in run.stdout.split())
        assert signal_number == 9, "the child did not die at the kill point"
        producer = survivor.producer(linger_ms=0)
        producer.send("t", b"after").result()  # takes the lock the child died holding
        producer.close()
        events = survivor.topic("t").partition(0).native.recovery_events()
        repairs = [e for e in events if e["kind"] == "repair"]
        assert len(repairs) == 1, events
        assert f"(pid {child_pid})" in repairs[0]["reason"], repairs[0]["reason"]
        values = survivor.topic("t").read().column("value").to_pylist()
        assert values[0] == b"from the parent" and values[-1] == b"after"
