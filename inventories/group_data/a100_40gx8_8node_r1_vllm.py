model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_format = "bf16"
model_max_len = 16384

engine_kind = "vllm"

accelerator_kind = "a100-40g"
accelerator_count = 8

network_socket_ifname = "eth0"
network_ib_hcas = ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]

hub_kind = "modelscope"
# A 0600 file holding the API key; without one, a deploy generates it (serving_api_key_dir).
# serving_api_key_file = "/etc/ironserve/api-key"
