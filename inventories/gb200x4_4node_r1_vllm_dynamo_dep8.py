"""4 GB200 compute trays (4 Blackwell GPUs of 186 GB each, in one NVL72 rack's NVLink domain;
4 ConnectX-7 InfiniBand HCAs per tray): DeepSeek-R1 on NVIDIA Dynamo with vLLM, disaggregated
with data-expert parallelism (the recipe collection's deepseek-r1/vllm/disagg on 16 GB200): one
prefill worker of DP 8 x TP 1, EP 8, over the first two trays, one decode worker of the same
shape over the last two. A worker's ranks talk over multi-node NVLink (NCCL_MNNVL_ENABLE; the
trays' IMEX channels are the rack's setup); the KV cache moves prefill -> decode over NIXL. The
recipe serves NVIDIA's FP4 checkpoint; the catalog's FP8 one fits too (`ironserve plan`: about
96 GiB of weights per GPU). deploys/site.py deploys it (docs/engines.md, docs/serving.md).
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
    _tray("gb200-prefill-0", "10.60.1.11", "head", "prefill"),
    _tray("gb200-prefill-1", "10.60.1.12", "worker", "prefill"),
    _tray("gb200-decode-0", "10.60.1.13", "worker", "decode"),
    _tray("gb200-decode-1", "10.60.1.14", "worker", "decode"),
]
