"""``GroupConsumer``: a ``Consumer`` that is a member of a consumer group.

Per fetch (each frame, each ``poll_batch``) it stores its heartbeat and reads
the group's ``state_seq`` from the members page: no lock, no system call.
Only when that changed (or the topics' partition counts may have, once a
second) does it take the group lock to follow the group: give up partitions
that moved away (after ``on_revoke``), take free ones that it is assigned
(then ``on_assign``), and, if it was removed, report them lost (``on_lost``)
and join again. Everything a member does runs on the consumer's own thread,
callbacks included; only async commits' fdatasyncs run on a helper thread,
and their callbacks are delivered on the consumer's thread at its next call.
"""
from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .._consumer import Consumer
from .._types import OFFSET_BEGINNING, OFFSET_END, OffsetAndMetadata, TopicPartition, commit_offsets, partition_keys
from ..errors import (CommitFailedError, FencedInstanceIdError, InconsistentGroupProtocolError, InvalidArgumentError,
                      LogClosedError)
from . import _membership as ms
from ._assignors import EAGER, STRATEGIES
from ._store import LIVENESS_BYTE0, GroupStore, _quote, encode_offset_head, offset_key, owner_key
from ._watcher import WATCHER

logger = logging.getLogger("tidelog")

#: How often a member compares the subscribed topics' partition counts with the assignment's.
METADATA_REFRESH_NS = 1_000_000_000


class ConsumerGroupMetadata(NamedTuple):
    """Who this member is in its group (confluent-kafka's ``consumer_group_metadata()``)."""

    group_id: str
    member_id: str
    generation_id: int
    group_instance_id: str | None


def _listener_calls(listener, on_assign, on_revoke, on_lost):
    """Callbacks (consumer, [TopicPartition]) from confluent-style functions or
    a kafka-python/Java style ``ConsumerRebalanceListener`` object."""
    if listener is not None:
        if on_assign is None and hasattr(listener, "on_partitions_assigned"):
            on_assign = lambda c, tps: listener.on_partitions_assigned(tps)  # noqa: E731
        if on_revoke is None and hasattr(listener, "on_partitions_revoked"):
            on_revoke = lambda c, tps: listener.on_partitions_revoked(tps)  # noqa: E731
        if on_lost is None and hasattr(listener, "on_partitions_lost"):
            on_lost = lambda c, tps: listener.on_partitions_lost(tps)  # noqa: E731
    for name, fn in (("on_assign", on_assign), ("on_revoke", on_revoke), ("on_lost", on_lost)):
        if fn is not None and not callable(fn):
            raise InvalidArgumentError(f"{name} must be callable, not {type(fn).__name__}")
    if on_lost is None:
        on_lost = on_revoke  # Kafka: onPartitionsLost defaults to onPartitionsRevoked
    return on_assign, on_revoke, on_lost


class GroupConsumer(Consumer):
    """A consumer in group ``group``: reads only the partitions the group
    assigns it, starting from the group's committed offsets. Not thread-safe:
    one thread per consumer (run several consumers for several threads)."""

    def __init__(self, log, topics, group: str, folder: str, start: str = "earliest", on_corrupt: str = "raise",
                 notifier=None, wait: str = "block", spin_us: float | None = None, partition_assignment_strategy: str = "range", group_instance_id: str | None = None,
                 enable_auto_commit: bool = True, auto_commit_interval_ms: int = 5000,
                 max_poll_interval_ms: int = 300_000, session_timeout_ms: int = 45_000,
                 on_assign: Callable | None = None, on_revoke: Callable | None = None,
                 on_lost: Callable | None = None, listener: Any = None, client_id: str = "tidelog"):
        super().__init__(log, None, start=start, on_corrupt=on_corrupt, notifier=notifier, wait=wait, spin_us=spin_us)
        if partition_assignment_strategy not in STRATEGIES:
            raise InvalidArgumentError(f"partition_assignment_strategy must be one of {', '.join(STRATEGIES)}, "
                                       f"not {partition_assignment_strategy!r}")
        for name, value, low in (("auto_commit_interval_ms", auto_commit_interval_ms, 0),
                                 ("max_poll_interval_ms", max_poll_interval_ms, 1),
                                 ("session_timeout_ms", session_timeout_ms, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgumentError(f"{name} must be an int >= {low}, not {value!r}")
        if group_instance_id is not None and (not isinstance(group_instance_id, str) or not group_instance_id
                                              or len(group_instance_id) > 249):
            raise InvalidArgumentError(f"group_instance_id must be a non-empty str of at most 249 characters, "
                                       f"not {group_instance_id!r}")
        self._group = group
        self._folder = folder
        self._strategy = partition_assignment_strategy
        self._instance_id = group_instance_id
        self._client_id = str(client_id)
        self._auto_commit = bool(enable_auto_commit)
        self._auto_interval_ns = auto_commit_interval_ms * 1_000_000
        self._max_poll_interval_ms = max_poll_interval_ms
        self._session_timeout_ms = session_timeout_ms
        self._on_assign, self._on_revoke, self._on_lost = _listener_calls(listener, on_assign, on_revoke, on_lost)
        self._store = GroupStore(folder, create=True)
        self._member_id: str | None = None
        self._slot = -1
        self._generation = -1
        self._owned: dict[tuple[str, int], tuple[int, int]] = {}  # partition -> (generation, epoch) it was taken in
        self._subscription: list[str] = []
        self._manual = False
        self._seen_seq = -1
        self._next_metadata = 0
        self._next_auto = time.monotonic_ns() + self._auto_interval_ns
        self._auto_committed: dict[tuple[str, int], int] = {}
        self._commit_results: queue.SimpleQueue = queue.SimpleQueue()
        self._commit_jobs: queue.SimpleQueue | None = None
        self._commit_thread: threading.Thread | None = None
        self._in_sync = False
        self._known_pids: set[int] = set()
        self._quoted_member: tuple[str | None, str] = (None, _quote(""))
        self._partition_keys: dict[tuple[str, int], tuple[str, bytes]] = {}  # -> (owner key, offset key)
        self._target_index_of: list | None = None
        self._target_by_key: dict = {}
        self._finalizer = weakref.finalize(self, _abandon, self._store, folder)
        self._finalizer.atexit = False  # at exit the log's own close makes its members leave, cleanly
        WATCHER.register(folder, log)
        if topics is not None:
            self.subscribe([topics] if isinstance(topics, str) else list(topics))

    # ------------------------------------------------------------ membership
    @property
    def group_id(self) -> str:
        return self._group

    @property
    def member_id(self) -> str | None:
        """This member's id in the group (a new one after each join), None before subscribe()."""
        return self._member_id

    @property
    def generation(self) -> int:
        """The group generation this member last followed (-1 before it joined)."""
        return self._generation

    def consumer_group_metadata(self) -> ConsumerGroupMetadata:
        return ConsumerGroupMetadata(self._group, self._member_id or "", self._generation, self._instance_id)

    def partition_epoch(self, topic: str, partition: int) -> int:
        """How many times this partition has changed owner in the group, up to
        and including this member taking it: a number that only grows, so
        records processed under epoch e+1 follow every record processed under
        epoch e by whichever member held it then."""
        return self._owned[self._key(topic, partition)][1]

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        """Joins the group (or changes this member's subscription): the
        group's partitions of ``topics`` are shared among its members."""
        self._check_open()
        if self._manual:
            raise InvalidArgumentError("subscribe() after assign(): a consumer either subscribes (the group "
                                       "assigns partitions) or assigns partitions itself")
        if isinstance(topics, str):
            topics = [topics]
        topics = sorted(set(topics))
        for name in topics:
            if not isinstance(name, str):
                raise InvalidArgumentError(f"subscribe() takes topic names, not {name!r}")
        if listener is not None:
            self._on_assign, self._on_revoke, self._on_lost = _listener_calls(listener, None, None, None)
        self._subscription = topics
        if self._member_id is None:
            self._join()
        else:
            with self._store:
                state = self._store.state()
                if self._member_id in state["members"]:
                    state["members"][self._member_id]["topics"] = topics
                    ms.reassign(state, ms.partition_counts(self._log, ms.subscribed_topics(state)))
                    self._store.save_state(state)
            self._wake()
        self._follow()

    def unsubscribe(self) -> None:
        """Leaves the group (its partitions go to the other members)."""
        self._leave(revoke=True)
        self._subscription = []

    def subscription(self) -> list[str]:
        return list(self._subscription)

    def assign(self, partitions) -> None:
        """Reads exactly these partitions itself, outside the group's
        assignment (Kafka's manual assignment); commits then use the group's
        offsets store, refused for partitions a live member of the group owns."""
        if self._member_id is not None:
            raise InvalidArgumentError("assign() while subscribed: unsubscribe() first")
        self._manual = True
        if isinstance(partitions, Iterable) and not isinstance(partitions, (str, bytes, TopicPartition)):
            partitions = list(partitions)
        pairs = partition_keys(partitions, "assign()")
        with self._store:
            stored = {key: self._store.committed(*key) for key in pairs}
        spec = [tp if isinstance(tp, TopicPartition) else self._start_at(key, stored[key])
                for tp, key in zip(partitions, pairs)]
        Consumer.assign(self, spec)

    def _start_at(self, key: tuple[str, int], committed: dict | None) -> TopicPartition:
        if committed is not None:
            return TopicPartition(key[0], key[1], committed["offset"])
        return TopicPartition(key[0], key[1], OFFSET_BEGINNING if self._start == "earliest" else OFFSET_END)

    def _join(self) -> None:
        member_id = f"{self._client_id}-{uuid.uuid4()}"
        while True:
            store = self._store
            store.lock()
            state = store.state()
            if not state.get("deleted"):
                break
            store.unlock()  # delete_group() moved this folder away meanwhile: the group starts anew
            store.close()
            self._store = GroupStore(self._folder, create=True)
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _abandon, self._store, self._folder)
            self._finalizer.atexit = False
        try:
            ms.sweep(store, state, ms.now_ns())
            live = [m for m in state["members"].values() if m.get("departed_ns") is None]
            if state["strategy"] is not None and state["strategy"] != self._strategy and live:
                raise InconsistentGroupProtocolError(
                    f"group {self._group!r} uses partition_assignment_strategy={state['strategy']!r}; this "
                    f"consumer asked for {self._strategy!r}")
            state["strategy"] = self._strategy
            previous = None
            if self._instance_id is not None:
                for mid, m in list(state["members"].items()):
                    if m.get("instance_id") == self._instance_id:
                        previous = m
                        if m.get("departed_ns") is None:
                            ms.remove_member(state, mid, f"fenced: group_instance_id {self._instance_id!r} "
                                                         f"joined again as {member_id}")
                        else:
                            del state["members"][mid]
                            ms.free_owned(state, mid)
                            ms._note_gone(state, mid, f"replaced by {member_id} (same group_instance_id)")
            slot = ms.free_slot(store, state)
            if not store.liveness.lock(LIVENESS_BYTE0 + slot, True, False):
                raise RuntimeError("a free member slot was locked meanwhile")  # cannot happen under the group lock
            tag = random.getrandbits(62) | 1
            store.claim_slot_words(slot, tag)
            member = ms.new_member(member_id, slot, tag, self._subscription, self._strategy, self._instance_id,
                                   self._client_id, self._max_poll_interval_ms, self._session_timeout_ms)
            state["members"][member_id] = member
            counts = ms.partition_counts(self._log, ms.subscribed_topics(state))
            if (previous is not None and previous["topics"] == member["topics"]
                    and counts == state["partitions"]):
                member["target"] = previous["target"]  # a static member back: its partitions, nobody else moves
            else:
                ms.reassign(state, counts)
            store.save_state(state)
            self._member_id, self._slot = member_id, slot
            self._generation = -1
        finally:
            store.unlock()
        self._wake()

    def _leave(self, revoke: bool) -> None:
        if self._member_id is None:
            return
        owned = sorted(self._owned)
        if revoke and owned:
            self._revoke(owned, lost=False)
        store = self._store
        with store:
            state = store.state()
            m = state["members"].get(self._member_id)
            if m is not None:
                if self._instance_id is not None:
                    # A static member keeps its place for session_timeout_ms (Kafka: static members do not leave on close).
                    m["departed_ns"] = ms.now_ns()
                    ms.free_owned(state, self._member_id)
                else:
                    ms.remove_member(state, self._member_id, "left")
                    ms.reassign(state, ms.partition_counts(self._log, ms.subscribed_topics(state),
                                                           state["partitions"]))
                store.save_state(state)
            store.liveness.unlock(LIVENESS_BYTE0 + self._slot)
        self._wake()
        self._member_id, self._slot, self._generation = None, -1, -1
        self._owned = {}
        Consumer.assign(self, [])

    # ---------------------------------------------------------- following
    def _sync(self) -> None:
        """The per-fetch check: heartbeat, auto-commit, and follow the group when it changed."""
        if self._member_id is None:
            if self._commit_jobs is not None:
                self._deliver_commit_results()
            return
        store = self._store
        at = self._slot_at
        now = time.monotonic_ns()
        words = store.words
        words[at + 1] = now
        words[at + 2] = 0
        if self._auto_commit and now >= self._next_auto:
            self._next_auto = now + self._auto_interval_ns
            self._commit_auto()
        if self._commit_jobs is not None:
            self._deliver_commit_results()
        if words[1] != self._seen_seq or now >= self._next_metadata:
            self._follow()

    @property
    def _slot_at(self) -> int:
        return self._store.slot_words(self._slot)

    def _follow(self) -> None:
        """Brings this member's partitions in line with the group: revoke, acquire, or rejoin."""
        if self._in_sync or self._member_id is None:
            return
        self._in_sync = True
        try:
            for _ in range(8):
                if not self._follow_step():
                    break
        finally:
            self._in_sync = False

    def _follow_step(self) -> bool:
        """One locked step; True when another step is needed (after a revoke, or a rejoin)."""
        store = self._store
        me = self._member_id
        acquired: list[tuple[str, int]] = []
        committed: dict = {}
        missing: set = set()
        revoke: list = []
        save = False
        with store:
            state = store.state()
            member = state["members"].get(me)
            if member is None:
                reason = state.get("gone", {}).get(me, "removed")
                lost = sorted(self._owned)
            else:
                save = ms.settle(store, self._log, state, me)
                member = state["members"][me]
                target = {tuple(tp) for tp in member["target"]}
                truly = set(ms.owned_by(state, me))
                missing = set(self._owned) - truly  # freed by someone else: only on removal, so lost
                eager = self._strategy in EAGER and state["generation"] != self._generation
                revoke = sorted(truly if eager else truly - target)
                if not revoke:
                    for t, p in sorted(target - truly):
                        key = owner_key(t, p)
                        holder = state["owners"].get(key)
                        if holder is not None and holder[0] in state["members"] \
                                and state["members"][holder[0]].get("departed_ns") is None:
                            continue  # its owner has not given it up yet
                        epoch = state.setdefault("epochs", {}).get(key, 0) + 1
                        state["epochs"][key] = epoch
                        state["owners"][key] = [me, state["generation"], epoch]
                        self._owned[(t, p)] = (state["generation"], epoch)
                        committed[(t, p)] = store.committed(t, p)
                        acquired.append((t, p))
                    self._generation = state["generation"]
                    if acquired:
                        save = True
                if save:
                    store.save_state(state)
                self._seen_seq = store.state_seq
                pids = {m["pid"] for m in state["members"].values()}
                if pids != self._known_pids:
                    self._known_pids = pids
                    WATCHER.poke()  # it watches the processes of the group's members
                self._next_metadata = time.monotonic_ns() + METADATA_REFRESH_NS
        if member is None:
            self._lost(lost, reason)
            return True
        if save:
            self._wake()
        if missing:
            for key in missing:
                self._owned.pop(key, None)
            self._call(self._on_lost, sorted(missing))
        if revoke:
            self._revoke(revoke, lost=False)
            return True
        if acquired or missing:
            self._apply_assignment({key: committed[key] for key in acquired})
        if acquired:
            self._call(self._on_assign, acquired)
        return False

    def _apply_assignment(self, new: dict[tuple[str, int], dict | None]) -> None:
        spec: list = []
        for key, committed in new.items():
            if committed is not None:
                self._auto_committed[key] = committed["offset"]  # auto-commit skips it until it moves
        for key in sorted(self._owned):
            spec.append(self._start_at(key, new[key]) if key in new else key)
        Consumer.assign(self, spec)

    def _revoke(self, parts: list[tuple[str, int]], lost: bool) -> None:
        """Kafka's order: commit (auto-commit), on_revoke, then give the partitions up."""
        error = None
        if self._auto_commit and not lost:
            try:
                self._commit_now({k: OffsetAndMetadata(self._position(k)) for k in parts if k in self._positions},
                                 durable=True)
            except CommitFailedError as e:
                logger.warning("tidelog group %r: the auto-commit at revocation failed: %s", self._group, e)
        try:
            self._call(self._on_revoke, parts)
        except BaseException as e:  # the partitions are given up anyway; the caller sees the error
            error = e
        with self._store:
            state = self._store.state()
            for t, p in parts:
                holder = state["owners"].get(owner_key(t, p))
                if holder is not None and holder[0] == self._member_id:
                    del state["owners"][owner_key(t, p)]
            self._store.save_state(state)
        self._wake()
        for key in parts:
            self._owned.pop(key, None)
        self._apply_assignment({})
        if error is not None:
            raise error

    def _lost(self, parts: list[tuple[str, int]], reason: str) -> None:
        """This member was removed from the group (evicted, fenced, or its
        state lost): its partitions are lost, its commits would fail."""
        fenced = reason.startswith("fenced")
        self._store.liveness.unlock(LIVENESS_BYTE0 + self._slot)
        self._member_id, self._slot, self._generation = None, -1, -1
        self._owned = {}
        Consumer.assign(self, [])
        logger.warning("tidelog group %r: this member is out of the group (%s)%s", self._group, reason,
                       "" if fenced else "; joining again")
        if parts:
            self._call(self._on_lost, parts)
        if fenced:
            raise FencedInstanceIdError(f"group {self._group!r}: {reason}")
        self._join()

    def _wake(self) -> None:
        """Wakes the log's waiters (in every process) so that idle members follow the change."""
        try:
            self._log.wake_waiters()
        except LogClosedError:
            pass  # this handle closed: the watchers of other processes sweep

    def _call(self, fn, parts: list[tuple[str, int]]) -> None:
        if fn is not None and parts:
            fn(self, [TopicPartition(t, p) for t, p in parts])

    # --------------------------------------------------------- the read path
    def _fill(self, deadline):
        self._check_open()
        self._sync()
        return super()._fill(deadline)

    def poll_batch(self, max_records: int = 100_000, timeout: float | None = None):
        self._check_open()
        self._sync()
        return super().poll_batch(max_records, timeout)

    def _wait(self, deadline) -> bool:
        """As Consumer._wait, marked as waiting inside a poll (never evicted for
        it), and following the group when woken."""
        if self._member_id is None:
            return super()._wait(deadline)
        at = self._slot_at
        words = self._store.words
        words[at + 2] = 1
        try:
            got = super()._wait(deadline)
        finally:
            if self._store.words is not None:
                words[at + 2] = 0
        self._sync()
        return got

    def _idle(self, waiting: bool) -> None:
        """For the asyncio consumer: it waits outside poll()."""
        if self._member_id is not None:
            self._store.words[self._slot_at + 2] = 1 if waiting else 0

    def has_data(self) -> bool:
        if self._member_id is not None and self._store.words[1] != self._seen_seq:
            return True  # the group changed: a poll follows it
        return super().has_data()

    # --------------------------------------------------------------- commits
    def commit(self, message=None, offsets=None, asynchronous: bool = False):
        """Commits offsets to the group, durably: returns once an fdatasync
        covers them (``asynchronous=True``: at once; the fdatasync follows).

        Forms: ``commit()`` (the position of every owned partition: what
        was returned so far), ``commit(offsets={("orders", 0): 43})`` (ints or
        ``OffsetAndMetadata``; keys may be ``TopicPartition``),
        ``commit(offsets=[TopicPartition("orders", 0, 43)])``,
        ``commit(message=record)`` (``record.offset + 1``). Raises
        ``CommitFailedError`` (nothing stored) when this member does not own
        a partition named; ``InvalidArgumentError`` for an offset past the end."""
        self._check_open()
        self._deliver_commit_results()
        entries = self._commit_entries(message, offsets)
        if not entries:
            return None
        token = self._commit_now(entries, durable=not asynchronous)
        if asynchronous:
            self._queue_sync(token, entries, None)
        return None

    def commit_async(self, offsets=None, callback: Callable | None = None) -> None:
        """kafka-python's ``commit_async``: stores at once, the fdatasync runs
        on a helper thread; ``callback(offsets, error_or_None)`` is called on
        this consumer's thread at its next poll, commit or close."""
        self._check_open()
        self._deliver_commit_results()
        try:
            entries = self._commit_entries(None, offsets)
            token = self._commit_now(entries, durable=False) if entries else None
        except CommitFailedError as e:
            if callback is None:
                raise
            self._commit_results.put((callback, commit_offsets(offsets) if offsets is not None else {}, e))
            return
        self._queue_sync(token, entries, callback)

    def _commit_entries(self, message, offsets) -> dict[tuple[str, int], OffsetAndMetadata]:
        if offsets is None and isinstance(message, (dict, list, tuple)):
            message, offsets = None, message
        if message is not None and offsets is not None:
            raise TypeError("commit() takes a message or offsets, not both")
        if offsets is not None:
            return commit_offsets(offsets)
        if message is not None:
            if not all(hasattr(message, a) for a in ("topic", "partition", "offset")):
                raise TypeError(f"commit(message=...) takes a Record, not {type(message).__name__}")
            return {(message.topic, message.partition): OffsetAndMetadata(message.offset + 1)}
        return {key: OffsetAndMetadata(self._position(key)) for key in self._assignment}

    def _commit_now(self, entries: dict[tuple[str, int], OffsetAndMetadata], durable: bool):
        """Checks ownership and stores the offsets in one locked step; returns the sync token."""
        by_key = self._target_index()
        for key, om in entries.items():
            target = by_key.get(key)
            end = (self._live(target)[4] if target is not None else self._partition(*key)).end_offset
            if om.offset > end:
                raise InvalidArgumentError(f"commit: offset {om.offset} of {key[0]}[{key[1]}] is past the "
                                           f"partition's end ({end}): a committed offset is the next one to read")
        store = self._store
        me = self._member_id
        if self._quoted_member[0] != me:
            self._quoted_member = (me, _quote(me or ""))
        # Each offset's JSON is its own fields, then the same tail for every offset of this commit.
        tail = f',"member":{self._quoted_member[1]},"time_ns":{time.time_ns()}}}'.encode()
        keys = self._partition_keys
        with store:
            state = store.state_view()
            owners = state["owners"]
            members = state["members"]
            changes = []
            for tp, om in entries.items():
                names = keys.get(tp)
                if names is None:
                    names = keys[tp] = (owner_key(*tp), offset_key(*tp))
                holder = owners.get(names[0])
                if self._manual:
                    if holder is not None:
                        raise CommitFailedError(f"commit of {tp[0]}[{tp[1]}] refused: member {holder[0]} of group "
                                                f"{self._group!r} owns it")
                elif holder is None or holder[0] != me or me not in members:
                    why = ("this member is no longer in the group" if me not in members else
                           f"it is owned by {holder[0]}" if holder is not None else "nobody owns it now")
                    raise CommitFailedError(f"commit of {tp[0]}[{tp[1]}] refused for member {me} of group "
                                            f"{self._group!r}: {why} (the generation moved on)")
                changes.append((names[1], encode_offset_head(om.offset, om.metadata, om.leader_epoch,
                                                             holder[1] if holder else -1) + tail))
            token = store.table.put(changes)
        if durable:
            store.sync(token)
        for key, om in entries.items():
            self._auto_committed[key] = om.offset
        return token

    def _target_index(self) -> dict:
        """(topic, partition) -> the consumer's fetch target, rebuilt when the assignment changes."""
        if self._target_index_of is not self._targets:
            self._target_index_of = self._targets
            self._target_by_key = {target[0]: target for target in self._targets}
        return self._target_by_key

    def _commit_auto(self) -> None:
        entries = {}
        for key in self._assignment:
            pos = self._position(key)
            if self._auto_committed.get(key) != pos:
                entries[key] = OffsetAndMetadata(pos)
        if not entries:
            return
        try:
            token = self._commit_now(entries, durable=False)
        except CommitFailedError as e:
            logger.warning("tidelog group %r: auto-commit refused: %s", self._group, e)
            return
        self._queue_sync(token, entries, None)

    def _queue_sync(self, token, entries, callback) -> None:
        if self._commit_jobs is None:
            self._commit_jobs = queue.SimpleQueue()
            self._commit_thread = threading.Thread(target=_sync_worker, name="tidelog-commit",
                                                   args=(self._store, self._commit_jobs, self._commit_results),
                                                   daemon=True)
            self._commit_thread.start()
        self._commit_jobs.put((token, entries, callback))

    def _deliver_commit_results(self) -> None:
        results = self._commit_results
        while not results.empty():
            try:
                callback, entries, error = results.get_nowait()
            except queue.Empty:
                return
            if callback is not None:
                callback({TopicPartition(t, p): om for (t, p), om in entries.items()}, error)
            elif error is not None:
                logger.warning("tidelog group %r: an asynchronous commit failed: %s", self._group, error)

    def committed(self, partitions, timeout: float | None = None) -> list[TopicPartition]:
        """The group's committed offsets of ``partitions`` as TopicPartitions
        (``OFFSET_INVALID`` where none is committed), read from the store."""
        pairs = partition_keys(partitions, "committed()")
        with self._store:
            got = {key: self._store.committed(*key) for key in pairs}
        out = []
        for t, p in pairs:
            c = got[(t, p)]
            out.append(TopicPartition(t, p, c["offset"], c["metadata"] or None, c["leader_epoch"]) if c
                       else TopicPartition(t, p))
        return out

    # ----------------------------------------------------------------- close
    def close(self, autocommit: bool = True) -> None:
        """Commits (with auto-commit on), calls ``on_revoke``, leaves the group
        at once (a static member keeps its place for ``session_timeout_ms``),
        and waits for pending async commits."""
        if self._closed:
            return
        try:
            if self._member_id is not None:
                if self._auto_commit and autocommit and self._owned:
                    try:
                        self._commit_now({k: OffsetAndMetadata(self._position(k)) for k in self._assignment},
                                         durable=True)
                    except CommitFailedError as e:
                        logger.warning("tidelog group %r: the commit at close failed: %s", self._group, e)
                self._leave(revoke=True)
        finally:
            if self._commit_jobs is not None:
                self._commit_jobs.put(None)
                self._commit_thread.join()
                self._deliver_commit_results()
            WATCHER.unregister(self._folder)
            self._finalizer.detach()
            self._store.close()
            super().close()

    def __repr__(self) -> str:
        return (f"<tidelog.GroupConsumer group={self._group!r} member={self._member_id} "
                f"generation={self._generation} assignment={self._assignment}>")


def _sync_worker(store: GroupStore, jobs: queue.SimpleQueue, results: queue.SimpleQueue) -> None:
    """Makes async commits durable, in order; reports each to the consumer's thread."""
    while True:
        job = jobs.get()
        if job is None:
            return
        token, entries, callback = job
        error = None
        try:
            if token is not None:
                store.sync(token)
        except Exception as e:  # noqa: BLE001 - reported through the callback
            error = e
        results.put((callback, entries, error))


def _abandon(store: GroupStore, folder: str) -> None:
    """A consumer dropped without close(): its liveness lock goes with its
    descriptor; the watcher removes it from the group."""
    try:
        store.close()
    finally:
        WATCHER.unregister(folder, poke=True)
