"""vLLM (vllm/vllm-openai images): one `vllm serve` container per node.

Across nodes, two launches (catalog: ``Engine.launches_with_ray``):

- native (vLLM 0.12 on, the default): every node runs the same `vllm serve` with ``--nnodes N
  --node-rank R --master-addr <node 0> --master-port P``; node 0 serves the API, the others add
  ``--headless`` (vLLM's docs, "multi-node deployment" and "data parallel deployment"). vLLM lays
  ranks out TP innermost, then PP, then DP, each node taking its share; with DP the replicas meet
  at node 0's ``--data-parallel-address`` and ``--data-parallel-rpc-port``.
- Ray (before 0.12, or ``engine_multi_node: ray`` for images that carry Ray): the distributed
  serving docs' examples/online_serving/run_cluster.sh with its traps removed: every node runs a
  detached, restarted Ray container (not a foreground script whose terminal closing tears the
  node down), each with its own VLLM_HOST_IP and ``--node-ip-address``; once ``ray status`` shows
  every node, the head runs ``vllm serve`` with ``--distributed-executor-backend ray`` inside its
  Ray container (``serve_exec``).

The API key: vLLM's OpenAI server reads ``VLLM_API_KEY`` from its environment
(``envs.VLLM_API_KEY`` in vllm/entrypoints/openai/api_server.py), and the node's secrets env file
carries it; ``--api-key`` is never written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ironserve.catalog.engines import FlagTable
from ironserve.engines.base import (
    RAY_PORT,
    VLLM_DP_RPC_PORT,
    VLLM_MASTER_PORT,
    ContainerSpec,
    LaunchContext,
    NodeLaunch,
    NodeTarget,
)
from ironserve.engines.common import (
    EngineBuildError,
    base_run_args,
    check_ranks,
    container_name,
    fmt_fraction,
    ib_env,
    ib_run_args,
    is_multi_node,
    require,
    secrets_env_file,
    socket_env,
    table_for,
    trusts_remote_code,
    units_on,
    verify_flags,
    vllm_reasoning_args,
    weights_mount,
)

# Every interface variable the Ray/Gloo/NCCL/TensorPipe stack of a vLLM node may consult.
SOCKET_ENV = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "TP_SOCKET_IFNAME")


@dataclass(frozen=True)
class Platform:
    """What differs between vLLM on CUDA and vLLM on a platform plugin (vLLM-Ascend): how the
    container reaches the node's devices and fabric, and the platform's env for a node."""

    name: str
    devices: Callable[[NodeTarget], list[str]]  # docker run arguments: the accelerators
    fabric: Callable[[NodeTarget], list[str]]  # docker run arguments: the RDMA devices
    env: Callable[[LaunchContext, NodeTarget], dict[str, str]]
    ray: bool  # whether ironserve renders a Ray launch on this platform
    options: Callable[[LaunchContext], tuple[str, ...]] = lambda ctx: ()  # `vllm serve` options


def _cuda_devices(node: NodeTarget) -> list[str]:
    return ["--gpus", "all"]


def _cuda_env(ctx: LaunchContext, node: NodeTarget) -> dict[str, str]:
    env = socket_env(node, SOCKET_ENV) if is_multi_node(ctx) else {}
    return env | ib_env(node)


CUDA = Platform(name="vllm", devices=_cuda_devices, fabric=ib_run_args, env=_cuda_env, ray=True)


def launches_with_ray(ctx: LaunchContext) -> bool:
    """A multi-node group that forms a Ray cluster (else: native, or one node)."""
    choice = ctx.sizing.request.multi_node
    return is_multi_node(ctx) and ctx.engine.launches_with_ray(ctx.engine_version, choice)


def serve_options(
    ctx: LaunchContext, *, ray: bool, rank: int = 0, platform_options: tuple[str, ...] = ()
) -> list[str]:
    """The options of `vllm serve <weights>` on the node of ``rank`` (with the platform's own,
    ``platform_options``), checked against the version's flag table."""
    table = table_for(ctx)
    sizing, par = ctx.sizing, ctx.sizing.parallelism
    native = is_multi_node(ctx) and not ray
    args = [
        "--served-model-name",
        ctx.served_name,
        "--tensor-parallel-size",
        str(par.tensor),
        "--pipeline-parallel-size",
        str(par.pipeline),
    ]
    if par.data > 1:
        args += [require(table, "--data-parallel-size", f"DP {par.data}"), str(par.data)]
        if native:
            args += _data_parallel_options(ctx, table)
    if par.expert > 1:
        args.append(require(table, "--enable-expert-parallel", f"EP {par.expert}"))
    if ray:
        args += ["--distributed-executor-backend", "ray"]
    args += [
        "--max-model-len",
        str(sizing.max_model_len),
        "--gpu-memory-utilization",
        fmt_fraction(sizing.memory.utilization),
    ]
    if sizing.max_num_seqs is not None:
        args += ["--max-num-seqs", str(sizing.max_num_seqs)]
    if trusts_remote_code(ctx):
        args.append("--trust-remote-code")
    args += vllm_reasoning_args(ctx, table)
    args += platform_options
    args += ["--host", ctx.listen_host, "--port", str(ctx.listen_port)]
    if native:
        args += [
            require(table, "--nnodes", f"{len(ctx.nodes)} nodes without Ray"),
            str(len(ctx.nodes)),
            "--node-rank",
            str(rank),
            "--master-addr",
            ctx.head.address,
            "--master-port",
            str(VLLM_MASTER_PORT),
        ]
        if rank > 0:
            args.append("--headless")  # no API server: node 0 serves the group
    verify_flags(table, args)
    return [*args, *ctx.extra_args]


def _data_parallel_options(ctx: LaunchContext, table: FlagTable) -> list[str]:
    """Where DP replicas on several nodes meet: node 0's address and RPC port. When replicas
    fit inside a node, how many each node runs (vLLM infers each node's first rank from
    --node-rank); a replica that spans nodes leaves that to vLLM."""
    par = ctx.sizing.parallelism
    instance, per_node = par.tensor * par.pipeline, units_on(ctx, ctx.head)
    args = []
    if per_node % instance == 0:
        args += ["--data-parallel-size-local", str(per_node // instance)]
    args += [
        "--data-parallel-address",
        ctx.head.address,
        require(table, "--data-parallel-rpc-port", f"DP {par.data} over nodes"),
        str(VLLM_DP_RPC_PORT),
    ]
    return args


def _env(ctx: LaunchContext, node: NodeTarget, platform: Platform) -> dict[str, str]:
    env = {
        "VLLM_HOST_IP": node.address,
        "HF_HUB_OFFLINE": "1",  # the weights are staged on every node before launch
    }
    return env | platform.env(ctx, node)


def _run_args(
    ctx: LaunchContext, node: NodeTarget, entrypoint: str, platform: Platform
) -> list[str]:
    return [
        *base_run_args(ctx),
        *platform.devices(node),
        *weights_mount(ctx),
        *secrets_env_file(ctx),
        *platform.fabric(node),
        "--entrypoint",
        entrypoint,
    ]


def _ray_command(ctx: LaunchContext, node: NodeTarget, *, head: bool) -> list[str]:
    gpus = str(units_on(ctx, node))
    if head:
        return [
            "start",
            "--block",
            "--head",
            "--node-ip-address",
            node.address,
            "--port",
            str(RAY_PORT),
            "--num-gpus",
            gpus,
            "--dashboard-host",
            "127.0.0.1",
        ]
    return [
        "start",
        "--block",
        "--address",
        f"{ctx.head.address}:{RAY_PORT}",
        "--node-ip-address",
        node.address,
        "--num-gpus",
        gpus,
    ]


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    return build_on(ctx, CUDA)


def build_on(ctx: LaunchContext, platform: Platform) -> list[NodeLaunch]:
    """One `vllm serve` container per node (or Ray containers) with ``platform``'s devices."""
    check_ranks(ctx)
    if launches_with_ray(ctx) and not platform.ray:
        raise EngineBuildError(
            f"{platform.name} across nodes launches natively (--nnodes); ironserve renders no "
            "Ray launch for it",
            "engine_multi_node",
        )
    if not launches_with_ray(ctx):
        return [
            NodeLaunch(
                node=node.name,
                address=node.address,
                role=node.role,
                rank=node.rank,
                serves_api=node.rank == 0,
                container=ContainerSpec(
                    name=container_name(ctx, "vllm"),
                    image=ctx.image,
                    run_args=_run_args(ctx, node, "vllm", platform),
                    env=_env(ctx, node, platform),
                    command=[
                        "serve",
                        ctx.weights_path,
                        *serve_options(
                            ctx, ray=False, rank=node.rank, platform_options=platform.options(ctx)
                        ),
                    ],
                ),
            )
            for node in ctx.nodes
        ]

    options = platform.options(ctx)
    serve = [
        "vllm",
        "serve",
        ctx.weights_path,
        *serve_options(ctx, ray=True, platform_options=options),
    ]
    launches = []
    for index, node in enumerate(ctx.nodes):
        head = index == 0
        launches.append(
            NodeLaunch(
                node=node.name,
                address=node.address,
                role=node.role,
                rank=node.rank,
                serves_api=head,
                container=ContainerSpec(
                    name=container_name(ctx, "ray"),
                    image=ctx.image,
                    run_args=_run_args(ctx, node, "ray", platform),
                    env=_env(ctx, node, platform),
                    command=_ray_command(ctx, node, head=head),
                ),
                serve_exec=serve if head else None,
            )
        )
    return launches
