"""Engine command builders: LaunchContext in, one NodeLaunch per node out."""

from __future__ import annotations

from collections.abc import Callable

from ironserve.catalog.engines import EngineKind
from ironserve.engines import dynamo, mindie, sglang, trtllm, vacc, vllm, vllm_ascend
from ironserve.engines.base import LaunchContext, NodeLaunch

BUILDERS: dict[EngineKind, Callable[[LaunchContext], list[NodeLaunch]]] = {
    EngineKind.VLLM: vllm.build,
    EngineKind.SGLANG: sglang.build,
    EngineKind.MINDIE: mindie.build,
    EngineKind.VLLM_VACC: vacc.build,
    EngineKind.DYNAMO: dynamo.build,
    EngineKind.TRTLLM: trtllm.build,
    EngineKind.VLLM_ASCEND: vllm_ascend.build,
}


def build_launches(ctx: LaunchContext) -> list[NodeLaunch]:
    return BUILDERS[ctx.engine.kind](ctx)
