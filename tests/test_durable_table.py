"""_core.DurableTable and _core.OfdLock (native/durable_table.h, native/ofd_lock_file.h):
the binding, handles in several threads and processes updating under the lock
with no lost update, a child SIGKILLed mid-put (kill point table.put.mid), typed
errors for bad input, corruption reported with its place."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tidelog import _core
from tidelog.errors import CorruptionError, InvalidArgumentError, LogClosedError, RecordTooLargeError


def test_put_get_delete_items_and_reopen(tmp_path):
    path = str(tmp_path / "groups" / "g")
    t = _core.DurableTable(path)
    with t:
        t.refresh()
        token = t.put([(b"offsets/a/0", b"17"), (b"offsets/a/1", b"4"), (b"state", b"{}")])
        t.put([(b"offsets/a/1", None), (b"never", None)])
        assert t.get(b"offsets/a/0") == b"17"
        assert t.get(b"offsets/a/1") is None
        assert t.items(b"offsets/") == [(b"offsets/a/0", b"17")]
        assert [k for k, _ in t.items()] == [b"offsets/a/0", b"state"]
        assert len(t) == 2
    t.sync(token)
    assert not t.locked
    t.close()
    t.close()  # idempotent
    with pytest.raises(LogClosedError):
        t.get(b"state")
    again = _core.DurableTable(path, create=False)
    assert again.get(b"offsets/a/0") == b"17"
    assert sorted(os.listdir(path)) == ["journal", "lock"]


def test_open_without_create_needs_a_table(tmp_path):
    with pytest.raises(FileNotFoundError):
        _core.DurableTable(str(tmp_path / "missing"), create=False)
    assert not (tmp_path / "missing").exists()


def test_handles_see_each_others_puts_after_refresh(tmp_path):
    a = _core.DurableTable(str(tmp_path / "t"))
    b = _core.DurableTable(str(tmp_path / "t"))
    seen = b.change_counter
    with a:
        a.put([(b"k", b"from a")])
    assert b.change_counter != seen  # lock-free: nothing read but the shared page
    assert b.get(b"k") is None  # b's view is as of its last refresh
    with b:
        b.refresh()
        assert b.get(b"k") == b"from a"
        b.rewrite()
        b.put([(b"k", b"from b")])
    with a:
        a.refresh()
        assert a.get(b"k") == b"from b"
        assert a.generation == b.generation


def test_the_lock_excludes_other_handles_with_a_timeout(tmp_path):
    a = _core.DurableTable(str(tmp_path / "t"))
    b = _core.DurableTable(str(tmp_path / "t"))
    assert a.lock()
    t0 = time.monotonic()
    assert b.lock(timeout=0.1) is False
    assert time.monotonic() - t0 >= 0.09
    assert b.lock(timeout=0) is False
    threading.Timer(0.05, a.unlock).start()
    assert b.lock(timeout=5) is True
    b.unlock()
    with pytest.raises(InvalidArgumentError):
        b.unlock()


def test_bad_input_is_a_typed_error(tmp_path):
    t = _core.DurableTable(str(tmp_path / "t"))
    with pytest.raises(InvalidArgumentError):
        t.put([(b"k", b"v")])  # without the lock
    with t:
        with pytest.raises(TypeError):
            t.put([("k", b"v")])
        with pytest.raises(TypeError):
            t.put([(b"k", "v")])
        with pytest.raises(TypeError):
            t.get("k")
        with pytest.raises(TypeError):
            t.items("k")
        with pytest.raises((TypeError, ValueError)):
            t.put([(b"k",)])
        with pytest.raises(InvalidArgumentError):
            t.put([(b"", b"v")])
        with pytest.raises(RecordTooLargeError):
            t.put([(b"k" * 4097, b"v")])
        t.put([(b"k" * 4096, b"v")])
        with pytest.raises(RecordTooLargeError):
            t.put([(b"k", b"v" * (16 * 1024 * 1024 + 1))])
        with pytest.raises(InvalidArgumentError):
            t.lock()  # held already
        assert len(t) == 1  # nothing of a refused put applied
    with pytest.raises((TypeError, ValueError)):
        t.sync("token")


def test_damage_a_later_record_vouches_for_is_a_corruption_error(tmp_path):
    path = str(tmp_path / "t")
    t = _core.DurableTable(path)
    with t:
        t.sync(t.put([(b"a", b"1")]))
        second = t.journal_bytes
        t.sync(t.put([(b"b", b"2")]))
        t.put([(b"c", b"3")])
    t.close()
    journal = os.path.join(path, "journal")
    size = os.path.getsize(journal)
    with open(journal, "r+b") as f:
        f.seek(second + 40)
        byte = f.read(1)
        f.seek(second + 40)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(CorruptionError) as e:
        _core.DurableTable(path, create=False)
    assert e.value.path == journal and e.value.position == second
    assert os.path.getsize(journal) == size  # nothing cut


COUNTER_CHILD = textwrap.dedent(r"""
    import sys
    from tidelog import _core
    path, name, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    t = _core.DurableTable(path)
    for i in range(n):
        with t:
            t.refresh()
            total = int(t.get(b"total") or b"0")
            mine = int(t.get(name) or b"0")
            token = t.put([(b"total", str(total + 1).encode()), (name, str(mine + 1).encode())])
        if i % 100 == 0:
            t.sync(token)
""")


def test_processes_and_threads_updating_under_the_lock_lose_no_update(tmp_path):
    path = str(tmp_path / "t")
    n = 1000
    children = [subprocess.Popen([sys.executable, "-c", COUNTER_CHILD, path, f"p{i}", str(n)]) for i in range(2)]

    def thread_body(name):
        t = _core.DurableTable(path)
        for _ in range(n):
            with t:
                t.refresh()
                total = int(t.get(b"total") or b"0")
                mine = int(t.get(name) or b"0")
                t.put([(b"total", str(total + 1).encode()), (name, str(mine + 1).encode())])
        t.close()

    threads = [threading.Thread(target=thread_body, args=(b"t%d" % i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for c in children:
        assert c.wait(timeout=120) == 0
    t = _core.DurableTable(path)
    with t:
        t.refresh()
        assert t.get(b"total") == str(4 * n).encode()
        assert {k: int(v) for k, v in t.items(b"p") + t.items(b"t") if k != b"total"} == {
            b"p0": n, b"p1": n, b"t0": n, b"t1": n}


KILLED_CHILD = textwrap.dedent(r"""
    import sys
    from tidelog import _core
    t = _core.DurableTable(sys.argv[1])
    with t:
        t.put([(b"k", b"new"), (b"other", b"new")])
    sys.exit(3)
""")


@pytest.mark.parametrize("point,expect", [("table.put.mid", b"old"), ("table.put.written", b"new")])
def test_a_child_killed_mid_put_leaves_the_old_or_the_new_value(tmp_path, point, expect):
    path = str(tmp_path / "t")
    survivor = _core.DurableTable(path)
    with survivor:
        survivor.sync(survivor.put([(b"k", b"old"), (b"other", b"old")]))
    seen = survivor.change_counter
    env = dict(os.environ, TIDELOG_TEST_KILL_AT=point)
    r = subprocess.run([sys.executable, "-c", KILLED_CHILD, path], env=env, timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert survivor.change_counter != seen  # the put announced itself before writing
    assert survivor.lock(timeout=10)  # the kernel released the dead child's lock
    survivor.refresh()
    assert survivor.get(b"k") == expect and survivor.get(b"other") == expect  # all or nothing
    survivor.put([(b"after", b"kill")])
    survivor.unlock()
    fresh = _core.DurableTable(path, create=False)
    assert fresh.items() == [(b"after", b"kill"), (b"k", expect), (b"other", expect)]


HOLDER_CHILD = textwrap.dedent(r"""
    import sys, time
    from tidelog import _core
    l = _core.OfdLock(sys.argv[1])
    assert l.lock(int(sys.argv[2]))
    print("locked", flush=True)
    time.sleep(60)
""")


def test_ofd_lock_bytes_exclude_other_opens_and_die_with_their_holder(tmp_path):
    path = str(tmp_path / "members")
    a = _core.OfdLock(path)
    b = _core.OfdLock(path)
    assert os.path.exists(path) and a.fileno() >= 0
    assert a.lock(3)
    assert not b.lock(3)
    assert b.lock(4)
    assert b.locked_elsewhere(3) and not a.locked_elsewhere(3)
    assert a.lock(5, exclusive=False) and b.lock(5, exclusive=False)  # shared
    a.unlock(3)
    assert not b.locked_elsewhere(3)
    a.close()
    assert not b.locked_elsewhere(5)
    with pytest.raises(LogClosedError):
        a.lock(1)
    child = subprocess.Popen([sys.executable, "-c", HOLDER_CHILD, path, "7"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert b.locked_elsewhere(7)
        assert not b.lock(7)
        child.kill()
        child.wait(timeout=10)
        assert not b.locked_elsewhere(7)
        assert b.lock(7, wait=True)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_a_signal_ends_a_blocking_lock_wait(tmp_path):
    a = _core.DurableTable(str(tmp_path / "t"))
    b = _core.DurableTable(str(tmp_path / "t"))
    a.lock()
    main = threading.get_ident()
    threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)).start()
    release = threading.Timer(10, a.unlock)  # a hang fails the test instead of stalling the suite
    release.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            b.lock()
    finally:
        release.cancel()
    assert not b.locked
    a.unlock()
    assert b.lock(timeout=5)
