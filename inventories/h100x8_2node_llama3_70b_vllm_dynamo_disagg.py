"""2 x 8 H100 80GB (8 ConnectX-7 InfiniBand HCAs per node): Llama-3.3-70B-Instruct on NVIDIA
Dynamo with vLLM, disaggregated (the recipe collection's llama-3-70b/vllm/disagg-multi-node: a
TP 8 prefill worker on one node, a TP 8 decode worker on the other): the head runs etcd, NATS,
the frontend (KV router) and the prefill worker; the KV cache moves to the decode node over NIXL
(RDMA). The recipe serves RedHat's FP8-dynamic checkpoint; the catalog's BF16 one fits TP 8 too.
Its single-node variant (2 TP 2 prefill + 1 TP 4 decode workers sharing one node) wants that
FP8 checkpoint: with BF16 a TP 2 prefill worker holds 65.7 GiB of weights per 80 GB GPU, which
leaves KV cache for 5120 tokens, and `ironserve plan` says prompts beyond that fail in prefill
(tests/unit/test_recipes.py).
deploys/site.py deploys it (docs/engines.md, docs/serving.md).
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(8)]

gpu_nodes = [
    (
        "h100-prefill",
        {
            "ssh_hostname": "10.40.1.11",
            "node_role": "head",
            "node_ip": "10.40.1.11",
            "node_dynamo_pool": "prefill",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
    (
        "h100-decode",
        {
            "ssh_hostname": "10.40.1.12",
            "node_role": "worker",
            "node_ip": "10.40.1.12",
            "node_dynamo_pool": "decode",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
]
