"""3 nodes x 2 L40S: DeepSeek-R1-Distill-Qwen-32B on vLLM over Ray, TP2 x PP3 (as in the seed:
tensor parallel = GPUs per node, pipeline parallel = nodes). Addresses are the seed's.
"""

gpu_nodes = [
    (
        "deepseek01",
        {"ssh_hostname": "172.16.0.102", "node_role": "head", "node_ip": "172.16.0.102"},
    ),
    (
        "deepseek02",
        {"ssh_hostname": "172.16.0.43", "node_role": "worker", "node_ip": "172.16.0.43"},
    ),
    (
        "deepseek03",
        {"ssh_hostname": "172.16.0.44", "node_role": "worker", "node_ip": "172.16.0.44"},
    ),
]
