"""2 x 8 H200 141GB (HGX, 8 ConnectX-7 InfiniBand HCAs per node): DeepSeek-R1 (FP8) on NVIDIA
Dynamo with SGLang, disaggregated (the recipe collection's deepseek-r1/sglang disagg): the head
runs etcd, NATS, the frontend (KV router) and the prefill pool's worker (TP8, DP-attention 8,
EP8); the second node the decode pool's. The KV cache moves prefill -> decode over NIXL (RDMA).
deploys/site.py deploys it (docs/engines.md, docs/serving.md).
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(8)]

gpu_nodes = [
    (
        "h200-prefill",
        {
            "ssh_hostname": "10.20.0.11",
            "node_role": "head",
            "node_ip": "10.20.0.11",
            "node_dynamo_pool": "prefill",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
    (
        "h200-decode",
        {
            "ssh_hostname": "10.20.0.12",
            "node_role": "worker",
            "node_ip": "10.20.0.12",
            "node_dynamo_pool": "decode",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
]
