"""4 x 8 H200 141GB (HGX, 8 ConnectX-7 InfiniBand HCAs per node): DeepSeek-R1 (FP8) on NVIDIA
Dynamo with SGLang wide expert parallelism, disaggregated over nodes (the recipe collection's
deepseek-r1/sglang-wideep tep16p-dep16d, R1's multi-node SGLang recipe with TP 16): one prefill
worker of TP 16, EP 16 over the first two nodes and one decode worker of DP-attention 16, EP 16
over the last two, each one SGLang instance over its nodes (--nnodes 2 --node-rank, meeting at
its first node's --dist-init-addr). The head also runs etcd, NATS and the frontend (KV router);
the KV cache moves prefill -> decode over NIXL (RDMA). deploys/site.py deploys it.
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(8)]


def _node(name: str, ip: str, role: str, pool: str) -> tuple[str, dict[str, object]]:
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
    _node("h200-prefill-0", "10.50.1.11", "head", "prefill"),
    _node("h200-prefill-1", "10.50.1.12", "worker", "prefill"),
    _node("h200-decode-0", "10.50.1.13", "worker", "decode"),
    _node("h200-decode-1", "10.50.1.14", "worker", "decode"),
]
