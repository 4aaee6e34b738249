"""Who streams the weights from whom: a tree of fan-out 2 over the group.

Every node that needs the weights pulls from exactly one upstream, each file as soon as the
upstream has verified it, so the copies run while the seed is still downloading. Nodes already
holding the weights (a repair) are the first upstreams; when none does, the seed is the root and
downloads from the hub. The rest take their places in group order, heap-like: receiver j pulls
from the (j // 2)-th node of [holders..., receivers...], so each node serves at most two and a
file reaches the last of N nodes after ``hops(N)`` = ceil(log2(N + 1)) - 1 copies (3 for 8
nodes, 4 for 16) where a chain would take N - 1. Two is the fan-out because a node's port is
shared by the copies it serves: with the site link far slower than the cluster network (the
usual case) two copies a node cost nothing, while the depth is what adds to the tail.
"""

from __future__ import annotations

FANOUT = 2


def upstreams(holders: list[str], receivers: list[str], fanout: int = FANOUT) -> dict[str, str]:
    """{receiver: the node it pulls from}; ``holders`` hold the weights (or, the seed alone,
    download them), ``receivers`` need them, both in group order."""
    if not holders and receivers:
        raise ValueError("a stream needs at least one node holding or downloading the weights")
    pool = [*holders, *receivers]
    return {receiver: pool[j // fanout] for j, receiver in enumerate(receivers)}


def hops(nodes: int, fanout: int = FANOUT) -> int:
    """Copies between the root and the deepest of ``nodes`` (the root included)."""
    depth, reach = 0, 1
    while reach < nodes:
        depth += 1
        reach += fanout**depth
    return depth
