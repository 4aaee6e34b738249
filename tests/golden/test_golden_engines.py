"""Golden files: every engine launch (docker run, docker exec, rendered files), one per topology,
with what the Plan derives from it (endpoint, API key location, layout, ports, disk per node).

Regenerate with ``IRONSERVE_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff: the files
are what an operator's nodes will run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ironserve.catalog.engines import EngineKind
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import get_model
from ironserve.engines import build_launches
from ironserve.engines.base import LaunchContext, NodeLaunch, NodeTarget
from ironserve.plan.plan import Plan, launch_context
from ironserve.plan.types import SizingRequest

GOLDEN_DIR = Path(__file__).parent / "engines"
UPDATE_ENV = "IRONSERVE_UPDATE_GOLDEN"

R1 = "deepseek-ai/DeepSeek-R1"
IB_HCAS = [f"mlx5_{i}" for i in range(8)]


def nodes(
    prefix: str,
    addresses: list[str],
    devices: int,
    *,
    ifname: str | None = None,
    ib_hcas: list[str] | None = None,
    npu_ips: list[list[str]] | None = None,
) -> list[NodeTarget]:
    return [
        NodeTarget(
            name=f"{prefix}-{rank}",
            address=address,
            role="head" if rank == 0 else "worker",
            rank=rank,
            device_count=devices,
            socket_ifname=ifname,
            ib_hcas=ib_hcas or [],
            npu_device_ips=npu_ips[rank] if npu_ips else [],
        )
        for rank, address in enumerate(addresses)
    ]


def h200x8_1node_r1_vllm() -> LaunchContext:
    request = SizingRequest(model_id=R1, accelerator_id="h200-141g", nodes=1, devices_per_node=8)
    return launch_context("r1", get_model(R1), request, nodes("h200", ["10.0.0.10"], 8))


def h100x8_2node_r1_vllm() -> LaunchContext:
    request = SizingRequest(
        model_id=R1,
        accelerator_id="h100-80g",
        nodes=2,
        devices_per_node=8,
        tensor_parallel_size=8,
        pipeline_parallel_size=2,
    )
    targets = nodes("h100", ["10.10.0.11", "10.10.0.12"], 8, ifname="ens10f0", ib_hcas=IB_HCAS)
    return launch_context("r1", get_model(R1), request, targets)


def a100_40gx8_8node_r1_vllm() -> LaunchContext:
    request = SizingRequest(model_id=R1, accelerator_id="a100-40g", nodes=8, devices_per_node=8)
    addresses = [f"10.20.0.{11 + i}" for i in range(8)]
    targets = nodes("a100", addresses, 8, ifname="ens1f0", ib_hcas=IB_HCAS[:4])
    return launch_context("r1", get_model(R1), request, targets)


def l40sx2_3node_r1distill32b_vllm() -> LaunchContext:
    model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    request = SizingRequest(
        model_id=model,
        accelerator_id="l40s-48g",
        nodes=3,
        devices_per_node=2,
        engine_version="0.11.0",  # the seed's layout, on Ray (vLLM before its native launch)
        tensor_parallel_size=2,
        pipeline_parallel_size=3,
        max_model_len=16384,
    )
    addresses = ["172.16.0.102", "172.16.0.43", "172.16.0.44"]
    targets = nodes("deepseek", addresses, 2, ifname="eth0")
    return launch_context(
        "distill32b",
        get_model(model),
        request,
        targets,
        served_name="DeepSeek",
        weights_dir="/root/deepseekr1_32b",
    )


def l40sx2_3node_r1distill32b_vllm_dp() -> LaunchContext:
    """The same nodes on current vLLM, layout searched: TP 2 x DP 3 (a replica per node)."""
    model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    request = SizingRequest(
        model_id=model, accelerator_id="l40s-48g", nodes=3, devices_per_node=2, max_model_len=16384
    )
    addresses = ["172.16.0.102", "172.16.0.43", "172.16.0.44"]
    targets = nodes("deepseek", addresses, 2, ifname="eth0")
    return launch_context("distill32b", get_model(model), request, targets, served_name="DeepSeek")


def labgpu_3node_smollm2_vllm() -> LaunchContext:
    """The lab's demo (make demo): the real vLLM's version, TP 1 x PP 3 over three nodes."""
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    request = SizingRequest(
        model_id=model,
        accelerator_id="lab-gpu-512m",
        nodes=3,
        devices_per_node=1,
        engine_version="0.32.0",
        max_model_len=8192,
    )
    targets = nodes("labgpu", [f"172.30.100.{10 + i}" for i in range(3)], 1, ifname="eth0")
    return launch_context(
        "lab",
        get_model(model),
        request,
        targets,
        extra_args=["--kv-cache-memory-bytes", "134217728"],
    )


def h100x8_2node_r1_sglang() -> LaunchContext:
    request = SizingRequest(
        model_id=R1,
        accelerator_id="h100-80g",
        nodes=2,
        devices_per_node=8,
        engine=EngineKind.SGLANG,
        tensor_parallel_size=16,
    )
    targets = nodes("h100", ["10.10.0.11", "10.10.0.12"], 8, ifname="ens10f0", ib_hcas=IB_HCAS)
    return launch_context("r1", get_model(R1), request, targets)


def ascend910bx8_2node_r1_mindie() -> LaunchContext:
    request = SizingRequest(
        model_id=R1,
        accelerator_id="ascend-910b-64g",
        nodes=2,
        devices_per_node=8,
        engine=EngineKind.MINDIE,
        weight_format=WeightFormat.W8A8,
        max_model_len=32768,
    )
    npu_ips = [[f"100.97.0.{193 + i}" for i in range(8)], [f"100.97.0.{137 + i}" for i in range(8)]]
    targets = nodes(
        "atlas", ["10.197.90.10", "10.197.90.11"], 8, ifname="enp189s0f0", npu_ips=npu_ips
    )
    return launch_context(
        "r1", get_model(R1), request, targets, served_name="DeepSeek-R1", shm_size="500g"
    )


def va16_1node_r10528_vacc() -> LaunchContext:
    model = "deepseek-ai/DeepSeek-R1-0528"
    request = SizingRequest(
        model_id=model,
        accelerator_id="va16-128g",
        nodes=1,
        devices_per_node=8,
        engine=EngineKind.VLLM_VACC,
    )
    return launch_context(
        "r1-0528",
        get_model(model),
        request,
        nodes("va16", ["192.168.10.5"], 8),
        served_name="DS3-R1",
        weights_dir="/weights",
    )


def h200x8_1node_r1_trtllm() -> LaunchContext:
    request = SizingRequest(
        model_id=R1,
        accelerator_id="h200-141g",
        nodes=1,
        devices_per_node=8,
        engine=EngineKind.TRTLLM,
    )
    return launch_context(
        "r1", get_model(R1), request, nodes("h200", ["10.0.0.10"], 8), served_name="DeepSeek-R1"
    )


def gb200x4_2node_r1_trtllm() -> LaunchContext:
    """Two GB200 compute trays of one NVL72 rack: TP 8 over both, one MPI world."""
    request = SizingRequest(
        model_id=R1,
        accelerator_id="gb200-186g",
        nodes=2,
        devices_per_node=4,
        engine=EngineKind.TRTLLM,
    )
    targets = nodes(
        "gb200", ["10.40.0.11", "10.40.0.12"], 4, ifname="enP6p3s0f0", ib_hcas=IB_HCAS[:4]
    )
    return launch_context("r1", get_model(R1), request, targets, served_name="DeepSeek-R1")


def ascend910bx8_2node_r1_vllm_ascend() -> LaunchContext:
    request = SizingRequest(
        model_id=R1,
        accelerator_id="ascend-910b-64g",
        nodes=2,
        devices_per_node=8,
        engine=EngineKind.VLLM_ASCEND,
        weight_format=WeightFormat.W8A8,
        max_model_len=32768,
    )
    npu_ips = [[f"100.97.0.{193 + i}" for i in range(8)], [f"100.97.0.{137 + i}" for i in range(8)]]
    targets = nodes(
        "atlas", ["10.197.90.10", "10.197.90.11"], 8, ifname="enp189s0f0", npu_ips=npu_ips
    )
    return launch_context("r1", get_model(R1), request, targets, served_name="DeepSeek-R1")


TOPOLOGIES: dict[str, Callable[[], LaunchContext]] = {
    "h200x8-1node-r1-vllm": h200x8_1node_r1_vllm,
    "h100x8-2node-r1-vllm": h100x8_2node_r1_vllm,
    "a100-40gx8-8node-r1-vllm": a100_40gx8_8node_r1_vllm,
    "l40sx2-3node-r1distill32b-vllm": l40sx2_3node_r1distill32b_vllm,
    "l40sx2-3node-r1distill32b-vllm-dp": l40sx2_3node_r1distill32b_vllm_dp,
    "labgpu-3node-smollm2-vllm": labgpu_3node_smollm2_vllm,
    "h100x8-2node-r1-sglang": h100x8_2node_r1_sglang,
    "ascend910bx8-2node-r1-mindie": ascend910bx8_2node_r1_mindie,
    "va16-1node-r10528-vacc": va16_1node_r10528_vacc,
    "h200x8-1node-r1-trtllm": h200x8_1node_r1_trtllm,
    "gb200x4-2node-r1-trtllm": gb200x4_2node_r1_trtllm,
    "ascend910bx8-2node-r1-vllm-ascend": ascend910bx8_2node_r1_vllm_ascend,
}


def derived(plan: Plan) -> list[str]:
    """The Plan's derived fields, one JSON line each (what roles, health and bench read)."""
    fields = ("endpoint", "api_key", "layout", "ports", "disk")
    doc = plan.summary()
    return [f"# {name}: {json.dumps(doc[name], sort_keys=True)}" for name in fields]


def render(ctx: LaunchContext, launches: list[NodeLaunch], plan: Plan | None = None) -> str:
    """The launches as a reviewable text: a header, then per node its lines and files."""
    par = ctx.sizing.parallelism
    out = [
        f"# group {ctx.group}: {ctx.model.id} as {ctx.served_name!r} on {ctx.engine.kind.value} "
        f"{ctx.engine_version} ({ctx.image})",
        f"# {len(ctx.nodes)} node(s) x {ctx.accelerator.id}; TP {par.tensor} x PP {par.pipeline} "
        f"x DP {par.data}, EP {par.expert}; max_model_len {ctx.sizing.max_model_len}; "
        f"feasible {ctx.sizing.feasible}",
        *(derived(plan) if plan is not None else []),
    ]
    for launch in launches:
        out += [
            "",
            f"## node {launch.node} ({launch.address}) role={launch.role} rank={launch.rank} "
            f"serves_api={launch.serves_api}",
            *launch.shell_lines(),
        ]
        for file in launch.files:
            out += [f"### file {file.path} mode={file.mode}", file.content.rstrip("\n"), "### end"]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_engine_launches_match_golden(name: str) -> None:
    ctx = TOPOLOGIES[name]()
    plan = Plan.build(ctx)
    assert plan.nodes == build_launches(ctx)
    text = render(ctx, plan.nodes, plan)
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; create it with {UPDATE_ENV}=1 and review it")
    assert text == path.read_text(), (
        f"{name}: the rendered launch differs from {path}; if the change is intended, "
        f"regenerate with {UPDATE_ENV}=1 and review the diff"
    )
