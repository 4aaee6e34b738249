model_id = "openai/gpt-oss-120b"
model_served_name = "gpt-oss-120b"

engine_kind = "dynamo"
engine_version = "1.6.1"
engine_max_num_seqs = 800  # the recipe's --max-batch-size

dynamo_backend = "trtllm"
dynamo_mode = "aggregated"
dynamo_router_mode = "round-robin"
# TP 4 with attention DP: each of the 4 ranks runs attention on its own requests (DP 4), the
# experts split over all 4 (EP 4).
dynamo_worker = {"tensor_parallel_size": 1, "data_parallel_size": 4, "expert_parallel": True}

accelerator_kind = "gb200-186g"
accelerator_count = 4
