model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_max_len = 16384  # the recipe's --max-model-len

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "vllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# DEP16: each worker is 16 DP ranks of TP 1 over two nodes, its experts spread over all 16.
dynamo_prefill = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 16,
    "expert_parallel": True,
    "nodes_per_worker": 2,
}
dynamo_decode = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 16,
    "expert_parallel": True,
    "nodes_per_worker": 2,
}

accelerator_kind = "h200-141g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
