"""TensorRT-LLM (nvcr.io/nvidia/tensorrt-llm/release images): `trtllm-serve` on the PyTorch
backend.

One node: one container runs ``trtllm-serve <model> --backend pytorch --tp_size ... --pp_size
...``; trtllm-serve starts its own MPI workers for the node's GPUs.

Several nodes: TensorRT-LLM runs one MPI world over every rank (its multi-node docs: ``mpirun``
with the hosts, each rank wrapped in ``trtllm-llmapi-launch``, which makes rank 0 the server and
the others its workers). On bare metal the containers use the host network; every worker node's
container runs an SSH server on ``MPI_SSH_PORT`` for mpirun's launcher, with its host key and the
group's authorized key from ``mpi_dir`` on the node (root, 0700), and the head's container runs
``mpirun -H <node>:<gpus>,... -np <ranks>`` with that key and a known_hosts file holding the
workers' host keys (strict checking). Processes started over SSH do not inherit a container's
env, so mpirun forwards the head's (``-x``): the nodes of a multi-node group share the socket
interface and the HCAs (config/loader.py refuses them otherwise, before any SSH).

The served name: trtllm-serve 1.2.1 has no ``--served_model_name``; its OpenAI server names the
model after the MODEL folder's name (tensorrt_llm/serve/openai_server.py). So the weights are
mounted read-only at ``/ironserve/models/<served name>`` and that folder is the MODEL; where the
version's parser has ``--served_model_name``, it is written as well.

The API key: trtllm-serve has no API-key option, so the container gets no secrets env file and
the gateway (roles/gateway) checks the key in front of it, as for MindIE.
"""

from __future__ import annotations

import shlex

from ironserve.catalog.dynamo import DynamoBackend
from ironserve.catalog.engines import EngineKind
from ironserve.engines.base import (
    NODE_STATE_DIR,
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
    socket_env,
    table_for,
    trusts_remote_code,
    units_on,
    verify_flags,
)

MODELS_DIR = "/ironserve/models"  # inside the container: the served name is the folder's name
MPI_SSH_PORT = 2233  # the workers' SSH server for mpirun (TensorRT-LLM's multi-node docs' port)
MPI_DIR_IN_CONTAINER = "/ironserve/mpi"
SOCKET_ENV = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "OMPI_MCA_btl_tcp_if_include")
BACKEND = "pytorch"

# ironserve names reasoning parsers as vLLM does; TensorRT-LLM's ReasoningParserFactory spells
# DeepSeek-R1's with a hyphen (tensorrt_llm/llmapi/reasoning_parser.py).
REASONING_PARSERS = {"deepseek_r1": "deepseek-r1", "qwen3": "qwen3"}


def mpi_dir(ctx: LaunchContext) -> str:
    """On every node of a multi-node group: the group's MPI SSH key pair, the node's host key,
    authorized_keys and known_hosts (root, 0700)."""
    return f"{NODE_STATE_DIR}/{ctx.group}/mpi"


def model_dir(ctx: LaunchContext) -> str:
    """The MODEL argument: a folder named after the served name (the API's model name)."""
    name = ctx.served_name
    if "/" in name or name in (".", "..") or not name:
        raise EngineBuildError(
            f"trtllm-serve names the model after its folder, so the served name must be one "
            f"path component; {name!r} is not (e.g. {name.rsplit('/', 1)[-1]!r})",
            "model_served_name",
        )
    return f"{MODELS_DIR}/{name}"


def serve_options(ctx: LaunchContext) -> list[str]:
    """The options of `trtllm-serve <model>`, checked against the version's table."""
    table = table_for(ctx)
    sizing, par = ctx.sizing, ctx.sizing.parallelism
    if par.data > 1:
        raise EngineBuildError(
            f"trtllm-serve serves one model instance per launch; DP {par.data} is not one",
            "engine_data_parallel_size",
        )
    args = [
        "--backend",
        BACKEND,
        "--host",
        ctx.listen_host,
        "--port",
        str(ctx.listen_port),
        "--tp_size",
        str(par.tensor),
        "--pp_size",
        str(par.pipeline),
    ]
    if par.expert > 1:
        args += [require(table, "--ep_size", f"EP {par.expert}"), str(par.expert)]
    if is_multi_node(ctx):
        args += ["--gpus_per_node", str(units_on(ctx, ctx.head))]
    args += [
        "--max_seq_len",
        str(sizing.max_model_len),
        "--kv_cache_free_gpu_memory_fraction",
        fmt_fraction(sizing.memory.utilization),
    ]
    if sizing.max_num_seqs is not None:
        args += ["--max_batch_size", str(sizing.max_num_seqs)]
    if "--served_model_name" in table.flags:
        args += ["--served_model_name", ctx.served_name]
    if trusts_remote_code(ctx):
        args.append("--trust_remote_code")
    parser = REASONING_PARSERS.get(ctx.reasoning_parser or "")
    if parser is not None and "--reasoning_parser" in table.flags:
        args += ["--reasoning_parser", parser]
    verify_flags(table, args)
    return [*args, *ctx.extra_args]


def _serve_argv(ctx: LaunchContext) -> list[str]:
    return ["trtllm-serve", model_dir(ctx), *serve_options(ctx)]


def _env(ctx: LaunchContext, node: NodeTarget) -> dict[str, str]:
    env = {"HF_HUB_OFFLINE": "1"}  # the weights are staged on every node before launch
    if is_multi_node(ctx):
        env |= socket_env(node, SOCKET_ENV)
    return env | ib_env(node)


def _run_args(ctx: LaunchContext, node: NodeTarget, entrypoint: str) -> list[str]:
    args = [
        *base_run_args(ctx),
        "--gpus",
        "all",
        "-v",
        f"{ctx.weights_path}:{model_dir(ctx)}:ro",
        *ib_run_args(node),
        "--ulimit",
        "stack=67108864",  # the TensorRT-LLM container guide's stack limit
    ]
    if is_multi_node(ctx):
        args += mpi_mount(ctx)
    return [*args, "--entrypoint", entrypoint]


def _ssh_options() -> str:
    """How mpirun's launcher reaches a worker container: its port, the group's key, the
    workers' host keys checked strictly."""
    return shlex.join(
        [
            "-p",
            str(MPI_SSH_PORT),
            "-i",
            f"{MPI_DIR_IN_CONTAINER}/id_ed25519",
            "-o",
            f"UserKnownHostsFile={MPI_DIR_IN_CONTAINER}/known_hosts",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ]
    )


def mpirun_argv(
    hosts: list[tuple[str, int]], forwarded: list[str], program: list[str]
) -> list[str]:
    """mpirun's arguments for one MPI world over ``hosts`` ((address, ranks), the first the
    caller's own node): the ``forwarded`` env keys handed to every rank, each rank running
    ``trtllm-llmapi-launch <program>`` (rank 0 runs ``program``, the others serve it as the
    LLM API's MPI workers). Shared by trtllm-serve here and Dynamo's TensorRT-LLM worker over
    nodes (engines/dynamo.py)."""
    command = [
        "--allow-run-as-root",
        "--oversubscribe",
        "-H",
        ",".join(f"{address}:{ranks}" for address, ranks in hosts),
        "-np",
        str(sum(ranks for _, ranks in hosts)),
        "--bind-to",
        "none",
        "--mca",
        "plm_rsh_args",
        _ssh_options(),
    ]
    for key in sorted(forwarded):
        command += ["-x", key]
    return [*command, "trtllm-llmapi-launch", *program]


def mpirun_command(ctx: LaunchContext) -> list[str]:
    """The head's command: one MPI world over every node's GPUs, rank 0 serving."""
    hosts = [(n.address, units_on(ctx, n)) for n in ctx.nodes]
    return mpirun_argv(hosts, list(_env(ctx, ctx.head)), _serve_argv(ctx))


def mpi_mount(ctx: LaunchContext) -> list[str]:
    """The docker run arguments that give a container of an MPI world its node's SSH files."""
    return ["-v", f"{mpi_dir(ctx)}:{MPI_DIR_IN_CONTAINER}:ro"]


def mpi_worlds(ctx: LaunchContext) -> list[list[NodeTarget]]:
    """The node sets that each run one MPI world over SSH, its first node running mpirun: a
    multi-node trtllm group's nodes, or each Dynamo TensorRT-LLM worker over nodes; none for
    any other group."""
    if ctx.dynamo is not None:
        if ctx.dynamo.backend != DynamoBackend.TRTLLM:
            return []
        by_name = {n.name: n for n in ctx.nodes}
        return [
            [by_name[name] for name in pool.nodes[first : first + pool.nodes_per_worker]]
            for pool in ctx.dynamo.pools
            if pool.nodes_per_worker > 1
            for first in range(0, len(pool.nodes), pool.nodes_per_worker)
        ]
    if ctx.engine.kind == EngineKind.TRTLLM and is_multi_node(ctx):
        return [list(ctx.nodes)]
    return []


def sshd_command() -> list[str]:
    """A worker's command (under ``/bin/sh -c``): the SSH server mpirun's launcher connects to,
    keys only. An SSH session does not get the container's env, so the server hands each
    session the image's PATH and LD_LIBRARY_PATH (``SetEnv``, expanded when the container
    starts): mpirun's daemon and trtllm-llmapi-launch are found as in the container."""
    argv = [
        "/usr/sbin/sshd",
        "-D",
        "-e",
        "-p",
        str(MPI_SSH_PORT),
        "-h",
        f"{MPI_DIR_IN_CONTAINER}/ssh_host_ed25519_key",
        "-o",
        f"AuthorizedKeysFile={MPI_DIR_IN_CONTAINER}/authorized_keys",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "PermitRootLogin=prohibit-password",
        "-o",
        "StrictModes=no",  # the read-only mount keeps the node's owner and modes
    ]
    return ["-c", f'exec {shlex.join(argv)} -o "{_SESSION_ENV}"']


_SESSION_ENV = "SetEnv=PATH=$PATH LD_LIBRARY_PATH=$LD_LIBRARY_PATH"


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    check_ranks(ctx)
    launches = []
    for node in ctx.nodes:
        head = node.rank == 0
        if not is_multi_node(ctx):
            entrypoint, command = "trtllm-serve", _serve_argv(ctx)[1:]
        elif head:
            entrypoint, command = "mpirun", mpirun_command(ctx)
        else:
            entrypoint, command = "/bin/sh", sshd_command()
        launches.append(
            NodeLaunch(
                node=node.name,
                address=node.address,
                role=node.role,
                rank=node.rank,
                serves_api=head,
                container=ContainerSpec(
                    name=container_name(ctx, "trtllm"),
                    image=ctx.image,
                    run_args=_run_args(ctx, node, entrypoint),
                    env=_env(ctx, node),
                    command=command,
                ),
            )
        )
    return launches
