"""NVIDIA Dynamo: its backends, the engine versions a Dynamo release pins, images and flag tables.

A Dynamo group runs ``python -m dynamo.frontend`` and workers ``python -m dynamo.<backend>``. A
worker's command line holds two kinds of options: Dynamo's own (runtime, backend and worker router
groups) and the backend engine's, which the worker passes through to vLLM's ``AsyncEngineArgs`` or
SGLang's ``ServerArgs``. ``data/engines/dynamo.json`` holds Dynamo's (read from the released
parsers with tools/dynamo_flag_table.py) and the engine versions the release pins; the engine's
options are checked against that engine's own table at the pinned version.
"""

from __future__ import annotations

from enum import Enum
from functools import cache

from packaging.version import InvalidVersion, Version

from ironserve.catalog.engines import (
    ENGINES,
    EngineKind,
    FlagTable,
    _table_doc,
    check_flags,
    flag_table,
)


class DynamoBackend(str, Enum):
    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM = "trtllm"


# Dynamo's runtime images per backend (nvcr.io/nvidia/ai-dynamo, tagged with the Dynamo version).
IMAGES = {
    DynamoBackend.VLLM: "nvcr.io/nvidia/ai-dynamo/vllm-runtime:{version}",
    DynamoBackend.SGLANG: "nvcr.io/nvidia/ai-dynamo/sglang-runtime:{version}",
    DynamoBackend.TRTLLM: "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{version}",
}

# The engine whose memory model and flag table size and check a backend's workers. TensorRT-LLM
# has no table of its own in ironserve: its workers' options are Dynamo's (dynamo.trtllm parses
# --tensor-parallel-size, --expert-parallel-size, --free-gpu-memory-fraction itself), and its
# memory is sized with vLLM's rules (both keep a fraction of device memory, the rest KV cache).
SIZED_AS = {
    DynamoBackend.VLLM: EngineKind.VLLM,
    DynamoBackend.SGLANG: EngineKind.SGLANG,
    DynamoBackend.TRTLLM: EngineKind.VLLM,
}
ENGINE_TABLE = {DynamoBackend.VLLM: EngineKind.VLLM, DynamoBackend.SGLANG: EngineKind.SGLANG}


def image(backend: DynamoBackend, version: str) -> str:
    return IMAGES[backend].format(version=version)


def known_versions() -> list[str]:
    return sorted(_table_doc("dynamo")["versions"], key=Version)


@cache
def _entry(version: str) -> tuple[str, dict[str, object]]:
    """The table of ``version`` (the nearest known at or below it); ValueError naming why not."""
    try:
        want = Version(version)
    except InvalidVersion:
        raise ValueError(f"dynamo version {version!r} is not a version number") from None
    older = [v for v in known_versions() if Version(v) <= want]
    if not older:
        raise ValueError(
            f"dynamo {version} is older than the oldest flag table ({known_versions()[0]})"
        )
    chosen = older[-1]
    entry: dict[str, object] = _table_doc("dynamo")["versions"][chosen]
    return chosen, entry


def pinned_engine_version(version: str, backend: DynamoBackend) -> str:
    """The backend engine version this Dynamo release pins (its ``ai-dynamo[<backend>]`` extra)."""
    _, entry = _entry(version)
    pins = entry["pins"]
    assert isinstance(pins, dict)
    return str(pins[backend.value])


def component_table(version: str, component: str) -> FlagTable:
    """Dynamo's own options of ``component``: ``frontend``, or a backend's worker."""
    chosen, entry = _entry(version)
    components = entry["components"]
    assert isinstance(components, dict)
    doc = components[component]
    return FlagTable(
        engine=f"dynamo.{component}",
        version=chosen,
        flags=frozenset(doc["flags"]),
        value_flags=frozenset(doc["value_flags"]),
        notes={},
    )


def worker_tables(version: str, backend: DynamoBackend) -> tuple[FlagTable, FlagTable | None]:
    """A worker's two tables: Dynamo's options, and the backend engine's at the pinned version
    (None for TensorRT-LLM, whose worker options are all Dynamo's)."""
    own = component_table(version, backend.value)
    kind = ENGINE_TABLE.get(backend)
    if kind is None:
        return own, None
    engine = flag_table(ENGINES[kind], pinned_engine_version(version, backend))
    return own, engine


def worker_table(version: str, backend: DynamoBackend) -> FlagTable:
    """Every option a worker accepts: Dynamo's and the pinned engine's."""
    own, engine = worker_tables(version, backend)
    if engine is None:
        return own
    return FlagTable(
        engine=f"dynamo.{backend.value}",
        version=f"{own.version} (with {engine.engine} {engine.version})",
        flags=own.flags | engine.flags,
        value_flags=own.value_flags | engine.value_flags,
        notes=engine.notes,
    )


def worker_flags_problems(version: str, backend: DynamoBackend, args: list[str]) -> list[str]:
    """Problems with a worker's options: each must be Dynamo's or the pinned engine's."""
    return check_flags(worker_table(version, backend), args)


def table_of(version: str, component: str) -> FlagTable:
    """``frontend``'s options, or a backend worker's (``vllm``, ``sglang``, ``trtllm``)."""
    if component == "frontend":
        return component_table(version, component)
    return worker_table(version, DynamoBackend(component))
