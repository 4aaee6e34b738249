"""What engine_extra_args may not say, beyond existing in the engine version's parser.

The flag table answers "does this option exist"; these rules answer "is it right here": options
ironserve sets from inventory keys, secrets on a command line, and values that contradict the
checkpoint (the seed's `--dtype half --quantization awq` for DeepSeek-R1's FP8 weights).
"""

from __future__ import annotations

from ironserve.catalog.engines import EngineKind
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import ModelSpec

# Options the builders write from inventory keys: set the key, not the flag.
_VLLM_OWNED = {
    "--tensor-parallel-size": "engine_tensor_parallel_size",
    "-tp": "engine_tensor_parallel_size",
    "--pipeline-parallel-size": "engine_pipeline_parallel_size",
    "-pp": "engine_pipeline_parallel_size",
    "--data-parallel-size": "engine_data_parallel_size",
    "-dp": "engine_data_parallel_size",
    "--enable-expert-parallel": "engine_expert_parallel",
    "--served-model-name": "model_served_name",
    "--max-model-len": "model_max_len",
    "--gpu-memory-utilization": "engine_memory_utilization",
    "--max-num-seqs": "engine_max_num_seqs",
    "--port": "engine_port",
    "--host": "ironserve (the API listens on every address)",
    "--model": "model_id",
    "--distributed-executor-backend": "the number of nodes",
}
_SGLANG_OWNED = {
    "--model-path": "model_id",
    "--model": "model_id",
    "--tp-size": "engine_tensor_parallel_size",
    "--tp": "engine_tensor_parallel_size",
    "--dp-size": "engine_data_parallel_size",
    "--dp": "engine_data_parallel_size",
    "--ep-size": "engine_expert_parallel",
    "--served-model-name": "model_served_name",
    "--context-length": "model_max_len",
    "--mem-fraction-static": "engine_memory_utilization",
    "--port": "engine_port",
    "--host": "ironserve (the API listens on every address)",
    "--nnodes": "the inventory's nodes",
    "--node-rank": "the inventory's nodes",
    "--dist-init-addr": "the head's node_ip",
}
_TRTLLM_OWNED = {
    "--tensor_parallel_size": "engine_tensor_parallel_size",
    "--tp_size": "engine_tensor_parallel_size",
    "--pipeline_parallel_size": "engine_pipeline_parallel_size",
    "--pp_size": "engine_pipeline_parallel_size",
    "--moe_expert_parallel_size": "engine_expert_parallel",
    "--ep_size": "engine_expert_parallel",
    "--gpus_per_node": "the inventory's accelerator_count",
    "--max_seq_len": "model_max_len",
    "--free_gpu_memory_fraction": "engine_memory_utilization",
    "--kv_cache_free_gpu_memory_fraction": "engine_memory_utilization",
    "--max_batch_size": "engine_max_num_seqs",
    "--backend": "ironserve (the PyTorch backend)",
    "--served_model_name": "model_served_name",
    "--port": "engine_port",
    "--host": "ironserve (the API listens on every address)",
}
OWNED = {
    EngineKind.VLLM: _VLLM_OWNED,
    EngineKind.VLLM_VACC: _VLLM_OWNED,
    EngineKind.VLLM_ASCEND: _VLLM_OWNED,
    EngineKind.SGLANG: _SGLANG_OWNED,
    EngineKind.TRTLLM: _TRTLLM_OWNED,
}
_QUANTIZATION_FORMATS = {
    "fp8": WeightFormat.FP8,
    "awq": WeightFormat.INT4,
    "awq_marlin": WeightFormat.INT4,
    "gptq": WeightFormat.INT4,
    "gptq_marlin": WeightFormat.INT4,
    "moe_wna16": WeightFormat.INT4,
    "mxfp4": WeightFormat.MXFP4,
    "w8a8_int8": WeightFormat.W8A8,
    # ModelOpt exports (vLLM and SGLang): "modelopt" is its FP8, "modelopt_fp4" its NVFP4. Both
    # engines read them from the checkpoint's quantization config (hf_quant_config.json for
    # ModelOpt 0.29 and before), so the flag is never needed, only allowed when it matches.
    "modelopt": WeightFormat.FP8,
    "modelopt_fp4": WeightFormat.NVFP4,
}
_FP16_NAMES = {"half", "float16", "fp16"}
_VLLM_PARSERS = {"deepseek_r1", "deepseek_v3", "qwen3", "granite", "hunyuan_a13b", "glm45"}
REASONING_PARSERS = {
    EngineKind.VLLM: _VLLM_PARSERS,
    EngineKind.VLLM_VACC: _VLLM_PARSERS,
    EngineKind.VLLM_ASCEND: _VLLM_PARSERS,
    EngineKind.TRTLLM: {"deepseek-r1", "qwen3"},
    EngineKind.SGLANG: {"deepseek-r1", "deepseek-v3", "qwen3", "glm45", "kimi"},
}


def _options(args: list[str]) -> list[tuple[str, str | None]]:
    """(option, value) pairs; the value is the inline `=x` or the next non-option token."""
    pairs: list[tuple[str, str | None]] = []
    for index, token in enumerate(args):
        if not token.startswith("-"):
            continue
        if "=" in token:
            option, value = token.split("=", 1)
            pairs.append((option, value))
            continue
        following = args[index + 1] if index + 1 < len(args) else None
        pairs.append((token, following if following and not following.startswith("-") else None))
    return pairs


def _squash(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def extra_args_problems(
    kind: EngineKind, args: list[str], model: ModelSpec, weight_format: WeightFormat
) -> list[str]:
    problems: list[str] = []
    owned = OWNED.get(kind, {})
    for option, value in _options(args):
        if option == "--api-key":
            problems.append(
                "--api-key puts the key on a command line; write it to a 0600 file and set "
                "serving_api_key_file"
            )
        elif option in owned:
            problems.append(f"{option} is set by ironserve from {owned[option]}; set that instead")
        elif option == "--quantization" and value is not None:
            fmt = _QUANTIZATION_FORMATS.get(value)
            if fmt is not None and fmt != weight_format:
                problems.append(
                    f"--quantization {value} does not match the {weight_format.value} checkpoint "
                    f"of {model.id}: the engine reads the quantization from its config.json; drop "
                    "the flag (or set model_format to the checkpoint you stage)"
                )
        elif (
            option == "--dtype"
            and value in _FP16_NAMES
            and weight_format
            in (
                WeightFormat.FP8,
                WeightFormat.MXFP4,
                WeightFormat.NVFP4,
            )
        ):
            problems.append(
                f"--dtype {value} is not valid for the {weight_format.value} checkpoint of "
                f"{model.id}: its unquantised weights and activations are bfloat16; drop --dtype"
            )
        elif option == "--reasoning-parser" and value is not None:
            known = REASONING_PARSERS.get(kind, set())
            near = [p for p in known if _squash(p) == _squash(value) and p != value]
            if near:
                problems.append(
                    f"reasoning parser {value!r} does not exist (did you mean {near[0]!r}?)"
                )
    return problems
