"""The lab's ``python3 -m dynamo.vllm``: a Dynamo vLLM worker's command line, checked as Dynamo
parses it, then served by Dynamo's own mocker (``python3 -m dynamo.mocker``).

The lab has no GPU and the real ``dynamo.vllm`` needs vLLM's CUDA build, so the lab's Dynamo
runtime image replaces that one module with this program. Everything around it is the real
Dynamo 1.6.1: the mocker is Dynamo's GPU-less engine simulator (its scheduler, KV cache and
block events, a prefill or decode worker that registers with discovery like any worker), and the
frontend, the KV router, etcd and NATS are real.

The argv must hold only options a Dynamo vLLM worker accepts: Dynamo's own (the ``vllm``
component of ``dynamo.json``) or the pinned vLLM's (``vllm.json`` at the version Dynamo pins);
an unknown one exits 2 like argparse. The model, served name, disaggregation side, context and
sequences go to the mocker; the planes, ``DYN_NAMESPACE`` and ``DYN_SYSTEM_PORT`` reach it
through the environment unchanged. What the mocker has no use for (the NIXL connector, the KV
event endpoint: the mocker publishes its block events on the event plane itself, vLLM's memory
fraction) is checked and dropped, and the log says so.
"""

from __future__ import annotations

import json
import os
import sys
import time

from . import flags

PROG = "dynamo.vllm"
USAGE = "[-h] --model MODEL [options]"
# Dynamo's version: the image sets it, as the engine images set theirs.
DYNAMO_VERSION_ENV = "IRONSERVE_LAB_DYNAMO_VERSION"
# vLLM option -> the mocker's, value unchanged.
PASSED = {
    "--max-model-len": "--max-model-len",
    "--max-num-seqs": "--max-num-seqs",
    "--data-parallel-size": "--data-parallel-size",
    "--block-size": "--block-size",
}
SIDES = ("prefill", "decode", "agg")
# The real dynamo.vllm registers a health check payload on its ``generate`` endpoint, which
# makes its system /health "ready"; the mocker registers none, so its /health would say
# "notready" (503) for good. This variable (deprecated in 1.6.1 but still read: measured) makes
# the mocker's follow its endpoint, as a real worker's does.
HEALTH_ENV = "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS"
HEALTH_ENDPOINTS = '["generate"]'


def log(message: str) -> None:
    print(f"INFO {time.strftime('%m-%d %H:%M:%S')} [dynamo.vllm lab] {message}", file=sys.stderr)
    sys.stderr.flush()


def worker_table(version: str) -> flags.Table:
    """Dynamo's vLLM worker options at ``version`` with the pinned vLLM's."""
    doc = json.loads((flags.tables_dir() / "dynamo.json").read_text())
    known = sorted(doc["versions"], key=flags.version_key)
    older = [v for v in known if flags.version_key(v) <= flags.version_key(version)]
    if not older:
        raise ValueError(f"dynamo {version} is older than every flag table ({known[0]})")
    entry = doc["versions"][older[-1]]
    own = entry["components"]["vllm"]
    engine = flags.load_table("vllm", entry["pins"]["vllm"])
    return flags.Table(
        engine=PROG,
        version=f"{older[-1]} (vllm {engine.version})",
        flags=engine.flags | frozenset(own["flags"]),
        value_flags=engine.value_flags | frozenset(own["value_flags"]),
        optional_value_flags=engine.optional_value_flags,
    )


def mocker_argv(parsed: flags.Parsed) -> list[str]:
    """The ``dynamo.mocker`` command line serving what ``parsed`` asks for."""
    model = parsed.get("--model")
    if model is None:
        flags.fail(PROG, USAGE, "the following arguments are required: --model")
    side = parsed.get("--disaggregation-mode") or "agg"
    if side not in SIDES:
        choices = ", ".join(repr(s) for s in SIDES)
        flags.fail(
            PROG,
            USAGE,
            f"argument --disaggregation-mode: invalid choice: {side!r} (choose from {choices})",
        )
    argv = [
        "--model-path",
        model,
        "--model-name",
        parsed.get("--served-model-name") or model,
        "--disaggregation-mode",
        side,
    ]
    for option, mocker_option in PASSED.items():
        value = parsed.get(option)
        if value is not None:
            argv += [mocker_option, value]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    version = os.environ.get(DYNAMO_VERSION_ENV, "")
    if not version:
        print(f"lab dynamo.vllm: {DYNAMO_VERSION_ENV} is not set", file=sys.stderr)
        return 2
    table = worker_table(version)
    parsed = flags.parse(table, argv)
    if parsed.unknown or parsed.positionals:
        flags.fail(
            PROG, USAGE, "unrecognized arguments: " + " ".join(parsed.unknown + parsed.positionals)
        )
    mocker = mocker_argv(parsed)
    dropped = sorted(set(parsed.options) - {"--model", "--served-model-name"} - set(PASSED))
    log(f"options checked against dynamo {table.version}; served by dynamo.mocker")
    if dropped:
        log(f"not simulated by the mocker: {' '.join(dropped)}")
    log(f"exec python3 -m dynamo.mocker {' '.join(mocker)}")
    env = os.environ | {HEALTH_ENV: HEALTH_ENDPOINTS}
    os.execve(sys.executable, [sys.executable, "-m", "dynamo.mocker", *mocker], env)


if __name__ == "__main__":
    raise SystemExit(main())
