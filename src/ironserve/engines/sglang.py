"""SGLang (lmsysorg/sglang images): the same `sglang.launch_server` on every node, by rank.

Multi-node follows sgl-project/sglang benchmark/deepseek_v3/README.md: every node gets
``--dist-init-addr <node 0's address>:5000 --nnodes N --node-rank r`` -- node 0's address on
EVERY node (an older docs/references/multi_node.md shows each node's own address; that hangs).
Only rank 0 runs the HTTP server.

The API key: SGLang takes it only as ``--api-key`` (server_args.py: "Set API key of the server";
no environment variable reads it), and a secret must never sit in the docker command line, where
``docker inspect`` and ``ps`` show it. So the container runs ``/bin/sh -c 'exec python3 -m
sglang.launch_server ... --api-key "$IRONSERVE_API_KEY"'``: the shell expands the variable inside
the container, from the node's 0600 env file (``--env-file``). An empty key leaves SGLang open,
as with no ``--api-key`` at all.
"""

from __future__ import annotations

import shlex

from ironserve.engines.base import SGLANG_DIST_PORT, ContainerSpec, LaunchContext, NodeLaunch
from ironserve.engines.common import (
    IRONSERVE_API_KEY_ENV,
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
    verify_flags,
    weights_mount,
)

SOCKET_ENV = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")
LAUNCH = ["python3", "-m", "sglang.launch_server"]

# ironserve names reasoning parsers as vLLM does; SGLang's ReasoningParser.DetectorMap
# (python/sglang/srt/reasoning_parser.py) spells DeepSeek-R1's with a hyphen.
REASONING_PARSERS = {"deepseek_r1": "deepseek-r1", "qwen3": "qwen3"}


def launch_options(ctx: LaunchContext, rank: int) -> list[str]:
    """The options of `sglang.launch_server` on the node of ``rank``, checked per version."""
    table = table_for(ctx)
    sizing, par = ctx.sizing, ctx.sizing.parallelism
    args = [
        "--model-path",
        ctx.weights_path,
        "--served-model-name",
        ctx.served_name,
        "--tp-size",  # the parser's own name; the docs' `--tp` only works as an abbreviation
        str(par.tensor),
    ]
    if par.pipeline > 1:
        args += [require(table, "--pp-size", f"PP {par.pipeline}"), str(par.pipeline)]
    if par.data > 1:
        args += [require(table, "--dp-size", f"DP {par.data}"), str(par.data)]
    if par.expert > 1:
        args += [require(table, "--ep-size", f"EP {par.expert}"), str(par.expert)]
    if is_multi_node(ctx):
        args += [
            "--dist-init-addr",
            f"{ctx.head.address}:{SGLANG_DIST_PORT}",
            "--nnodes",
            str(len(ctx.nodes)),
            "--node-rank",
            str(rank),
        ]
    args += [
        "--trust-remote-code",
        "--enable-metrics",  # /metrics for `ironserve health` and Prometheus (off by default)
        "--host",
        "0.0.0.0",
        "--port",
        str(ctx.port),
        "--context-length",
        str(sizing.max_model_len),
        "--mem-fraction-static",
        fmt_fraction(sizing.memory.utilization),
    ]
    if sizing.max_num_seqs is not None:
        args += ["--max-running-requests", str(sizing.max_num_seqs)]
    parser = REASONING_PARSERS.get(ctx.reasoning_parser or "")
    if parser is not None and "--reasoning-parser" in table.flags:
        args += ["--reasoning-parser", parser]
    verify_flags(table, args)
    return [*args, *ctx.extra_args]


def launch_script(ctx: LaunchContext, rank: int) -> str:
    """The `sh -c` script: the key is a reference expanded in the container, never a value."""
    options = shlex.join([*LAUNCH, *launch_options(ctx, rank)])
    return f'exec {options} --api-key "${IRONSERVE_API_KEY_ENV}"'


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    check_ranks(ctx)
    launches = []
    for index, node in enumerate(ctx.nodes):
        env = {"HF_HUB_OFFLINE": "1"}  # the weights are staged on every node before launch
        if is_multi_node(ctx):
            env |= socket_env(node, SOCKET_ENV)
        env |= ib_env(node)
        container = ContainerSpec(
            name=container_name(ctx, "sglang"),
            image=ctx.image,
            run_args=[
                *base_run_args(ctx),
                "--gpus",
                "all",
                *weights_mount(ctx),
                *secrets_env_file(ctx),
                *ib_run_args(node),
                "--entrypoint",
                "/bin/sh",
            ],
            env=env,
            command=["-c", launch_script(ctx, index)],
        )
        launches.append(
            NodeLaunch(
                node=node.name,
                address=node.address,
                role=node.role,
                rank=node.rank,
                serves_api=index == 0,
                container=container,
            )
        )
    return launches
