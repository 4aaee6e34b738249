"""NVIDIA's NVFP4 checkpoints (ModelOpt): their real size, where they run natively (Blackwell),
weight-only (vLLM's Marlin kernel before Blackwell) or not at all (TensorRT-LLM and SGLang before
Blackwell), and the GB200 wide-EP recipe they make fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.catalog.engines import EngineKind
from ironserve.catalog.format_support import refusal, runnable_formats
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import get_model, spec_from_config, spec_from_config_file
from ironserve.cli import app
from ironserve.config import build_cluster
from ironserve.config.engine_args import extra_args_problems
from ironserve.config.inventory import HostRecord, load_inventory
from ironserve.plan.plan import Plan, plan_group
from ironserve.plan.sizing import GIB, size
from ironserve.plan.types import Sizing, SizingRequest
from tests.conftest import ROOT

FP4 = "nvidia/DeepSeek-R1-FP4"
R1 = "deepseek-ai/DeepSeek-R1"
WIDE_EP = "gb200x4_4node_r1_fp4_trtllm_dynamo_wideep"


def plan(model: str, accel: str, devices: int, engine: EngineKind, **kw: Any) -> Sizing:
    return size(
        SizingRequest(
            model_id=model,
            accelerator_id=accel,
            nodes=1,
            devices_per_node=devices,
            engine=engine,
            **kw,
        )
    )


def test_the_fp4_checkpoint_is_nvfp4_at_its_published_size() -> None:
    m = get_model(FP4)
    assert m.native_format is WeightFormat.NVFP4
    assert m.bytes_on_disk == 423_605_059_512  # 423.61 GB of safetensors, vs R1's 688.6 GB
    assert m.base_model == R1
    assert m.reasoning_parser == "deepseek_r1"
    # The routed experts are FP4 but the attention and MTP layer BF16: the experts' share of
    # the bytes (92 %) is less than their share of the parameters (97 %).
    assert m.expert_bytes(m.bytes_on_disk) == 390_372_618_240
    assert m.expert_bytes(m.bytes_on_disk) < m.bytes_on_disk * m.expert_parameters // m.parameters
    # The estimate for a model without a published NVFP4 checkpoint is within 2 % of this one.
    estimate = get_model(R1).weights_bytes(WeightFormat.NVFP4)
    assert abs(estimate - m.bytes_on_disk) / m.bytes_on_disk < 0.02


def test_modelopt_quantization_configs_read_as_nvfp4(tmp_path: Path) -> None:
    r1 = json.loads(
        (
            Path(__file__).parents[2] / "src/ironserve/catalog/data/models/deepseek-ai--"
            "DeepSeek-R1.json"
        ).read_text()
    )["config"]
    del r1["quantization_config"]
    # ModelOpt 0.31+ writes it into config.json.
    flat = {**r1, "quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}
    assert spec_from_config("x/flat", flat).native_format is WeightFormat.NVFP4
    # ModelOpt 0.29 and before: hf_quant_config.json beside config.json.
    (tmp_path / "config.json").write_text(json.dumps(r1))
    assert spec_from_config_file("x/old", tmp_path / "config.json").native_format is (
        WeightFormat.BF16
    )
    (tmp_path / "hf_quant_config.json").write_text(
        json.dumps({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4"}})
    )
    assert spec_from_config_file("x/old", tmp_path / "config.json").native_format is (
        WeightFormat.NVFP4
    )


def test_blackwell_runs_nvfp4_natively_and_hopper_only_in_vllm() -> None:
    gb200, b200, h100 = (ACCELERATORS[a] for a in ("gb200-186g", "b200-180g", "h100-80g"))
    for engine in (EngineKind.VLLM, EngineKind.SGLANG, EngineKind.TRTLLM):
        assert WeightFormat.NVFP4 in runnable_formats(gb200, engine)
        assert WeightFormat.NVFP4 in runnable_formats(b200, engine)
    assert WeightFormat.NVFP4 in runnable_formats(h100, EngineKind.VLLM)
    assert WeightFormat.NVFP4 not in runnable_formats(h100, EngineKind.TRTLLM)
    assert WeightFormat.NVFP4 not in runnable_formats(h100, EngineKind.SGLANG)
    why = refusal(WeightFormat.NVFP4, h100, EngineKind.TRTLLM)
    assert why is not None and "no FP4 tensor cores" in why and "only vllm" in why
    ascend = ACCELERATORS["ascend-910b-64g"]
    assert refusal(WeightFormat.NVFP4, ascend, EngineKind.MINDIE) == (
        "ascend-910b-64g does not run nvfp4 weights (it runs bf16, fp16, w8a8)"
    )


def test_r1_fp4_on_one_gb200_tray_with_trtllm_is_feasible() -> None:
    s = plan(FP4, "gb200-186g", 4, EngineKind.TRTLLM)
    assert s.feasible, s.blockers
    assert s.weight_format is WeightFormat.NVFP4
    assert s.weights_bytes == 423_605_059_512
    assert not any("weight-only" in r for r in s.reasons)


def test_r1_fp4_on_hopper_runs_weight_only_in_vllm_and_says_so() -> None:
    s = plan(FP4, "h100-80g", 8, EngineKind.VLLM)
    assert s.feasible, s.blockers
    assert s.weight_format is WeightFormat.NVFP4
    assert any("weight-only" in r and "Marlin" in r for r in s.reasons)


def test_r1_fp4_on_hopper_is_refused_by_trtllm_and_sglang_naming_the_fp8_checkpoint() -> None:
    for accel, engine in (("h100-80g", EngineKind.TRTLLM), ("h200-141g", EngineKind.SGLANG)):
        s = plan(FP4, accel, 8, engine)
        assert not s.feasible
        (blocker,) = s.blockers
        assert f"{engine.value} does not run nvfp4 weights on {accel}" in blocker
        assert f"serve {R1} instead" in blocker
        # More nodes would not help: no "no feasible layout with up to N nodes".
        assert not any("no feasible layout" in r for r in s.reasons)
        assert s.alternatives == []


def test_nvfp4_asked_of_a_model_on_hopper_with_trtllm_is_refused() -> None:
    s = plan(R1, "h200-141g", 8, EngineKind.TRTLLM, weight_format=WeightFormat.NVFP4)
    assert not s.feasible
    assert any("trtllm does not run nvfp4 weights on h200-141g" in b for b in s.blockers)


def _wide_ep_plan(**extra: Any) -> Plan:
    records = [
        HostRecord(r.name, r.groups, {**r.data, **extra})
        for r in load_inventory(f"inventories/{WIDE_EP}.py", str(ROOT))
    ]
    (group,) = build_cluster(records).groups
    return plan_group(group)


def test_wide_ep_recipe_fits_gb200_trays_with_fp4_and_not_with_fp8() -> None:
    """The recipe's DEP 4 workers (attention DP 4, EP 4) on one GB200 tray each."""
    fp4 = _wide_ep_plan()
    assert fp4.sizing.feasible, fp4.sizing.blockers
    assert fp4.sizing.weight_format is WeightFormat.NVFP4
    assert 121 * GIB < fp4.sizing.memory.weights_bytes < 122 * GIB
    for pool in ("prefill", "decode"):
        assert any(
            r.startswith(f"each {pool} worker: expert parallelism") for r in fp4.sizing.reasons
        )
    # The trap of copying the recipe with DeepSeek's own FP8 checkpoint.
    fp8 = _wide_ep_plan(model_id=R1)
    assert not fp8.sizing.feasible
    assert any(
        "weights do not fit: 173.9 GiB per GPU" in b and b.startswith("each prefill worker")
        for b in fp8.sizing.blockers
    )


def test_quantization_flags_must_match_the_nvfp4_checkpoint() -> None:
    fp4, r1 = get_model(FP4), get_model(R1)
    nvfp4, fp8 = WeightFormat.NVFP4, WeightFormat.FP8
    assert (
        extra_args_problems(EngineKind.VLLM, ["--quantization", "modelopt_fp4"], fp4, nvfp4) == []
    )
    (wrong,) = extra_args_problems(EngineKind.VLLM, ["--quantization", "modelopt_fp4"], r1, fp8)
    assert "does not match the fp8 checkpoint" in wrong
    (wrong,) = extra_args_problems(EngineKind.VLLM, ["--quantization", "fp8"], fp4, nvfp4)
    assert "does not match the nvfp4 checkpoint" in wrong
    (half,) = extra_args_problems(EngineKind.VLLM, ["--dtype", "half"], fp4, nvfp4)
    assert "--dtype half is not valid for the nvfp4 checkpoint" in half


def test_cli_plan_gives_the_verdicts_with_reasons() -> None:
    runner = CliRunner()
    common = ["plan", "--model", FP4, "--json"]
    ok = runner.invoke(
        app,
        [*common, "--accelerator", "gb200-186g", "--devices-per-node", "4", "--engine", "trtllm"],
    )
    assert ok.exit_code == 0, ok.stdout
    assert json.loads(ok.stdout)["weight_format"] == "nvfp4"
    hopper = runner.invoke(app, [*common, "--accelerator", "h100-80g", "--engine", "trtllm"])
    assert hopper.exit_code == 1
    doc = json.loads(hopper.stdout)
    assert any("no FP4 tensor cores" in b for b in doc["blockers"])
    vllm = runner.invoke(app, [*common, "--accelerator", "h100-80g"])
    assert vllm.exit_code == 0
    assert any("Marlin" in r for r in json.loads(vllm.stdout)["reasons"])


def test_eight_b200_serve_the_fp4_checkpoint_as_its_model_card_says() -> None:
    s = plan(FP4, "b200-180g", 8, EngineKind.TRTLLM)
    assert s.feasible, s.blockers
    assert s.parallelism.tensor * s.parallelism.data == 8


def test_the_accelerator_listing_names_weight_only_formats_and_their_engines() -> None:
    result = CliRunner().invoke(app, ["catalog", "accelerators"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    h100 = next(line for line in result.stdout.splitlines() if "h100-80g" in line)
    assert "nvfp4 (weight-only: vllm)" in h100
    gb200 = next(line for line in result.stdout.splitlines() if "gb200-186g" in line)
    assert "nvfp4" in gb200 and "weight-only" not in gb200
