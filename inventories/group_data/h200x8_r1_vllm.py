model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_weights_dir = "/data/models"

engine_kind = "vllm"
engine_extra_args = ["--enable-prefix-caching", "--enable-chunked-prefill"]

accelerator_kind = "h200-141g"
accelerator_count = 8

hub_kind = "huggingface"
# A 0600 file holding the API key; without one, a deploy generates it (serving_api_key_dir).
# serving_api_key_file = "/etc/ironserve/api-key"
