"""The layout search: with no TP or PP forced, the smallest instance (TP x PP) that serves the model
with a useful context wins, and DP replicates it over the rest; the reasons say why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from ironserve.catalog.engines import ENGINES, EngineKind
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import get_model
from ironserve.cli import app
from ironserve.plan.sizing import layout_candidates, searches_layout, size
from ironserve.plan.types import Sizing, SizingRequest

R1 = "deepseek-ai/DeepSeek-R1"
QWEN_7B = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"  # 28 attention heads, 4 KV heads
QWEN_32B = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"  # 40 attention heads, 8 KV heads
runner = CliRunner()


def request(model: str, accel: str, nodes: int, devices: int, **kw: Any) -> SizingRequest:
    return SizingRequest(
        model_id=model, accelerator_id=accel, nodes=nodes, devices_per_node=devices, **kw
    )


def plan(model: str, accel: str, nodes: int, devices: int, **kw: Any) -> Sizing:
    return size(request(model, accel, nodes, devices, **kw))


def layout(s: Sizing) -> tuple[int, int, int]:
    p = s.parallelism
    return p.tensor, p.pipeline, p.data


def said(s: Sizing, needle: str) -> bool:
    return any(needle in r for r in s.reasons)


def blocked(s: Sizing, needle: str) -> bool:
    return any(needle in b for b in s.blockers)


def cli_plan(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["plan", *args, "--json"])
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, doc


# The held-out cases.


def test_r1_on_two_ascend_nodes_without_an_engine_is_mindie_w8a8_tp16() -> None:
    code, doc = cli_plan(
        "--model", R1, "--accelerator", "ascend-910b-64g", "--nodes", "2", "--devices-per-node", "8"
    )  # fmt: skip
    assert code == 0 and doc["feasible"] is True
    assert doc["engine"] == "mindie" and doc["weight_format"] == "w8a8"
    assert (doc["tensor_parallel_size"], doc["pipeline_parallel_size"]) == (16, 1)
    assert any("TP over every accelerator" in r for r in doc["reasons"])


def test_a_28_head_model_on_eight_gpus_is_eight_tp1_replicas() -> None:
    s = plan(QWEN_7B, "h100-80g", 1, 8)
    assert s.feasible and s.blockers == []
    assert layout(s) == (1, 1, 8)
    assert said(
        s,
        "layout: TP 1 fits with a 131072-token context, so 8 GPUs give TP 1 x DP 8 (8 replicas "
        "behind one endpoint); TP 8 would not divide the 28 attention heads",
    )
    assert said(s, "parallelism: TP 1 x PP 1 x DP 8 over 1 node(s) x 8 GPUs")


def test_a_forced_tp8_on_28_heads_is_refused_with_the_rule() -> None:
    s = plan(QWEN_7B, "h100-80g", 1, 8, tensor_parallel_size=8)
    assert not s.feasible
    assert layout(s) == (8, 1, 1)  # a forced layout is checked, not searched
    assert s.blockers == ["attention heads (28) are not divisible by TP 8 (rule: heads % TP == 0)"]
    # The nearest feasible is the searched layout on the same node.
    best = s.alternatives[0]
    assert (best.nodes, best.tensor_parallel_size, best.pipeline_parallel_size) == (1, 1, 1)
    assert "TP 1 x PP 1 x DP 8" in best.summary


def test_r1_on_one_h200_node_is_tp8_the_smallest_instance_that_holds_it() -> None:
    s = plan(R1, "h200-141g", 1, 8)
    assert s.feasible and layout(s) == (8, 1, 1)
    assert said(s, "layout: TP 8 fits with a 163840-token context, so 8 GPUs give TP 8 x DP 1")
    assert said(s, "TP 4 would not hold the weights (160.3 GiB per GPU")
    assert said(s, "nor would a smaller instance")


def test_r1_on_two_h100_nodes_is_tp8_pp2_launched_natively() -> None:
    s = plan(R1, "h100-80g", 2, 8)
    assert s.feasible and layout(s) == (8, 2, 1)
    assert said(s, "(one instance over 2 nodes); TP 8 would not hold the weights")
    assert said(s, "vllm 0.33.0 launches natively (--nnodes")
    assert not said(s, "Ray")


def test_r1_on_one_h100_node_names_the_weights_and_the_two_node_layout() -> None:
    s = plan(R1, "h100-80g", 1, 8)
    assert not s.feasible
    assert layout(s) == (8, 1, 1)  # the default layout, sized for its blockers
    assert any(b.startswith("weights do not fit: 80.2 GiB per GPU") for b in s.blockers)
    assert said(s, "layout: no TP x PP x DP split of the 8 GPUs serves the model")
    best = s.alternatives[0]
    assert (best.nodes, best.weight_format) == (2, WeightFormat.FP8)
    assert (best.tensor_parallel_size, best.pipeline_parallel_size) == (8, 2)
    assert said(s, "nearest feasible: 2 node(s) x 8 h100-80g, fp8 weights, TP 8 x PP 2")
    assert not said(s, "no feasible layout")


def test_three_l40s_nodes_tp2_pp3_with_ray_tp2_dp3_natively() -> None:
    ray = plan(QWEN_32B, "l40s-48g", 3, 2, engine_version="0.11.0")
    assert ray.feasible and layout(ray) == (2, 3, 1)
    assert said(ray, "a Ray launch does not place DP replicas across nodes")
    assert said(ray, "(one instance over 3 nodes)")
    native = plan(QWEN_32B, "l40s-48g", 3, 2)
    assert native.feasible and layout(native) == (2, 1, 3)
    assert said(
        native,
        "so 6 GPUs give TP 2 x DP 3 (3 replicas behind one endpoint); TP 1 would not hold the "
        "weights (61.0 GiB per GPU",
    )


def test_vllm_vacc_keeps_tp32_and_is_the_va16_default() -> None:
    code, doc = cli_plan(
        "--model", "deepseek-ai/DeepSeek-R1-0528", "--accelerator", "va16-128g",
        "--nodes", "1", "--devices-per-node", "8",
    )  # fmt: skip
    assert code == 0 and doc["engine"] == "vllm_vacc"
    assert (doc["tensor_parallel_size"], doc["pipeline_parallel_size"]) == (32, 1)
    assert doc["data_parallel_size"] == 1


# The candidates and the engine limits.


def test_candidates_keep_instances_inside_a_node_or_over_whole_nodes() -> None:
    model, engine = get_model(QWEN_32B), ENGINES[EngineKind.VLLM]
    found = layout_candidates(model, engine, request(QWEN_32B, "l40s-48g", 3, 2), 2)
    # 6 ranks: instances of 1, 2 (inside a node) and 6 (all three nodes); never 3 (it would
    # straddle a node), never TP 3 or 6 (TP stays inside a node). Smallest first, then less PP.
    assert [(c.parallelism.tensor, c.parallelism.pipeline, c.parallelism.data) for c in found] == [
        (1, 1, 6),
        (2, 1, 3),
        (1, 2, 3),
        (2, 3, 1),
        (1, 6, 1),
    ]
    assert all(c.rule is None for c in found)
    ray = layout_candidates(
        model, engine, request(QWEN_32B, "l40s-48g", 3, 2, engine_version="0.11.0"), 2
    )
    assert [(c.parallelism.tensor, c.parallelism.pipeline) for c in ray] == [(2, 3), (1, 6)]
    asked_ray = layout_candidates(
        model, engine, request(QWEN_32B, "l40s-48g", 3, 2, multi_node="ray"), 2
    )
    assert all(c.parallelism.data == 1 for c in asked_ray)


def test_candidates_that_break_a_head_rule_carry_it() -> None:
    found = layout_candidates(
        get_model(QWEN_7B), ENGINES[EngineKind.VLLM], request(QWEN_7B, "h100-80g", 1, 8), 8
    )
    rules = {(c.parallelism.tensor, c.parallelism.pipeline): c.rule for c in found}
    assert rules[(8, 1)] == "would not divide the 28 attention heads"
    assert rules[(4, 2)] is None and rules[(1, 1)] is None


def test_which_engines_search() -> None:
    vllm, sglang = ENGINES[EngineKind.VLLM], ENGINES[EngineKind.SGLANG]
    assert searches_layout(vllm, request(R1, "h100-80g", 2, 8))
    assert searches_layout(vllm, request(R1, "h100-80g", 2, 8, data_parallel_size=2))
    assert not searches_layout(vllm, request(R1, "h100-80g", 2, 8, tensor_parallel_size=8))
    assert not searches_layout(vllm, request(R1, "h100-80g", 2, 8, pipeline_parallel_size=2))
    assert searches_layout(sglang, request(R1, "h100-80g", 1, 8))
    assert not searches_layout(sglang, request(R1, "h100-80g", 2, 8))
    assert not searches_layout(ENGINES[EngineKind.MINDIE], request(R1, "ascend-910b-64g", 1, 8))
    assert not searches_layout(ENGINES[EngineKind.VLLM_VACC], request(R1, "va16-128g", 1, 8))


def test_sglang_searches_on_one_node_and_runs_tp_over_every_gpu_on_several() -> None:
    one = plan(QWEN_7B, "h100-80g", 1, 8, engine="sglang")
    assert one.feasible and layout(one) == (1, 1, 8)
    two = plan(R1, "h100-80g", 2, 8, engine="sglang")
    assert two.feasible and layout(two) == (16, 1, 1)
    assert said(two, "TP over every accelerator")


def test_mindie_keeps_tp_over_every_npu_even_when_a_smaller_one_would_fit() -> None:
    s = plan(QWEN_7B, "ascend-910b-64g", 1, 4, engine="mindie")
    assert s.feasible and layout(s) == (4, 1, 1)


def test_expert_parallel_skips_splits_whose_ep_does_not_divide_the_experts() -> None:
    # 24 GPUs: EP = TP x DP is 24 unless PP takes a factor; 128 experts need a power of two.
    s = plan("Qwen/Qwen3-235B-A22B-FP8", "h100-80g", 3, 8, expert_parallel=True)
    assert s.feasible
    assert layout(s) == (8, 3, 1) and s.parallelism.expert == 8
    assert said(s, "TP 8 x DP 3 would make EP 24, which does not divide the 128 experts")
    # Each of 16 DP ranks holds 1/16 of R1's routed experts and the rest whole: TP 1 x DP 16
    # (vLLM's data-expert parallelism) is the smallest instance that holds them.
    wide = plan(R1, "h200-141g", 2, 8, expert_parallel=True)
    assert wide.feasible and layout(wide) == (1, 1, 16) and wide.parallelism.expert == 16
    assert said(wide, "the routed experts (623.2 GiB) split over EP 16")


def test_a_forced_dp_is_kept_and_tp_pp_searched_under_it() -> None:
    s = plan(QWEN_7B, "h100-80g", 1, 8, data_parallel_size=2)
    assert s.feasible and layout(s) == (4, 1, 2)
    assert said(s, "DP 2 as asked")
    odd = plan(QWEN_7B, "h100-80g", 1, 8, data_parallel_size=3)
    assert any("every accelerator must get exactly one rank" in b for b in odd.blockers)


def test_the_same_instance_with_less_pp_is_tried_first_and_named() -> None:
    # DP 1 asked on one node: the instance is all 8 GPUs; TP 8 breaks the 28 heads, so PP takes a
    # factor inside the node.
    s = plan(QWEN_7B, "h100-80g", 1, 8, data_parallel_size=1)
    assert s.feasible and layout(s) == (4, 2, 1)
    assert said(
        s,
        "layout: TP 4 x PP 2 fits with a 131072-token context, so 8 GPUs give TP 4 x PP 2 x DP 1 "
        "(one instance); TP 8 would not divide the 28 attention heads",
    )
    # R1 on 3 x 8 H100: no instance of one node holds 641 GiB, so the group is one instance,
    # TP inside each node and PP across the three.
    r1 = plan(R1, "h100-80g", 3, 8)
    assert r1.feasible and layout(r1) == (8, 3, 1)


def test_a_short_context_is_not_useful_so_a_bigger_instance_is_taken() -> None:
    # Llama-3.3-70B on one H100 pair: TP 1 cannot hold 131 GiB; TP 2 holds it with a short but
    # useful context, the best there is. On four GPUs, TP 2 x DP 2 would leave ~5k tokens of
    # context: TP 4 holds the model's whole 131072 instead (the search's 32k target).
    pair = plan("meta-llama/Llama-3.3-70B-Instruct", "h100-80g", 1, 2)
    assert pair.feasible and layout(pair) == (2, 1, 1)
    assert said(pair, "no split reaches a 32768-token context")
    four = plan("meta-llama/Llama-3.3-70B-Instruct", "h100-80g", 1, 4)
    assert four.feasible and layout(four) == (4, 1, 1)
    assert four.max_model_len == 131072
    assert said(four, "TP 2 would leave a 5120-token context (under 32768)")
    # A requested context the small instance cannot hold moves the choice up.
    long = plan("meta-llama/Llama-3.3-70B-Instruct", "h100-80g", 1, 4, max_model_len=65536)
    assert long.feasible and layout(long) == (4, 1, 1)
    assert said(long, "TP 2 would not hold one 65536-token sequence")


def test_no_feasible_layout_is_said_only_when_the_alternatives_find_none() -> None:
    s = plan("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "h100-80g", 1, 8, max_model_len=10**6)
    assert not s.feasible and s.alternatives == []
    assert said(s, "no feasible layout with up to 17 nodes")
    assert blocked(s, "max_model_len 1000000 exceeds the model's max_position_embeddings")


@pytest.mark.parametrize(
    ("accel", "engine"),
    [("h100-80g", "vllm"), ("ascend-910b-64g", "mindie"), ("va16-128g", "vllm_vacc")],
)
def test_plan_without_engine_takes_the_vendors(accel: str, engine: str) -> None:
    _, doc = cli_plan("--model", R1, "--accelerator", accel, "--nodes", "1")
    assert doc["engine"] == engine


def test_an_engine_given_is_kept_even_off_its_vendor() -> None:
    code, doc = cli_plan(
        "--model", R1, "--accelerator", "ascend-910b-64g", "--nodes", "2", "--engine", "vllm"
    )  # fmt: skip
    assert code == 1 and doc["engine"] == "vllm"
    assert any("vllm does not run on ascend accelerators" in b for b in doc["blockers"])


def test_an_unknown_accelerator_without_engine_is_still_bad_input() -> None:
    result = runner.invoke(app, ["plan", "--model", R1, "--accelerator", "ascend-910b"])
    assert result.exit_code == 2
    assert "'ascend-910b-64g'?" in result.stderr
