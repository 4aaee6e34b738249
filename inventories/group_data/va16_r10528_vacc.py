model_id = "deepseek-ai/DeepSeek-R1-0528"
model_served_name = "DeepSeek-R1-0528"
model_weights_dir = "/weights"

engine_kind = "vllm_vacc"

accelerator_kind = "va16-128g"
accelerator_count = 8

hub_kind = "modelscope"
serving_api_key_file = "secrets/api-key"
