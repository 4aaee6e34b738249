"""1 GB200 compute tray (4 Blackwell GPUs of 186 GB, one host of an NVL72 rack): gpt-oss-120b
(MXFP4) on NVIDIA Dynamo with TensorRT-LLM, aggregated (the recipe collection's
gpt-oss-120b/trtllm/agg): the tray runs etcd, NATS, the frontend (round-robin, as the recipe)
and one worker over its 4 GPUs with attention data-parallel (DP 4) and the experts spread over
the 4 ranks (EP 4): TensorRT-LLM's --tensor-parallel-size 4 --expert-parallel-size 4
--enable-attention-dp. deploys/site.py deploys it (docs/engines.md, docs/serving.md).
"""

gpu_nodes = [
    (
        "gb200-tray-0",
        {
            "ssh_hostname": "10.60.0.11",
            "node_role": "head",
            "node_ip": "10.60.0.11",
            "node_dynamo_pool": "worker",
        },
    ),
]
