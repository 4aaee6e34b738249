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
    # NVIDIA ModelOpt's NVFP4: FP4 (E2M1) values, one FP8 (E4M3) scale per 16 values and an FP32
    # scale per tensor (nvidia/DeepSeek-R1-FP4); Blackwell has its tensor cores.
    NVFP4 = "nvfp4"


# Bytes per parameter for a checkpoint converted to a format. Quantised formats keep embeddings,
# norms and the LM head in 16 bits and carry scales, hence the few percent above the raw width.
BYTES_PER_PARAM: dict[WeightFormat, float] = {
    WeightFormat.BF16: 2.0,
    WeightFormat.FP16: 2.0,
    WeightFormat.FP8: 1.02,
    WeightFormat.W8A8: 1.05,
    WeightFormat.INT4: 0.56,
    WeightFormat.MXFP4: 0.56,
    # 4.5 bits for a quantised weight (4 + an 8-bit scale per 16), but ModelOpt keeps attention
    # (DeepSeek), embeddings, the LM head and DeepSeek's MTP layer in BF16: the published
    # checkpoints average 4.95 bits (nvidia/DeepSeek-R1-FP4, 423.6 GB for 684.5B weights) and
    # 4.84 (nvidia/Llama-3.3-70B-Instruct-FP4, 42.7 GB for 70.6B).
    WeightFormat.NVFP4: 0.61,
}
