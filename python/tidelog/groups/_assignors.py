"""Partition assignors for consumer groups: who should own which partition.

``assign`` is a pure function: members, topic sizes and (for the sticky
strategy) the previous assignment in, each member's TARGET partitions out. It
knows nothing about hand-off (a partition is taken only once its previous
owner released it or died); whoever rebalances applies that on top.

The three strategies behave as Kafka's assignors of the same names
(``RangeAssignor``, ``RoundRobinAssignor``, ``CooperativeStickyAssignor``),
without rack awareness:

- ``range``: per topic, the partitions in order split into contiguous ranges
  over the members subscribed to that topic; the first ``n % m`` members get
  one more.
- ``roundrobin``: every subscribed partition, topics in name order, dealt in
  turn over the members, skipping a member that does not subscribe to the
  partition's topic (Kafka's circular iterator).
- ``cooperative-sticky``: as balanced as the subscriptions allow (with equal
  subscriptions the counts differ by at most one) while moving as few
  partitions as possible away from their previous owner.

Member order (used by every strategy): static members (``instance_id`` set)
first, sorted by instance id, then dynamic members sorted by member id. This is
Kafka's ``MemberInfo`` order; it gives a restarted static member, which comes
back with a new member id, the same place and therefore the same partitions.

Concurrency: pure functions over their arguments, no shared state; safe from
any thread.
"""
from __future__ import annotations

import heapq
from bisect import bisect_left
from dataclasses import dataclass

from tidelog.errors import InvalidArgumentError

__all__ = ["EAGER", "STRATEGIES", "MemberSpec", "assign"]

TopicPartition = tuple[str, int]
Assignment = dict[str, list[TopicPartition]]


@dataclass(frozen=True)
class MemberSpec:
    """One member of a group as the assignor sees it."""

    member_id: str                  # unique per incarnation
    topics: frozenset[str]          # subscription
    instance_id: str | None = None  # static membership (group_instance_id)


STRATEGIES = ("range", "roundrobin", "cooperative-sticky")
#: Strategies whose members revoke everything on each rebalance (Kafka's eager protocol).
EAGER = frozenset({"range", "roundrobin"})


def assign(strategy: str, members: list[MemberSpec], partitions: dict[str, int],
           previous: dict[str, list[TopicPartition]] | None = None) -> Assignment:
    """member_id -> sorted list of (topic, partition).

    Every partition of every topic that at least one member subscribes to is
    assigned to exactly one member subscribed to its topic; topics nobody
    subscribes to (and subscribed topics missing from ``partitions``) are not
    assigned; members with nothing get ``[]``. ``previous`` (member_id -> the
    partitions it owned) is used by ``cooperative-sticky`` only; entries of
    members that left, of partitions or topics that no longer exist, or of
    topics the member no longer subscribes to are ignored, and a partition
    listed for two members stays with the one first in member order.
    """
    if strategy not in STRATEGIES:
        raise InvalidArgumentError(
            f"unknown assignment strategy {strategy!r}; valid ones are {', '.join(STRATEGIES)}")
    ordered = _ordered_members(members)
    sizes = _topic_sizes(partitions)
    groups = _Subscriptions(ordered, sizes)
    if strategy == "range":
        per_member = _range(groups, sizes)
    elif strategy == "roundrobin":
        per_member = _roundrobin(groups, sizes)
    else:
        owned = _previously_owned(ordered, groups, sizes, previous or {})
        if len(groups.class_topics) <= 1:
            topics = groups.class_topics[0] if groups.class_topics else []
            per_member = _sticky_equal_subscriptions(topics, sizes, owned)
        else:
            per_member = _StickyBalancer(groups, sizes, owned).run()
    return {m.member_id: sorted(tps) for m, tps in zip(ordered, per_member)}


def _ordered_members(members: list[MemberSpec]) -> list[MemberSpec]:
    seen: set[str] = set()
    for m in members:
        if m.member_id in seen:
            raise InvalidArgumentError(f"member id {m.member_id!r} appears twice")
        seen.add(m.member_id)
    # Kafka's MemberInfo.compareTo: static members first by instance id, then
    # dynamic ones by member id; member id breaks a tie between equal instance ids.
    return sorted(members, key=lambda m: (0, m.instance_id, m.member_id)
                  if m.instance_id is not None else (1, m.member_id, ""))


def _topic_sizes(partitions: dict[str, int]) -> dict[str, int]:
    for topic, n in partitions.items():
        if not isinstance(n, int) or n < 0:
            raise InvalidArgumentError(f"topic {topic!r} has an invalid partition count {n!r}")
    return {t: n for t, n in partitions.items() if n > 0}


class _Subscriptions:
    """Members grouped by what they can be given (their subscribed topics that
    exist): members with equal subscriptions form a class, so per-topic work
    scales with the classes, not the members. Indices are positions in member
    order. Read-only after construction."""

    def __init__(self, ordered: list[MemberSpec], sizes: dict[str, int]):
        self.count = len(ordered)
        self.class_of: list[int] = []
        self.class_members: list[list[int]] = []
        self.class_topics: list[list[str]] = []     # sorted
        self.class_topic_set: list[frozenset[str]] = []
        by_subscription: dict[frozenset[str], int] = {}
        by_topics: dict[frozenset[str], int] = {}
        for i, m in enumerate(ordered):
            c = by_subscription.get(m.topics)
            if c is None:
                usable = m.topics.intersection(sizes)
                c = by_topics.get(usable)
                if c is None:
                    c = by_topics[usable] = len(self.class_members)
                    self.class_members.append([])
                    self.class_topics.append(sorted(usable))
                    self.class_topic_set.append(usable)
                by_subscription[m.topics] = c
            self.class_of.append(c)
            self.class_members[c].append(i)
        self.topic_classes: dict[str, list[int]] = {}
        for c, topics in enumerate(self.class_topics):
            for t in topics:
                self.topic_classes.setdefault(t, []).append(c)
        self.subscriber_count = {t: sum(len(self.class_members[c]) for c in cs)
                                 for t, cs in self.topic_classes.items()}
        self._subscribers: dict[str, list[int]] = {}

    def subscribers(self, topic: str) -> list[int]:
        """The members subscribed to ``topic``, in member order (do not modify)."""
        found = self._subscribers.get(topic)
        if found is None:
            classes = self.topic_classes[topic]
            if len(classes) == 1:
                found = self.class_members[classes[0]]
            else:
                found = sorted(i for c in classes for i in self.class_members[c])
            self._subscribers[topic] = found
        return found


def _range(groups: _Subscriptions, sizes: dict[str, int]) -> list[list[TopicPartition]]:
    out: list[list[TopicPartition]] = [[] for _ in range(groups.count)]
    for topic in groups.topic_classes:
        n = sizes[topic]
        subscribers = groups.subscribers(topic)
        each, extra = divmod(n, len(subscribers))
        start = 0
        for rank, i in enumerate(subscribers):
            count = each + (1 if rank < extra else 0)
            if count == 0:
                break
            out[i].extend((topic, p) for p in range(start, start + count))
            start += count
    return out


def _roundrobin(groups: _Subscriptions, sizes: dict[str, int]) -> list[list[TopicPartition]]:
    count = groups.count
    out: list[list[TopicPartition]] = [[] for _ in range(count)]
    cursor = 0  # the circular iterator's position: next member to consider
    for topic in sorted(groups.topic_classes):
        everyone = groups.subscriber_count[topic] == count
        subscribers = [] if everyone else groups.subscribers(topic)
        for p in range(sizes[topic]):
            if everyone:
                i = cursor
            else:  # the next subscriber at or after the cursor, wrapping around
                k = bisect_left(subscribers, cursor)
                i = subscribers[k] if k < len(subscribers) else subscribers[0]
            out[i].append((topic, p))
            cursor = i + 1 if i + 1 < count else 0
    return out


def _previously_owned(ordered: list[MemberSpec], groups: _Subscriptions, sizes: dict[str, int],
                      previous: dict[str, list[TopicPartition]]) -> list[list[TopicPartition]]:
    """Each member's previous partitions that it may still own, sorted; a
    partition claimed twice goes to the first claimant in member order."""
    claimed: set[TopicPartition] = set()
    owned: list[list[TopicPartition]] = []
    for i, m in enumerate(ordered):
        mine: list[TopicPartition] = []
        allowed = groups.class_topic_set[groups.class_of[i]]
        for topic, p in sorted({(t, q) for t, q in previous.get(m.member_id, ())}):
            tp = (topic, p)
            if topic in allowed and 0 <= p < sizes[topic] and tp not in claimed:
                claimed.add(tp)
                mine.append(tp)
        owned.append(mine)
    return owned


def _sticky_equal_subscriptions(topics: list[str], sizes: dict[str, int],
                                owned: list[list[TopicPartition]]) -> list[list[TopicPartition]]:
    """Every member subscribes to the same topics: each gets n // m or one
    more, and the extra places go to the members that owned the most, so the
    fewest partitions change owner (a member keeps min(owned, quota))."""
    count = len(owned)
    if count == 0:
        return []
    total = sum(sizes[t] for t in topics)
    each, extra = divmod(total, count)
    quota = [each] * count
    by_owned = sorted(range(count), key=lambda i: (-min(len(owned[i]), each + 1), i))
    for i in by_owned[:extra]:
        quota[i] += 1
    result = [mine[:quota[i]] for i, mine in enumerate(owned)]
    kept = {tp for mine in result for tp in mine}
    pool = [(t, p) for t in topics for p in range(sizes[t]) if (t, p) not in kept]
    # Deal the rest one at a time over the members with room, in member order.
    unfilled = [i for i in range(count) if len(result[i]) < quota[i]]
    k = 0
    while k < len(pool):
        still: list[int] = []
        for i in unfilled:
            result[i].append(pool[k])
            k += 1
            if len(result[i]) < quota[i]:
                still.append(i)
            if k == len(pool):
                break
        unfilled = still
    return result


class _StickyBalancer:
    """Sticky assignment when subscriptions differ (Kafka's general case).

    1. Each member keeps its previous partitions, at most G of them, where G is
       the largest load of a greedy assignment from scratch (no balanced
       assignment gives anyone more than G, so nothing kept needlessly moves).
    2. The remaining partitions go, topics with the fewest subscribers first, to
       the least loaded subscribers.
    3. Moves along shortest chains (A gives B a partition B subscribes to, B
       gives C one, ...) from a member with load L to one with load <= L - 2,
       until no such chain exists: then the loads are as balanced as the
       subscriptions allow (an optimal semi-matching: the largest load and
       the spread are both minimal). Each link moves, when it can, a partition
       the receiver owned before, else one the giver did not own before.

    The chain search walks classes of members with equal subscriptions and
    topics, not members, so it stays cheap for large groups.
    Single use, single thread.
    """

    def __init__(self, groups: _Subscriptions, sizes: dict[str, int],
                 owned: list[list[TopicPartition]]):
        self.groups = groups
        self.sizes = sizes
        self.count = groups.count
        self.owned = owned
        self.prev_owner = {tp: i for i, mine in enumerate(owned) for tp in mine}
        self.loads = [0] * self.count
        self.holdings: list[dict[str, set[TopicPartition]]] = [{} for _ in range(self.count)]
        self.class_held: list[dict[str, int]] = [{} for _ in groups.class_members]
        self.owner: dict[TopicPartition, int] = {}
        self.subscribed = [i for i in range(self.count)
                           if groups.class_topics[groups.class_of[i]]]

    def run(self) -> list[list[TopicPartition]]:
        g = self.groups
        order = sorted(g.topic_classes, key=lambda t: (g.subscriber_count[t], t))
        fresh = [0] * self.count
        for t in order:
            self._water_fill(fresh, t, self.sizes[t])
        cap = max(fresh, default=0)
        for i, mine in enumerate(self.owned):
            for tp in mine[:cap]:
                self._give(tp, i)
        for t in order:
            left = [(t, p) for p in range(self.sizes[t]) if (t, p) not in self.owner]
            if left:
                counts = self._water_fill(list(self.loads), t, len(left))
                k = 0
                for i, n in counts:
                    for tp in left[k:k + n]:
                        self._give(tp, i)
                    k += n
        while self._improve_once():
            pass
        return [[tp for held in h.values() for tp in held] for h in self.holdings]

    def _water_fill(self, loads: list[int], topic: str, items: int) -> list[tuple[int, int]]:
        """Hands ``items`` units of ``topic`` one at a time to the least loaded
        subscriber (member order breaks ties), in one pass: raises ``loads`` and
        returns [(member, units)] in member order."""
        ranked = sorted(self.groups.subscribers(topic), key=lambda i: (loads[i], i))
        level, width, remaining = loads[ranked[0]], 1, items
        while True:
            while width < len(ranked) and loads[ranked[width]] == level:
                width += 1
            if width == len(ranked):
                break
            room = (loads[ranked[width]] - level) * width
            if remaining < room:
                break
            remaining -= room
            level = loads[ranked[width]]
        raise_by, extra = divmod(remaining, width)
        level += raise_by
        filled = sorted(ranked[:width])
        given: list[tuple[int, int]] = []
        for i in filled:
            target = level + (1 if extra > 0 else 0)
            if target > level:
                extra -= 1
            if target > loads[i]:
                given.append((i, target - loads[i]))
                loads[i] = target
        return given

    def _give(self, tp: TopicPartition, i: int) -> None:
        self.owner[tp] = i
        self.loads[i] += 1
        self.holdings[i].setdefault(tp[0], set()).add(tp)
        held = self.class_held[self.groups.class_of[i]]
        held[tp[0]] = held.get(tp[0], 0) + 1

    def _take(self, tp: TopicPartition, i: int) -> None:
        del self.owner[tp]
        self.loads[i] -= 1
        mine = self.holdings[i][tp[0]]
        mine.discard(tp)
        if not mine:
            del self.holdings[i][tp[0]]
        self.class_held[self.groups.class_of[i]][tp[0]] -= 1

    def _improve_once(self) -> bool:
        loads = self.loads
        levels = {loads[i] for i in self.subscribed}
        if not levels:
            return False
        low = min(levels)
        for level in sorted(levels, reverse=True):
            if level - 2 < low:
                return False
            if self._improve_from(level):
                return True
        return False

    def _improve_from(self, level: int) -> bool:
        """Breadth-first over classes from the classes with a member at
        ``level``; then moves along the tree's chains to every member at
        ``level - 2`` or less that still has a valid chain. True if any moved."""
        g, loads = self.groups, self.loads
        parent: dict[int, tuple[int, str] | None] = {}
        queue: list[int] = []
        for i in self.subscribed:
            c = g.class_of[i]
            if loads[i] == level and c not in parent:
                parent[c] = None
                queue.append(c)
        queue.sort()
        expanded: set[str] = set()
        for c in queue:  # grows while we walk it
            held = self.class_held[c]
            for t in g.class_topics[c]:
                if t in expanded or not held.get(t):
                    continue
                expanded.add(t)
                for d in g.topic_classes[t]:
                    if d not in parent:
                        parent[d] = (c, t)
                        queue.append(d)
        moved = False
        for c in queue:
            while True:
                receiver = min(g.class_members[c], key=lambda i: (loads[i], i))
                if loads[receiver] > level - 2:
                    break
                chain = self._chain_to(c, receiver, parent, level)
                if chain is None:  # an earlier chain used up a link
                    break
                self._apply(chain)
                moved = True
        return moved

    def _chain_to(self, c: int, receiver: int, parent: dict[int, tuple[int, str] | None],
                  level: int) -> list[tuple[int, str, int]] | None:
        """The moves (giver, topic, receiver), first move first, that carry one
        partition from a member at ``level`` down the tree to ``receiver``;
        None if the tree's links no longer hold."""
        members = self.groups.class_members
        moves: list[tuple[int, str, int]] = []
        while True:
            link = parent[c]
            if link is None:  # a source class: someone at ``level`` gives first
                if self.loads[receiver] == level:  # the giver chosen below is a source
                    break
                source = next((i for i in members[c] if self.loads[i] == level), None)
                if source is None:
                    return None
                moves.append((source, min(self.holdings[source]), receiver))
                break
            prev_class, topic = link
            holders = [i for i in members[prev_class] if topic in self.holdings[i]]
            if not holders:
                return None
            giver = holders[0]
            if parent[prev_class] is None:  # prefer a source, which then needs no refill
                giver = next((i for i in holders if self.loads[i] == level), giver)
            moves.append((giver, topic, receiver))
            receiver, c = giver, prev_class
        moves.reverse()
        return moves

    def _apply(self, moves: list[tuple[int, str, int]]) -> None:
        # Last move first, so a member in the middle gives what it held before receiving.
        for giver, topic, receiver in reversed(moves):
            tp = self._pick(giver, topic, receiver)
            self._take(tp, giver)
            self._give(tp, receiver)

    def _pick(self, giver: int, topic: str, receiver: int) -> TopicPartition:
        """The partition of ``topic`` that the giver loses least by giving:
        one the receiver owned before, else one the giver did not own before."""
        best, best_rank = None, 3
        for tp in self.holdings[giver][topic]:
            prev = self.prev_owner.get(tp)
            rank = 0 if prev == receiver else (1 if prev != giver else 2)
            if best is None or (rank, tp) < (best_rank, best):
                best, best_rank = tp, rank
        assert best is not None
        return best
