"""`ironserve bench`: load an OpenAI-compatible endpoint the way `vllm bench serve` does (random
prompts, a concurrency sweep, Poisson arrivals, streaming) and report TTFT, TPOT, ITL, end-to-end
latency and throughput percentiles."""
