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
    # What each member can be given: its subscribed topics that exist and have partitions.
    subs = [sorted(m.topics.intersection(sizes)) for m in ordered]
    if strategy == "range":
        per_member = _range(subs, sizes)
    elif strategy == "roundrobin":
        per_member = _roundrobin(subs, sizes)
    else:
        owned = _previously_owned(ordered, subs, sizes, previous or {})
        if all(s == subs[0] for s in subs):
            per_member = _sticky_equal_subscriptions(subs[0] if subs else [], sizes, owned)
        else:
            per_member = _StickyBalancer(subs, sizes, owned).run()
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


def _subscribers_by_topic(subs: list[list[str]]) -> dict[str, list[int]]:
    """topic -> indices (in member order) of the members subscribed to it."""
    by_topic: dict[str, list[int]] = {}
    for i, topics in enumerate(subs):
        for t in topics:
            by_topic.setdefault(t, []).append(i)
    return by_topic


def _range(subs: list[list[str]], sizes: dict[str, int]) -> list[list[TopicPartition]]:
    out: list[list[TopicPartition]] = [[] for _ in subs]
    for topic, subscribers in _subscribers_by_topic(subs).items():
        n = sizes[topic]
        each, extra = divmod(n, len(subscribers))
        start = 0
        for rank, i in enumerate(subscribers):
            count = each + (1 if rank < extra else 0)
            if count == 0:
                break
            out[i].extend((topic, p) for p in range(start, start + count))
            start += count
    return out


def _roundrobin(subs: list[list[str]], sizes: dict[str, int]) -> list[list[TopicPartition]]:
    out: list[list[TopicPartition]] = [[] for _ in subs]
    count = len(subs)
    by_topic = _subscribers_by_topic(subs)
    cursor = 0  # the circular iterator's position: next member to consider
    for topic in sorted(by_topic):
        subscribers = by_topic[topic]
        everyone = len(subscribers) == count
        for p in range(sizes[topic]):
            if everyone:
                i = cursor
            else:  # the next subscriber at or after the cursor, wrapping around
                k = bisect_left(subscribers, cursor)
                i = subscribers[k] if k < len(subscribers) else subscribers[0]
            out[i].append((topic, p))
            cursor = i + 1 if i + 1 < count else 0
    return out


def _previously_owned(ordered: list[MemberSpec], subs: list[list[str]], sizes: dict[str, int],
                      previous: dict[str, list[TopicPartition]]) -> list[list[TopicPartition]]:
    """Each member's previous partitions that it may still own, sorted; a
    partition claimed twice goes to the first claimant in member order."""
    claimed: set[TopicPartition] = set()
    owned: list[list[TopicPartition]] = []
    for m, topics in zip(ordered, subs):
        mine: list[TopicPartition] = []
        allowed = set(topics)
        for tp in sorted(set(previous.get(m.member_id, ()))):
            topic, p = tp
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
       the least loaded subscriber.
    3. Moves along shortest chains (A gives B a partition B subscribes to, B
       gives C one, ...) from a member with load L to one with load <= L - 2,
       until no such chain exists: then the loads are as balanced as the
       subscriptions allow (an optimal semi-matching: the largest load and
       the spread are both minimal).

    Members with equal subscriptions form a class; the chain search walks
    classes and topics, not members, so it stays cheap for large groups.
    Single use, single thread.
    """

    def __init__(self, subs: list[list[str]], sizes: dict[str, int],
                 owned: list[list[TopicPartition]]):
        self.subs = subs
        self.sizes = sizes
        self.count = len(subs)
        class_ids: dict[tuple[str, ...], int] = {}
        self.class_of: list[int] = []
        self.class_members: list[list[int]] = []
        self.class_topics: list[list[str]] = []
        for i, topics in enumerate(subs):
            key = tuple(topics)
            c = class_ids.get(key)
            if c is None:
                c = class_ids[key] = len(self.class_members)
                self.class_members.append([])
                self.class_topics.append(list(topics))
            self.class_of.append(c)
            self.class_members[c].append(i)
        self.topic_classes: dict[str, list[int]] = {}
        for c, topics in enumerate(self.class_topics):
            for t in topics:
                self.topic_classes.setdefault(t, []).append(c)
        self.subscriber_count = {t: sum(len(self.class_members[c]) for c in cs)
                                 for t, cs in self.topic_classes.items()}
        self.owned = owned
        self.prev_owner = {tp: i for i, mine in enumerate(owned) for tp in mine}
        self.loads = [0] * self.count
        self.holdings: list[dict[str, set[TopicPartition]]] = [{} for _ in range(self.count)]
        self.class_held: list[dict[str, int]] = [{} for _ in self.class_members]
        self.owner: dict[TopicPartition, int] = {}

    def run(self) -> list[list[TopicPartition]]:
        order = sorted(self.topic_classes, key=lambda t: (self.subscriber_count[t], t))
        everything = [(t, p) for t in order for p in range(self.sizes[t])]
        cap = max(self._greedy([0] * self.count, everything), default=0)
        for i, mine in enumerate(self.owned):
            for tp in mine[:cap]:
                self._give(tp, i)
        pool = [tp for tp in everything if tp not in self.owner]
        self._greedy(self.loads, pool, place=True)
        while self._improve_once():
            pass
        return [[tp for held in h.values() for tp in held] for h in self.holdings]

    def _greedy(self, loads: list[int], items: list[TopicPartition], place: bool = False) -> list[int]:
        """Give each item, in order, to its least loaded subscriber (member
        order breaks ties). Updates ``loads``; with ``place`` also the assignment."""
        heaps = [[(loads[i], i) for i in members] for members in self.class_members]
        for h in heaps:
            heapq.heapify(h)
        for tp in items:
            best = min(self.topic_classes[tp[0]], key=lambda c: heaps[c][0])
            load, i = heapq.heappop(heaps[best])
            heapq.heappush(heaps[best], (load + 1, i))
            if place:
                self._give(tp, i)
            else:
                loads[i] = load + 1
        return loads

    def _give(self, tp: TopicPartition, i: int) -> None:
        self.owner[tp] = i
        self.loads[i] += 1
        self.holdings[i].setdefault(tp[0], set()).add(tp)
        held = self.class_held[self.class_of[i]]
        held[tp[0]] = held.get(tp[0], 0) + 1

    def _take(self, tp: TopicPartition, i: int) -> None:
        del self.owner[tp]
        self.loads[i] -= 1
        mine = self.holdings[i][tp[0]]
        mine.discard(tp)
        if not mine:
            del self.holdings[i][tp[0]]
        self.class_held[self.class_of[i]][tp[0]] -= 1

    def _improve_once(self) -> bool:
        subscribed = [self.loads[i] for i in range(self.count) if self.subs[i]]
        if not subscribed:
            return False
        low = min(subscribed)
        for level in sorted(set(subscribed), reverse=True):
            if level - 2 < low:
                return False
            chain = self._find_chain(level)
            if chain:
                self._apply(chain)
                return True
        return False

    def _lightest(self, c: int) -> int:
        return min(self.class_members[c], key=lambda i: (self.loads[i], i))

    def _find_chain(self, level: int) -> list[tuple[int, str, int]] | None:
        """Breadth-first over classes from the classes holding a member at
        ``level`` to a member at ``level - 2`` or less. Returns the moves
        (giver, topic, receiver), first move first."""
        sources = [i for i in range(self.count) if self.loads[i] == level]
        parent: dict[int, tuple[int, str] | None] = {}
        queue: list[int] = []
        for i in sources:
            c = self.class_of[i]
            if c not in parent:
                parent[c] = None
                queue.append(c)
        expanded: set[str] = set()
        for c in queue:  # grows while we walk it
            target = self._lightest(c)
            if self.loads[target] <= level - 2:
                return self._chain_to(c, target, parent, level)
            for t in self.class_topics[c]:
                if t in expanded or not self.class_held[c].get(t):
                    continue
                expanded.add(t)
                for d in self.topic_classes[t]:
                    if d not in parent:
                        parent[d] = (c, t)
                        queue.append(d)
        return None

    def _chain_to(self, c: int, receiver: int, parent: dict[int, tuple[int, str] | None],
                  level: int) -> list[tuple[int, str, int]]:
        moves: list[tuple[int, str, int]] = []
        while True:
            link = parent[c]
            if link is None:  # a source class: someone at ``level`` gives first
                source = next(i for i in self.class_members[c] if self.loads[i] == level)
                if source != receiver:
                    moves.append((source, next(iter(self.holdings[source])), receiver))
                break
            prev_class, topic = link
            members = self.class_members[prev_class]
            if parent[prev_class] is None:  # prefer a source that holds the topic itself
                giver = next((i for i in members if self.loads[i] == level
                              and topic in self.holdings[i]), None)
                if giver is None:
                    giver = next(i for i in members if topic in self.holdings[i])
            else:
                giver = next(i for i in members if topic in self.holdings[i])
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
