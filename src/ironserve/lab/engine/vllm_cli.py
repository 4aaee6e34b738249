"""The lab's ``vllm`` command: ``vllm serve MODEL [options]`` as vLLM parses it, then Ray, the
weights, the load, and the OpenAI server (the model math is the only thing left out)."""

from __future__ import annotations

import os
import sys
import time

from . import flags, loading, server, weights

USAGE = "[model_tag] [options]"


def log(message: str) -> None:
    print(
        f"INFO {time.strftime('%m-%d %H:%M:%S')} [api_server.py] {message}",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags.log_to_container()
    _engine, version = flags.declared("vllm")
    if argv[:1] in (["--version"], ["-v"]):
        print(version)
        return 0
    if argv[:1] != ["serve"]:
        flags.fail(
            "vllm",
            "[-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...",
            f"argument subparser: invalid choice: {argv[0]!r}"
            if argv
            else "the following arguments are required: subparser",
        )
    table = flags.load_table("vllm", version)
    parsed = flags.parse(table, argv[1:])
    if parsed.unknown:
        flags.fail("vllm serve", USAGE, "unrecognized arguments: " + " ".join(parsed.unknown))
    model = parsed.positionals[0] if parsed.positionals else parsed.get("--model")
    if model is None or len(parsed.positionals) > 1:
        extra = " ".join(parsed.positionals[1:])
        flags.fail(
            "vllm serve",
            USAGE,
            f"unrecognized arguments: {extra}"
            if extra
            else "the following arguments are required: model_tag",
        )
    assert model is not None
    tp = parsed.int("--tensor-parallel-size", default=1)
    pp = parsed.int("--pipeline-parallel-size", default=1)
    backend = parsed.get("--distributed-executor-backend")
    names = [parsed.get("--served-model-name") or model]
    host = parsed.get("--host") or "0.0.0.0"
    port = parsed.int("--port", default=8000)
    api_key = os.environ.get("VLLM_API_KEY") or parsed.get("--api-key")
    log(f"vLLM API server version {version} (ironserve lab engine)")
    log(
        "non-default args: "
        + str(
            {
                k.lstrip("-").replace("-", "_"): v
                for k, v in parsed.options.items()
                if k != "--api-key"
            }
        )
    )
    try:
        checked = weights.check(model, tp, pp)
        config = checked.config.get("text_config", checked.config)
        limit = int(config.get("max_position_embeddings", 4096) or 4096)
        max_len = parsed.int("--max-model-len", default=limit)
        if max_len > limit:
            raise weights.WeightsError(
                f"User-specified max_model_len ({max_len}) is greater than the derived "
                f"max_model_len (max_position_embeddings={limit} in {model}/config.json)."
            )
        if backend == "ray":
            from . import ray_cluster

            ray_cluster.reserve(model, tp, pp)
        elif tp * pp > 1:
            log(f"distributed executor: mp, world size {tp * pp} on this node")
        loading.load(checked)
    except (weights.WeightsError, RuntimeError) as error:
        print(
            f"ERROR {time.strftime('%m-%d %H:%M:%S')} [core.py] EngineCore failed to start.",
            file=sys.stderr,
        )
        print(
            f"{type(error).__name__ if isinstance(error, RuntimeError) else 'ValueError'}: {error}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    settings = server.Settings(
        served_names=names,
        root=model,
        max_model_len=max_len,
        api_key=api_key,
        engine="vllm",
        version=version,
        token_delay=float(os.environ.get("IRONSERVE_LAB_TOKEN_SECONDS", "0")),
    )
    log(f"Starting vLLM API server 0 on http://{host}:{port}")
    server.serve(settings, host, port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
