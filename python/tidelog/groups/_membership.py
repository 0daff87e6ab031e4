"""The group's coordination state and the steps that change it, all run under
the group's lock (``GroupStore.lock``), by members and by the watcher alike.

State (JSON, ``b"state"`` in the group's table)::

    {"version": 1, "generation": int, "strategy": str | None,
     "members": {member_id: {"slot", "tag", "pid", "host", "client_id",
                             "instance_id", "topics", "strategy", "joined_ns",
                             "max_poll_interval_ms", "session_timeout_ms",
                             "departed_ns", "target": [[topic, partition], ...]}},
     "owners": {"<partition>/<topic>": [member_id, generation]},
     "partitions": {topic: count at the last assignment},
     "gone": {member_id: reason}}   # the last few members removed, and why

Two rules make ownership exclusive: a member takes a partition only when it
has no owner (or its owner is no longer a live member), and a member gives a
partition up (after its ``on_revoke``) before anyone else can take it. A
member that died, or was evicted, loses its partitions in the same locked step
that removes it. Targets come from the assignor; ownership follows targets as
members release and acquire.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from ..errors import LogClosedError
from ._assignors import EAGER, MemberSpec, assign
from ._store import MAX_MEMBERS, GroupStore, owner_key, parse_owner_key

GONE_KEPT = 64  # removal notes kept in the state, for describe_group and for the removed member itself


def now_ns() -> int:
    return time.monotonic_ns()


def _note_gone(state: dict[str, Any], member_id: str, reason: str) -> None:
    gone = state.setdefault("gone", {})
    gone[member_id] = reason
    while len(gone) > GONE_KEPT:
        del gone[next(iter(gone))]


def remove_member(state: dict[str, Any], member_id: str, reason: str) -> None:
    """Removes the member and frees what it owned."""
    state["members"].pop(member_id, None)
    owners = state["owners"]
    for key in [k for k, entry in owners.items() if entry[0] == member_id]:
        del owners[key]
    _note_gone(state, member_id, reason)


def free_owned(state: dict[str, Any], member_id: str) -> None:
    owners = state["owners"]
    for key in [k for k, entry in owners.items() if entry[0] == member_id]:
        del owners[key]


def sweep(store: GroupStore, state: dict[str, Any], now: int, me: str | None = None) -> tuple[bool, bool]:
    """Removes members whose process died (their liveness lock is free), that
    stopped polling for their ``max_poll_interval_ms``, or that are static,
    departed, and past their ``session_timeout_ms``. A static member that
    departs keeps its place (and targets) until then; its partitions are freed
    at once, for its successor. Returns (membership changed: reassign, state changed: save)."""
    membership = changed = False
    for mid, m in list(state["members"].items()):
        if mid == me:
            continue
        if m.get("departed_ns") is not None:
            if now - m["departed_ns"] > m["session_timeout_ms"] * 1_000_000:
                remove_member(state, mid, "session timeout (static member did not return)")
                membership = changed = True
            continue
        if not store.alive(m["slot"]):
            if m.get("instance_id"):
                m["departed_ns"] = now
                free_owned(state, mid)
                changed = True
            else:
                remove_member(state, mid, "died")
                membership = changed = True
            continue
        tag, last, waiting = store.last_poll(m["slot"])
        if tag == m["tag"] and not waiting and now - last > m["max_poll_interval_ms"] * 1_000_000:
            remove_member(state, mid, f"evicted: no poll for {m['max_poll_interval_ms']} ms (max_poll_interval_ms)")
            membership = changed = True
    return membership, changed


def partition_counts(log, topics, known: dict[str, int] | None = None) -> dict[str, int]:
    """Partitions per topic (0: no such topic yet; assigned once it exists).
    On a closed log, the counts ``known`` from the state (a member leaving
    after its log closed still hands its partitions over)."""
    out = {}
    for name in sorted(topics):
        try:
            out[name] = log.topic(name).partitions
        except KeyError:  # UnknownTopicError
            out[name] = 0
        except LogClosedError:
            out[name] = (known or {}).get(name, 0)
    return out


def subscribed_topics(state: dict[str, Any]) -> set[str]:
    return {t for m in state["members"].values() for t in m["topics"]}


def reassign(state: dict[str, Any], counts: dict[str, int]) -> None:
    """New targets for every member (departed static members keep their
    place); the generation moves on."""
    members = state["members"]
    specs = [MemberSpec(mid, frozenset(m["topics"]), m.get("instance_id")) for mid, m in members.items()]
    previous = {mid: [tuple(tp) for tp in m["target"]] for mid, m in members.items()}
    strategy = state["strategy"] or "range"
    targets = assign(strategy, specs, {t: n for t, n in counts.items() if n > 0}, previous) if specs else {}
    for mid, m in members.items():
        m["target"] = [list(tp) for tp in targets.get(mid, [])]
    state["partitions"] = counts
    state["generation"] += 1
    # Owners of partitions that no longer exist are dropped.
    live = {(t, p) for t, n in counts.items() for p in range(n)}
    for key in [k for k in state["owners"] if parse_owner_key(k) not in live]:
        del state["owners"][key]


def free_slot(store: GroupStore, state: dict[str, Any]) -> int:
    used = {m["slot"] for m in state["members"].values()}
    for slot in range(MAX_MEMBERS):
        if slot not in used and not store.alive(slot):
            return slot
    raise RuntimeError(f"a consumer group holds at most {MAX_MEMBERS} members")


def new_member(member_id: str, slot: int, tag: int, topics, strategy: str, instance_id: str | None,
               client_id: str, max_poll_interval_ms: int, session_timeout_ms: int) -> dict[str, Any]:
    return {"slot": slot, "tag": tag, "pid": os.getpid(), "host": socket.gethostname(), "client_id": client_id,
            "instance_id": instance_id, "topics": sorted(topics), "strategy": strategy, "joined_ns": now_ns(),
            "max_poll_interval_ms": int(max_poll_interval_ms), "session_timeout_ms": int(session_timeout_ms),
            "departed_ns": None, "target": []}


def owner_of(state: dict[str, Any], topic: str, partition: int) -> str | None:
    entry = state["owners"].get(owner_key(topic, partition))
    return None if entry is None else entry[0]


def is_eager(state: dict[str, Any]) -> bool:
    return (state["strategy"] or "range") in EAGER


def owned_by(state: dict[str, Any], member_id: str) -> list[tuple[str, int]]:
    return sorted(parse_owner_key(k) for k, entry in state["owners"].items() if entry[0] == member_id)


def settle(store: GroupStore, log, state: dict[str, Any], me: str | None = None,
           counts: Callable[[set], dict[str, int]] | None = None) -> bool:
    """sweep + reassign when membership or the topics' partition counts changed. Returns whether to save."""
    membership, changed = sweep(store, state, now_ns(), me)
    topics = subscribed_topics(state)
    current = partition_counts(log, topics, state["partitions"]) if counts is None else counts(topics)
    if membership or current != state["partitions"]:
        reassign(state, current)
        changed = True
    return changed
