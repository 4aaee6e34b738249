"""4 x 8 H200 141GB (HGX, 8 ConnectX-7 InfiniBand HCAs per node): DeepSeek-R1 (FP8) on NVIDIA
Dynamo with vLLM, disaggregated with data-expert parallelism (the recipe collection's
deepseek-r1/vllm/disagg, Hopper 16 GPUs per worker): one prefill worker of DP 16 x TP 1 with its
experts over the 16 ranks (EP 16) spans the first two nodes, one decode worker of the same shape
the last two. Each node runs its 8 local DP ranks and serves them (vLLM's hybrid load balancing),
meeting the worker's other node at its leader's DP RPC port; the KV cache moves prefill -> decode
over NIXL (RDMA). The head also runs etcd, NATS and the frontend (KV router). The recipe's table
says 16 x H200; its manifest asks two nodes for each pool: 32 GPUs.
deploys/site.py deploys it (docs/engines.md, docs/serving.md).
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
    _node("h200-prefill-0", "10.50.0.11", "head", "prefill"),
    _node("h200-prefill-1", "10.50.0.12", "worker", "prefill"),
    _node("h200-decode-0", "10.50.0.13", "worker", "decode"),
    _node("h200-decode-1", "10.50.0.14", "worker", "decode"),
]
