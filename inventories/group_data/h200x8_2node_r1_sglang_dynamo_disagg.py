model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_max_len = 32768

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "sglang"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# Each pool: one worker per node with the experts spread over its 8 ranks (EP 8); prefill TP 8,
# decode attention data-parallel over the 8 ranks (DP 8), as the recipe.
dynamo_prefill = {"tensor_parallel_size": 8, "expert_parallel": True}
dynamo_decode = {"tensor_parallel_size": 1, "data_parallel_size": 8, "expert_parallel": True}

accelerator_kind = "h200-141g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
