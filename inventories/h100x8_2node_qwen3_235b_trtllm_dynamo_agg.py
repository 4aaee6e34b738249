"""2 x 8 H100 80GB (HGX): Qwen3-235B-A22B-FP8 on NVIDIA Dynamo with TensorRT-LLM, aggregated
(the recipe collection's qwen3-235b-a22b-fp8/trtllm/agg, Hopper: 4 workers of TP 4 x EP 4 on
16 GPUs): the head runs etcd, NATS and the frontend (KV router); each node runs two workers of
4 GPUs, each worker's experts spread over its 4 ranks. On 80 GB the FP8 weights leave a few GiB
per GPU for the KV cache at the recipe's 8k context (`ironserve plan` says how many sequences).
deploys/site.py deploys it (docs/engines.md, docs/serving.md).
"""

gpu_nodes = [
    (
        "h100-agg-0",
        {
            "ssh_hostname": "10.70.0.11",
            "node_role": "head",
            "node_ip": "10.70.0.11",
            "node_dynamo_pool": "worker",
        },
    ),
    (
        "h100-agg-1",
        {
            "ssh_hostname": "10.70.0.12",
            "node_role": "worker",
            "node_ip": "10.70.0.12",
            "node_dynamo_pool": "worker",
        },
    ),
]
