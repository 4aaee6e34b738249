"""The lab's ``trtllm-serve``: ``trtllm-serve [serve] MODEL [OPTIONS]`` as TensorRT-LLM's click
command parses it (exact option names; an unknown one is click's ``No such option`` and exit 2),
then the weights, the load and the OpenAI server. As the real server, it names the model after
the MODEL folder's name when the version has no ``--served_model_name``, and checks no API key
(trtllm-serve has none: the gateway does). One node only: the lab runs no MPI world."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from . import flags, loading, server, weights

PROG = "trtllm-serve serve"
SUBCOMMANDS = ("serve", "grpc", "disaggregated", "disaggregated_mpi_worker", "mm_embedding_serve")


def log(message: str) -> None:
    print(f"[{time.strftime('%m/%d/%Y-%H:%M:%S')}] [TRT-LLM] [I] {message}", file=sys.stderr)


def fail(message: str) -> NoReturn:
    """click's usage error: usage, the help hint and the error on stderr, exit 2."""
    print(f"Usage: {PROG} [OPTIONS] MODEL", file=sys.stderr)
    print(f"Try '{PROG} --help' for help.", file=sys.stderr)
    print(f"\nError: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags.log_to_container()
    _engine, version = flags.declared("trtllm")
    if argv[:1] == ["serve"]:
        argv = argv[1:]  # the DefaultGroup sends anything else to `serve` too
    elif argv[:1] and argv[0] in SUBCOMMANDS:
        fail(f"the lab's trtllm-serve runs `serve` only, not {argv[0]!r}")
    table = flags.load_table("trtllm", version)
    parsed = flags.parse(table, argv, exact=True)
    if parsed.unknown:
        fail(f"No such option: {parsed.unknown[0].partition('=')[0]}")
    if len(parsed.positionals) != 1:
        fail(
            "Missing argument 'MODEL'."
            if not parsed.positionals
            else f"Got unexpected extra argument ({' '.join(parsed.positionals[1:])})"
        )
    model = parsed.positionals[0]
    tp = parsed.int("--tp_size", "--tensor_parallel_size", default=1)
    pp = parsed.int("--pp_size", "--pipeline_parallel_size", default=1)
    host = parsed.get("--host") or "localhost"
    port = parsed.int("--port", default=8000)
    name = parsed.get("--served_model_name")
    if name is None:  # tensorrt_llm/serve/openai_server.py: a folder is named by its name
        name = Path(model).name if Path(model).is_dir() else model
    log(f"TensorRT-LLM version: {version} (ironserve lab engine)")
    try:
        checked = weights.check(model, tp, pp)
        config = checked.config.get("text_config", checked.config)
        limit = int(config.get("max_position_embeddings", 4096) or 4096)
        max_len = parsed.int("--max_seq_len", default=limit)
        if tp * pp > 1:
            log(f"MPI world of {tp * pp} ranks on this node (tp_size {tp}, pp_size {pp})")
        loading.load(checked)
    except (weights.WeightsError, RuntimeError) as error:
        print(f"[TRT-LLM] [E] {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    settings = server.Settings(
        served_names=[name],
        root=model,
        max_model_len=max_len,
        api_key=None,
        engine="vllm",  # the lab server's vLLM shapes: OpenAI errors and Prometheus metrics
        version=version,
        token_delay=float(os.environ.get("IRONSERVE_LAB_TOKEN_SECONDS", "0")),
    )
    log(f"Starting the OpenAI server on http://{host}:{port}")
    server.serve(settings, host, port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
