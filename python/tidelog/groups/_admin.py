"""Group administration: list, describe, delete, reset offsets (Kafka's
``kafka-consumer-groups.sh`` and AdminClient calls). Each call takes the
group's lock, sweeps dead members first, and refuses to delete or reset a
group that still has live members (Kafka's NON_EMPTY_GROUP)."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .._arrow import to_ns
from .._types import OffsetAndMetadata, TopicPartition, commit_offsets
from ..errors import CorruptionError, GroupNotEmptyError, InvalidArgumentError, UnknownGroupError
from . import _membership as ms
from ._names import group_folder, groups_root, validate_group_name
from ._store import MAX_MEMBERS, GroupStore, empty_state


@dataclass(frozen=True)
class MemberDescription:
    """One member (Kafka's MemberDescription, plus the process id)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    pid: int
    assignment: list[TopicPartition]  # its target
    owned: list[TopicPartition]  # what it holds now (differs from the target during a rebalance)
    departed: bool  # a static member gone, its place kept for session_timeout_ms


@dataclass(frozen=True)
class GroupDescription:
    """A group as ``describe_group`` sees it (Kafka's ConsumerGroupDescription
    with the committed offsets and lag of ``list_consumer_group_offsets``)."""

    group_id: str
    state: str  # "Empty" | "Stable" | "CompletingRebalance"
    partition_assignor: str | None
    generation: int
    members: list[MemberDescription]
    offsets: dict[tuple[str, int], OffsetAndMetadata] = field(default_factory=dict)
    lag: dict[tuple[str, int], int | None] = field(default_factory=dict)


def list_groups(log) -> list[str]:
    root = groups_root(log)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isdir(os.path.join(root, n, "table")))


def _open(log, name: str) -> GroupStore:
    folder = group_folder(log, validate_group_name(name))
    try:
        return GroupStore(folder, create=False)
    except FileNotFoundError:
        raise UnknownGroupError(f"no consumer group {name!r} in {log.path}") from None


def _settled_state(store: GroupStore, log) -> dict[str, Any]:
    state = store.state()
    if ms.settle(store, log, state):
        store.save_state(state)
        log.wake_waiters()
    return state


def describe_group(log, name: str) -> GroupDescription:
    store = _open(log, name)
    try:
        with store:
            state = _settled_state(store, log)
            committed = store.all_committed()
    finally:
        store.close()
    members = []
    stable = True
    for mid, m in sorted(state["members"].items(), key=lambda kv: kv[1]["joined_ns"]):
        target = sorted(tuple(tp) for tp in m["target"])
        owned = ms.owned_by(state, mid)
        stable = stable and (target == owned or m.get("departed_ns") is not None)
        members.append(MemberDescription(mid, m.get("instance_id"), m["client_id"], m["host"], m["pid"],
                                         [TopicPartition(t, p) for t, p in target],
                                         [TopicPartition(t, p) for t, p in owned], m.get("departed_ns") is not None))
    offsets = {key: OffsetAndMetadata(c["offset"], c["metadata"], c["leader_epoch"]) for key, c in committed.items()}
    lag: dict[tuple[str, int], int | None] = {}
    for (t, p), om in offsets.items():
        try:
            lag[(t, p)] = max(0, log.topic(t).partition(p).end_offset - om.offset)
        except (KeyError, IndexError, ValueError):
            lag[(t, p)] = None  # the topic or partition is gone
    state_name = "Empty" if not members else "Stable" if stable else "CompletingRebalance"
    return GroupDescription(name, state_name, state["strategy"], state["generation"], members, offsets, lag)


def _refuse_if_active(state: dict[str, Any], name: str, what: str) -> None:
    live = [mid for mid, m in state["members"].items() if m.get("departed_ns") is None]
    if live:
        raise GroupNotEmptyError(f"cannot {what} consumer group {name!r}: it has {len(live)} live member(s) "
                                 f"({', '.join(live[:4])}{', ...' if len(live) > 4 else ''}); close them first",
                                 live)


def delete_group(log, name: str) -> None:
    """Deletes the group and its committed offsets. Refused while it has live members."""
    log._check_writable()
    store = _open(log, name)
    folder = store.folder
    try:
        with store:
            try:
                state = _settled_state(store, log)
            except CorruptionError:
                # A state this version cannot read: the group can still be deleted, if no member is alive.
                live = [slot for slot in range(MAX_MEMBERS) if store.alive(slot)]
                if live:
                    raise GroupNotEmptyError(f"cannot delete consumer group {name!r}: its state is unreadable "
                                             f"and {len(live)} member slot(s) are held by live processes") from None
                state = empty_state()
            _refuse_if_active(state, name, "delete")
            state["deleted"] = True  # a consumer that opened the folder before the rename joins a new one
            store.save_state(state)
            trash = os.path.join(log.path, "trash")
            os.makedirs(trash, exist_ok=True)
            os.rename(folder, os.path.join(trash, f"group-{name}-{uuid.uuid4().hex}"))
    finally:
        store.close()
    from .._log import _fsync_dir

    _fsync_dir(os.path.dirname(folder))
    for entry in os.listdir(os.path.join(log.path, "trash")):
        if entry.startswith(f"group-{name}-"):
            shutil.rmtree(os.path.join(log.path, "trash", entry), ignore_errors=True)


def reset_group_offsets(log, name: str, to: Any, topics=None) -> dict[tuple[str, int], int]:
    """Sets the group's committed offsets, durably: ``to`` = "earliest",
    "latest", a timestamp (ns, datetime, ...: the first offset at or after
    it) for every partition of ``topics`` (default: the topics the group has
    offsets for or subscribes to), or a dict {(topic, partition): offset}.
    Refused while the group has live members. Returns the offsets set."""
    log._check_writable()
    store = _open(log, name)
    try:
        with store:
            state = _settled_state(store, log)
            _refuse_if_active(state, name, "reset the offsets of")
            if isinstance(to, dict):
                wanted = {key: om.offset for key, om in commit_offsets(to, "reset_group_offsets(to=...)").items()}
                for (t, p), offset in wanted.items():
                    part = log.topic(t).partition(p)
                    if offset > part.end_offset:
                        raise InvalidArgumentError(f"reset_group_offsets: offset {offset} of {t}[{p}] is past the "
                                                   f"partition's end ({part.end_offset})")
            else:
                if topics is None:
                    names = {t for t, _ in store.all_committed()} | ms.subscribed_topics(state)
                else:
                    names = {topics} if isinstance(topics, str) else set(topics)
                wanted = {}
                for t in sorted(names):
                    topic = log.topic(t)
                    for p in range(topic.partitions):
                        part = topic.partition(p)
                        if to == "earliest":
                            wanted[(t, p)] = part.start_offset
                        elif to == "latest":
                            wanted[(t, p)] = part.end_offset
                        elif isinstance(to, str):
                            raise InvalidArgumentError(f"reset_group_offsets: to= takes 'earliest', 'latest', a "
                                                       f"timestamp or a dict of offsets, not {to!r}")
                        else:
                            wanted[(t, p)] = part.offset_for_time(to_ns(to))
            now = time.time_ns()
            token = store.put_offsets({key: {"offset": off, "metadata": "", "leader_epoch": None, "generation": -1,
                                             "member": "reset", "time_ns": now} for key, off in wanted.items()})
        store.sync(token)
    finally:
        store.close()
    return wanted
