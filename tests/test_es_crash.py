"""SIGKILL during event-store appends: a child appends multi-event,
multi-stream batches in a loop and is killed at random moments, again and
again. Afterwards every batch is wholly there or wholly absent, every batch
the child saw acknowledged is there, nothing is there twice, stream versions
are gapless, and the stream index (in a fresh process, with and without its
snapshot) agrees with the log."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict

import tidelog

CHILD = r"""
import random, sys, uuid
import tidelog
from tidelog.es import NewEvent
path, cycle = sys.argv[1], int(sys.argv[2])
rnd = random.Random(cycle)
with tidelog.open(path) as log:
    store = log.event_store("crash")
    b = 0
    while True:
        batch = f"{cycle}-{b}"
        streams = rnd.sample(range(12), rnd.randint(1, 3))
        appends = []
        for s in streams:
            n = rnd.randint(1, 6)
            appends.append((f"s-{s}", [NewEvent("E", f"{batch}:s-{s}:{k}/{n}".encode()) for k in range(n)], tidelog.ANY))
        store.append_many(appends)
        print(batch, flush=True)
        b += 1
"""


def test_sigkill_during_multi_stream_appends(tmp_path):
    path = tmp_path / "log"
    tidelog.open(path).close()
    acked: set[str] = set()
    rnd = random.Random(7)
    cycles = int(os.environ.get("TIDELOG_ES_CRASH_CYCLES", "15"))
    for cycle in range(cycles):
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(cycle)], stdout=subprocess.PIPE, text=True)
        first = p.stdout.readline()  # it is appending
        assert first, "the child did not start appending"
        acked.add(first.strip())
        time.sleep(rnd.uniform(0.0, 0.25))
        os.kill(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        acked.update(line.strip() for line in out.splitlines() if line.strip())
        assert p.returncode == -signal.SIGKILL
    check(path, acked)
    (path / "stores" / "crash" / "stream-index").unlink(missing_ok=True)
    check(path, acked)  # rebuilt from the log alone


def check(path, acked: set[str]) -> None:
    with tidelog.open(path) as log:
        store = log.event_store("crash")
        texts = set()
        parts: dict[tuple[str, str], list[int]] = defaultdict(list)  # (batch, stream) -> the k's, in log order
        sizes: dict[tuple[str, str], int] = {}
        for e in store.read_all():
            text = e.data.decode()
            assert text not in texts, f"{text} twice"
            texts.add(text)
            batch, stream, rest = text.split(":")
            assert stream == e.stream_id
            k, n = map(int, rest.split("/"))
            parts[(batch, stream)].append(k)
            sizes[(batch, stream)] = n
        for key, ks in parts.items():
            assert ks == list(range(sizes[key])), f"a partial append is visible: {key} {ks}"
        batches = {batch for batch, _ in parts}
        assert acked <= batches, f"acknowledged batches lost: {sorted(acked - batches)[:5]}"
        for stream in store.streams():
            events = store.read(stream)
            assert [e.version for e in events] == list(range(len(events)))
            assert [e.position for e in events] == sorted(e.position for e in events)
            assert all(e.data.decode().split(":")[1] == stream for e in events)
        assert sum(len(store.read(s)) for s in store.streams()) == len(texts) == store.event_count
        assert len(acked) > 10
