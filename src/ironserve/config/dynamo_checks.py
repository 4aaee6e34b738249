"""A Dynamo group's shape, checked before any SSH: pools, worker fit, control plane, KV fabric.

One line per problem, naming the host and the key to change. What a Dynamo group needs:
every node in one pool (``node_dynamo_pool``), or in worker pools that share it and split its
devices (each saying its TP and count); the frontend and control plane on the head; an
aggregated group has a worker pool, a disaggregated one a prefill and a decode pool; each
worker's TP x DP fits its node's devices, or is exactly the devices of the ``nodes_per_worker``
nodes it spans (vLLM, SGLang, and TensorRT-LLM as one MPI world whose nodes share an interface
and HCAs; their ranks talk over RDMA unless the nodes share an NVLink domain); file discovery on
one node only (its folder is not shared between nodes); prefill -> decode across nodes over RDMA
where ``dynamo_kv_fabric`` says so (network_ib_hcas on every worker node).
"""

from __future__ import annotations

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.catalog.dynamo import DynamoBackend, worker_flags_problems
from ironserve.catalog.engines import ENGINES, EngineKind
from ironserve.config.mpi_world import one_fabric_problems
from ironserve.config.schema import DynamoPoolSettings, DynamoSettings, Node, ServingGroup
from ironserve.errors import Problem

WORKER_POOLS = {"aggregated": ("worker",), "disaggregated": ("prefill", "decode")}
# engine_* keys a Dynamo group sets per pool instead.
_PER_POOL_KEYS = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "expert_parallel",
    "multi_node",
)


def pool_settings(dynamo: DynamoSettings, pool: str) -> DynamoPoolSettings:
    settings: DynamoPoolSettings = getattr(dynamo, pool)
    return settings


def dynamo_problems(group: ServingGroup) -> list[Problem]:
    if group.engine.kind != EngineKind.DYNAMO:
        return _not_dynamo(group)
    problems: list[Problem] = []
    head, dynamo = group.head.name, group.dynamo
    pools = WORKER_POOLS[dynamo.mode]
    for key in _PER_POOL_KEYS:
        if key in group.engine.model_fields_set:
            problems.append(
                Problem(
                    head,
                    f"engine_{key}",
                    f"a Dynamo group sets parallelism per pool: dynamo_{pools[0]} "
                    "(tensor_parallel_size, data_parallel_size, expert_parallel, workers_per_node)",
                )
            )
    for name in ("prefill", "decode", "worker"):
        if name not in pools and name in dynamo.model_fields_set:
            problems.append(
                Problem(
                    head,
                    f"dynamo_{name}",
                    f"dynamo_mode {dynamo.mode} has no {name} pool (its pools: {', '.join(pools)})",
                )
            )
    problems += _membership(group, pools)
    problems += _fit(group, pools)
    if dynamo.control_plane == "file" and len(group.nodes) > 1:
        problems.append(
            Problem(
                head,
                "dynamo_control_plane",
                f"file discovery needs one folder every process sees; {len(group.nodes)} nodes "
                "do not share one: use etcd-nats",
            )
        )
    problems += _fabric(group)
    if not group.serving.gateway:
        problems.append(
            Problem(
                head,
                "serving_gateway",
                "Dynamo's frontend checks no API key: a Dynamo group keeps the gateway, which "
                "checks it in front of the frontend",
            )
        )
    version = group.engine.version or ENGINES[EngineKind.DYNAMO].default_version
    for message in worker_flags_problems(version, dynamo.backend, group.engine.extra_args):
        problems.append(Problem(head, "engine_extra_args", message))
    return problems


def _not_dynamo(group: ServingGroup) -> list[Problem]:
    """``dynamo_*`` and ``node_dynamo_pool`` mean nothing to another engine: say so."""
    problems = [
        Problem(group.head.name, f"dynamo_{key}", "only for engine_kind dynamo")
        for key in sorted(group.dynamo.model_fields_set)
    ]
    problems += [
        Problem(n.name, f"node_{key}", "only for engine_kind dynamo")
        for n in group.nodes
        for key in ("dynamo_pool", "dynamo_workers")
        if key in n.node.model_fields_set
    ]
    return problems


def _membership(group: ServingGroup, pools: tuple[str, ...]) -> list[Problem]:
    problems: list[Problem] = []
    allowed = ("frontend", *pools)
    for n in group.nodes:
        named = n.node.dynamo_pools
        if not named:
            problems.append(
                Problem(
                    n.name,
                    "node_dynamo_pool",
                    f"every node of a Dynamo group needs one of: {', '.join(allowed)}",
                )
            )
        for pool in named:
            if pool not in allowed:
                problems.append(
                    Problem(
                        n.name,
                        "node_dynamo_pool",
                        f"{pool} is not a pool of dynamo_mode {group.dynamo.mode} "
                        f"({', '.join(allowed)})",
                    )
                )
        if len(set(named)) < len(named):
            problems.append(
                Problem(n.name, "node_dynamo_pool", f"a pool named twice: {', '.join(named)}")
            )
        if named == ("frontend",) and n is not group.head:
            problems.append(
                Problem(
                    n.name,
                    "node_dynamo_pool",
                    f"the frontend runs on the head ({group.head.name}); make this node a worker "
                    "pool's or the head",
                )
            )
    if problems:
        return problems
    present = {p for n in group.nodes for p in n.node.dynamo_pools}
    for wanted in pools:
        if wanted not in present:
            others = [p for p in pools if p in present]
            what = f"a {' and '.join(others)} pool without a {wanted} pool"
            if not others:
                what = "no workers"
            problems.append(
                Problem(
                    group.head.name,
                    "node_dynamo_pool",
                    f"dynamo_mode {group.dynamo.mode} has {what}: set node_dynamo_pool: "
                    f"{wanted} on at least one node",
                )
            )
    return problems


def _fit(group: ServingGroup, pools: tuple[str, ...]) -> list[Problem]:
    """Each worker's TP x DP within one node's devices (or exactly its nodes' devices when it
    spans ``nodes_per_worker`` nodes), the pool's workers within the node."""
    problems: list[Problem] = []
    for pool in pools:
        settings = pool_settings(group.dynamo, pool)
        nodes = [n for n in group.nodes if pool in n.node.dynamo_pools]
        if nodes and settings.nodes_per_worker > 1:
            problems += _fit_across_nodes(group, pool, settings, nodes)
            continue
        if not nodes or settings.tensor_parallel_size is None:
            continue
        node = nodes[0]
        devices = node.accelerator.count
        units = settings.tensor_parallel_size * settings.data_parallel_size
        if units > devices:
            problems.append(
                Problem(
                    node.name,
                    f"dynamo_{pool}",
                    f"a {pool} worker's TP {settings.tensor_parallel_size} x DP "
                    f"{settings.data_parallel_size} = {units} devices does not fit this node's "
                    f"{devices} ({node.accelerator.kind}); a worker stays on one node unless "
                    "nodes_per_worker says how many it spans",
                )
            )
        elif settings.workers_per_node is not None and settings.workers_per_node * units > devices:
            problems.append(
                Problem(
                    node.name,
                    f"dynamo_{pool}",
                    f"{settings.workers_per_node} {pool} workers of {units} devices need "
                    f"{settings.workers_per_node * units}; this node has {devices}",
                )
            )
    return problems + _shared_nodes(group)


def _shared_nodes(group: ServingGroup) -> list[Problem]:
    """A node in several worker pools, or with its own worker counts (``node_dynamo_workers``):
    each of its pools says its workers' shape and count there, a worker over nodes takes none
    of it, and together they fit the node's devices."""
    problems: list[Problem] = []
    for n in group.nodes:
        named = n.node.dynamo_pools
        counts: dict[str, int] = {str(k): v for k, v in n.node.dynamo_workers.items()}
        for extra in counts:
            if extra not in named:
                problems.append(
                    Problem(
                        n.name,
                        "node_dynamo_workers",
                        f"{extra} is not this node's pool ({', '.join(named) or 'none'})",
                    )
                )
        if len(named) < 2 and not counts:
            continue
        shares = []
        for pool in named:
            settings = pool_settings(group.dynamo, pool)
            count = counts.get(pool, settings.workers_per_node)
            if settings.nodes_per_worker > 1:
                problems.append(
                    Problem(
                        n.name,
                        "node_dynamo_pool",
                        f"a {pool} worker over {settings.nodes_per_worker} nodes takes each of "
                        f"them whole: this node cannot share it ({', '.join(named)}) or count "
                        "its workers",
                    )
                )
            elif settings.tensor_parallel_size is None or count is None:
                problems.append(
                    Problem(
                        n.name,
                        f"dynamo_{pool}",
                        f"pools sharing a node ({', '.join(named)}) split its devices as each "
                        "says: set tensor_parallel_size, and workers_per_node (or this node's "
                        "node_dynamo_workers)",
                    )
                )
            else:
                units = settings.tensor_parallel_size * settings.data_parallel_size
                shares.append((pool, count, units))
        if len(shares) == len(named):
            need = sum(w * u for _, w, u in shares)
            if need > n.accelerator.count:
                parts = " + ".join(f"{w} {p} worker(s) x {u}" for p, w, u in shares)
                problems.append(
                    Problem(
                        n.name,
                        "node_dynamo_pool",
                        f"{parts} devices = {need}; this node has {n.accelerator.count} "
                        f"({n.accelerator.kind})",
                    )
                )
    return problems


def _fit_across_nodes(
    group: ServingGroup, pool: str, settings: DynamoPoolSettings, nodes: list[Node]
) -> list[Problem]:
    """A worker over ``nodes_per_worker`` nodes holds all their devices: TP x DP is exactly
    that many, one worker per node, whole workers in the pool; vLLM keeps TP inside a node
    (its DP ranks cross nodes)."""
    head, key, span = group.head.name, f"dynamo_{pool}", settings.nodes_per_worker
    if settings.tensor_parallel_size is None:
        return [
            Problem(head, key, f"a {pool} worker over {span} nodes needs its tensor_parallel_size")
        ]
    tp, dp = settings.tensor_parallel_size, settings.data_parallel_size
    devices = nodes[0].accelerator.count
    problems: list[Problem] = []
    if tp * dp != span * devices:
        problems.append(
            Problem(
                head,
                key,
                f"a {pool} worker over {span} nodes holds their {span * devices} devices; TP {tp} "
                f"x DP {dp} = {tp * dp}",
            )
        )
    if settings.workers_per_node not in (None, 1):
        problems.append(
            Problem(
                head,
                key,
                f"a {pool} worker over {span} nodes takes each of them whole: workers_per_node "
                f"{settings.workers_per_node} cannot be",
            )
        )
    if len(nodes) % span:
        problems.append(
            Problem(
                head,
                "node_dynamo_pool",
                f"the {pool} pool's {len(nodes)} node(s) are not whole workers of "
                f"nodes_per_worker {span}",
            )
        )
    domain = ACCELERATORS[nodes[0].accelerator.kind].nvlink_domain_nodes(devices)
    if span > domain:
        problems += [
            Problem(
                n.name,
                "network_ib_hcas",
                f"a {pool} worker's ranks talk across its {span} nodes over RDMA (NVLink stops at "
                f"{'the node' if domain == 1 else f'{domain} nodes'}): name the node's HCAs",
            )
            for n in nodes
            if not n.network.ib_hcas
        ]
    if group.dynamo.backend == DynamoBackend.TRTLLM:
        # One MPI world per worker (engines/dynamo.py): each worker's nodes share its first's
        # interface and HCAs.
        for first in range(0, len(nodes) - len(nodes) % span, span):
            problems += one_fabric_problems(
                nodes[first : first + span], f"a TensorRT-LLM {pool} worker over {span} nodes"
            )
    if group.dynamo.backend == DynamoBackend.VLLM and (tp > devices or devices % tp):
        problems.append(
            Problem(
                head,
                key,
                f"vLLM spreads a worker over nodes by its DP ranks: TP {tp} stays inside a node "
                f"of {devices} devices (divides it)",
            )
        )
    return problems


def _fabric(group: ServingGroup) -> list[Problem]:
    """Disaggregated over several nodes: the KV cache crosses nodes over NIXL; over RDMA each
    worker node names its HCAs."""
    dynamo = group.dynamo
    if dynamo.mode != "disaggregated" or len(group.nodes) < 2 or dynamo.kv_fabric != "rdma":
        return []
    return [
        Problem(
            n.name,
            "network_ib_hcas",
            "disaggregated prefill -> decode moves the KV cache between nodes over NIXL; with "
            "dynamo_kv_fabric rdma each worker node names its HCAs (or set dynamo_kv_fabric: tcp "
            "for UCX over TCP, a lab's choice)",
        )
        for n in group.nodes
        if {"prefill", "decode"} & set(n.node.dynamo_pools) and not n.network.ib_hcas
    ]
