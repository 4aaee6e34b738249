"""2 x 8 H100 80GB (8 ConnectX-7 InfiniBand HCAs per node): Qwen3-32B on NVIDIA Dynamo with vLLM,
disaggregated with the KV-aware router (the recipe collection's qwen3-32b/vllm/disagg-kv-router):
the head runs etcd, NATS, the frontend and the prefill pool, the second node the decode pool;
each pool's worker TP is the smallest that serves, as many workers per node as fit.
deploys/site.py deploys it (docs/engines.md, docs/serving.md).
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(8)]

gpu_nodes = [
    (
        "h100-prefill",
        {
            "ssh_hostname": "10.30.0.11",
            "node_role": "head",
            "node_ip": "10.30.0.11",
            "node_dynamo_pool": "prefill",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
    (
        "h100-decode",
        {
            "ssh_hostname": "10.30.0.12",
            "node_role": "worker",
            "node_ip": "10.30.0.12",
            "node_dynamo_pool": "decode",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
]
