"""Serving engines: their rules, default images and per-version flag tables.

Flag tables (data/engines/*.json) list, per released version, every option string the engine's
own argument parser accepts; they were extracted from the engines' parsers (see each file's
``source``). A flag is checked against the table of the deployed version, so ``--enable-reasoning``
passes for vLLM 0.8.5 (and vllm_vacc, built on it) and is refused for current vLLM.
"""

from __future__ import annotations

import json
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict

from ironserve.errors import did_you_mean


class EngineKind(str, Enum):
    VLLM = "vllm"
    SGLANG = "sglang"
    MINDIE = "mindie"
    VLLM_VACC = "vllm_vacc"
    # NVIDIA Dynamo: a frontend and prefill/decode worker pools over a backend engine
    # (catalog/dynamo.py); several containers per node (engines/dynamo.py).
    DYNAMO = "dynamo"
    # TensorRT-LLM's own OpenAI server (trtllm-serve, PyTorch backend): one MPI world over the
    # group's GPUs (engines/trtllm.py).
    TRTLLM = "trtllm"
    # vLLM with the vLLM-Ascend platform plugin on Ascend NPUs: `vllm serve` of the vLLM
    # version the image carries (engines/vllm_ascend.py).
    VLLM_ASCEND = "vllm_ascend"


class MultiNodeLaunch(str, Enum):
    """How a vLLM group's ranks on several nodes meet (``engine_multi_node``)."""

    NATIVE = "native"  # vllm serve --nnodes N --node-rank R --master-addr H (--headless)
    RAY = "ray"  # a Ray head and workers, `vllm serve --distributed-executor-backend ray`


class Engine(BaseModel):
    """What the planner and the command builders need to know about one engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EngineKind
    vendors: frozenset[str]
    default_version: str
    image_template: str  # formatted with {version}
    flag_table: str | None  # which data/engines/<name>.json holds its flags; None: no CLI flags
    pinned_flag_version: str | None = None  # a fork built on one upstream version (vllm_vacc)
    # A plugin released in step with its upstream (vllm-ascend X.Y.Z[rcN|.postN] runs vLLM
    # X.Y.Z): the flag table is upstream's at the version's base release.
    flags_of_base_release: bool = False
    memory_utilization: float  # fraction of device memory the engine may take by default
    # How its ranks on several nodes meet: "native" (a rendezvous), "ranktable" (MindIE), "mpi"
    # (TensorRT-LLM: one MPI world, mpirun over SSH), "dynamo" or "none".
    multi_node: str
    # vLLM: versions before this one launch multi-node through a Ray cluster (run_cluster.sh);
    # from it on, vLLM's own `--nnodes/--node-rank/--master-addr` (`--headless` off node 0).
    native_multi_node_since: str | None = None
    tp_across_nodes: bool = False  # the engine's documented layout is TP over every device
    # One launch serves one model instance: no data-parallel replicas of the whole model
    # (TensorRT-LLM's trtllm-serve: its "DP" is attention DP inside the instance).
    data_parallel: bool = True
    supports_expert_parallel: bool = False
    power_of_two_devices_per_node: bool = False
    fixed_tensor_parallel: int | None = None
    max_concurrency: int | None = None
    default_port: int = 8000
    # Bytes a node pulls for the default image (compressed layers), for the staging estimate
    # only; an inventory's engine_image_size overrides it. The default, 15 GB, is an assumption
    # (the middle of the 10-20 GB serving images ship at) for the engines without a figure below.
    image_bytes: int = 15 * 10**9

    def image(self, version: str) -> str:
        return self.image_template.format(version=version)

    def launches_with_ray(self, version: str, choice: MultiNodeLaunch | None = None) -> bool:
        """Whether a multi-node group of this engine version forms a Ray cluster: asked for
        (``engine_multi_node: ray``, for images that carry Ray), or a vLLM before its native
        launch. Native is the default wherever the version has it."""
        if self.native_multi_node_since is None:
            return False
        if choice is not None:
            return choice == MultiNodeLaunch.RAY
        try:
            return Version(version) < Version(self.native_multi_node_since)
        except InvalidVersion:
            return False  # not comparable: validation reports the version itself


ENGINES: dict[EngineKind, Engine] = {
    EngineKind.VLLM: Engine(
        kind=EngineKind.VLLM,
        vendors=frozenset({"nvidia"}),
        default_version="0.33.0",
        image_template="vllm/vllm-openai:v{version}",
        flag_table="vllm",
        memory_utilization=0.90,
        multi_node="native",
        native_multi_node_since="0.12.0",
        supports_expert_parallel=True,
        # vllm/vllm-openai on Docker Hub: about 12 GB to pull (vllm-project/vllm#27154,
        # 2025-10; 28.6 GB unpacked, vllm-project/vllm#22377).
        image_bytes=12 * 10**9,
    ),
    EngineKind.SGLANG: Engine(
        kind=EngineKind.SGLANG,
        vendors=frozenset({"nvidia"}),
        default_version="0.5.23",
        image_template="lmsysorg/sglang:v{version}",
        flag_table="sglang",
        memory_utilization=0.85,
        multi_node="native",
        tp_across_nodes=True,
        supports_expert_parallel=True,
        default_port=30000,
    ),
    EngineKind.MINDIE: Engine(
        kind=EngineKind.MINDIE,
        vendors=frozenset({"ascend"}),
        default_version="2.0.T3",
        image_template=(
            "swr.cn-southwest-2.myhuaweicloud.com/ei-mindie/mindie:"
            "{version}-800I-A2-py311-openeuler24.03-lts"
        ),
        flag_table=None,
        memory_utilization=0.95,  # NPU_MEMORY_FRACTION in the vendor's DeepSeek guides
        multi_node="ranktable",
        tp_across_nodes=True,
        power_of_two_devices_per_node=True,
        default_port=1025,
    ),
    EngineKind.VLLM_VACC: Engine(
        kind=EngineKind.VLLM_VACC,
        vendors=frozenset({"vastai"}),
        default_version="AI3.2_GR_1202",
        image_template="harbor.vastaitech.com/ai_deliver/vllm_vacc:{version}",
        flag_table="vllm",
        pinned_flag_version="0.8.5",
        memory_utilization=0.90,
        multi_node="none",
        fixed_tensor_parallel=32,
        max_concurrency=4,
    ),
    EngineKind.TRTLLM: Engine(
        kind=EngineKind.TRTLLM,
        vendors=frozenset({"nvidia"}),
        # The newest stable release (PyPI 2026-04; Dynamo 1.6.1 pins a 1.3 release candidate).
        default_version="1.2.1",
        image_template="nvcr.io/nvidia/tensorrt-llm/release:{version}",
        flag_table="trtllm",
        # trtllm-serve's --kv_cache_free_gpu_memory_fraction is a fraction of the memory left
        # after the weights, not of the device; sized with vLLM's rule all the same (the KV
        # cache is what remains, commands/serve.py default 0.9), as Dynamo's TensorRT-LLM
        # workers are (catalog/dynamo.py SIZED_AS).
        memory_utilization=0.90,
        multi_node="mpi",
        tp_across_nodes=True,
        data_parallel=False,
        supports_expert_parallel=True,
    ),
    EngineKind.VLLM_ASCEND: Engine(
        kind=EngineKind.VLLM_ASCEND,
        vendors=frozenset({"ascend"}),
        # vllm-ascend 0.23.0.post1 (PyPI 2026-09), built on vLLM 0.23.0: its `vllm serve` is
        # checked against vLLM's 0.23.0 table.
        default_version="0.23.0.post1",
        image_template="quay.io/ascend/vllm-ascend:v{version}",
        flag_table="vllm",
        flags_of_base_release=True,
        memory_utilization=0.90,
        multi_node="native",
        native_multi_node_since="0.12.0",
        supports_expert_parallel=True,
    ),
    EngineKind.DYNAMO: Engine(
        kind=EngineKind.DYNAMO,
        vendors=frozenset({"nvidia"}),
        default_version="1.6.1",
        # The vLLM backend's runtime image; catalog/dynamo.py picks each backend's.
        image_template="nvcr.io/nvidia/ai-dynamo/vllm-runtime:{version}",
        flag_table=None,  # its own table layout (components): catalog/dynamo.py reads it
        memory_utilization=0.90,
        multi_node="dynamo",
        supports_expert_parallel=True,
    ),
}


# With no engine named, an accelerator's vendor picks the engine its vendor ships for serving.
DEFAULT_ENGINE_OF_VENDOR = {
    "nvidia": EngineKind.VLLM,
    "ascend": EngineKind.MINDIE,
    "vastai": EngineKind.VLLM_VACC,
}


def default_engine(vendor: str) -> EngineKind:
    return DEFAULT_ENGINE_OF_VENDOR[vendor]


class FlagTable(BaseModel):
    """The option strings one engine version accepts, and which of them take a value."""

    model_config = ConfigDict(frozen=True)

    engine: str
    version: str  # the table's version (nearest known at or below the requested one)
    flags: frozenset[str]
    value_flags: frozenset[str]
    notes: dict[str, str]


@cache
def _table_doc(name: str) -> dict[str, Any]:
    path = resources.files("ironserve.catalog").joinpath(f"data/engines/{name}.json")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def known_versions(name: str) -> list[str]:
    return sorted(_table_doc(name)["versions"], key=Version)


def flag_table(engine: Engine, version: str) -> FlagTable | None:
    """The flag table that applies to ``version`` of ``engine`` (None for engines without a CLI).

    Raises ValueError for a version older than every table, since nothing can be said of it.
    """
    if engine.flag_table is None:
        return None
    doc = _table_doc(engine.flag_table)
    wanted = engine.pinned_flag_version or version
    try:
        want = Version(wanted)
    except InvalidVersion:
        raise ValueError(
            f"{engine.kind.value} version {wanted!r} is not a version number"
        ) from None
    if engine.flags_of_base_release:
        wanted = want.base_version
        want = Version(wanted)
    candidates = [v for v in known_versions(engine.flag_table) if Version(v) <= want]
    if not candidates:
        oldest = known_versions(engine.flag_table)[0]
        raise ValueError(
            f"{engine.kind.value} {wanted} is older than the oldest flag table ({oldest})"
        )
    chosen = candidates[-1]
    return FlagTable(
        engine=engine.flag_table,
        version=chosen,
        flags=frozenset(doc["versions"][chosen]["flags"]),
        value_flags=frozenset(doc.get("value_flags", [])),
        notes=doc.get("notes", {}),
    )


def check_flags(table: FlagTable, args: list[str]) -> list[str]:
    """Problems with ``args`` under ``table``: one sentence per unknown option or stray word.

    Values are skipped: the token after an option that takes a value, and ``--opt=value`` forms.
    """
    problems: list[str] = []
    expect_value = False
    for token in args:
        if expect_value:
            expect_value = False
            continue
        if not token.startswith("-") or token == "-":
            problems.append(
                f"{token!r} is not an option: ironserve writes the subcommand and the model path "
                "itself (there is no 'vllm start --config')"
            )
            continue
        option, has_inline_value = token.split("=", 1)[0], "=" in token
        if option not in table.flags:
            note = table.notes.get(option, "")
            hint = f": {note}" if note else did_you_mean(option, table.flags)
            problems.append(f"{option} is not a {table.engine} {table.version} option{hint}")
            # An unknown option's value, if any, is not a stray word of its own.
            expect_value = not has_inline_value
            continue
        expect_value = option in table.value_flags and not has_inline_value
    return problems
