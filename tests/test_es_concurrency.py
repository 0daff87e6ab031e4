"""Event-store concurrency across threads and processes: 8 threads in each of
2 processes append to the same 10 streams with expected versions. Afterwards
every stream's versions are gapless, every acknowledged append is there
exactly once at the version it was given, and every refused one wrote nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import tidelog

WORKER = r"""
import json, random, sys, threading, uuid
import tidelog
from tidelog.es import NewEvent

path, out, ops, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
results = []
lock = threading.Lock()

def work(t):
    rnd = random.Random(seed * 100 + t)
    mine = []
    for i in range(ops):
        stream = f"s-{rnd.randrange(10)}"
        v = store.stream_version(stream)
        n = rnd.choice((1, 1, 2, 3))
        events = [NewEvent("E", f"{seed}-{t}-{i}-{k}".encode()) for k in range(n)]
        try:
            r = store.append(stream, events, expected_version=v)
            mine.append({"ok": True, "stream": stream, "version": r.version, "positions": r.positions,
                         "ids": [str(e.event_id) for e in events]})
        except tidelog.WrongExpectedVersionError as e:
            assert e.actual_version != v or e.actual_version == -1
            mine.append({"ok": False, "stream": stream, "ids": [str(e.event_id) for e in events]})
    with lock:
        results.extend(mine)

with tidelog.open(path) as log:
    store = log.event_store("shared")
    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads: th.start()
    for th in threads: th.join()
with open(out, "w") as f:
    json.dump(results, f)
"""


def test_eight_threads_in_two_processes_on_ten_streams(tmp_path):
    path = tmp_path / "log"
    tidelog.open(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(tmp_path / f"out{p}.json"), "60", str(p)])
             for p in range(2)]
    for p in procs:
        assert p.wait(300) == 0
    results = [r for p in range(2) for r in json.loads((tmp_path / f"out{p}.json").read_text())]
    ok = [r for r in results if r["ok"]]
    refused = [r for r in results if not r["ok"]]
    assert len(results) == 2 * 8 * 60 and ok and refused  # both outcomes happened
    with tidelog.open(path) as log:
        store = log.event_store("shared")
        by_id = {}
        for stream in store.streams():
            events = store.read(stream)
            assert [e.version for e in events] == list(range(len(events))), stream  # gapless
            for e in events:
                by_id[str(e.event_id)] = (stream, e.version, e.position)
        all_ids = Counter(str(e.event_id) for e in store.read_all())
        assert all(c == 1 for c in all_ids.values())  # nothing twice
        for r in ok:
            first = r["version"] - len(r["ids"]) + 1
            for k, eid in enumerate(r["ids"]):
                assert by_id[eid] == (r["stream"], first + k, r["positions"][k])
        for r in refused:
            assert not any(eid in all_ids for eid in r["ids"])
        assert sum(len(r["ids"]) for r in ok) == len(all_ids) == store.event_count
