"""Accelerators ironserve plans for: memory per parallel unit and the weight formats they run.

Memory figures are what the vendor tool reports as total device memory (nvidia-smi
``memory.total`` in MiB, npu-smi ``HBM-Usage(MB)`` capacity); the engine's own reserve is taken
off by the planner, not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ironserve.catalog.formats import WeightFormat

MIB = 1024**2
GIB = 1024**3

Vendor = Literal["nvidia", "ascend", "vastai"]

_NVIDIA_16BIT = frozenset(
    {WeightFormat.BF16, WeightFormat.FP16, WeightFormat.W8A8, WeightFormat.INT4}
)
# FP4 tensor cores are Blackwell's (sm100): NVFP4 runs natively there. Older GPUs (Ampere, Ada,
# Hopper) hold NVFP4 weights only for an engine that dequantises them to 16 bits in its GEMM
# (catalog/format_support.py says which engines do).
_BLACKWELL = _NVIDIA_16BIT | {WeightFormat.FP8, WeightFormat.MXFP4, WeightFormat.NVFP4}
_FP4_WEIGHT_ONLY = frozenset({WeightFormat.NVFP4})


class Accelerator(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    vendor: Vendor
    product: str  # the name the vendor tool prints (nvidia-smi -L / npu-smi info)
    memory_bytes: int  # per physical device (card / GPU / NPU)
    units_per_device: int = 1  # parallel ranks per physical device (Vastai VA16: 4 dies)
    formats: frozenset[WeightFormat]
    # Formats without tensor cores here that an engine with a weight-only kernel still runs
    # (dequantised to 16 bits per GEMM: the memory of the format, not its speed).
    weight_only_formats: frozenset[WeightFormat] = frozenset()
    nvswitch_boards: bool = False  # sold as 8-way NVSwitch (HGX) boards that need fabric manager
    # GPUs one NVLink domain joins when it spans nodes (a rack's NVLink switches: GB200 NVL72
    # joins the 72 GPUs of its 18 compute trays); None: NVLink stops at the node.
    nvlink_domain: int | None = None
    pci_vendor_id: str
    # What the runtime keeps per unit before weights and KV cache: CUDA/CANN context,
    # communication buffers, graphs (the planner adds a share of memory for activations).
    runtime_reserve_bytes: int = 2 * GIB
    lab: bool = False  # simulated by the lab only; not a product (hidden from listings)
    note: str = ""

    def nvlink_domain_nodes(self, devices_per_node: int) -> int:
        """Nodes of ``devices_per_node`` GPUs one NVLink domain spans (GB200 NVL72: 18 trays of
        4); 1: NVLink stops at the node, nodes talk over their NICs."""
        if self.nvlink_domain is None:
            return 1
        return max(1, self.nvlink_domain // max(1, devices_per_node))

    @property
    def unit_memory_bytes(self) -> int:
        """Memory of one parallel unit: what one TP rank can use."""
        return self.memory_bytes // self.units_per_device


ACCELERATORS: dict[str, Accelerator] = {
    a.id: a
    for a in (
        Accelerator(
            id="a100-40g",
            vendor="nvidia",
            product="NVIDIA A100-SXM4-40GB",
            memory_bytes=40960 * MIB,
            formats=_NVIDIA_16BIT | {WeightFormat.MXFP4},
            nvswitch_boards=True,
            weight_only_formats=_FP4_WEIGHT_ONLY,
            pci_vendor_id="10de",
            note="Ampere (sm80): no FP8 tensor cores; FP8 checkpoints are served converted to BF16",
        ),
        Accelerator(
            id="a100-80g",
            vendor="nvidia",
            product="NVIDIA A100-SXM4-80GB",
            memory_bytes=81920 * MIB,
            formats=_NVIDIA_16BIT | {WeightFormat.MXFP4},
            nvswitch_boards=True,
            weight_only_formats=_FP4_WEIGHT_ONLY,
            pci_vendor_id="10de",
            note="Ampere (sm80): no FP8 tensor cores; FP8 checkpoints are served converted to BF16",
        ),
        Accelerator(
            id="h100-80g",
            vendor="nvidia",
            product="NVIDIA H100 80GB HBM3",
            memory_bytes=81559 * MIB,
            formats=_NVIDIA_16BIT | {WeightFormat.FP8, WeightFormat.MXFP4},
            nvswitch_boards=True,
            weight_only_formats=_FP4_WEIGHT_ONLY,
            pci_vendor_id="10de",
        ),
        Accelerator(
            id="h200-141g",
            vendor="nvidia",
            product="NVIDIA H200",
            memory_bytes=143771 * MIB,
            formats=_NVIDIA_16BIT | {WeightFormat.FP8, WeightFormat.MXFP4},
            nvswitch_boards=True,
            weight_only_formats=_FP4_WEIGHT_ONLY,
            pci_vendor_id="10de",
        ),
        Accelerator(
            id="b200-180g",
            vendor="nvidia",
            product="NVIDIA B200",
            memory_bytes=183359 * MIB,
            formats=_BLACKWELL,
            nvswitch_boards=True,
            pci_vendor_id="10de",
            note="Blackwell (sm100), HGX boards of 8 (nvidia-smi: 183359 MiB)",
        ),
        Accelerator(
            id="gb200-186g",
            vendor="nvidia",
            product="NVIDIA GB200",
            memory_bytes=186 * 10**9,
            formats=_BLACKWELL,
            nvswitch_boards=True,
            nvlink_domain=72,
            pci_vendor_id="10de",
            note="186 GB HBM3e per Blackwell GPU (vendor figure); a node is a compute tray of 4, "
            "and an NVL72 rack's 18 trays share one NVLink domain of 72 GPUs (NVLink switches, "
            "IMEX)",
        ),
        Accelerator(
            id="l40s-48g",
            vendor="nvidia",
            product="NVIDIA L40S",
            memory_bytes=46068 * MIB,
            formats=_NVIDIA_16BIT | {WeightFormat.FP8, WeightFormat.MXFP4},
            weight_only_formats=_FP4_WEIGHT_ONLY,
            pci_vendor_id="10de",
            note="PCIe, no NVLink: tensor parallelism beyond one card crosses PCIe",
        ),
        Accelerator(
            id="rtx4090-24g",
            vendor="nvidia",
            product="NVIDIA GeForce RTX 4090",
            memory_bytes=24564 * MIB,
            formats=_NVIDIA_16BIT | {WeightFormat.FP8, WeightFormat.MXFP4},
            weight_only_formats=_FP4_WEIGHT_ONLY,
            pci_vendor_id="10de",
            note="consumer card: no NVLink, no ECC",
        ),
        # The lab's GPU (ironserve lab, profile labgpu): a small device, so that the lab's real
        # 135M model must span nodes as DeepSeek-R1 spans H100 nodes. Its memory is what the
        # lab's CPU engine is given per rank; no CUDA context, hence the small reserve.
        Accelerator(
            id="lab-gpu-512m",
            vendor="nvidia",
            product="ironserve lab GPU",
            memory_bytes=512 * MIB,
            formats=_NVIDIA_16BIT,
            pci_vendor_id="10de",
            runtime_reserve_bytes=160 * MIB,
            lab=True,
            note="simulated by the lab; runs the lab's real vLLM (CPU build) per rank",
        ),
        Accelerator(
            id="ascend-910b-64g",
            vendor="ascend",
            product="910B",
            memory_bytes=65536 * MIB,
            formats=frozenset({WeightFormat.BF16, WeightFormat.FP16, WeightFormat.W8A8}),
            pci_vendor_id="19e5",
            note="Atlas 800I A2 (8 x 64 GB HBM); no FP8 on this chip: W8A8 or BF16 checkpoints",
        ),
        Accelerator(
            id="va16-128g",
            vendor="vastai",
            product="VA16",
            memory_bytes=128 * GIB,
            units_per_device=4,
            formats=frozenset({WeightFormat.FP8, WeightFormat.BF16, WeightFormat.FP16}),
            pci_vendor_id="1ec6",
            note="4 dies per card, each a tensor-parallel rank: 8 cards give vllm_vacc's TP32",
        ),
    )
}
