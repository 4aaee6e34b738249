#!/usr/bin/env python3
"""Read NVIDIA Dynamo's own argument parsers; write the Dynamo flag table as JSON.

Run it with a Python in which ``dynamo`` imports (``pip install --no-deps ai-dynamo==X
ai-dynamo-runtime==X`` plus msgspec, pydantic, pyyaml, packaging, uvloop)::

    python tools/dynamo_flag_table.py > src/ironserve/catalog/data/engines/dynamo.json

Each component's parser is built as its ``__main__`` builds it: the frontend from
``FrontendArgGroup`` (dynamo/frontend/frontend_args.py); each worker (``dynamo.vllm``,
``dynamo.sglang``, ``dynamo.trtllm``) from ``DynamoRuntimeArgGroup``, the backend's
``Dynamo<Backend>ArgGroup`` and the worker router flags (``add_worker_router_arguments``), as
their ``args.py`` does. The backend engine's own options (vLLM's ``AsyncEngineArgs``, SGLang's
``ServerArgs``), which the workers pass through, are not read here: ironserve checks them against
that engine's table at the version Dynamo pins (``ironserve.catalog.dynamo``). The TensorRT-LLM
group imports ``tensorrt_llm.llmapi.BuildConfig`` for help-text defaults only; where TensorRT-LLM
is not installed (it needs CUDA), put a module with a ``BuildConfig.model_fields`` of defaults on
``sys.path`` (``--trtllm-stub DIR``): option strings do not depend on it.

Standalone on purpose: it runs in Dynamo's Python, which has no ironserve; stdlib only.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
from typing import Any

WORKERS = {
    "vllm": "dynamo.vllm.backend_args:DynamoVllmArgGroup",
    "sglang": "dynamo.sglang.backend_args:DynamoSGLangArgGroup",
    "trtllm": "dynamo.trtllm.backend_args:DynamoTrtllmArgGroup",
}


def _group(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)()


def read(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Every option string, and those that take a value (nargs other than 0)."""
    flags, values = set(), set()
    for action in parser._actions:
        for option in action.option_strings:
            flags.add(option)
            if action.nargs != 0:
                values.add(option)
    return {"flags": sorted(flags), "value_flags": sorted(values)}


def frontend_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    _group("dynamo.frontend.frontend_args:FrontendArgGroup").add_arguments(parser)
    return parser


def worker_parser(backend: str) -> argparse.ArgumentParser:
    from dynamo.common.configuration.groups.router_args import add_worker_router_arguments

    parser = argparse.ArgumentParser(allow_abbrev=False)
    _group("dynamo.common.configuration.groups.runtime_args:DynamoRuntimeArgGroup").add_arguments(
        parser
    )
    _group(WORKERS[backend]).add_arguments(parser)
    add_worker_router_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    cli.add_argument("--trtllm-stub", help="folder with a stand-in tensorrt_llm package")
    args = cli.parse_args(argv)
    if args.trtllm_stub:
        sys.path.append(args.trtllm_stub)
    version = importlib.metadata.version("ai-dynamo")
    components = {"frontend": read(frontend_parser())}
    for backend in WORKERS:
        components[backend] = read(worker_parser(backend))
    doc = {"engine": "dynamo", "version": version, "components": components}
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
