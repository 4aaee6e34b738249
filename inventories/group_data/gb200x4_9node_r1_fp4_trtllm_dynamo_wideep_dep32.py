model_id = "nvidia/DeepSeek-R1-FP4"  # the recipe's checkpoint: NVFP4 experts, BF16 attention
model_served_name = "DeepSeek-R1"
model_max_len = 4096

engine_kind = "dynamo"
engine_version = "1.6.1"

dynamo_backend = "trtllm"
dynamo_mode = "disaggregated"
dynamo_router_mode = "kv"
# The recipe's shape: prefill DEP 4 on one tray; decode ONE worker of DEP 32 over 8 trays
# (TensorRT-LLM's --tensor-parallel-size 32 --expert-parallel-size 32 --enable-attention-dp).
dynamo_prefill = {"tensor_parallel_size": 1, "data_parallel_size": 4, "expert_parallel": True}
dynamo_decode = {
    "tensor_parallel_size": 1,
    "data_parallel_size": 32,
    "expert_parallel": True,
    "nodes_per_worker": 8,
}

accelerator_kind = "gb200-186g"
accelerator_count = 4

network_socket_ifname = "enP6p3s0f0np0"
