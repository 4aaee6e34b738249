"""What a serving group's Plan derives from the inventory once, beside the launches: where
clients reach it (:class:`Endpoint`), where its API key lives (:class:`ApiKeyLocation`), how its
nodes find each other (:class:`Layout`: Ray's head and planned GPUs, or the native rendezvous),
the ports it uses (:class:`PortUse`), the free disk each node needs for the weights
(:class:`NodeDisk`) and the reverse proxy that checks the API key on the public port
(:class:`Gateway`).

Roles, health, bench, runbooks and ``ironserve lab status`` read these fields; none rebuilds an
URL, a key path, Ray's planned GPUs or a port. Pure: the same context always derives the same.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, computed_field

from ironserve.catalog.engines import EngineKind
from ironserve.engines.base import (
    NODE_STATE_DIR,
    RAY_PORT,
    SGLANG_DIST_PORT,
    VLLM_DP_RPC_PORT,
    VLLM_MASTER_PORT,
    LaunchContext,
    NodeLaunch,
)
from ironserve.engines.common import container_name, is_multi_node, units_on
from ironserve.rules.disk import DISK_MARGIN, DiskNeed, disk_need, node_disk_need_bytes
from ironserve.serving.ray_status import NODES_PROBE

if TYPE_CHECKING:
    from ironserve.plan.types import Sizing
    from ironserve.serving.ray_status import RayStatus

# Bounds the probe inside the head container (Ray's client can hang on a half-formed cluster).
RAY_PROBE_TIMEOUT_S = 30


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Endpoint(_Frozen):
    """The group's OpenAI endpoint: the serving node's address and the planned port."""

    node: str  # the inventory name of the node that answers the API
    address: str
    port: int
    scheme: str = "http"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def root(self) -> str:
        return f"{self.scheme}://{self.address}:{self.port}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        """The OpenAI base URL (``.../v1``) clients are given."""
        return f"{self.root}/v1"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def health_url(self) -> str:
        return f"{self.root}/health"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def metrics_url(self) -> str:
        return f"{self.root}/metrics"


class ApiKeyLocation(_Frozen):
    """Where the group's API key is: a 0600 file on the control machine (the inventory's
    ``serving_api_key_file``, else the one a deploy generates in ``serving_api_key_dir``) and
    the 0600 env file every node's containers read (``--env-file``)."""

    control_file: str  # as written (``~`` not expanded); read it with serving.apikey.read_plan_key
    generated: bool  # True: no serving_api_key_file, the deploy made (or makes) this file
    node_file: str
    enforced: bool  # the engine refuses requests without it (MindIE serves no key)

    @property
    def control_path(self) -> Path:
        return Path(self.control_file).expanduser()


class RayNode(_Frozen):
    name: str
    address: str
    gpus: float  # what the node's `ray start --num-gpus` declares


class RayLayout(_Frozen):
    """vLLM on Ray: the head's GCS and every node with the GPUs it declares."""

    head: str
    head_address: str
    port: int
    container: str  # the Ray container, the same name on every node
    nodes: list[RayNode]  # plan order, head first

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    def planned(self) -> dict[str, tuple[str, float]]:
        """name -> (address, GPUs), as serving.ray_status.missing takes it."""
        return {n.name: (n.address, n.gpus) for n in self.nodes}

    def is_short(self, status: RayStatus) -> bool:
        """``ray status`` shows fewer nodes or GPUs than planned."""
        return status.nodes < len(self.nodes) or status.gpus < self.gpus

    def status_command(self) -> str:
        return f"docker exec {shlex.quote(self.container)} ray status"

    def probe_command(self) -> str:
        """Ray's node list (addresses and GPUs) from inside the head: names a missing node."""
        return (
            f"timeout {RAY_PROBE_TIMEOUT_S} docker exec {shlex.quote(self.container)} "
            f"python3 -c {shlex.quote(NODES_PROBE)}"
        )


class Rendezvous(_Frozen):
    """Where ranks that start on their own meet (vLLM native, SGLang): node 0's address and
    port; with vLLM's data parallel over nodes, the replicas' RPC port too."""

    address: str
    port: int | None  # None: the engine's own file says (MindIE's rank table)
    dp_rpc_port: int | None = None


class Layout(_Frozen):
    kind: Literal["one-node", "ray", "native", "dynamo"]
    ray: RayLayout | None = None
    rendezvous: Rendezvous | None = None


class PortUse(_Frozen):
    port: int
    nodes: list[str]
    purpose: str


class NodeDisk(_Frozen):
    """The disk a node needs for the group's weights (ironserve.rules.disk): preflight, health
    and the weights role read it here, with the node's own margin."""

    node: str
    path: str  # the weights folder (the same on every node)
    weights_bytes: int  # what the node holds for the group: the whole checkpoint
    margin: float  # the node's preflight_disk_margin
    need_bytes: int  # free bytes the node needs while it holds none of the weights

    def need(self, present_bytes: int = 0) -> DiskNeed:
        """What the node needs free with ``present_bytes`` of the weights already in place."""
        return disk_need(self.weights_bytes, present_bytes, self.margin)


class Gateway(_Frozen):
    """The reverse proxy on the API node's public port (roles/gateway, serving/gateway.py):
    every path needs the API key but ``public_paths``; ``/metrics`` also answers the group's
    nodes and the monitoring server without it (Prometheus scrapes it there)."""

    node: str
    port: int  # the public API port (Endpoint.port)
    upstream: str  # host:port where the engine's API server listens
    container: str
    config_file: str  # on the node, 0600: it holds the key
    public_paths: list[str]


def gateway_of(
    ctx: LaunchContext, endpoint: Endpoint, public_metrics: bool, public_health: bool
) -> Gateway | None:
    if not ctx.gateway:
        return None
    # MindIE binds its ServerConfig.ipAddress, the node's own (engines/mindie.py); the others
    # bind ctx.listen_host, the loopback.
    host = endpoint.address if ctx.engine.kind == EngineKind.MINDIE else ctx.listen_host
    public = [p for p, on in (("/health", public_health), ("/metrics", public_metrics)) if on]
    return Gateway(
        node=endpoint.node,
        port=endpoint.port,
        upstream=f"{host}:{ctx.listen_port}",
        container=container_name(ctx, "gateway"),
        config_file=f"{NODE_STATE_DIR}/{ctx.group}/gateway.conf",
        public_paths=public,
    )


def endpoint_of(ctx: LaunchContext, nodes: list[NodeLaunch]) -> Endpoint:
    serving = next(n for n in nodes if n.serves_api)
    return Endpoint(node=serving.node, address=serving.address, port=ctx.port)


def api_key_location(ctx: LaunchContext, key_file: Path | None, key_dir: str) -> ApiKeyLocation:
    from ironserve.serving.apikey import generated_key_path

    if key_file is not None:
        control, generated = str(key_file), False
    else:
        path = generated_key_path(key_dir, ctx.group, [n.address for n in ctx.nodes])
        # Keep the operator's "~" so the Plan reads the same on every control machine.
        control, generated = str(Path(key_dir) / path.name), True
    return ApiKeyLocation(
        control_file=control,
        generated=generated,
        node_file=ctx.secrets_env_file,
        # MindIE has no key of its own: only the gateway enforces one in front of it;
        # nor have Dynamo's frontend and trtllm-serve.
        enforced=ctx.gateway
        or ctx.engine.kind not in (EngineKind.MINDIE, EngineKind.DYNAMO, EngineKind.TRTLLM),
    )


def mpi_keys_file(ctx: LaunchContext, key_dir: str) -> str | None:
    """A TensorRT-LLM group's SSH keys for its MPI worlds (serving/mpi_keys.py; a multi-node
    trtllm group or Dynamo TensorRT-LLM workers over nodes): a 0600 file beside the generated
    API keys, one per group and node set; None for groups with no MPI world."""
    from ironserve.engines.trtllm import mpi_worlds

    if not mpi_worlds(ctx):
        return None
    from ironserve.serving.apikey import generated_key_path

    path = generated_key_path(key_dir, ctx.group, [n.address for n in ctx.nodes])
    # Keep the operator's "~" so the Plan reads the same on every control machine.
    return str(Path(key_dir) / path.with_suffix(".mpi").name)


def layout_of(ctx: LaunchContext, nodes: list[NodeLaunch]) -> Layout:
    if ctx.dynamo is not None:  # every process meets at the control plane on the head
        from ironserve.engines.dynamo import ETCD_CLIENT_PORT

        etcd = ETCD_CLIENT_PORT if ctx.dynamo.control_plane == "etcd-nats" else None
        return Layout(kind="dynamo", rendezvous=Rendezvous(address=ctx.head.address, port=etcd))
    if not is_multi_node(ctx):
        return Layout(kind="one-node")
    head = ctx.head
    if any(n.serve_exec is not None for n in nodes):  # engines/vllm.py: Ray's serve in the head
        return Layout(
            kind="ray",
            ray=RayLayout(
                head=head.name,
                head_address=head.address,
                port=RAY_PORT,
                container=nodes[0].container.name,
                nodes=[
                    RayNode(name=n.name, address=n.address, gpus=float(units_on(ctx, n)))
                    for n in ctx.nodes
                ],
            ),
        )
    port: int | None = None
    dp_rpc: int | None = None
    if ctx.engine.kind in (EngineKind.VLLM, EngineKind.VLLM_VACC, EngineKind.VLLM_ASCEND):
        port = VLLM_MASTER_PORT
        dp_rpc = VLLM_DP_RPC_PORT if ctx.sizing.parallelism.data > 1 else None
    elif ctx.engine.kind == EngineKind.SGLANG:
        port = SGLANG_DIST_PORT
    return Layout(
        kind="native", rendezvous=Rendezvous(address=head.address, port=port, dp_rpc_port=dp_rpc)
    )


def ports_of(ctx: LaunchContext, endpoint: Endpoint, layout: Layout) -> list[PortUse]:
    """Every port the group listens on, and where (host network: these are the nodes' ports)."""
    ports = [PortUse(port=endpoint.port, nodes=[endpoint.node], purpose="OpenAI API")]
    if ctx.gateway:
        behind = "engine API behind the gateway"
        ports.append(PortUse(port=ctx.backend_port, nodes=[endpoint.node], purpose=behind))
    if layout.ray is not None:
        ports.append(PortUse(port=layout.ray.port, nodes=[layout.ray.head], purpose="Ray GCS"))
    if ctx.dynamo is not None:
        from ironserve.engines.dynamo import dynamo_ports

        return ports + dynamo_ports(ctx)
    rendezvous = layout.rendezvous
    if rendezvous is not None and rendezvous.port is not None:
        ports.append(
            PortUse(port=rendezvous.port, nodes=[ctx.head.name], purpose="rank rendezvous")
        )
    if ctx.engine.kind == EngineKind.TRTLLM and is_multi_node(ctx):
        from ironserve.engines.trtllm import MPI_SSH_PORT

        workers = [n.name for n in ctx.nodes[1:]]
        ports.append(PortUse(port=MPI_SSH_PORT, nodes=workers, purpose="mpirun's SSH (MPI world)"))
    if rendezvous is not None and rendezvous.dp_rpc_port is not None:
        ports.append(
            PortUse(port=rendezvous.dp_rpc_port, nodes=[ctx.head.name], purpose="data-parallel RPC")
        )
    if ctx.engine.kind == EngineKind.MINDIE:
        from ironserve.engines import mindie

        every = [n.name for n in ctx.nodes]
        ports += [
            PortUse(port=mindie.MANAGEMENT_PORT, nodes=every, purpose="MindIE management"),
            PortUse(port=mindie.METRICS_PORT, nodes=every, purpose="MindIE metrics"),
        ]
        if is_multi_node(ctx):
            ports += [
                PortUse(port=mindie.MULTI_NODES_INFER_PORT, nodes=every, purpose="MindIE ranks"),
                PortUse(port=mindie.INTER_COMM_PORT, nodes=every, purpose="MindIE inter-node"),
            ]
    return ports


def weights_bytes_per_node(sizing: Sizing) -> int:
    """Bytes of weights one node of the group holds: every node keeps the whole checkpoint
    (roles/weights fans it out)."""
    return sizing.weights_bytes


def disk_of(ctx: LaunchContext, margins: Mapping[str, float] | None = None) -> list[NodeDisk]:
    """Per node, the weights it holds and the free space that needs (ironserve.rules.disk),
    with the node's own margin (``margins``: node -> preflight_disk_margin; the rule's default
    for a node not named)."""
    weights = weights_bytes_per_node(ctx.sizing)
    disks = []
    for n in ctx.nodes:
        margin = (margins or {}).get(n.name, DISK_MARGIN)
        disks.append(
            NodeDisk(
                node=n.name,
                path=ctx.weights_path,
                weights_bytes=weights,
                margin=margin,
                need_bytes=node_disk_need_bytes(weights, margin),
            )
        )
    return disks
