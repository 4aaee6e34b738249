"""2 x 8 H200 141GB (HGX, 8 ConnectX-7 InfiniBand HCAs per node): Qwen3-235B-A22B-FP8 on NVIDIA
Dynamo with TensorRT-LLM, disaggregated (the recipe collection's
qwen3-235b-a22b-fp8/trtllm/disagg, Hopper: 6 prefill workers of TP 2, experts split by TP, and
1 decode worker of TP 4 x EP 4, on 16 GPUs): the head runs etcd, NATS, the frontend (KV router)
and 4 prefill workers; the second node, shared by both pools, 2 prefill workers on its first 4
GPUs and the decode worker on the last 4. The KV cache moves prefill -> decode over NIXL (RDMA
between the nodes, NVLink inside the second). The recipe's table says H100 or H200: on H100 a
TP 2 prefill worker would hold 110 GiB of FP8 weights per 80 GB GPU, and `ironserve plan` says
so (the golden dynamo-h100x8-2node-qwen3-235b-trtllm-disagg). deploys/site.py deploys it.
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(8)]

gpu_nodes = [
    (
        "h200-prefill",
        {
            "ssh_hostname": "10.70.1.11",
            "node_role": "head",
            "node_ip": "10.70.1.11",
            "node_dynamo_pool": "prefill",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
    (
        "h200-mixed",
        {
            "ssh_hostname": "10.70.1.12",
            "node_role": "worker",
            "node_ip": "10.70.1.12",
            "node_dynamo_pool": ["prefill", "decode"],
            "node_dynamo_workers": {"prefill": 2, "decode": 1},
            "network_ib_hcas": _IB_HCAS,
        },
    ),
]
