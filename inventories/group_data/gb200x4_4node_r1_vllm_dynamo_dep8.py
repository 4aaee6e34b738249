model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_max_len = 4096  # the recipe's --max-model-len

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "vllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# DEP8: each worker is 8 DP ranks of TP 1 over two trays, its experts spread over all 8.
dynamo_prefill = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 8,
    "expert_parallel": True,
    "nodes_per_worker": 2,
}
dynamo_decode = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 8,
    "expert_parallel": True,
    "nodes_per_worker": 2,
}

accelerator_kind = "gb200-186g"
accelerator_count = 4

network_socket_ifname = "enP6p3s0f0np0"
