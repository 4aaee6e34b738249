"""1 x Vastai VA16 server (8 cards x 128 GB, 32 dies): DeepSeek-R1-0528 (FP8) on vllm_vacc,
TP32 over the dies, 64k context (PP2 and 128k only for inputs over 56k), 4 concurrent requests.
"""

va_nodes = [
    ("va16-0", {"ssh_hostname": "10.40.0.10", "node_role": "head", "node_ip": "10.40.0.10"}),
]
