model_id = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
model_served_name = "DeepSeek"
model_max_len = 16384
model_weights_dir = "/root/models"

engine_kind = "vllm"
engine_memory_utilization = 0.95
engine_extra_args = [
    "--max-num-batched-tokens",
    "8192",
    "--enable-prefix-caching",
    "--enable-chunked-prefill",
]

accelerator_kind = "l40s-48g"
accelerator_count = 2

network_socket_ifname = "eth0"

hub_kind = "huggingface"
# A 0600 file holding the API key; without one, a deploy generates it (serving_api_key_dir).
# serving_api_key_file = "/etc/ironserve/api-key"
