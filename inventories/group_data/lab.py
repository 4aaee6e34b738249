"""Cluster settings of the lab (every host of inventories/lab.py is in the group `lab`).

A small model, so the lab's end-to-end runs are quick. The engine kind is per host in
inventories/lab.py (vllm on GPU profiles, mindie on Ascend, vllm_vacc on VA16).
"""

model_id = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
model_served_name = "DeepSeek-R1-Distill-Qwen-1.5B"
model_max_len = 8192
