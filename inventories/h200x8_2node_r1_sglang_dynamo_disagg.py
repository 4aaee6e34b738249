"""2 x 8 H200 141GB (HGX, 8 ConnectX-7 InfiniBand HCAs per node): DeepSeek-R1 (FP8) on NVIDIA
Dynamo with SGLang, disaggregated (the recipe collection's deepseek-r1/sglang disagg-16gpu, and
disagg-8gpu, whose manifest asks the same 8 + 8 GPUs): the head runs etcd, NATS, the frontend
(KV router) and the prefill pool's worker (TP 8, EP 8); the second node the decode pool's (TP 8
with DP-attention 8, EP 8: SGLang's --tp-size 8 --dp-size 8 --enable-dp-attention --ep-size 8).
The KV cache moves prefill -> decode over NIXL (RDMA). The recipes' table calls disagg-8gpu one
node of 8 H200: a node holds one pool, and 641 GiB of FP8 weights fill it
(tests/unit/test_recipes.py). deploys/site.py deploys it (docs/engines.md, docs/serving.md).
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
