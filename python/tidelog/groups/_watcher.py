"""The process's group watcher: one daemon thread that notices, within
milliseconds, when a member of a group this process takes part in dies, and
removes it so that its partitions move.

Death is read from the kernel twice over: each member holds an OFD lock on its
slot byte of the group's members page (released by the kernel when its
process dies: the truth), and the watcher waits on a pidfd of every other
process with members (it becomes readable when that process exits: the
prompt). Waking on a pidfd, or every quarter of the smallest
``max_poll_interval_ms`` (to evict members that stopped polling, and to end
static members' ``session_timeout_ms``), it sweeps each group under the group
lock (``_membership.settle``) and, when something changed, saves the state and
wakes the log's waiters, so the survivors take the freed partitions.
Consumers dropped without ``close()`` poke it too.

Concurrency: ``register``/``unregister``/``poke`` may be called from any
thread; the sweep runs on the watcher thread only, with its own GroupStore per
group (its own descriptors, so its lock excludes the consumers' as another
process's would).
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref

from ..errors import LogClosedError
from . import _membership as ms
from ._store import GroupStore

logger = logging.getLogger("tidelog")

IDLE_TIMEOUT_S = 60.0


class _Watched:
    __slots__ = ("folder", "log", "users", "store", "pids", "deadline_s")

    def __init__(self, folder: str, log):
        self.folder = folder
        self.log = weakref.ref(log)
        self.users = 0
        self.store: GroupStore | None = None
        self.pids: set[int] = set()
        self.deadline_s = IDLE_TIMEOUT_S


class Watcher:
    def __init__(self):
        self._mu = threading.Lock()
        self._groups: dict[str, _Watched] = {}
        self._thread: threading.Thread | None = None
        self._pipe_r = self._pipe_w = -1
        self._pid = -1

    def register(self, folder: str, log) -> None:
        with self._mu:
            w = self._groups.get(folder)
            if w is None:
                w = self._groups[folder] = _Watched(folder, log)
            w.users += 1
            self._start_locked()
        self.poke()

    def unregister(self, folder: str, poke: bool = False) -> None:
        with self._mu:
            w = self._groups.get(folder)
            if w is not None:
                w.users -= 1
        if poke or w is not None:
            self.poke()

    def poke(self) -> None:
        if self._pipe_w >= 0 and self._pid == os.getpid():
            try:
                os.write(self._pipe_w, b"x")
            except (BlockingIOError, OSError):
                pass  # the pipe is full: the watcher wakes anyway

    def _start_locked(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        # (After a fork the child starts its own watcher: threads do not survive fork.)
        self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="tidelog-group-watcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------- watcher thread
    def _run(self) -> None:
        pidfds: dict[int, int] = {}  # pid -> pidfd
        poller = select.poll()
        poller.register(self._pipe_r, select.POLLIN)
        timeout_s = 0.0
        while True:
            events = poller.poll(timeout_s * 1000)
            died = False
            for fd, _ in events:
                if fd == self._pipe_r:
                    try:
                        while os.read(self._pipe_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    died = True
            with self._mu:
                groups = list(self._groups.values())
                for w in [w for w in groups if w.users <= 0]:
                    del self._groups[w.folder]
            wanted: set[int] = set()
            timeout_s = IDLE_TIMEOUT_S
            for w in groups:
                if w.users <= 0 and w.store is not None:
                    self._sweep(w)  # a member dropped without close: remove it now
                    w.store.close()
                    w.store = None
                    continue
                if w.users <= 0:
                    continue
                self._sweep(w)
                wanted |= w.pids
                timeout_s = min(timeout_s, w.deadline_s)
            for pid in list(pidfds):
                if pid not in wanted:
                    poller.unregister(pidfds[pid])
                    os.close(pidfds.pop(pid))
            for pid in wanted - set(pidfds):
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    timeout_s = 0.0  # already gone: sweep again at once
                    continue
                except OSError:
                    continue
                pidfds[pid] = fd
                poller.register(fd, select.POLLIN)
            if died:
                pass

    def _sweep(self, w: _Watched) -> None:
        log = w.log()
        if log is None or getattr(log, "_closed", False):
            return
        try:
            if w.store is None:
                w.store = GroupStore(w.folder, create=False)
            store = w.store
            with store:
                state = store.state()
                if ms.settle(store, log, state):
                    store.save_state(state)
                    changed = True
                else:
                    changed = False
            if changed:
                log.wake_waiters()
            me = os.getpid()
            w.pids = {m["pid"] for m in state["members"].values() if m["pid"] != me and m.get("departed_ns") is None}
            intervals = [m["max_poll_interval_ms"] for m in state["members"].values()]
            deadline = IDLE_TIMEOUT_S
            if intervals:
                deadline = min(deadline, min(intervals) / 4000)
            now = ms.now_ns()
            for m in state["members"].values():
                if m.get("departed_ns") is not None:
                    left = (m["departed_ns"] + m["session_timeout_ms"] * 1_000_000 - now) / 1e9
                    deadline = min(deadline, max(left, 0.001))
            w.deadline_s = max(deadline, 0.001)
        except FileNotFoundError:
            w.pids = set()  # the group was deleted
        except LogClosedError:
            return  # the log closed while this sweep ran (its last consumer closing): nothing left to sweep for it
        except Exception as e:  # noqa: BLE001 - the watcher must survive anything one group does
            logger.warning("tidelog group watcher: sweeping %s failed: %s", w.folder, e)
            w.deadline_s = 1.0


    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's registrations are the parent's (its
        consumers are unusable here); the child's own consumers start anew."""
        self._mu = threading.Lock()
        self._groups = {}
        self._thread = None
        for fd in (self._pipe_r, self._pipe_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._pipe_r = self._pipe_w = -1


WATCHER = Watcher()
os.register_at_fork(after_in_child=WATCHER._reset_after_fork)
