"""1 x 8 H200 141GB (HGX): DeepSeek-R1 (FP8) on vLLM, TP8 on one node.

Serving data: group_data/h200x8_r1_vllm.py (this file's stem is a pyinfra group).
"""

gpu_nodes = [
    ("h200-0", {"ssh_hostname": "10.20.0.10", "node_role": "head", "node_ip": "10.20.0.10"}),
]
