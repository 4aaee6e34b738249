"""The Plan: sizing plus, per node, exactly what runs there, and what follows from both once
(plan/derived.py: endpoint, API key location, launch layout, ports, disk per node;
plan/staging.py: the time to stage the weights and the image). Computed once; roles, health,
bench and runbooks only read it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.catalog.dynamo import image as dynamo_image
from ironserve.catalog.engines import ENGINES, EngineKind
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import ModelSpec, get_model
from ironserve.config.schema import (
    DEFAULT_API_KEY_DIR,
    DEFAULT_BACKEND_PORT,
    Cluster,
    ServingGroup,
)
from ironserve.engines import build_launches
from ironserve.engines.base import LaunchContext, NodeLaunch, NodeTarget
from ironserve.engines.common import EngineBuildError
from ironserve.errors import InputError, Problem
from ironserve.plan.derived import (
    ApiKeyLocation,
    Endpoint,
    Gateway,
    Layout,
    NodeDisk,
    PortUse,
    api_key_location,
    disk_of,
    endpoint_of,
    gateway_of,
    layout_of,
    mpi_keys_file,
    ports_of,
)
from ironserve.plan.dynamo import plan_dynamo
from ironserve.plan.sizing import size_model
from ironserve.plan.staging import Links, Staging, links_of, staging_of
from ironserve.plan.types import DynamoSpec, Sizing, SizingRequest


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str
    context: LaunchContext
    nodes: list[NodeLaunch]
    endpoint: Endpoint
    api_key: ApiKeyLocation
    layout: Layout
    ports: list[PortUse]
    disk: list[NodeDisk]
    gateway: Gateway | None
    staging: Staging
    # A multi-node TensorRT-LLM group: the control machine's 0600 file of its MPI SSH keys.
    mpi_keys: str | None = None

    @classmethod
    def build(
        cls,
        ctx: LaunchContext,
        api_key_file: Path | None = None,
        api_key_dir: str = DEFAULT_API_KEY_DIR,
        disk_margins: Mapping[str, float] | None = None,
        links: Links | None = None,
        *,
        public_metrics: bool = False,
        public_health: bool = False,
    ) -> Plan:
        """The launches of ``ctx`` and everything derived from them, in one pass
        (``disk_margins``: each node's preflight_disk_margin; ``links``: the site link and each
        node's cluster network link, defaults where None; ``public_*``: the paths the gateway
        serves without the key)."""
        nodes = build_launches(ctx)
        endpoint = endpoint_of(ctx, nodes)
        layout = layout_of(ctx, nodes)
        return cls(
            group=ctx.group,
            context=ctx,
            nodes=nodes,
            endpoint=endpoint,
            api_key=api_key_location(ctx, api_key_file, api_key_dir),
            layout=layout,
            ports=ports_of(ctx, endpoint, layout),
            disk=disk_of(ctx, disk_margins),
            gateway=gateway_of(ctx, endpoint, public_metrics, public_health),
            staging=staging_of(ctx, links),
            mpi_keys=mpi_keys_file(ctx, api_key_dir),
        )

    @property
    def sizing(self) -> Sizing:
        return self.context.sizing

    @property
    def feasible(self) -> bool:
        return self.sizing.feasible

    @property
    def serving(self) -> NodeLaunch:
        """The node that answers the API."""
        return self.node(self.endpoint.node)

    def disk_of(self, name: str) -> NodeDisk:
        """The disk node ``name`` needs for the weights (preflight, health, roles/weights)."""
        for disk in self.disk:
            if disk.node == name:
                return disk
        raise KeyError(name)

    def node(self, name: str) -> NodeLaunch:
        for launch in self.nodes:
            if launch.node == name:
                return launch
        raise KeyError(name)

    def dynamo_summary(self) -> dict[str, Any] | None:
        """A Dynamo group's planes and pools (each worker's shape and sizing verdict); None for
        the other engines."""
        spec = self.context.dynamo
        if spec is None:
            return None
        doc = spec.model_dump(mode="json", exclude={"pools"})
        doc["pools"] = [
            {
                "name": p.name,
                "nodes": p.nodes,
                "workers_per_node": p.workers_per_node,
                "workers_on_node": {n: p.workers_on(n) for n in p.nodes},
                "nodes_per_worker": p.nodes_per_worker,
                "workers": p.workers,
                "tensor_parallel_size": p.tensor,
                "data_parallel_size": p.data,
                "expert_parallel_size": p.expert,
                "devices_per_worker": p.units_per_worker,
                "feasible": p.sizing.feasible,
                "max_model_len": p.sizing.max_model_len,
                "full_length_sequences": p.sizing.full_length_sequences,
                "kv_tokens": p.sizing.memory.kv_tokens,
                "blockers": p.sizing.blockers,
            }
            for p in spec.pools
        ]
        return doc

    def summary(self) -> dict[str, Any]:
        """The JSON contract of `ironserve plan --json` (keys scripts rely on come first)."""
        s, p, ctx = self.sizing, self.sizing.parallelism, self.context
        return {
            "feasible": s.feasible,
            "tensor_parallel_size": p.tensor,
            "pipeline_parallel_size": p.pipeline,
            "data_parallel_size": p.data,
            "expert_parallel_size": p.expert,
            "max_model_len": s.max_model_len,
            "weights_bytes": s.weights_bytes,
            "reasons": s.reasons,
            "blockers": s.blockers,
            "group": self.group,
            "model": ctx.model.id,
            "served_model_name": ctx.served_name,
            "weight_format": s.weight_format.value,
            "accelerator": ctx.accelerator.id,
            "engine": ctx.engine.kind.value,
            "engine_version": ctx.engine_version,
            "image": ctx.image,
            "max_num_seqs": s.max_num_seqs,
            "full_length_sequences": s.full_length_sequences,
            "memory_per_unit": s.memory.model_dump(),
            "endpoint": self.endpoint.model_dump(),
            "api_key": self.api_key.model_dump(),
            "layout": self.layout.model_dump(),
            "ports": [p.model_dump() for p in self.ports],
            "disk": [d.model_dump() for d in self.disk],
            "gateway": self.gateway.model_dump() if self.gateway else None,
            "staging": self.staging.model_dump(),
            "alternatives": [a.model_dump(mode="json") for a in s.alternatives],
            "dynamo": self.dynamo_summary(),
            "nodes": [
                {
                    "name": n.node,
                    "address": n.address,
                    "role": n.role,
                    "rank": n.rank,
                    "serves_api": n.serves_api,
                    "launch": n.shell_lines(),
                    "env": n.container.env,
                    "files": [f.path for f in n.files],
                }
                for n in self.nodes
            ],
        }


def launch_context(
    group: str,
    model: ModelSpec,
    request: SizingRequest,
    nodes: list[NodeTarget],
    *,
    served_name: str | None = None,
    weights_dir: str = "/data/models",
    image: str | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
    shm_size: str = "32g",
    npu_tls: bool = False,
    gateway: bool = True,
    backend_port: int = DEFAULT_BACKEND_PORT,
    dynamo: DynamoSpec | None = None,
    sizing: Sizing | None = None,
) -> LaunchContext:
    engine = ENGINES[request.engine]
    version = request.engine_version or engine.default_version
    if dynamo is not None and image is None:
        image = dynamo_image(dynamo.backend, version)
    if sizing is None:  # a Dynamo group's comes sized per pool (plan/dynamo.py)
        sizing = size_model(model, request)  # raises UnknownAccelerator before any build
    return LaunchContext(
        group=group,
        model=model,
        accelerator=ACCELERATORS[request.accelerator_id],
        engine=engine,
        engine_version=version,
        image=image or engine.image(version),
        sizing=sizing,
        served_name=served_name or model.short_name,
        weights_path=weights_path(weights_dir, model, sizing.weight_format),
        port=port or engine.default_port,
        nodes=nodes,
        extra_args=extra_args or [],
        # An operator's own --reasoning-parser wins over the catalog's.
        reasoning_parser=None
        if any(a.split("=", 1)[0] == "--reasoning-parser" for a in extra_args or [])
        else model.reasoning_parser,
        shm_size=shm_size,
        npu_tls=npu_tls,
        gateway=gateway,
        backend_port=backend_port,
        dynamo=dynamo,
    )


def plan_group(group: ServingGroup) -> Plan:
    """Plan one validated serving group of the inventory. What its engine version cannot launch
    as configured (data or expert parallelism before the version had the flag, vllm_vacc over
    several nodes) is bad input: InputError naming the head and the key to change."""
    try:
        return _plan_group(group)
    except EngineBuildError as error:
        raise InputError([Problem(group.head.name, error.field, str(error))]) from error


def _plan_group(group: ServingGroup) -> Plan:
    model = get_model(group.model.id, group.model.config_file)
    head = group.head
    request = SizingRequest(
        model_id=model.id,
        accelerator_id=head.accelerator.kind,
        nodes=len(group.nodes),
        devices_per_node=head.accelerator.count,
        engine=group.engine.kind,
        engine_version=group.engine.version,
        multi_node=group.engine.multi_node,
        weight_format=group.model.format,
        max_model_len=group.model.max_len,
        tensor_parallel_size=group.engine.tensor_parallel_size,
        pipeline_parallel_size=group.engine.pipeline_parallel_size,
        data_parallel_size=group.engine.data_parallel_size,
        expert_parallel=group.engine.expert_parallel,
        memory_utilization=group.engine.memory_utilization,
        max_num_seqs=group.engine.max_num_seqs,
        kv_cache_dtype_bytes=kv_cache_dtype_bytes(group.engine.extra_args),
    )
    targets = [
        NodeTarget(
            name=n.name,
            address=str(n.node.ip),
            role=n.node.role,
            rank=rank,
            device_count=n.accelerator.count,
            socket_ifname=n.network.socket_ifname,
            ib_hcas=n.network.ib_hcas,
            ib_gid_index=n.network.ib_gid_index,
            npu_device_ips=[str(ip) for ip in n.npu.device_ips],
        )
        for rank, n in enumerate(group.nodes)
    ]
    dynamo, sizing = None, None
    if group.engine.kind == EngineKind.DYNAMO:
        dynamo, sizing = plan_dynamo(
            group.name,
            model,
            request,
            group.dynamo,
            group.engine.version or ENGINES[EngineKind.DYNAMO].default_version,
            {n.name: n.node.dynamo_pools for n in group.nodes},
            head.name,
            {n.name: {str(k): v for k, v in n.node.dynamo_workers.items()} for n in group.nodes},
        )
    ctx = launch_context(
        group.name,
        model,
        request,
        targets,
        served_name=group.model.served_name,
        weights_dir=group.model.weights_dir,
        image=group.engine.image,
        port=group.engine.port,
        extra_args=group.engine.extra_args,
        shm_size=group.engine.shm_size,
        npu_tls=group.nodes[0].npu.tls,
        gateway=group.serving.gateway,
        backend_port=group.serving.backend_port,
        dynamo=dynamo,
        sizing=sizing,
    )
    return Plan.build(
        ctx,
        group.serving.api_key_file,
        group.serving.api_key_dir,
        {n.name: n.disk_margin for n in group.nodes},
        links_of(
            group.hub.bandwidth,
            {n.name: n.network.fabric_bandwidth for n in group.nodes},
            group.engine.image_size,
        ),
        public_metrics=group.serving.public_metrics,
        public_health=group.serving.public_health,
    )


def plan_cluster(cluster: Cluster) -> list[Plan]:
    """Every serving group's Plan; InputError with the problems of every group that does not
    plan (:func:`plan_group`)."""
    plans, problems = [], []
    for group in cluster.groups:
        try:
            plans.append(plan_group(group))
        except InputError as error:
            problems += error.problems
    if problems:
        raise InputError(problems)
    return plans


def plan_sizing(request: SizingRequest, model_config: Path | None = None) -> Plan:
    """A plan without an inventory: nodes get placeholder names and addresses."""
    model = get_model(request.model_id, model_config)
    vendor = (
        ACCELERATORS[request.accelerator_id].vendor
        if request.accelerator_id in ACCELERATORS
        else ""
    )
    targets = [
        NodeTarget(
            name=f"node-{rank}",
            address=f"<node-{rank}-ip>",
            role="head" if rank == 0 else "worker",
            rank=rank,
            device_count=request.devices_per_node,
            socket_ifname="<ifname>" if request.nodes > 1 else None,
            npu_device_ips=[f"<node-{rank}-npu-{i}-ip>" for i in range(request.devices_per_node)]
            if vendor == "ascend"
            else [],
        )
        for rank in range(request.nodes)
    ]
    if request.engine == EngineKind.DYNAMO:
        raise EngineBuildError(
            "a Dynamo group is planned from an inventory: each node's node_dynamo_pool and the "
            "dynamo_* keys say its pools (docs/engines.md)",
            field="engine_kind",
        )
    ctx = launch_context("default", model, request, targets)
    return Plan.build(ctx)


def weights_path(weights_dir: str, model: ModelSpec, fmt: WeightFormat) -> str:
    """Where a checkpoint sits on every node. A converted checkpoint (the BF16 upcast of an FP8
    model, Ascend's W8A8) is a different set of files, so it gets its own folder."""
    folder = f"{weights_dir.rstrip('/')}/{model.id}"
    return folder if fmt == model.native_format else f"{folder}-{fmt.value.upper()}"


def kv_cache_dtype_bytes(extra_args: list[str]) -> int:
    """1 when the engine is told to keep an FP8 KV cache, else 2."""
    for index, token in enumerate(extra_args):
        value = None
        if token.startswith("--kv-cache-dtype="):
            value = token.split("=", 1)[1]
        elif token == "--kv-cache-dtype" and index + 1 < len(extra_args):
            value = extra_args[index + 1]
        if value is not None:
            return 1 if value.startswith("fp8") else 2
    return 2
