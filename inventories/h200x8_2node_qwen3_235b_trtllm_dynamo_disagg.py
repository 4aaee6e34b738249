"""2 x 8 H200 141GB (HGX, 8 ConnectX-7 InfiniBand HCAs per node): Qwen3-235B-A22B-FP8 on NVIDIA
Dynamo with TensorRT-LLM, disaggregated (the recipe collection's
qwen3-235b-a22b-fp8/trtllm/disagg, Hopper): prefill workers of TP 2 (experts split by TP, no
EP), decode workers of TP 4 x EP 4, the KV cache handed over NIXL (RDMA). The recipe runs 6
prefill and 1 decode worker on 16 GPUs, which puts prefill and decode workers on one node;
ironserve keeps a node in one pool, so here the head runs 4 prefill workers and the second node
2 decode workers (still 16 GPUs). The recipe's table says H100 or H200: on H100 a TP 2 prefill
worker would hold 110 GiB of FP8 weights per 80 GB GPU, and `ironserve plan` says so (the
golden dynamo-h100x8-2node-qwen3-235b-trtllm-disagg). deploys/site.py deploys it.
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
        "h200-decode",
        {
            "ssh_hostname": "10.70.1.12",
            "node_role": "worker",
            "node_ip": "10.70.1.12",
            "node_dynamo_pool": "decode",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
]
