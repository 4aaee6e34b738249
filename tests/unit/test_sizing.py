"""The planner's answers for well-known deployments, and the rules it enforces, each explained."""

from __future__ import annotations

from typing import Any

import pytest

from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import get_model
from ironserve.plan.sizing import GIB, size
from ironserve.plan.types import Sizing, SizingRequest

R1 = "deepseek-ai/DeepSeek-R1"


def plan(model: str, accel: str, nodes: int, devices: int, **kw: Any) -> Sizing:
    return size(
        SizingRequest(
            model_id=model, accelerator_id=accel, nodes=nodes, devices_per_node=devices, **kw
        )
    )


def blocked_by(s: Sizing, needle: str) -> bool:
    return any(needle in b for b in s.blockers)


def test_r1_fp8_fits_one_h200_node() -> None:
    s = plan(R1, "h200-141g", 1, 8)
    assert s.feasible and s.blockers == []
    assert (s.parallelism.tensor, s.parallelism.pipeline) == (8, 1)
    assert s.weight_format is WeightFormat.FP8
    assert 640 * GIB < s.weights_bytes < 645 * GIB  # "R1's FP8 weights alone are ~642 GiB"
    assert s.max_model_len == 163840 and s.full_length_sequences >= 1


def test_r1_fp8_does_not_fit_one_h100_node_and_says_why() -> None:
    s = plan(R1, "h100-80g", 1, 8)
    assert not s.feasible
    assert blocked_by(s, "weights do not fit: 80.2 GiB per GPU")
    best = s.alternatives[0]
    assert (
        best.nodes,
        best.weight_format,
        best.tensor_parallel_size,
        best.pipeline_parallel_size,
    ) == (
        2,
        WeightFormat.FP8,
        8,
        2,
    )
    assert any(r.startswith("nearest feasible: 2 node(s) x 8 h100-80g, fp8") for r in s.reasons)


def test_r1_fits_two_h100_nodes_with_tp8_pp2() -> None:
    s = plan(R1, "h100-80g", 2, 8)
    assert s.feasible
    assert (s.parallelism.tensor, s.parallelism.pipeline) == (8, 2)
    # PP2 halves the layers each GPU keeps KV cache for: 31 of 61 layers x 576 values x 2 bytes.
    assert s.memory.kv_bytes_per_token == 31 * 576 * 2


def test_eight_a100_80g_are_not_enough_for_671b() -> None:
    s = plan(R1, "a100-80g", 1, 8)
    assert not s.feasible
    assert any("does not run the published fp8 checkpoint" in r for r in s.reasons)
    assert s.weight_format is WeightFormat.BF16
    assert blocked_by(s, "weights do not fit")


def test_sixteen_rtx4090_only_with_llama_cpp_style_quants() -> None:
    s = plan(R1, "rtx4090-24g", 2, 8)
    assert not s.feasible
    assert any("llama.cpp-style engines" in r for r in s.reasons)


def test_the_seeds_eight_a100_40g_nodes_serve_r1_from_bf16() -> None:
    s = plan(R1, "a100-40g", 8, 8)
    assert s.feasible and s.weight_format is WeightFormat.BF16
    assert (s.parallelism.tensor, s.parallelism.pipeline) == (8, 8)
    assert s.memory.weights_bytes < 20 * GIB


def test_ascend_r1_needs_two_nodes_in_w8a8_or_four_in_bf16() -> None:
    one = plan(R1, "ascend-910b-64g", 1, 8, engine="mindie")
    two = plan(R1, "ascend-910b-64g", 2, 8, engine="mindie")
    assert not one.feasible and two.feasible
    assert two.weight_format is WeightFormat.W8A8
    assert two.parallelism.tensor == 16  # MindIE runs TP over every NPU
    assert not plan(R1, "ascend-910b-64g", 2, 8, engine="mindie", weight_format="bf16").feasible
    assert plan(R1, "ascend-910b-64g", 4, 8, engine="mindie", weight_format="bf16").feasible
    three = plan(R1, "ascend-910b-64g", 3, 8, engine="mindie", weight_format="bf16")
    assert blocked_by(three, "even number of nodes")


def test_mindie_needs_power_of_two_npus_per_node() -> None:
    s = plan("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "ascend-910b-64g", 1, 6, engine="mindie")
    assert blocked_by(s, "power-of-two number of devices per node")


def test_no_fp8_on_ascend_even_when_asked() -> None:
    s = plan(R1, "ascend-910b-64g", 2, 8, engine="mindie", weight_format="fp8")
    assert blocked_by(s, "does not run fp8 weights")


def test_vastai_r1_0528_runs_tp32_on_one_va16() -> None:
    s = plan("deepseek-ai/DeepSeek-R1-0528", "va16-128g", 1, 8, engine="vllm_vacc")
    assert s.feasible
    assert (s.parallelism.tensor, s.parallelism.pipeline) == (32, 1)
    assert s.max_model_len == 65536 and s.max_num_seqs == 4


def test_vastai_pp2_only_for_long_inputs() -> None:
    long = plan(
        "deepseek-ai/DeepSeek-R1-0528", "va16-128g", 1, 8, engine="vllm_vacc", max_model_len=131072
    )
    assert long.feasible and long.parallelism.pipeline == 2
    short = plan(
        "deepseek-ai/DeepSeek-R1-0528",
        "va16-128g",
        1,
        8,
        engine="vllm_vacc",
        pipeline_parallel_size=2,
    )
    assert blocked_by(short, "PP2 is only for inputs over 56k")
    assert blocked_by(
        plan("deepseek-ai/DeepSeek-R1-0528", "va16-128g", 1, 8, engine="vllm_vacc", max_num_seqs=8),
        "at most 4 concurrent",
    )
    assert blocked_by(
        plan("deepseek-ai/DeepSeek-R1-0528", "va16-128g", 2, 8, engine="vllm_vacc"), "one server"
    )
    assert blocked_by(
        plan(
            "deepseek-ai/DeepSeek-R1-0528",
            "va16-128g",
            1,
            8,
            engine="vllm_vacc",
            max_model_len=131072,
            speculative=True,
        ),
        "MTP",
    )


def test_seed_three_nodes_of_two_gpus_tp2_pp3_with_ray_tp2_dp3_natively() -> None:
    """The seed's TP2 x PP3 is the answer of a Ray launch (vLLM before 0.12), which cannot put
    DP replicas on several nodes. The native launch of the default version can, and TP 2 (one
    instance per node) holds the weights: three replicas serve more than one pipeline."""
    model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    ray = plan(model, "l40s-48g", 3, 2, engine_version="0.11.0")
    assert ray.feasible
    assert (ray.parallelism.tensor, ray.parallelism.pipeline, ray.parallelism.data) == (2, 3, 1)
    native = plan(model, "l40s-48g", 3, 2)
    assert native.feasible
    assert (native.parallelism.tensor, native.parallelism.pipeline) == (2, 1)
    assert native.parallelism.data == 3


def test_forced_tp_that_breaks_head_divisibility_is_infeasible_with_the_rule() -> None:
    # Qwen2.5-32B-based distill: 40 attention heads, 8 KV heads; TP16 over 2 x 8.
    s = plan("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "h100-80g", 2, 8, tensor_parallel_size=16)
    assert blocked_by(s, "attention heads (40) are not divisible by TP 16")


def test_ranks_must_cover_every_accelerator() -> None:
    s = plan(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "h100-80g",
        1,
        8,
        tensor_parallel_size=2,
        pipeline_parallel_size=2,
    )
    assert blocked_by(s, "TP 2 x PP 2 x DP 1 = 4 ranks, but the group has 8")
    filled = plan(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "h100-80g", 1, 8, tensor_parallel_size=2
    )
    assert filled.parallelism.pipeline == 4  # the free dimension fills the node
    ok = plan(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "h100-80g",
        1,
        8,
        tensor_parallel_size=2,
        data_parallel_size=4,
    )
    assert ok.feasible and ok.parallelism.ranks == 8


def test_pp_cannot_exceed_layers() -> None:
    s = plan(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "rtx4090-24g",
        32,
        1,
        pipeline_parallel_size=32,
    )
    assert blocked_by(s, "PP 32 exceeds the model's 28 layers")


def test_expert_parallel_needs_moe_and_divides_experts() -> None:
    dense = plan("Qwen/Qwen3-32B", "h100-80g", 1, 8, expert_parallel=True)
    assert blocked_by(dense, "not a mixture-of-experts model")
    moe = plan(R1, "h200-141g", 1, 8, expert_parallel=True)
    assert moe.feasible and moe.parallelism.expert == 8


def test_max_model_len_beyond_the_model_or_the_cache_is_refused() -> None:
    assert blocked_by(plan(R1, "h200-141g", 1, 8, max_model_len=200_000), "max_position_embeddings")
    s = plan("meta-llama/Llama-3.3-70B-Instruct", "h100-80g", 1, 2, max_model_len=131072)
    assert blocked_by(s, "does not fit: one sequence needs")


def test_default_max_model_len_shrinks_to_what_the_cache_holds() -> None:
    s = plan("meta-llama/Llama-3.3-70B-Instruct", "h100-80g", 1, 2)
    assert s.feasible
    assert 4096 <= s.max_model_len < 131072 and s.max_model_len % 1024 == 0
    assert s.full_length_sequences >= 1


def test_fp8_kv_cache_halves_bytes_per_token() -> None:
    # The same layout for both (the search would take a smaller instance with the smaller KV).
    bf16 = plan("Qwen/Qwen3-32B", "h100-80g", 1, 8, tensor_parallel_size=2)
    fp8 = plan("Qwen/Qwen3-32B", "h100-80g", 1, 8, tensor_parallel_size=2, kv_cache_dtype_bytes=1)
    assert fp8.memory.kv_bytes_per_token * 2 == bf16.memory.kv_bytes_per_token


@pytest.mark.parametrize(
    ("model", "per_token"),
    [
        # MLA: (kv_lora_rank 512 + rope 64) x 61 layers x 2 bytes, whatever the head count.
        (R1, 576 * 61 * 2),
        # GQA: K and V x 8 KV heads x 128 head_dim x 80 layers x 2 bytes.
        ("meta-llama/Llama-3.3-70B-Instruct", 2 * 8 * 128 * 80 * 2),
        # Qwen3-235B: 4 KV heads x head_dim 128 x 94 layers.
        ("Qwen/Qwen3-235B-A22B-FP8", 2 * 4 * 128 * 94 * 2),
    ],
)
def test_kv_bytes_per_token_by_architecture(model: str, per_token: int) -> None:
    assert get_model(model).kv_bytes_per_token() == per_token


def test_sliding_window_layers_cost_at_most_their_window() -> None:
    oss = get_model("openai/gpt-oss-120b")
    assert oss.sliding_window_layers > 0
    full = oss.kv_bytes_per_token() * 100_000
    assert oss.kv_bytes_for_sequence(100_000) < full * 0.6


def test_multi_node_vllm_launches_natively_and_ray_on_0_18_needs_an_image_with_ray() -> None:
    """From 0.12 vLLM launches multi-node itself, so 0.18+ (no Ray in its images) is not refused;
    a Ray launch asked of 0.18+ is only warned about, since an image may carry Ray."""
    for version in ("0.18.0", "0.33.0"):
        native = plan(R1, "h100-80g", 2, 8, engine_version=version)
        assert native.feasible
        assert any("launches natively (--nnodes" in r for r in native.reasons)
    ray = plan(R1, "h100-80g", 2, 8, engine_version="0.18.0", multi_node="ray")
    assert ray.feasible
    assert ray.blockers == []
    assert (
        "vLLM 0.18+ images do not bundle Ray: engine_multi_node: ray needs an image that "
        "carries it" in ray.reasons
    )
    # Before 0.18 a Ray launch is not warned about; one node never forms a cluster.
    old = plan(R1, "h100-80g", 2, 8, engine_version="0.17.0", multi_node="ray")
    assert old.feasible and not any("do not bundle Ray" in r for r in old.reasons)
    assert plan(R1, "h200-141g", 1, 8, engine_version="0.33.0", multi_node="ray").reasons == (
        plan(R1, "h200-141g", 1, 8, engine_version="0.33.0").reasons
    )


def test_native_multi_node_before_vllm_0_12_is_refused_with_the_rule() -> None:
    s = plan(R1, "h100-80g", 2, 8, engine_version="0.11.0", multi_node="native")
    assert blocked_by(
        s,
        "vLLM 0.11.0 has no native multi-node launch (--nnodes, from 0.12.0): use "
        "engine_multi_node: ray",
    )
    assert plan(R1, "h100-80g", 2, 8, engine_version="0.11.0").feasible  # Ray, by default
    assert plan(R1, "h200-141g", 1, 8, engine_version="0.11.0", multi_node="native").feasible
