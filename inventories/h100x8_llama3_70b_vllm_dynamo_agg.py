"""1 x 8 H100 80GB: Llama-3.3-70B-Instruct on NVIDIA Dynamo with vLLM, aggregated (the recipe
collection's llama-3-70b/vllm/agg: TP4 workers): etcd, NATS, the frontend (KV router) and two
TP4 workers on the one node. A single node could use file discovery instead of etcd and NATS
(dynamo_control_plane: file). deploys/site.py deploys it (docs/engines.md, docs/serving.md).
"""

gpu_nodes = [
    (
        "h100-agg",
        {
            "ssh_hostname": "10.40.0.11",
            "node_role": "head",
            "node_ip": "10.40.0.11",
            "node_dynamo_pool": "worker",
        },
    ),
]
