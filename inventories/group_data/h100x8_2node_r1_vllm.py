model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_max_len = 32768

engine_kind = "vllm"
engine_extra_args = ["--enable-prefix-caching", "--enable-chunked-prefill"]

accelerator_kind = "h100-80g"
accelerator_count = 8

# The bonded front-end NIC carries Ray/GLOO/NCCL bootstrap; NCCL data goes over the IB HCAs.
network_socket_ifname = "ens10f0"

hub_kind = "huggingface"
hub_endpoint = "https://hf-mirror.com"
# A 0600 file holding the API key; without one, a deploy generates it (serving_api_key_dir).
# serving_api_key_file = "/etc/ironserve/api-key"
