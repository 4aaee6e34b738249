"""Pieces every engine builder shares: container names, docker run arguments, env, flag checks.

Secrets never appear here: a container gets them only from ``--env-file ctx.secrets_env_file``
(mode 0600 on the node), so no API key or hub token is ever part of a command line.
"""

from __future__ import annotations

from packaging.version import Version

from ironserve.catalog.engines import FlagTable, check_flags, flag_table
from ironserve.engines.base import LaunchContext, NodeTarget

# The env file variables the engines read the API key from. vLLM (and vllm_vacc) read
# VLLM_API_KEY themselves (vllm/entrypoints/openai/api_server.py: `envs.VLLM_API_KEY or
# args.api_key`); SGLang has only `--api-key`, so its entrypoint wrapper reads IRONSERVE_API_KEY
# and adds the option inside the interpreter, never to a process's argv (see sglang.py).
VLLM_API_KEY_ENV = "VLLM_API_KEY"
IRONSERVE_API_KEY_ENV = "IRONSERVE_API_KEY"

# The version from which vLLM deprecated `--enable-reasoning` (PR #17452; "deprecated starting
# from v0.9.0"); before it, `--reasoning-parser` needed `--enable-reasoning` as well.
VLLM_REASONING_FLAG_DROPPED = Version("0.9")

# Model types whose repositories ship custom code (auto_map); harmless to trust for these.
TRUST_REMOTE_CODE_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3"})


class EngineBuildError(ValueError):
    """The context cannot be rendered for this engine (a flag the version lacks, a bad topology).

    ``field``: the inventory key to change (by default the engine version that lacks a flag)."""

    def __init__(self, message: str, field: str = "engine_version") -> None:
        super().__init__(message)
        self.field = field


def check_ranks(ctx: LaunchContext) -> None:
    """Nodes come head first, ranked 0..N-1 in order: ranks and roles are read, never guessed."""
    if not ctx.nodes:
        raise EngineBuildError(f"group {ctx.group} has no nodes")
    for index, node in enumerate(ctx.nodes):
        if node.rank != index or (node.role == "head") != (index == 0):
            raise EngineBuildError(
                f"{node.name}: rank {node.rank} ({node.role}) at position {index}; nodes must be "
                "listed head first with ranks 0..N-1"
            )


def container_name(ctx: LaunchContext, suffix: str) -> str:
    return f"ironserve-{ctx.group}-{suffix}"


def units_on(ctx: LaunchContext, node: NodeTarget) -> int:
    """Parallel units (GPUs, NPUs, VA16 dies) on one node."""
    return node.device_count * ctx.accelerator.units_per_device


def is_multi_node(ctx: LaunchContext) -> bool:
    return len(ctx.nodes) > 1


def base_run_args(ctx: LaunchContext, shm_size: str | None = None) -> list[str]:
    """Restarted by dockerd, host network and IPC (NCCL/HCCL need both)."""
    return [
        "--restart",
        "unless-stopped",
        "--network",
        "host",
        "--ipc",
        "host",
        "--shm-size",
        shm_size or ctx.shm_size,
    ]


def weights_mount(ctx: LaunchContext) -> list[str]:
    """The weights, read-only, at the same path inside as on the node."""
    return ["-v", f"{ctx.weights_path}:{ctx.weights_path}:ro"]


def secrets_env_file(ctx: LaunchContext) -> list[str]:
    return ["--env-file", ctx.secrets_env_file]


def ib_run_args(node: NodeTarget) -> list[str]:
    """InfiniBand without --privileged: the verbs devices, pinned memory for GPUDirect RDMA."""
    if not node.ib_hcas:
        return []
    return ["--device", "/dev/infiniband", "--cap-add", "IPC_LOCK", "--ulimit", "memlock=-1"]


def ib_env(node: NodeTarget) -> dict[str, str]:
    if not node.ib_hcas:
        return {}
    env = {"NCCL_IB_HCA": ",".join(node.ib_hcas)}
    if node.ib_gid_index is not None:
        env["NCCL_IB_GID_INDEX"] = str(node.ib_gid_index)
    return env


def socket_env(node: NodeTarget, names: tuple[str, ...]) -> dict[str, str]:
    """Pin the collective libraries to one interface (multi-NIC hosts pick wrong otherwise)."""
    if node.socket_ifname is None:
        return {}
    return dict.fromkeys(names, node.socket_ifname)


def fmt_fraction(value: float) -> str:
    """0.9 -> "0.9", 0.95 -> "0.95": the shortest exact form, stable across runs."""
    return repr(float(value))


def table_for(ctx: LaunchContext) -> FlagTable:
    table = flag_table(ctx.engine, ctx.engine_version)
    if table is None:
        raise EngineBuildError(f"{ctx.engine.kind.value} has no flag table")
    return table


def require(table: FlagTable, option: str, why: str) -> str:
    """``option`` if this version's parser has it; otherwise the plan cannot be rendered."""
    if option not in table.flags:
        raise EngineBuildError(
            f"{why} needs {option}, which {table.engine} {table.version} does not accept"
        )
    return option


def verify_flags(table: FlagTable, args: list[str]) -> None:
    """Fail on any option a builder wrote that the version's parser would refuse."""
    problems = check_flags(table, args)
    if problems:
        raise EngineBuildError("; ".join(problems))


def vllm_reasoning_args(ctx: LaunchContext, table: FlagTable) -> list[str]:
    """``--reasoning-parser`` where the version has it, plus ``--enable-reasoning`` before 0.9.

    vLLM 0.7-0.8 (and vllm_vacc, built on 0.8.5) need both; from 0.9 the parser alone enables
    reasoning output and later versions refuse ``--enable-reasoning``.
    """
    if ctx.reasoning_parser is None or "--reasoning-parser" not in table.flags:
        return []
    args: list[str] = []
    if "--enable-reasoning" in table.flags and Version(table.version) < VLLM_REASONING_FLAG_DROPPED:
        args.append("--enable-reasoning")
    return [*args, "--reasoning-parser", ctx.reasoning_parser]


def trusts_remote_code(ctx: LaunchContext) -> bool:
    return ctx.model.model_type in TRUST_REMOTE_CODE_MODEL_TYPES
