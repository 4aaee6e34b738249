model_id = "Qwen/Qwen3-32B"
model_served_name = "Qwen3-32B"

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "vllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"

accelerator_kind = "h100-80g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
