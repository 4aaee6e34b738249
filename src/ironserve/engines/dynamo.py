"""NVIDIA Dynamo: the control plane, the frontend and every worker as detached containers.

The head runs the control plane (etcd and nats-server with JetStream, unless the group uses
file discovery with the TCP request plane and the ZMQ event plane) and ``python3 -m
dynamo.frontend`` with the planned router mode on the group's API port (the gateway's backend
port behind it). Each node of a worker pool runs ``workers_per_node`` workers ``python3 -m
dynamo.<backend>``, each on its own devices (``--gpus device=...``), with its own system port
(``DYN_SYSTEM_PORT``: ``/health`` and ``/metrics``), its NIXL side channel ports and its KV
event endpoint (the KV router's input); on a node that pools share, each pool's workers come
after the previous pool's (:func:`slots`). A worker over several nodes runs one container on
each, which meet at its first node (a TensorRT-LLM one is an MPI world: mpirun in its first
node's container, sshd in the others', :func:`_trtllm_over_nodes`). Disaggregated workers
say their side: vLLM and TensorRT-LLM with Dynamo's ``--disaggregation-mode prefill|decode``
(``--is-prefill-worker`` is gone in 1.x), SGLang with its own ``--disaggregation-mode`` and a
bootstrap port per prefill worker. Planes reach every process through env:
``DYN_DISCOVERY_BACKEND`` (``ETCD_ENDPOINTS`` or ``DYN_FILE_KV``), ``DYN_REQUEST_PLANE``,
``DYN_EVENT_PLANE`` (``NATS_SERVER``), ``DYN_NAMESPACE``.

Every argv is checked against the flag tables of the pinned Dynamo version (catalog/dynamo.py):
the frontend's, and each worker's Dynamo options plus the backend engine's at the version the
release pins.

No secret reaches these containers: the frontend checks no API key, so the gateway in front of it
does (config/dynamo_checks.py refuses a Dynamo group without it), and the weights are staged
before launch (``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from ironserve.catalog.dynamo import DynamoBackend, component_table, worker_flags_problems
from ironserve.engines import trtllm
from ironserve.engines.base import (
    NODE_STATE_DIR,
    SGLANG_DIST_PORT,
    VLLM_DP_RPC_PORT,
    ContainerSpec,
    LaunchContext,
    NodeLaunch,
    NodeTarget,
    RenderedFile,
)
from ironserve.engines.common import (
    EngineBuildError,
    base_run_args,
    check_ranks,
    container_name,
    fmt_fraction,
    ib_env,
    ib_run_args,
    socket_env,
    trusts_remote_code,
    verify_flags,
    weights_mount,
)
from ironserve.plan.types import DynamoPool, DynamoSpec

if TYPE_CHECKING:
    from ironserve.plan.derived import PortUse

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380  # the single member's own, on loopback
NATS_PORT = 4222
NATS_MONITOR_PORT = 8222
# Per worker on a node (index i): its system server, its block of NIXL side channel ports (vLLM
# adds each rank's offset to VLLM_NIXL_SIDE_CHANNEL_PORT), its KV event publisher and, for
# SGLang prefill workers, the bootstrap server decode workers pull from.
SYSTEM_PORT_BASE = 18100
NIXL_SIDE_CHANNEL_BASE = 20100
KV_EVENTS_PORT_BASE = 20600
SGLANG_BOOTSTRAP_PORT_BASE = 20700
# File discovery's folder on the (single) node, shared by its containers.
FILE_KV_DIR = "/var/lib/ironserve/dynamo"
ETCD_DATA_DIR = "/var/lib/ironserve/etcd"
SGLANG_PAGE_SIZE = 16  # the KV block size upstream's disaggregated examples use

# The order a Dynamo group's containers start in, each a wave over the group's nodes
# (roles/engine): the control plane before anything registers with it, then the frontend, then
# the workers.
WAVES = ("control plane", "frontend", "workers")

# NCCL over multi-node NVLink (an NVL72 rack's trays): MNNVL on, with the cuMem allocations
# it needs to share buffers across hosts.
MNNVL_ENV = {"NCCL_MNNVL_ENABLE": "1", "NCCL_CUMEM_ENABLE": "1"}

_DYNAMO_SOCKET_ENV = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "UCX_NET_DEVICES")


def spec_of(ctx: LaunchContext) -> DynamoSpec:
    if ctx.dynamo is None:
        raise EngineBuildError(f"group {ctx.group}: a Dynamo launch without its pools")
    return ctx.dynamo


def plane_env(ctx: LaunchContext) -> dict[str, str]:
    """How every process of the group finds the others: discovery, request and event planes."""
    spec = spec_of(ctx)
    env = {"DYN_NAMESPACE": spec.namespace}
    if spec.control_plane == "file":
        return env | {
            "DYN_DISCOVERY_BACKEND": "file",
            "DYN_FILE_KV": f"{FILE_KV_DIR}/{ctx.group}",
            "DYN_REQUEST_PLANE": "tcp",
            "DYN_EVENT_PLANE": "zmq",
        }
    head = ctx.head.address
    etcd, _ = control_plane_urls(ctx) or ("", "")
    return env | {
        "DYN_DISCOVERY_BACKEND": "etcd",
        "ETCD_ENDPOINTS": etcd,
        "DYN_REQUEST_PLANE": "nats",
        "DYN_EVENT_PLANE": "nats",
        "NATS_SERVER": f"nats://{head}:{NATS_PORT}",
    }


def control_plane_urls(ctx: LaunchContext) -> tuple[str, str] | None:
    """(etcd's client URL, NATS's monitoring URL) on the head; None with file discovery."""
    if spec_of(ctx).control_plane == "file":
        return None
    head = ctx.head.address
    return f"http://{head}:{ETCD_CLIENT_PORT}", f"http://{head}:{NATS_MONITOR_PORT}"


def _plane_mounts(ctx: LaunchContext) -> list[str]:
    if spec_of(ctx).control_plane != "file":
        return []
    folder = f"{FILE_KV_DIR}/{ctx.group}"
    return ["-v", f"{folder}:{folder}"]


def control_plane(ctx: LaunchContext) -> list[ContainerSpec]:
    """etcd (one member) and nats-server with JetStream on the head's address."""
    spec = spec_of(ctx)
    if spec.control_plane == "file":
        return []
    head = ctx.head.address
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    etcd = ContainerSpec(
        name=container_name(ctx, "etcd"),
        image=spec.etcd_image,
        run_args=[
            "--restart",
            "unless-stopped",
            "--network",
            "host",
            "-v",
            f"{ETCD_DATA_DIR}/{ctx.group}:/etcd-data",
        ],
        env={},
        command=[
            "etcd",
            "--name",
            ctx.group,
            "--data-dir",
            "/etcd-data",
            "--listen-client-urls",
            f"http://{head}:{ETCD_CLIENT_PORT},http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--advertise-client-urls",
            f"http://{head}:{ETCD_CLIENT_PORT}",
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"{ctx.group}={peer}",
        ],
    )
    nats = ContainerSpec(
        name=container_name(ctx, "nats"),
        image=spec.nats_image,
        run_args=["--restart", "unless-stopped", "--network", "host"],
        env={},
        command=[
            "-js",
            "-a",
            head,
            "-p",
            str(NATS_PORT),
            "-m",
            str(NATS_MONITOR_PORT),
        ],
    )
    return [etcd, nats]


def frontend_name(ctx: LaunchContext) -> str:
    return container_name(ctx, "frontend")


def wave_of(ctx: LaunchContext, container: ContainerSpec) -> str:
    """Which of :data:`WAVES` ``container`` (one of the group's) starts in."""
    if container.name in (container_name(ctx, "etcd"), container_name(ctx, "nats")):
        return "control plane"
    return "frontend" if container.name == frontend_name(ctx) else "workers"


def frontend(ctx: LaunchContext) -> ContainerSpec:
    spec = spec_of(ctx)
    args = [
        "--http-host",
        ctx.listen_host,
        "--http-port",
        str(ctx.listen_port),
        "--router-mode",
        spec.router_mode,
    ]
    verify_flags(component_table(ctx.engine_version, "frontend"), args)
    return ContainerSpec(
        name=frontend_name(ctx),
        image=ctx.image,
        run_args=[*base_run_args(ctx, "1g"), *_plane_mounts(ctx)],
        env=plane_env(ctx) | {"HF_HUB_OFFLINE": "1"},
        command=["python3", "-m", "dynamo.frontend", *args],
    )


class Slot(BaseModel):
    """One worker's place on its node: ``index`` in its pool there (its container's name),
    ``position`` among all the node's workers (a node may be shared by pools, prefill's first),
    its first device and the first port of each of its blocks."""

    model_config = ConfigDict(frozen=True)

    pool: str
    index: int
    position: int
    first_device: int
    kv_events: int  # a block of DP ports: each DP rank publishes on this plus its rank
    nixl: int  # a block of one port per device (vLLM adds each rank's offset)

    @property
    def system_port(self) -> int:
        return SYSTEM_PORT_BASE + self.position

    @property
    def bootstrap_port(self) -> int:
        return SGLANG_BOOTSTRAP_PORT_BASE + self.position


def slots(spec: DynamoSpec, node: str) -> list[Slot]:
    """The workers of ``node`` in start order, each pool's after the previous pool's."""
    out: list[Slot] = []
    device = kv = nixl = 0
    for pool in spec.pools:
        if node not in pool.nodes:
            continue
        for index in range(pool.workers_on(node)):
            out.append(
                Slot(
                    pool=pool.name,
                    index=index,
                    position=len(out),
                    first_device=device,
                    kv_events=KV_EVENTS_PORT_BASE + kv,
                    nixl=NIXL_SIDE_CHANNEL_BASE + nixl,
                )
            )
            device, kv, nixl = (
                device + pool.units_per_node,
                kv + pool.data,
                nixl + pool.units_per_node,
            )
    return out


def _devices(pool: DynamoPool, slot: Slot) -> str:
    first = slot.first_device
    return ",".join(str(d) for d in range(first, first + pool.units_per_node))


class Span(BaseModel):
    """Where one node stands in a worker that spans ``nodes_per_worker`` nodes: its rank in the
    worker and the leader's address (the worker's first node), where the ranks meet."""

    model_config = ConfigDict(frozen=True)

    rank: int
    nodes: int
    leader: str


def span_of(ctx: LaunchContext, pool: DynamoPool, node: NodeTarget) -> Span | None:
    """None for a worker inside one node."""
    if pool.nodes_per_worker == 1:
        return None
    members = pool.worker_nodes(node.name)
    leader = next(n for n in ctx.nodes if n.name == members[0])
    return Span(rank=members.index(node.name), nodes=len(members), leader=leader.address)


def _side(spec: DynamoSpec, pool: DynamoPool) -> str | None:
    """The worker's ``--disaggregation-mode``: None in an aggregated group."""
    return None if spec.mode == "aggregated" else pool.name


def _compact(value: dict[str, object]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _kv_events(port: int) -> str:
    return _compact(
        {
            "publisher": "zmq",
            "topic": "kv-events",
            "endpoint": f"tcp://*:{port}",
            "enable_kv_cache_events": True,
        }
    )


def _sized(pool: DynamoPool) -> tuple[int, float, int | None]:
    """What the pool's sizing fixed for each worker: context, memory fraction, sequences."""
    s = pool.sizing
    return s.max_model_len, s.memory.utilization, s.max_num_seqs


def _vllm_args(
    ctx: LaunchContext, spec: DynamoSpec, pool: DynamoPool, slot: Slot, span: Span | None
) -> list[str]:
    max_len, utilization, max_seqs = _sized(pool)
    args = [
        "--model",
        ctx.weights_path,
        "--served-model-name",
        ctx.served_name,
        "--tensor-parallel-size",
        str(pool.tensor),
    ]
    if pool.data > 1:
        args += ["--data-parallel-size", str(pool.data)]
    if span is not None:
        # DP ranks over the worker's nodes: each node runs its local ranks and serves them itself
        # (hybrid load balancing: Dynamo's router picks the rank), meeting at the leader.
        local = pool.data // span.nodes
        args += [
            "--data-parallel-size-local",
            str(local),
            "--data-parallel-start-rank",
            str(span.rank * local),
            "--data-parallel-address",
            span.leader,
            "--data-parallel-rpc-port",
            str(VLLM_DP_RPC_PORT),
            "--data-parallel-hybrid-lb",
        ]
    if pool.expert > 1:
        args.append("--enable-expert-parallel")
    args += ["--max-model-len", str(max_len), "--gpu-memory-utilization", fmt_fraction(utilization)]
    if max_seqs is not None:
        args += ["--max-num-seqs", str(max_seqs)]
    if trusts_remote_code(ctx):
        args.append("--trust-remote-code")
    side = _side(spec, pool)
    if side is not None:
        args += [
            "--disaggregation-mode",
            side,
            "--kv-transfer-config",
            _compact({"kv_connector": "NixlConnector", "kv_role": "kv_both"}),
        ]
    if spec.router_mode == "kv":
        args += ["--kv-events-config", _kv_events(slot.kv_events)]
    return args


def _sglang_args(
    ctx: LaunchContext, spec: DynamoSpec, pool: DynamoPool, slot: Slot, span: Span | None
) -> list[str]:
    max_len, utilization, max_seqs = _sized(pool)
    args = [
        "--model-path",
        ctx.weights_path,
        "--served-model-name",
        ctx.served_name,
        "--tp-size",
        str(pool.units_per_worker),  # SGLang's TP counts every rank; DP splits attention
    ]
    if pool.data > 1:
        args += ["--dp-size", str(pool.data), "--enable-dp-attention"]
    if pool.expert > 1:
        args += ["--ep-size", str(pool.expert)]
    if span is not None:  # one SGLang instance over the worker's nodes
        args += [
            "--nnodes",
            str(span.nodes),
            "--node-rank",
            str(span.rank),
            "--dist-init-addr",
            f"{span.leader}:{SGLANG_DIST_PORT}",
        ]
    args += [
        "--context-length",
        str(max_len),
        "--mem-fraction-static",
        fmt_fraction(utilization),
        "--page-size",
        str(SGLANG_PAGE_SIZE),
        "--host",
        "0.0.0.0",
    ]
    if max_seqs is not None:
        args += ["--max-running-requests", str(max_seqs)]
    if trusts_remote_code(ctx):
        args.append("--trust-remote-code")
    side = _side(spec, pool)
    if side is not None:
        args += ["--disaggregation-mode", side, "--disaggregation-transfer-backend", "nixl"]
    if side == "prefill":  # the bootstrap server decode workers pull the KV cache through
        args += ["--disaggregation-bootstrap-port", str(slot.bootstrap_port)]
    if spec.router_mode == "kv":
        args += ["--kv-events-config", _kv_events(slot.kv_events)]
    return args


def trtllm_config_path(ctx: LaunchContext, pool: DynamoPool) -> str:
    return f"{NODE_STATE_DIR}/{ctx.group}/trtllm-{pool.name}.yaml"


def trtllm_config(pool: DynamoPool) -> str:
    """The engine options TensorRT-LLM takes from a file: the KV cache handed over NIXL."""
    lines = ["cache_transceiver_config:", "  backend: NIXL"]
    if pool.data > 1:
        lines.append("enable_attention_dp: true")
    return "\n".join(lines) + "\n"


def _trtllm_args(
    ctx: LaunchContext, spec: DynamoSpec, pool: DynamoPool, slot: Slot, span: Span | None
) -> list[str]:
    max_len, utilization, max_seqs = _sized(pool)
    args = [
        "--model-path",
        ctx.weights_path,
        "--served-model-name",
        ctx.served_name,
        "--tensor-parallel-size",
        str(pool.units_per_worker),
    ]
    if pool.expert > 1:
        args += ["--expert-parallel-size", str(pool.expert)]
    if pool.data > 1:
        args.append("--enable-attention-dp")
    if span is not None:  # the MPI world's ranks per node (TensorRT-LLM's mapping)
        args += ["--gpus-per-node", str(pool.units_per_node)]
    args += ["--max-seq-len", str(max_len), "--free-gpu-memory-fraction", fmt_fraction(utilization)]
    if max_seqs is not None:
        args += ["--max-batch-size", str(max_seqs)]
    side = _side(spec, pool)
    if side is not None:
        args += [
            "--disaggregation-mode",
            side,
            "--extra-engine-args",
            trtllm_config_path(ctx, pool),
        ]
    if spec.router_mode == "kv":
        args.append("--publish-kv-events")
    return args


_ARGS = {
    DynamoBackend.VLLM: _vllm_args,
    DynamoBackend.SGLANG: _sglang_args,
    DynamoBackend.TRTLLM: _trtllm_args,
}


def worker(
    ctx: LaunchContext, spec: DynamoSpec, pool: DynamoPool, node: NodeTarget, slot: Slot
) -> ContainerSpec:
    backend = spec.backend
    span = span_of(ctx, pool, node)
    args = _ARGS[backend](ctx, spec, pool, slot, span)
    problems = worker_flags_problems(ctx.engine_version, backend, args)
    if problems:
        raise EngineBuildError("; ".join(problems))
    env = plane_env(ctx) | {
        "DYN_SYSTEM_PORT": str(slot.system_port),
        "HF_HUB_OFFLINE": "1",
    }
    if spec.mode == "disaggregated" and backend == DynamoBackend.VLLM:
        env |= {  # vLLM's NixlConnector handshake (SGLang's goes through its bootstrap port)
            "VLLM_NIXL_SIDE_CHANNEL_HOST": node.address,
            "VLLM_NIXL_SIDE_CHANNEL_PORT": str(slot.nixl),
        }
    if spec.mode == "disaggregated" and spec.kv_fabric == "tcp":
        env["UCX_TLS"] = "tcp,cuda_copy"  # NIXL's UCX over sockets: no RDMA device
    env |= socket_env(node, _DYNAMO_SOCKET_ENV) | ib_env(node)
    if span is not None and span.nodes <= ctx.accelerator.nvlink_domain_nodes(node.device_count):
        env |= MNNVL_ENV  # the worker's nodes share one NVLink domain (GB200 NVL72)
    # TensorRT-LLM's engine options file, alone: its folder also holds the group's secrets.
    config = trtllm_config_path(ctx, pool)
    state = ["-v", f"{config}:{config}:ro"] if "--extra-engine-args" in args else []
    command = ["python3", "-m", f"dynamo.{backend.value}", *args, *ctx.extra_args]
    mpi: list[str] = []
    if backend == DynamoBackend.TRTLLM and span is not None:
        mpi = trtllm.mpi_mount(ctx)
        command = _trtllm_over_nodes(ctx, pool, node, span, env, command)
    return ContainerSpec(
        name=container_name(ctx, f"{pool.name}-{slot.index}"),
        image=ctx.image,
        run_args=[
            *base_run_args(ctx),
            "--gpus",
            f'"device={_devices(pool, slot)}"',
            *weights_mount(ctx),
            *_plane_mounts(ctx),
            *state,
            *mpi,
            *ib_run_args(node),
        ],
        env=env,
        command=command,
    )


def _trtllm_over_nodes(
    ctx: LaunchContext,
    pool: DynamoPool,
    node: NodeTarget,
    span: Span,
    env: dict[str, str],
    worker_argv: list[str],
) -> list[str]:
    """A TensorRT-LLM worker over nodes is one MPI world, as Dynamo launches it
    (ai-dynamo/dynamo components/backends/trtllm/multinode/: multinode-examples.md launches a
    worker that spans nodes as one MPI world, "via mpirun or srun"; srun_disaggregated.sh
    starts each multi-node worker as one ``srun --mpi pmix --ntasks-per-node <GPUs>`` job,
    every rank running start_trtllm_worker.sh's ``trtllm-llmapi-launch python3 -m
    dynamo.trtllm ...``, with ETCD_ENDPOINTS and NATS_SERVER passed to every rank; the rank 0
    process is the Dynamo worker, the others TensorRT-LLM's MPI workers). With no Slurm, the
    worker's first node runs that world with mpirun over SSH, as the plain trtllm engine does
    (engines/trtllm.py), its env forwarded to every rank; the other nodes' containers run only
    the SSH server. The KV transfer backend is the engine options file's
    ``cache_transceiver_config`` (NIXL), so the script's TRTLLM_USE_UCX_KVCACHE fallback
    (ai-dynamo/dynamo issue 1743) is not needed."""
    if span.rank > 0:
        return ["/bin/sh", *trtllm.sshd_command()]
    members = pool.worker_nodes(node.name)
    by_name = {n.name: n for n in ctx.nodes}
    hosts = [(by_name[m].address, pool.units_per_node) for m in members]
    return ["mpirun", *trtllm.mpirun_argv(hosts, list(env), worker_argv)]


def worker_label(pool: str) -> str:
    """How a pool's worker is named in sentences: the aggregated pool is called ``worker``."""
    return "aggregated worker" if pool == "worker" else f"{pool} worker"


class Component(BaseModel):
    """One container of a Dynamo node as health names it: ``etcd``, ``NATS``, ``frontend`` or
    ``<pool> worker <i>`` with its system port (``/health``, ``/metrics``)."""

    model_config = ConfigDict(frozen=True)

    container: str
    label: str
    pool: str | None = None
    system_port: int | None = None
    # Whether it registers the worker's endpoint in discovery: a worker in one node, or the
    # first node of one that spans nodes (the other ranks join it and serve no endpoint).
    registers: bool = False


def _leads(ctx: LaunchContext, pool: str, node: str) -> bool:
    target = next(n for n in ctx.nodes if n.name == node)
    span = span_of(ctx, pool_named(spec_of(ctx), pool), target)
    return span is None or span.rank == 0


def _serves(ctx: LaunchContext, pool: str, node: str) -> bool:
    """Whether the node's container of a ``pool`` worker runs a Dynamo process (a system
    server): all do but a TensorRT-LLM worker's nodes after its first (sshd only)."""
    return spec_of(ctx).backend != DynamoBackend.TRTLLM or _leads(ctx, pool, node)


def components(ctx: LaunchContext, node: str) -> list[Component]:
    """The Dynamo containers of ``node`` in start order (the names :func:`build` gives them)."""
    spec = spec_of(ctx)
    out = []
    if node == spec.frontend_node:
        if spec.control_plane == "etcd-nats":
            out += [
                Component(container=container_name(ctx, "etcd"), label="etcd"),
                Component(container=container_name(ctx, "nats"), label="NATS"),
            ]
        out.append(Component(container=frontend_name(ctx), label="frontend"))
    out += [
        Component(
            container=container_name(ctx, f"{slot.pool}-{slot.index}"),
            label=f"{worker_label(slot.pool)} {slot.index}",
            pool=slot.pool,
            # A TensorRT-LLM worker's other nodes run only the SSH server of its MPI world.
            system_port=slot.system_port if _serves(ctx, slot.pool, node) else None,
            registers=_leads(ctx, slot.pool, node),
        )
        for slot in slots(spec, node)
    ]
    return out


def pool_named(spec: DynamoSpec, name: str) -> DynamoPool:
    (pool,) = [p for p in spec.pools if p.name == name]
    return pool


def _check_api_ports(ctx: LaunchContext) -> None:
    """The API port (and the frontend's own behind the gateway) is none of the planned Dynamo
    listeners on the head: a collision is bad input naming the key to change."""
    spec = spec_of(ctx)
    taken = {p.port: p.purpose for p in dynamo_ports(ctx) if spec.frontend_node in p.nodes}
    keys = [("engine_port", ctx.port)]
    if ctx.gateway:
        keys.append(("serving_backend_port", ctx.backend_port))
    for key, port in keys:
        if port in taken:
            raise EngineBuildError(
                f"{port} is the {taken[port]} port on {spec.frontend_node}; pick another port",
                field=key,
            )


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    check_ranks(ctx)
    spec = spec_of(ctx)
    _check_api_ports(ctx)
    launches = []
    for node in ctx.nodes:
        containers: list[ContainerSpec] = []
        files: list[RenderedFile] = []
        if node.name == spec.frontend_node:
            containers += [*control_plane(ctx), frontend(ctx)]
        for slot in slots(spec, node.name):
            pool = pool_named(spec, slot.pool)
            containers.append(worker(ctx, spec, pool, node, slot))
            config = trtllm_config_path(ctx, pool)
            if (
                spec.backend == DynamoBackend.TRTLLM
                and spec.mode == "disaggregated"
                and config not in {f.path for f in files}
            ):
                files.append(RenderedFile(path=config, content=trtllm_config(pool), mode="0644"))
        if not containers:
            raise EngineBuildError(f"{node.name}: in no Dynamo pool", field="node_dynamo_pool")
        launches.append(
            NodeLaunch(
                node=node.name,
                address=node.address,
                role=node.role,
                rank=node.rank,
                serves_api=node.name == spec.frontend_node,
                container=containers[-1],
                companions=containers[:-1],
                files=files,
            )
        )
    return launches


def _span_ports(spec: DynamoSpec, pool: DynamoPool) -> list[PortUse]:
    """Where the ranks of a multi-node worker meet, on each worker's leader."""
    from ironserve.plan.derived import PortUse

    if pool.nodes_per_worker == 1:
        return []
    leaders = pool.nodes[:: pool.nodes_per_worker]
    what = f"{worker_label(pool.name)}s' ranks over nodes"
    if spec.backend == DynamoBackend.VLLM:
        return [PortUse(port=VLLM_DP_RPC_PORT, nodes=leaders, purpose=f"{what}: vLLM DP RPC")]
    if spec.backend == DynamoBackend.SGLANG:
        return [PortUse(port=SGLANG_DIST_PORT, nodes=leaders, purpose=f"{what}: SGLang dist init")]
    # TensorRT-LLM: mpirun on the leader reaches the SSH server on each other node.
    members = [n for n in pool.nodes if n not in leaders]
    return [PortUse(port=trtllm.MPI_SSH_PORT, nodes=members, purpose=f"{what}: mpirun's SSH")]


def _on_nodes(ports: list[tuple[str, int]], purpose: str) -> list[PortUse]:
    """One PortUse per port number, with the nodes (of ``(node, port)``) listening on it."""
    from ironserve.plan.derived import PortUse

    by_port: dict[int, list[str]] = {}
    for node, port in ports:
        by_port.setdefault(port, []).append(node)
    return [PortUse(port=port, nodes=nodes, purpose=purpose) for port, nodes in by_port.items()]


def dynamo_ports(ctx: LaunchContext) -> list[PortUse]:
    """The control plane's ports on the head and each worker's on its pool's nodes."""
    from ironserve.plan.derived import PortUse  # derived imports this module's constants

    spec = spec_of(ctx)
    ports = []
    if spec.control_plane == "etcd-nats":
        head = [spec.frontend_node]
        ports += [
            PortUse(port=ETCD_CLIENT_PORT, nodes=head, purpose="etcd (Dynamo discovery)"),
            PortUse(port=NATS_PORT, nodes=head, purpose="NATS (Dynamo request and event planes)"),
            PortUse(port=NATS_MONITOR_PORT, nodes=head, purpose="NATS monitoring"),
        ]
    for pool in spec.pools:
        for index in range(max(pool.workers_on(n) for n in pool.nodes)):
            what = f"{worker_label(pool.name)} {index}"
            # Per node, this worker's slot: the same on every node of a pool no other shares.
            placed = [
                (
                    node,
                    next(s for s in slots(spec, node) if (s.pool, s.index) == (pool.name, index)),
                )
                for node in pool.nodes
                if index < pool.workers_on(node) and _serves(ctx, pool.name, node)
            ]
            uses: list[tuple[Callable[[Slot], int], int, str]] = [
                (lambda s: s.system_port, 1, "system")
            ]
            if spec.router_mode == "kv" and spec.backend != DynamoBackend.TRTLLM:
                uses.append((lambda s: s.kv_events, pool.data, "KV events"))
            if spec.mode == "disaggregated" and spec.backend == DynamoBackend.VLLM:
                uses.append((lambda s: s.nixl, pool.units_per_node, "NIXL side channel"))
            if spec.backend == DynamoBackend.SGLANG and pool.name == "prefill":
                uses.append((lambda s: s.bootstrap_port, 1, "SGLang bootstrap"))
            for first, count, purpose in uses:
                for offset in range(count):
                    on = [(node, first(slot) + offset) for node, slot in placed]
                    ports += _on_nodes(on, f"{what} {purpose}")
        ports += _span_ports(spec, pool)
    return ports
