"""DEV placeholder (replaced by g2's)."""
from dataclasses import dataclass
@dataclass(frozen=True)
class MemberSpec:
    member_id: str
    topics: frozenset
    instance_id: str | None = None
STRATEGIES = ("range", "roundrobin", "cooperative-sticky")
EAGER = frozenset({"range", "roundrobin"})
def assign(strategy, members, partitions, previous=None):
    order = sorted(members, key=lambda m: m.instance_id or m.member_id)
    out = {m.member_id: [] for m in members}
    tps = sorted((t, p) for t, n in partitions.items() for p in range(n) if any(t in m.topics for m in members))
    i = 0
    for tp in tps:
        subs = [m for m in order if tp[0] in m.topics]
        out[subs[i % len(subs)].member_id].append(tp); i += 1
    return out
