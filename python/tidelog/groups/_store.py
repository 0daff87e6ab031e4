"""One consumer group's files: the durable table (committed offsets, and the
group's coordination state) and the members page (liveness locks and
heartbeats).

``<log>/groups/<group>/table/``  a ``_core.DurableTable``: every read and
    write of the group happens under its lock, so a fencing check and the
    write it guards are one atomic step across threads and processes.
    Keys: ``b"state"`` (the coordination state, JSON, written without
    fdatasync: it describes live members, which a reboot ends anyway) and
    ``b"o/<topic>/<partition>"`` (a committed offset, JSON, fdatasync'd before
    ``commit()`` returns).
``<log>/groups/<group>/members``  a small shared page (docs/FORMAT.md,
    "Consumer groups"): byte 8 holds ``state_seq``, bumped after every state
    change, which members read on every fetch without a lock or system call;
    from byte 4096, 32 bytes per member slot: the member's tag, the
    CLOCK_MONOTONIC time of its last poll, and whether it is waiting inside
    a poll. Each live member holds an OFD lock on byte ``LIVENESS_BYTE0 +
    slot`` of this file: the kernel releases it when the member's process
    dies, which is how a crash is detected.

Concurrency: a GroupStore is used by one thread at a time (a consumer, or the
watcher thread, each has its own); the kernel's locks do the rest.
"""
from __future__ import annotations

import json
import mmap
import os
import time
import weakref
from typing import Any

import numpy as np

from .. import _core
from ..errors import CorruptionError

MEMBERS_MAGIC = 0x4D474C54  # "TLGM"
MEMBERS_VERSION = 1
MAX_MEMBERS = 1024
SLOT_BYTES = 32
SLOTS_AT = 4096
MEMBERS_FILE_BYTES = SLOTS_AT + MAX_MEMBERS * SLOT_BYTES
LIVENESS_BYTE0 = 1 << 20  # OFD lock bytes (no data there: locks may lie past the end)
STATE_VERSION = 1
STATE_KEY = b"state"
OFFSET_PREFIX = b"o/"


def offset_key(topic: str, partition: int) -> bytes:
    return b"%s%s/%d" % (OFFSET_PREFIX, topic.encode(), partition)


def parse_offset_key(key: bytes) -> tuple[str, int]:
    topic, _, p = key[len(OFFSET_PREFIX):].rpartition(b"/")
    return topic.decode(), int(p)


def empty_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "generation": 0, "strategy": None, "members": {}, "owners": {},
            "partitions": {}}


def owner_key(topic: str, partition: int) -> str:
    return f"{partition}/{topic}"


def parse_owner_key(key: str) -> tuple[str, int]:
    p, _, topic = key.partition("/")
    return topic, int(p)


_OPEN_STORES: "weakref.WeakSet[GroupStore]" = weakref.WeakSet()


def _forget_after_fork() -> None:
    """A forked child must not keep its parent's members alive: the child's
    copies of the descriptors share the parent's open file descriptions, so
    they would hold the parent's liveness and group locks after the parent
    died. The child closes them (its copies of the parent's consumers are unusable)."""
    for store in list(_OPEN_STORES):
        store._forget()


os.register_at_fork(after_in_child=_forget_after_fork)


class GroupStore:
    """The files of one group, opened by one user (a consumer or the watcher)."""

    def __init__(self, folder: str, create: bool):
        self.folder = folder
        if create:
            os.makedirs(folder, exist_ok=True)
        elif not os.path.isdir(os.path.join(folder, "table")):
            raise FileNotFoundError(folder)
        self.table = _core.DurableTable(os.path.join(folder, "table"), create)
        path = os.path.join(folder, "members")
        self.liveness = _core.OfdLock(path)  # this user's descriptor: its own locks, and probes of others'
        # The mapping gets its own open file description: mmap keeps a duplicate
        # of the descriptor it maps, which must not carry the liveness locks
        # (a duplicate kept alive, say by a forked child, would keep them held).
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size < MEMBERS_FILE_BYTES:
                os.ftruncate(fd, MEMBERS_FILE_BYTES)  # zeros: no member yet, state_seq 0
            self._map = mmap.mmap(fd, MEMBERS_FILE_BYTES)
        finally:
            os.close(fd)
        # int64 words: [0] magic|version, [1] state_seq; slots: [tag, last_poll_ns, waiting, spare]
        self.words = np.frombuffer(self._map, dtype=np.int64)
        self.words[0] = MEMBERS_MAGIC | (MEMBERS_VERSION << 32)
        self._state: dict[str, Any] | None = None
        self._state_raw: bytes | None = None
        _OPEN_STORES.add(self)

    # ----------------------------------------------------------- lock-free
    @property
    def state_seq(self) -> int:
        return int(self.words[1])

    def slot_words(self, slot: int) -> int:
        return (SLOTS_AT + slot * SLOT_BYTES) // 8

    def heartbeat(self, slot: int, waiting: bool) -> None:
        at = (SLOTS_AT + slot * SLOT_BYTES) // 8
        self.words[at + 1] = time.monotonic_ns()
        self.words[at + 2] = 1 if waiting else 0

    def last_poll(self, slot: int) -> tuple[int, int, bool]:
        at = (SLOTS_AT + slot * SLOT_BYTES) // 8
        return int(self.words[at]), int(self.words[at + 1]), bool(self.words[at + 2])

    def claim_slot_words(self, slot: int, tag: int) -> None:
        at = (SLOTS_AT + slot * SLOT_BYTES) // 8
        self.words[at] = tag
        self.words[at + 1] = time.monotonic_ns()
        self.words[at + 2] = 0

    def alive(self, slot: int) -> bool:
        """Whether some descriptor (a live member: a dead one's lock is gone) holds the slot's liveness lock."""
        return self.liveness.locked_elsewhere(LIVENESS_BYTE0 + slot)

    # ------------------------------------------------------- under the lock
    def lock(self, timeout: float | None = None) -> bool:
        if not self.table.lock(timeout):
            return False
        try:
            self.table.refresh()
        except BaseException:
            self.table.unlock()
            raise
        return True

    def unlock(self) -> None:
        self.table.unlock()

    def __enter__(self) -> "GroupStore":
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def state(self) -> dict[str, Any]:
        """The coordination state (a fresh copy the caller may change)."""
        return _copy(self.state_view())

    def state_view(self) -> dict[str, Any]:
        """The coordination state, read-only (shared with this store's cache)."""
        raw = self.table.get(STATE_KEY)
        if raw is None:
            return empty_state()
        if raw != self._state_raw:
            self._state = parse_state(raw, self.folder)
            self._state_raw = raw
        return self._state

    def save_state(self, state: dict[str, Any]) -> None:
        raw = json.dumps(state, separators=(",", ":")).encode()
        self.table.put([(STATE_KEY, raw)])
        self._state, self._state_raw = _copy(state), raw
        self.words[1] = self.state_seq + 1

    def committed(self, topic: str, partition: int) -> dict[str, Any] | None:
        raw = self.table.get(offset_key(topic, partition))
        return None if raw is None else parse_offset(raw, self.folder)

    def all_committed(self) -> dict[tuple[str, int], dict[str, Any]]:
        out = {}
        for k, v in self.table.items(OFFSET_PREFIX):
            try:
                key = parse_offset_key(k)
            except (UnicodeDecodeError, ValueError):
                raise CorruptionError(f"consumer group {self.folder}: a committed-offset key {k!r} is not "
                                      f"o/<topic>/<partition>") from None
            out[key] = parse_offset(v, self.folder)
        return out

    def put_offsets(self, entries: dict[tuple[str, int], dict[str, Any] | None]):
        """One atomic record; returns the sync token (``table.sync`` it, without the lock, to make it durable)."""
        changes = [(offset_key(t, p), None if v is None else encode_offset(v)) for (t, p), v in entries.items()]
        return self.table.put(changes)

    def sync(self, token) -> None:
        self.table.sync(token)

    def _forget(self) -> None:
        self.words = None
        self.liveness.close()
        self.table.close_after_fork()

    def close(self) -> None:
        _OPEN_STORES.discard(self)
        self.words = None
        try:
            self._map.close()
        except BufferError:
            pass  # a numpy view still alive elsewhere: the mapping goes with it
        self.liveness.close()
        self.table.close()


def _bad(folder: str, what: str) -> CorruptionError:
    return CorruptionError(f"consumer group {folder}: {what} (FORMAT.md §12); the group's table holds something "
                           f"this version does not understand")


_MEMBER_FIELDS = {"slot": int, "tag": int, "pid": int, "topics": list, "max_poll_interval_ms": int,
                  "session_timeout_ms": int, "target": list}


def parse_state(raw: bytes, folder: str) -> dict[str, Any]:
    """The coordination state from its JSON, checked field by field: anything
    else is a typed CorruptionError, never a KeyError deep inside a poll."""
    try:
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad(folder, "the state is not JSON") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise _bad(folder, f"the state is not a version-{STATE_VERSION} state")
    if not isinstance(state.get("generation"), int) or not isinstance(state.get("members"), dict) \
            or not isinstance(state.get("owners"), dict) or not isinstance(state.get("partitions"), dict):
        raise _bad(folder, "the state lacks generation, members, owners or partitions")
    for mid, m in state["members"].items():
        if not isinstance(m, dict) or any(not isinstance(m.get(f), t) for f, t in _MEMBER_FIELDS.items()):
            raise _bad(folder, f"member {mid!r} of the state is malformed")
        if not 0 <= m["slot"] < MAX_MEMBERS or not all(
                isinstance(tp, list) and len(tp) == 2 and isinstance(tp[0], str) and isinstance(tp[1], int)
                for tp in m["target"]):
            raise _bad(folder, f"member {mid!r} of the state is malformed")
    for key, entry in state["owners"].items():
        if not isinstance(key, str) or "/" not in key or not key.partition("/")[0].isdigit() \
                or not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str):
            raise _bad(folder, f"owner entry {key!r} of the state is malformed")
    if not all(isinstance(v, int) for v in state["partitions"].values()) or \
            not all(isinstance(v, int) for v in state.get("epochs", {}).values()):
        raise _bad(folder, "the state's partition counts or epochs are malformed")
    return state


_quote = json.encoder.encode_basestring_ascii  # the C-accelerated string quoting json.dumps uses
_EMPTY = _quote("").encode()


def encode_offset(v: dict[str, Any]) -> bytes:
    """A committed offset as JSON (FORMAT.md §12)."""
    return (encode_offset_head(v["offset"], v["metadata"], v["leader_epoch"], v["generation"])
            + f',"member":{_quote(v["member"])},"time_ns":{int(v["time_ns"])}}}'.encode())


def encode_offset_head(offset: int, metadata: str | None, leader_epoch: int | None, generation: int) -> bytes:
    """The first fields of a committed offset's JSON, built directly (commits
    sit on a latency path; json.dumps builds an encoder per call); the caller
    appends ``,"member":...,"time_ns":...}``."""
    return b'{"offset":%d,"metadata":%s,"leader_epoch":%s,"generation":%d' % (
        offset, _quote(metadata).encode() if metadata else _EMPTY, b"null" if leader_epoch is None
        else b"%d" % leader_epoch, generation)


def parse_offset(raw: bytes, folder: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict) or not isinstance(value.get("offset"), int) or value["offset"] < 0 \
            or not isinstance(value.get("metadata", ""), str):
        raise _bad(folder, f"a committed offset {raw[:64]!r} is malformed")
    value.setdefault("metadata", "")
    value.setdefault("leader_epoch", None)
    return value


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    out["members"] = {m: dict(v) for m, v in state["members"].items()}
    for key in ("owners", "partitions", "epochs", "gone"):
        if key in state:
            out[key] = dict(state[key])
    return out
