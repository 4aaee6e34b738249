"""Which weight formats an engine runs on an accelerator, and why not where it does not.

An accelerator's ``formats`` are those its tensor cores compute in; ``weight_only_formats`` are
those an engine may still serve by dequantising the weights to 16 bits in each GEMM. Whether it
does is the engine's: for NVFP4 before Blackwell,

- vLLM falls back to its FP4 Marlin kernel on any GPU from sm75 ("Your GPU does not have native
  support for FP4 computation but FP4 quantization is being used. Weight-only FP4 compression
  will be used leveraging the Marlin kernel", vllm/model_executor/layers/quantization/utils/
  marlin_utils_fp4.py, ``is_fp4_marlin_supported``: ``has_device_capability(75)``);
- SGLang refuses: ``ModelOptFp4Config.get_min_capability()`` is 100 and its NVFP4 MoE method
  raises "Current platform does not support NVFP4 quantization. Please use Blackwell and above"
  (python/sglang/srt/layers/quantization/modelopt_quant.py);
- TensorRT-LLM has FP4 kernels for Blackwell only: NVIDIA's NVFP4 checkpoints list "Supported
  Hardware Microarchitecture Compatibility: NVIDIA Blackwell" (huggingface.co/nvidia/
  DeepSeek-R1-FP4) and Dynamo's TensorRT-LLM guide says "On Hopper systems, FP4 isn't supported
  so you'll need to use the default weights" (deepseek-ai/DeepSeek-R1).

The planner (plan/sizing.py) reads these rules from here.
"""

from __future__ import annotations

from ironserve.catalog.accelerators import Accelerator
from ironserve.catalog.engines import EngineKind
from ironserve.catalog.formats import WeightFormat

# Engines with a weight-only kernel for a format on GPUs without its tensor cores.
WEIGHT_ONLY_ENGINES: dict[WeightFormat, frozenset[EngineKind]] = {
    WeightFormat.NVFP4: frozenset({EngineKind.VLLM}),
}
WEIGHT_ONLY_KERNELS = {WeightFormat.NVFP4: "Marlin"}


def weight_only(fmt: WeightFormat, accel: Accelerator, engine: EngineKind) -> bool:
    """True when ``engine`` serves ``fmt`` on ``accel`` only by dequantising its weights."""
    return (
        fmt not in accel.formats
        and fmt in accel.weight_only_formats
        and engine in WEIGHT_ONLY_ENGINES.get(fmt, frozenset())
    )


def runnable_formats(accel: Accelerator, engine: EngineKind) -> frozenset[WeightFormat]:
    """Every format ``engine`` can serve on ``accel``, natively or weight-only."""
    return accel.formats | {f for f in accel.weight_only_formats if weight_only(f, accel, engine)}


def weight_only_note(fmt: WeightFormat, accel: Accelerator, engine: EngineKind) -> str:
    kernel = WEIGHT_ONLY_KERNELS.get(fmt, "a weight-only kernel")
    return (
        f"weights: {accel.id} has no {fmt.value} tensor cores (FP4 is Blackwell's); "
        f"{engine.value} runs the {fmt.value} weights weight-only, dequantised to BF16 by its "
        f"{kernel} kernel: the memory of {fmt.value}, not its speed"
    )


def refusal(fmt: WeightFormat, accel: Accelerator, engine: EngineKind) -> str | None:
    """Why ``engine`` cannot serve ``fmt`` weights on ``accel``; None when it can."""
    if fmt in runnable_formats(accel, engine):
        return None
    supported = ", ".join(sorted(f.value for f in runnable_formats(accel, engine)))
    if fmt in accel.weight_only_formats:
        engines = " and ".join(sorted(e.value for e in WEIGHT_ONLY_ENGINES.get(fmt, ())))
        return (
            f"{engine.value} does not run {fmt.value} weights on {accel.id}: it has no FP4 "
            f"tensor cores (Blackwell has) and {engine.value} has no weight-only {fmt.value} "
            f"kernel for it (only {engines} dequantises them there); it runs {supported}"
        )
    return f"{accel.id} does not run {fmt.value} weights (it runs {supported})"
