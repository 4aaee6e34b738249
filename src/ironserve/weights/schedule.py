"""The fan-out: a doubling tree. Round r: every node that already holds the weights serves one
node that does not, so N nodes are complete after ceil(log2 N) rounds and the hub is read once."""

from __future__ import annotations

import math


def rounds_for(nodes: int) -> int:
    """Rounds a group of ``nodes`` needs in the worst case (only the seed holds the weights)."""
    return math.ceil(math.log2(nodes)) if nodes > 1 else 0


def fanout(holders: list[str], receivers: list[str]) -> list[list[tuple[str, str]]]:
    """[[(receiver, source), ...] per round]: each holder serves at most one receiver a round."""
    if not holders and receivers:
        raise ValueError("a fan-out needs at least one node holding the weights")
    have, need, rounds = list(holders), list(receivers), []
    while need:
        pairs = list(zip(need, have, strict=False))
        rounds.append(pairs)
        need = need[len(pairs) :]
        have += [receiver for receiver, _ in pairs]
    return rounds
