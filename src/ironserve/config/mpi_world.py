"""The rule every TensorRT-LLM MPI world shares, checked before any SSH (a multi-node trtllm
group, config/loader.py; a Dynamo TensorRT-LLM worker over nodes, config/dynamo_checks.py).

mpirun hands the first node's NCCL/Gloo env to every rank (``-x``), since ranks started over
SSH get no env of their own container: every node of the world must use the same socket
interface and HCAs as the first.
"""

from __future__ import annotations

from ironserve.config.schema import Node
from ironserve.errors import Problem


def one_fabric_problems(nodes: list[Node], what: str) -> list[Problem]:
    """One problem per node whose interface or HCAs differ from ``nodes[0]``'s; ``what`` names
    the MPI world in the sentence (e.g. "trtllm across nodes")."""
    first = nodes[0]
    problems = []
    for n in nodes[1:]:
        for key, mine, firsts in (
            ("network_socket_ifname", n.network.socket_ifname, first.network.socket_ifname),
            ("network_ib_hcas", n.network.ib_hcas, first.network.ib_hcas),
        ):
            if mine != firsts:
                problems.append(
                    Problem(
                        n.name,
                        key,
                        f"{mine!r} differs from {firsts!r} on {first.name}: {what} runs one MPI "
                        f"world, which gives every rank {first.name}'s interface and HCAs",
                    )
                )
    return problems
