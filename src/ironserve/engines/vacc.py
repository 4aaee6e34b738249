"""vllm_vacc on one Vastai VA16 server (8 cards x 4 dies): `vllm serve` at TP32.

Follows Vastai/VastModelZOO llm/deepseek_r1 (README and docker-compose/ds-r1-0528-docker-compose
.yaml): TP32 only; PP2 only for inputs over 56k tokens, with LLM_MAX_PREFILL_SEQ_LEN raised for
them; at most 4 concurrent requests; ``--enforce-eager``. The image is built on vLLM 0.8.5, so
its flags are checked against that version's table (``Engine.pinned_flag_version``) and it still
takes ``--enable-reasoning``, which current upstream vLLM refuses.

The API key: vllm_vacc's OpenAI server is vLLM's, which reads ``VLLM_API_KEY`` from the
environment; the node's secrets env file carries it.
"""

from __future__ import annotations

from ironserve.engines.base import ContainerSpec, LaunchContext, NodeLaunch
from ironserve.engines.common import (
    EngineBuildError,
    base_run_args,
    check_ranks,
    container_name,
    is_multi_node,
    secrets_env_file,
    table_for,
    units_on,
    verify_flags,
    vllm_reasoning_args,
    weights_mount,
)

SHM_SIZE = "256g"
# Prefill length the vendor raises for long inputs when running PP2.
LONG_INPUT_PREFILL_LEN = "102400"
# Settings of the vendor's compose file, kept as shipped: collectives stay on loopback (one
# server), the KV cache space it was validated with, and MLA matrix absorption off.
VENDOR_ENV = {
    "VCCL_SOCKET_IFNAME": "lo",
    "VLLM_VACC_KVCACHE_SPACE": "16",
    "VLLM_MLA_PERFORM_MATRIX_ABSORPTION": "0",
}


def serve_options(ctx: LaunchContext) -> list[str]:
    """The options of `vllm serve <weights>`, checked against vLLM 0.8.5's flags."""
    table = table_for(ctx)
    sizing, par = ctx.sizing, ctx.sizing.parallelism
    args = ["--trust-remote-code", "--tensor-parallel-size", str(par.tensor)]
    if par.pipeline > 1:
        args += ["--pipeline-parallel-size", str(par.pipeline)]
    args += ["--max-model-len", str(sizing.max_model_len), "--enforce-eager"]
    args += vllm_reasoning_args(ctx, table)
    args += ["--host", ctx.listen_host, "--port", str(ctx.listen_port)]
    args += ["--served-model-name", ctx.served_name]
    if sizing.max_num_seqs is not None:
        args += ["--max-num-seqs", str(sizing.max_num_seqs)]
    verify_flags(table, args)
    return [*args, *ctx.extra_args]


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    check_ranks(ctx)
    if is_multi_node(ctx):
        raise EngineBuildError(
            f"vllm_vacc serves from one server; {len(ctx.nodes)} nodes given", "serving_group"
        )
    node = ctx.head
    env = {
        "VACC_VISIBLE_DEVICES": ",".join(str(i) for i in range(units_on(ctx, node))),
        "HF_HUB_OFFLINE": "1",  # the weights are staged on the node before launch
        **VENDOR_ENV,
    }
    if ctx.sizing.parallelism.pipeline > 1:
        env["LLM_MAX_PREFILL_SEQ_LEN"] = LONG_INPUT_PREFILL_LEN
    # Privileged as the vendor's compose file runs it: the driver exposes one /dev/vacc* node per
    # die plus control devices the vendor does not list, and only this form is validated by it.
    run_args = [
        *base_run_args(ctx, SHM_SIZE),
        "--privileged",
        *weights_mount(ctx),
        *secrets_env_file(ctx),
        "--entrypoint",
        "vllm",
    ]
    container = ContainerSpec(
        name=container_name(ctx, "vllm-vacc"),
        image=ctx.image,
        run_args=run_args,
        env=env,
        command=["serve", ctx.weights_path, *serve_options(ctx)],
    )
    return [
        NodeLaunch(
            node=node.name,
            address=node.address,
            role=node.role,
            rank=node.rank,
            serves_api=True,
            container=container,
        )
    ]
