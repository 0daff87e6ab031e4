"""Consumer-group assignors: Kafka's documented examples, the invariants every
strategy keeps, balance, stickiness and speed."""
from __future__ import annotations

import itertools
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidelog.errors import InvalidArgumentError
from tidelog.groups._assignors import EAGER, STRATEGIES, MemberSpec, assign


def M(member_id, *topics, instance_id=None):
    return MemberSpec(member_id, frozenset(topics), instance_id)


def tps(spec):
    """'t0p0 t1p2' -> [('t0', 0), ('t1', 2)]"""
    out = []
    for word in spec.split():
        topic, _, p = word.rpartition("p")
        out.append((topic, int(p)))
    return out


def check_invariants(members, partitions, result):
    """Complete, exclusive, subscription respected, sorted, one key per member."""
    assert set(result) == {m.member_id for m in members}
    subscribed = set().union(*(m.topics for m in members)) if members else set()
    expected = {(t, p) for t in subscribed if t in partitions for p in range(partitions[t])}
    seen = []
    for m in members:
        got = result[m.member_id]
        assert got == sorted(got)
        assert all(t in m.topics for t, _ in got)
        seen.extend(got)
    assert len(seen) == len(set(seen)), "a partition assigned twice"
    assert set(seen) == expected


def loads(result):
    return {m: len(v) for m, v in result.items()}


def moved(before, after):
    """Partitions whose owner changed: [(tp, old, new)]."""
    owner_before = {tp: m for m, v in before.items() for tp in v}
    return [(tp, owner_before.get(tp), m) for m, v in after.items() for tp in v
            if owner_before.get(tp) != m]


# ---------------------------------------------------------------- the API


def test_strategies_and_eager_set():
    assert STRATEGIES == ("range", "roundrobin", "cooperative-sticky")
    assert EAGER == frozenset({"range", "roundrobin"})


def test_unknown_strategy_names_the_valid_ones():
    with pytest.raises(InvalidArgumentError) as err:
        assign("sticky-ish", [M("a", "t")], {"t": 1})
    for name in STRATEGIES:
        assert name in str(err.value)


def test_duplicate_member_id_is_rejected():
    with pytest.raises(InvalidArgumentError):
        assign("range", [M("a", "t"), M("a", "t")], {"t": 1})


def test_negative_partition_count_is_rejected():
    with pytest.raises(InvalidArgumentError):
        assign("range", [M("a", "t")], {"t": -1})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_and_degenerate_inputs(strategy):
    assert assign(strategy, [], {"t": 3}) == {}
    assert assign(strategy, [M("a", "t")], {}) == {"a": []}
    assert assign(strategy, [M("a", "t")], {"t": 0}) == {"a": []}
    # a topic nobody subscribes to is not assigned; a subscribed topic without metadata neither
    assert assign(strategy, [M("a", "t", "gone")], {"t": 2, "other": 5}) == {"a": tps("tp0 tp1")}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_more_members_than_partitions(strategy):
    members = [M(f"c{i}", "t") for i in range(5)]
    result = assign(strategy, members, {"t": 2})
    check_invariants(members, {"t": 2}, result)
    assert sorted(loads(result).values()) == [0, 0, 0, 1, 1]


# ------------------------------------------------- Kafka's documented examples


def test_range_javadoc_example():
    members = [M("C0", "t0", "t1"), M("C1", "t0", "t1")]
    assert assign("range", members, {"t0": 3, "t1": 3}) == {
        "C0": tps("t0p0 t0p1 t1p0 t1p1"), "C1": tps("t0p2 t1p2")}


def test_range_static_members_sort_by_instance_id():
    # After a rolling bounce the new member ids sort the other way round; the
    # instance ids keep each instance's partitions.
    members = [M("C3", "t0", "t1", instance_id="I0"), M("C2", "t0", "t1", instance_id="I1")]
    assert assign("range", members, {"t0": 3, "t1": 3}) == {
        "C3": tps("t0p0 t0p1 t1p0 t1p1"), "C2": tps("t0p2 t1p2")}


def test_roundrobin_javadoc_example_equal_subscriptions():
    members = [M("C0", "t0", "t1"), M("C1", "t0", "t1")]
    assert assign("roundrobin", members, {"t0": 3, "t1": 3}) == {
        "C0": tps("t0p0 t0p2 t1p1"), "C1": tps("t0p1 t1p0 t1p2")}


def test_roundrobin_javadoc_example_different_subscriptions():
    members = [M("C0", "t0"), M("C1", "t0", "t1"), M("C2", "t0", "t1", "t2")]
    assert assign("roundrobin", members, {"t0": 1, "t1": 2, "t2": 3}) == {
        "C0": tps("t0p0"), "C1": tps("t1p0"), "C2": tps("t1p1 t2p0 t2p1 t2p2")}


def test_roundrobin_javadoc_example_static_members():
    parts = {"t0": 3, "t1": 3}
    first = [M("C0", "t0", "t1", instance_id="I0"), M("C1", "t0", "t1", instance_id="I1"),
             M("C2", "t0", "t1", instance_id="I2")]
    assert assign("roundrobin", first, parts) == {
        "C0": tps("t0p0 t1p0"), "C1": tps("t0p1 t1p1"), "C2": tps("t0p2 t1p2")}
    bounced = [M("C5", "t0", "t1", instance_id="I0"), M("C3", "t0", "t1", instance_id="I1"),
               M("C4", "t0", "t1", instance_id="I2")]
    assert assign("roundrobin", bounced, parts) == {
        "C5": tps("t0p0 t1p0"), "C3": tps("t0p1 t1p1"), "C4": tps("t0p2 t1p2")}


def test_static_members_sort_before_dynamic_ones():
    # Kafka's MemberInfo order: static members (by instance id) first, then dynamic (by member id).
    members = [M("a", "t"), M("z", "t", instance_id="zz")]
    assert assign("range", members, {"t": 3}) == {"z": tps("tp0 tp1"), "a": tps("tp2")}


def test_cooperative_sticky_different_subscriptions_balanced_as_allowed():
    members = [M("C0", "t0"), M("C1", "t0", "t1"), M("C2", "t0", "t1", "t2")]
    result = assign("cooperative-sticky", members, {"t0": 1, "t1": 2, "t2": 3})
    assert result == {"C0": tps("t0p0"), "C1": tps("t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")}


# ----------------------------------------------------------- properties

topic_names = ["a", "b", "c", "d"]


@st.composite
def groups(draw, equal=None, max_members=7):
    sizes = {t: draw(st.integers(0, 9)) for t in topic_names}
    count = draw(st.integers(0, max_members))
    same = draw(st.booleans()) if equal is None else equal
    shared = frozenset(draw(st.sets(st.sampled_from(topic_names + ["missing"]), min_size=1)))
    members = []
    for i in range(count):
        topics = shared if same else frozenset(draw(st.sets(st.sampled_from(topic_names), max_size=4)))
        static = draw(st.booleans())
        members.append(MemberSpec(f"m{draw(st.integers(0, 99)):02d}-{i}", topics,
                                  f"i{i}" if static else None))
    draw(st.randoms()).shuffle(members)
    return members, sizes


@st.composite
def previous_of(draw, members, sizes):
    """A plausible-to-messy previous assignment: random partitions (some of
    them gone or doubly claimed) for members present and absent."""
    ids = [m.member_id for m in members] + ["left-1", "left-2"]
    every = [(t, p) for t in topic_names + ["gone"] for p in range(sizes.get(t, 3) + 2)]
    return {i: draw(st.lists(st.sampled_from(every), max_size=12)) for i in ids} if every else {}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_invariants_every_strategy(data):
    members, sizes = data.draw(groups())
    strategy = data.draw(st.sampled_from(STRATEGIES))
    previous = data.draw(previous_of(members, sizes)) if strategy == "cooperative-sticky" else None
    result = assign(strategy, members, sizes, previous)
    check_invariants(members, sizes, result)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_balance_with_equal_subscriptions(data):
    members, sizes = data.draw(groups(equal=True))
    if not members:
        return
    previous = data.draw(previous_of(members, sizes))
    for strategy in ("roundrobin", "cooperative-sticky"):
        counts = loads(assign(strategy, members, sizes, previous)).values()
        assert max(counts) - min(counts) <= 1
    # range balances each topic separately
    per_topic: dict[str, dict[str, int]] = {}
    for m, got in assign("range", members, sizes).items():
        for t, _ in got:
            per_topic.setdefault(t, {}).setdefault(m, 0)
            per_topic[t][m] += 1
    for t, counts in per_topic.items():
        full = [counts.get(m.member_id, 0) for m in members]
        assert max(full) - min(full) <= 1


def best_sum_of_squares(members, sizes):
    """Brute force: the smallest sum of squared loads any valid assignment has."""
    parts = [(t, p) for t in sorted(sizes) for p in range(sizes[t])
             if any(t in m.topics for m in members)]
    choices = [[i for i, m in enumerate(members) if t in m.topics] for t, _ in parts]
    best = None
    for pick in itertools.product(*choices):
        counts = [0] * len(members)
        for i in pick:
            counts[i] += 1
        score = sum(c * c for c in counts)
        best = score if best is None or score < best else best
    return best or 0


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_cooperative_sticky_is_as_balanced_as_subscriptions_allow(data):
    count = data.draw(st.integers(1, 4))
    members = [M(f"m{i}", *data.draw(st.sets(st.sampled_from("abc"), min_size=1)))
               for i in range(count)]
    sizes = {t: data.draw(st.integers(0, 3)) for t in "abc"}
    total = sum(sizes[t] for t in sizes if any(t in m.topics for m in members))
    if len(members) ** total > 20000:
        return
    previous = data.draw(previous_of(members, sizes))
    result = assign("cooperative-sticky", members, sizes, previous)
    check_invariants(members, sizes, result)
    assert sum(n * n for n in loads(result).values()) == best_sum_of_squares(members, sizes)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_cooperative_sticky_keeps_as_many_as_balance_allows(data):
    """Equal subscriptions: a member keeps min(owned, its quota) and the extra
    places go to those who owned most, so the kept count is the largest possible."""
    members, sizes = data.draw(groups(equal=True))
    if not members:
        return
    previous = data.draw(previous_of(members, sizes))
    result = assign("cooperative-sticky", members, sizes, previous)
    topics = members[0].topics
    total = sum(n for t, n in sizes.items() if t in topics)
    each, extra = divmod(total, len(members))
    ordered = sorted(members, key=lambda m: (0, m.instance_id, m.member_id)
                     if m.instance_id else (1, m.member_id, ""))
    claimed: set = set()
    owned = []
    for m in ordered:  # what each may still own, first claimant wins
        mine = {tp for tp in previous.get(m.member_id, ())
                if tp[0] in topics and tp[1] < sizes.get(tp[0], 0) and tp not in claimed}
        claimed |= mine
        owned.append((m.member_id, mine))
    by_most = sorted((len(mine) for _, mine in owned), reverse=True)
    best_kept = sum(min(n, each + 1) for n in by_most[:extra]) + sum(min(n, each) for n in by_most[extra:])
    kept = sum(1 for member_id, mine in owned for tp in result[member_id] if tp in mine)
    assert kept == best_kept


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_deterministic_whatever_the_input_order(data):
    members, sizes = data.draw(groups())
    previous = data.draw(previous_of(members, sizes))
    rng = data.draw(st.randoms())
    shuffled_members = list(members)
    rng.shuffle(shuffled_members)
    shuffled_sizes = dict(rng.sample(list(sizes.items()), len(sizes)))
    shuffled_previous = {m: rng.sample(v, len(v)) for m, v in rng.sample(list(previous.items()), len(previous))}
    for strategy in STRATEGIES:
        assert assign(strategy, members, sizes, previous) == \
            assign(strategy, shuffled_members, shuffled_sizes, shuffled_previous)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_cooperative_sticky_is_stable(data):
    """Feeding an assignment back as previous changes nothing."""
    members, sizes = data.draw(groups())
    previous = data.draw(previous_of(members, sizes))
    first = assign("cooperative-sticky", members, sizes, previous)
    assert assign("cooperative-sticky", members, sizes, first) == first


# ------------------------------------------------------------- stickiness


def balanced_group(count, topics=("t0", "t1", "t2"), partitions=20):
    sizes = {t: partitions for t in topics}
    members = [M(f"c{i:02d}", *topics) for i in range(count)]
    return members, sizes, assign("cooperative-sticky", members, sizes)


@pytest.mark.parametrize("count", [1, 2, 5, 7, 12])
def test_sticky_join_moves_only_to_the_newcomer(count):
    members, sizes, before = balanced_group(count)
    newcomer = M("new", *members[0].topics)
    after = assign("cooperative-sticky", members + [newcomer], sizes, before)
    check_invariants(members + [newcomer], sizes, after)
    total = sum(sizes.values())
    changes = moved(before, after)
    assert all(new == "new" and old is not None for _, old, new in changes)
    assert len(changes) == len(after["new"]) in (total // (count + 1), total // (count + 1) + 1)
    counts = loads(after).values()
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("count", [2, 5, 7, 12])
def test_sticky_leave_moves_only_the_leavers_partitions(count):
    members, sizes, before = balanced_group(count)
    leaver = members[count // 2]
    rest = [m for m in members if m is not leaver]
    after = assign("cooperative-sticky", rest, sizes, before)
    check_invariants(rest, sizes, after)
    changes = moved({k: v for k, v in before.items() if k != leaver.member_id}, after)
    assert {tp for tp, _, _ in changes} == set(before[leaver.member_id])
    counts = loads(after).values()
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_static_member_replaced_by_new_incarnation_gets_its_old_partitions(strategy):
    sizes = {"t0": 7, "t1": 4}
    members = [M(f"id-{i}", "t0", "t1", instance_id=f"inst-{i}") for i in range(4)]
    before = assign(strategy, members, sizes)
    # inst-2 restarts: same instance id, new member id (sorting before everyone's)
    reborn = M("aaa-new", "t0", "t1", instance_id="inst-2")
    after_members = [m if m.instance_id != "inst-2" else reborn for m in members]
    previous = {(reborn.member_id if k == "id-2" else k): v for k, v in before.items()}
    after = assign(strategy, after_members, sizes, previous)
    assert after["aaa-new"] == before["id-2"]
    assert all(after[k] == v for k, v in before.items() if k != "id-2")


def test_sticky_ignores_stale_previous_entries():
    members = [M("a", "t"), M("b", "t")]
    previous = {"a": tps("tp0 tp1 tp7 gonep0"), "left": tps("tp2 tp3"), "b": []}
    result = assign("cooperative-sticky", members, {"t": 4}, previous)
    assert result["a"] == tps("tp0 tp1")
    assert result["b"] == tps("tp2 tp3")


def test_sticky_unsubscribed_topic_leaves_its_former_owner():
    members = [M("a", "u"), M("b", "t", "u")]
    previous = {"a": tps("tp0 tp1 up0"), "b": tps("up1")}
    result = assign("cooperative-sticky", members, {"t": 2, "u": 2}, previous)
    check_invariants(members, {"t": 2, "u": 2}, result)
    # t's partitions must leave a; balance then sends u1 the other way
    assert result == {"a": tps("up0 up1"), "b": tps("tp0 tp1")}


def test_sticky_partition_claimed_twice_keeps_one_owner():
    members = [M("a", "t"), M("b", "t")]
    previous = {"a": tps("tp0 tp1"), "b": tps("tp1 tp2")}
    result = assign("cooperative-sticky", members, {"t": 4}, previous)
    check_invariants(members, {"t": 4}, result)
    assert set(tps("tp0 tp1")) <= set(result["a"])   # the first in member order keeps tp1
    assert ("t", 2) in result["b"]


def test_sticky_general_case_join_moves_little():
    rng = random.Random(7)
    topics = [f"t{i}" for i in range(6)]
    sizes = {t: 30 for t in topics}
    members = [M(f"m{i:02d}", *rng.sample(topics, rng.randint(1, 4))) for i in range(15)]
    before = assign("cooperative-sticky", members, sizes)
    newcomer = M("new", *topics[:2])
    after = assign("cooperative-sticky", members + [newcomer], sizes, before)
    check_invariants(members + [newcomer], sizes, after)
    changes = moved(before, after)
    # every move serves the newcomer's share, directly or through a short chain
    assert len(changes) <= 3 * len(after["new"])
    assert len(after["new"]) >= 1


# ------------------------------------------------------------------ speed


def big_group(equal):
    rng = random.Random(3)
    topics = [f"topic-{i:02d}" for i in range(20)]
    sizes = {t: 500 for t in topics}
    members = [MemberSpec(f"member-{i:04d}",
                          frozenset(topics) if equal else frozenset(rng.sample(topics, rng.randint(1, 5))))
               for i in range(1000)]
    return members, sizes


@pytest.mark.parametrize("equal", [True, False], ids=["equal-subscriptions", "mixed-subscriptions"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_thousand_members_ten_thousand_partitions_is_fast(strategy, equal):
    members, sizes = big_group(equal)
    start = time.perf_counter()
    first = assign(strategy, members, sizes)
    again = assign(strategy, members + [MemberSpec("member-new", members[0].topics)], sizes, first)
    elapsed = (time.perf_counter() - start) / 2
    check_invariants(members, sizes, first)
    assert sum(map(len, again.values())) == 10_000
    # well under a second each on an idle core; the bound leaves room for a loaded CI machine
    assert elapsed < 1.0, f"{strategy}: {elapsed:.3f} s"
