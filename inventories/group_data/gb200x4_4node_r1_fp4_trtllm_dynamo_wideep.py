model_id = "nvidia/DeepSeek-R1-FP4"  # the recipe's checkpoint: NVFP4 experts, BF16 attention
model_served_name = "DeepSeek-R1"
model_max_len = 4096

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "trtllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# DEP 4: TensorRT-LLM's --tensor-parallel-size 4 --expert-parallel-size 4 --enable-attention-dp,
# one worker per tray (prefill as the recipe; decode the recipe's DEP 32 cut to one tray).
dynamo_prefill = {"tensor_parallel_size": 1, "data_parallel_size": 4, "expert_parallel": True}
dynamo_decode = {"tensor_parallel_size": 1, "data_parallel_size": 4, "expert_parallel": True}

accelerator_kind = "gb200-186g"
accelerator_count = 4

network_socket_ifname = "enP6p3s0f0np0"
