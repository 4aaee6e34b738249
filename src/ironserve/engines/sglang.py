"""SGLang (lmsysorg/sglang images): the same `sglang.launch_server` on every node, by rank.

Multi-node follows sgl-project/sglang benchmark/deepseek_v3/README.md: every node gets
``--dist-init-addr <node 0's address>:5000 --nnodes N --node-rank r`` -- node 0's address on
EVERY node (an older docs/references/multi_node.md shows each node's own address; that hangs).
Only rank 0 runs the HTTP server.

The API key: SGLang reads it only from its arguments (``--api-key``, or a ``--config`` YAML file
from 0.5.3 on, which ``prepare_server_args`` merges into the argument list in-process); no
environment variable sets it. A secret must never sit in a process's argv, where ``ps`` shows it
to every user of the node (an ``exec ... --api-key "$KEY"`` puts the value there), nor in the
docker command line. So the container's entrypoint is a few lines of Python (``KEY_WRAPPER``):
it takes the key from the environment (the node's 0600 env file, ``--env-file``), appends
``--api-key KEY`` to ``sys.argv`` inside the interpreter and runs ``sglang.launch_server`` as
``python3 -m`` would (``runpy``, ``__main__``): the kernel's argv of every process stays
``python3 -c <wrapper> <options>``. One mechanism for every supported version (the YAML file
would need a second secret file on the node, and exists only from 0.5.3). An empty key leaves
SGLang open, as with no ``--api-key`` at all.
"""

from __future__ import annotations

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
LAUNCH_MODULE = "sglang.launch_server"

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
        ctx.listen_host,
        "--port",
        str(ctx.listen_port),
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


# `python3 -c KEY_WRAPPER <options>`: the options arrive in sys.argv[1:], the key is added there
# in-process (never in the kernel's argv), and the variable leaves the environment the engine's
# own processes inherit.
KEY_WRAPPER = (  # double quotes only: the golden command lines stay readable under shlex
    "import os, runpy, sys; "
    f'key = os.environ.pop("{IRONSERVE_API_KEY_ENV}", ""); '
    'sys.argv += ["--api-key", key] if key else []; '
    f'runpy.run_module("{LAUNCH_MODULE}", run_name="__main__", alter_sys=True)'
)


def launch_command(ctx: LaunchContext, rank: int) -> list[str]:
    """The container's command after the ``python3`` entrypoint: the wrapper, then the options;
    the key is never among them."""
    return ["-c", KEY_WRAPPER, *launch_options(ctx, rank)]


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
                "python3",
            ],
            env=env,
            command=launch_command(ctx, index),
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
