"""Sizing a Dynamo group pool by pool: each worker is sized as its backend engine would be.

A pool's worker holds TP x DP devices of one node, or every device of ``nodes_per_worker`` nodes
(config/dynamo_checks.py keeps it to that). With no TP given, the backend's own layout search
over one node picks it (the smallest split that holds the model and the target context); the
worker is then sized alone, on exactly its devices, so its memory budget, context and KV
capacity are the worker's. Each pool's sentences are prefixed with its name; the group's Sizing
is the serving pool's (decode, or the aggregated workers) with every pool's reasons and
blockers, so the group is feasible only when every pool is.
"""

from __future__ import annotations

from ironserve.catalog.dynamo import SIZED_AS, DynamoBackend, pinned_engine_version
from ironserve.catalog.models import ModelSpec
from ironserve.config.dynamo_checks import WORKER_POOLS, pool_settings
from ironserve.config.schema import DynamoSettings
from ironserve.engines.dynamo import worker_label
from ironserve.plan.sizing import MULTI_NODE_NOTE, size_model
from ironserve.plan.types import DynamoPool, DynamoSpec, Sizing, SizingRequest

# How a worker's ranks meet when it spans nodes (engines/dynamo.py renders it).
_SPAN_LAUNCH = {
    DynamoBackend.VLLM: "each node of a worker runs its DP ranks (--data-parallel-size-local, "
    "--data-parallel-start-rank) and serves them (--data-parallel-hybrid-lb); they meet at the "
    "worker's first node (--data-parallel-address)",
    DynamoBackend.SGLANG: "one SGLang instance over the worker's nodes (--nnodes, --node-rank), "
    "meeting at its first node (--dist-init-addr)",
    DynamoBackend.TRTLLM: "one MPI world over the worker's nodes: mpirun in its first node's "
    "container starts every rank through trtllm-llmapi-launch (rank 0 the Dynamo worker) over "
    "SSH to an sshd in each other node's container (its MPI SSH port, inside the group only)",
}


def size_pool(
    model: ModelSpec,
    base: SizingRequest,
    dynamo: DynamoSettings,
    dynamo_version: str,
    pool: str,
    nodes: list[str],
    *,
    shared: bool = False,
    counts: dict[str, int] | None = None,
) -> DynamoPool:
    """One pool: each worker's parallelism and sizing, how many share a node, and why.
    ``shared``: a node of the pool is another pool's too; ``counts``: nodes that run another
    number of this pool's workers than the pool's own (``node_dynamo_workers``)."""
    counts = counts or {}
    settings = pool_settings(dynamo, pool)
    backend = dynamo.backend
    engine_kind = SIZED_AS[backend]
    engine_version = (
        pinned_engine_version(dynamo_version, backend) if backend != DynamoBackend.TRTLLM else None
    )
    common = base.model_copy(
        update={
            "nodes": 1,
            "engine": engine_kind,
            "engine_version": engine_version,
            "multi_node": None,
            "pipeline_parallel_size": 1,
            "expert_parallel": settings.expert_parallel,
        }
    )
    tp = settings.tensor_parallel_size
    chosen = "as set"
    if tp is None:
        search = size_model(
            model,
            common.model_copy(
                update={
                    "data_parallel_size": None,
                    "tensor_parallel_size": None,
                    "pipeline_parallel_size": None,
                }
            ),
            with_alternatives=False,
        )
        tp, chosen = search.parallelism.tensor, "the smallest TP that serves"
    dp = settings.data_parallel_size
    units = tp * dp
    span = settings.nodes_per_worker  # > 1: the worker holds every device of its nodes
    worker = size_model(
        model,
        common.model_copy(
            update={
                "nodes": span,
                "devices_per_node": units // span,
                "tensor_parallel_size": tp,
                "data_parallel_size": dp,
            }
        ),
        with_alternatives=False,
    )
    per_node = (
        1 if span > 1 else settings.workers_per_node or max(1, base.devices_per_node // units)
    )
    expert = worker.parallelism.expert
    shape = f"TP {tp} ({chosen})" + (f" x DP {dp}" if dp > 1 else "")
    shape += f", EP {expert}" if expert > 1 else ""
    if span > 1:
        where = f"{len(nodes)} node(s) ({', '.join(nodes)}) x {len(nodes) // span}"
        layout = f"{where} worker(s) of {shape}, each over {span} nodes"
        workers = len(nodes) // span
    elif counts:
        on = [counts.get(n, per_node) for n in nodes]
        layout = ", ".join(f"{n} x {c}" for n, c in zip(nodes, on, strict=True))
        layout += f" worker(s) of {shape}"
        workers = sum(on)
    else:
        layout = f"{len(nodes)} node(s) ({', '.join(nodes)}) x {per_node} worker(s) of {shape}"
        workers = len(nodes) * per_node
    summary = (
        f"{pool} pool: {layout} = {workers} "
        f"{backend.value} worker(s); each holds {worker.max_model_len} tokens of context and "
        f"{worker.full_length_sequences} full-length sequences"
    )
    # On a node shared with another pool the rest of the devices are that pool's.
    idle = 0 if shared or counts else base.devices_per_node - per_node * units // span
    notes = [summary]
    if idle > 0:
        notes.append(f"{pool} pool: {idle} device(s) per node left idle by {per_node} x {units}")
    if span > 1:
        notes.append(f"{pool} pool: {_SPAN_LAUNCH.get(backend, 'one worker over its nodes')}")
    label = f"each {worker_label(pool)}"
    reasons = notes + [f"{label}: {r}" for r in worker.reasons if not r.startswith(MULTI_NODE_NOTE)]
    sized = worker.model_copy(
        update={"reasons": reasons, "blockers": [f"{label}: {b}" for b in worker.blockers]}
    )
    return DynamoPool(
        name=pool,
        nodes=nodes,
        tensor=tp,
        data=dp,
        expert=expert,
        workers_per_node=per_node,
        units_per_worker=units,
        nodes_per_worker=span,
        workers_on_node=counts,
        sizing=sized,
    )


def plan_dynamo(
    group: str,
    model: ModelSpec,
    base: SizingRequest,
    dynamo: DynamoSettings,
    dynamo_version: str,
    pools_of_nodes: dict[str, tuple[str, ...]],
    head: str,
    workers_of_nodes: dict[str, dict[str, int]] | None = None,
) -> tuple[DynamoSpec, Sizing]:
    """The group's pools (``pools_of_nodes``: node -> its pools; ``workers_of_nodes``: node ->
    pool -> its count of that pool's workers where set) and the group's Sizing."""
    counts = workers_of_nodes or {}
    pools = [
        size_pool(
            model,
            base,
            dynamo,
            dynamo_version,
            name,
            [n for n, named in pools_of_nodes.items() if name in named],
            shared=any(name in named and len(named) > 1 for named in pools_of_nodes.values()),
            counts={n: c[name] for n, c in counts.items() if name in c},
        )
        for name in WORKER_POOLS[dynamo.mode]
    ]
    backend = dynamo.backend
    spec = DynamoSpec(
        backend=backend,
        engine_version=pinned_engine_version(dynamo_version, backend),
        mode=dynamo.mode,
        router_mode=dynamo.router_mode,
        control_plane=dynamo.control_plane,
        kv_fabric=dynamo.kv_fabric,
        namespace=group,
        etcd_image=dynamo.etcd_image,
        nats_image=dynamo.nats_image,
        frontend_node=head,
        pools=pools,
    )
    serving = pools[-1].sizing  # decode, or the aggregated workers: what clients' tokens see
    reasons = [
        f"dynamo {dynamo_version} ({backend.value} {spec.engine_version}), {dynamo.mode}, router "
        f"{dynamo.router_mode}, control plane {dynamo.control_plane}, frontend on {head}"
    ]
    reasons += _context_mismatch(pools)
    blockers: list[str] = []
    for pool in pools:
        reasons += pool.sizing.reasons
        blockers += pool.sizing.blockers
    group_sizing = serving.model_copy(
        update={"reasons": reasons, "blockers": blockers, "feasible": not blockers}
    )
    return spec, group_sizing


def _context_mismatch(pools: list[DynamoPool]) -> list[str]:
    """Disaggregated: a prompt runs its prefill on a prefill worker, so a prefill context shorter
    than the decode workers' is the longest prompt the group takes."""
    lengths = {p.name: p.sizing.max_model_len for p in pools}
    if set(lengths) != {"prefill", "decode"} or lengths["prefill"] >= lengths["decode"]:
        return []
    return [
        f"prefill workers hold {lengths['prefill']} tokens of context, decode workers "
        f"{lengths['decode']}: a prompt longer than {lengths['prefill']} fails in prefill (give "
        f"prefill workers more devices, or set model_max_len {lengths['prefill']})"
    ]
