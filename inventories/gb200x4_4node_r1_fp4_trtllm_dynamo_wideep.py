"""4 GB200 compute trays (4 Blackwell GPUs of 186 GB each, one NVL72 rack): DeepSeek-R1 from
NVIDIA's FP4 checkpoint (nvidia/DeepSeek-R1-FP4, ModelOpt NVFP4) on NVIDIA Dynamo with
TensorRT-LLM wide expert parallelism, disaggregated (the recipe collection's
deepseek-r1/trtllm/disagg/wide_ep/gb200): each tray runs one worker of attention DP 4 x TP 1 with
the experts over its 4 GPUs (EP 4, the recipe's prefill shape); two trays prefill, two decode.
A stand-in on 4 trays: the decode pool here is DEP 4 workers, one per tray; the recipe's own
decode worker (DEP 32 over 8 trays, one MPI world) is
gb200x4_9node_r1_fp4_trtllm_dynamo_wideep_dep32.py. With DeepSeek's FP8
checkpoint the same workers would hold 173.9 GiB per GPU (golden
dynamo-gb200x4-4node-r1-trtllm-dep4-fp8): the recipe relies on FP4. deploys/site.py deploys it
(docs/engines.md, docs/serving.md).
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(4)]


def _tray(name: str, ip: str, role: str, pool: str) -> tuple[str, dict[str, object]]:
    return (
        name,
        {
            "ssh_hostname": ip,
            "node_role": role,
            "node_ip": ip,
            "node_dynamo_pool": pool,
            "network_ib_hcas": _IB_HCAS,
        },
    )


gpu_nodes = [
    _tray("gb200-prefill-0", "10.60.2.11", "head", "prefill"),
    _tray("gb200-prefill-1", "10.60.2.12", "worker", "prefill"),
    _tray("gb200-decode-0", "10.60.2.13", "worker", "decode"),
    _tray("gb200-decode-1", "10.60.2.14", "worker", "decode"),
]
