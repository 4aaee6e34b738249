"""Cluster settings of the lab (every host of inventories/lab.py is in the group `lab`).

An 8B model: its 32 attention heads and 8 KV heads divide the TP of every lab profile
(8 or 2). The engine kind is per host in
inventories/lab.py (vllm on GPU profiles, mindie on Ascend, vllm_vacc on VA16).
"""

model_id = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
model_served_name = "DeepSeek-R1-Distill-Llama-8B"
model_max_len = 8192
