"""Weight formats and what one parameter costs in each."""

from __future__ import annotations

from enum import Enum


class WeightFormat(str, Enum):
    """How a checkpoint stores its weights. The value is what inventories and the CLI accept."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"  # e4m3 with block or channel scales (DeepSeek-V3/R1, Qwen3-FP8)
    W8A8 = (
        "w8a8"  # int8 weights and activations (Ascend's DeepSeek-R1 checkpoint, SGLang w8a8_int8)
    )
    INT4 = "int4"  # AWQ / GPTQ 4-bit
    MXFP4 = "mxfp4"  # gpt-oss MoE weights


# Bytes per parameter for a checkpoint converted to a format. Quantised formats keep embeddings,
# norms and the LM head in 16 bits and carry scales, hence the few percent above the raw width.
BYTES_PER_PARAM: dict[WeightFormat, float] = {
    WeightFormat.BF16: 2.0,
    WeightFormat.FP16: 2.0,
    WeightFormat.FP8: 1.02,
    WeightFormat.W8A8: 1.05,
    WeightFormat.INT4: 0.56,
    WeightFormat.MXFP4: 0.56,
}
