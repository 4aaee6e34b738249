model_id = "Qwen/Qwen3-235B-A22B-FP8"
model_served_name = "Qwen3-235B-A22B-FP8"
model_max_len = 8192  # the recipe's max_seq_len

engine_kind = "dynamo"
engine_version = "1.6.1"
engine_max_num_seqs = 128  # the recipe's max_batch_size

dynamo_backend = "trtllm"
dynamo_mode = "aggregated"
dynamo_router_mode = "kv"
dynamo_worker = {"tensor_parallel_size": 4, "expert_parallel": True, "workers_per_node": 2}

accelerator_kind = "h100-80g"
accelerator_count = 8

network_socket_ifname = "ens10f0"
