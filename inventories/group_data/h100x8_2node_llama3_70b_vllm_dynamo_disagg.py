model_id = "meta-llama/Llama-3.3-70B-Instruct"
model_served_name = "Llama-3.3-70B-Instruct"

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "vllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
dynamo_prefill = {"tensor_parallel_size": 8}
dynamo_decode = {"tensor_parallel_size": 8}

accelerator_kind = "h100-80g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
