model_id = "deepseek-ai/DeepSeek-R1-0528"
model_served_name = "DeepSeek-R1-0528"
model_weights_dir = "/weights"

engine_kind = "vllm_vacc"

accelerator_kind = "va16-128g"
accelerator_count = 8

hub_kind = "modelscope"
# A 0600 file holding the API key; without one, a deploy generates it (serving_api_key_dir).
# serving_api_key_file = "/etc/ironserve/api-key"
