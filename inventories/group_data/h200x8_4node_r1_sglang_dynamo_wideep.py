model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_max_len = 16384

engine_kind = "dynamo"
engine_version = "1.6.1"
engine_memory_utilization = 0.8  # the recipe's --mem-fraction-static

dynamo_backend = "sglang"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# Prefill: TP 16 with the experts over its 16 ranks; decode: attention data-parallel over the
# 16 ranks (SGLang's --tp 16 --dp 16 --enable-dp-attention), experts over all 16. Two nodes each.
dynamo_prefill = {"tensor_parallel_size": 16, "expert_parallel": True, "nodes_per_worker": 2}
dynamo_decode = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 16,
    "expert_parallel": True,
    "nodes_per_worker": 2,
}

accelerator_kind = "h200-141g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
