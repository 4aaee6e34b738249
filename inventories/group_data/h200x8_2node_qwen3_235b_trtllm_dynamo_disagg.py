model_id = "Qwen/Qwen3-235B-A22B-FP8"
model_served_name = "Qwen3-235B-A22B-FP8"
model_max_len = 8192  # the recipe's --max-seq-len

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "trtllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# 4 prefill workers on the head; the second node's counts are its own (node_dynamo_workers).
dynamo_prefill = {"tensor_parallel_size": 2, "workers_per_node": 4}
dynamo_decode = {"tensor_parallel_size": 4, "expert_parallel": True}

accelerator_kind = "h200-141g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
