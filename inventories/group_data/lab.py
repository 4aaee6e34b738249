"""Cluster settings of the lab (every host of inventories/lab.py is in the group `lab`).

The model here, a synthetic 8B from the lab hub (32 attention heads, 8 KV heads: they divide the
TP of the Ascend and Vastai profiles), is what nodes on stand-in engines serve: MindIE on Ascend,
vllm_vacc on VA16. NVIDIA nodes serve the lab's real model (SmolLM2-135M-Instruct) on the real
vLLM instead; inventories/lab.py sets that per host, with the engine kind.
"""

model_id = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
model_served_name = "DeepSeek-R1-Distill-Llama-8B"
model_max_len = 8192
