model_id = "meta-llama/Llama-3.3-70B-Instruct"
model_served_name = "Llama-3.3-70B-Instruct"

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "vllm"
dynamo_mode = "aggregated"
dynamo_router_mode = "kv"
dynamo_worker = {"tensor_parallel_size": 4, "workers_per_node": 2}

accelerator_kind = "h100-80g"
accelerator_count = 8
