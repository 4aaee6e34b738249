"""8 x 8 A100 40GB: the seed's eight-node plan for DeepSeek-R1 on vLLM (TP8 x PP8).

A100 (Ampere) has no FP8 tensor cores, so the model is served from a BF16 checkpoint
(model_format = "bf16"): about 1.3 TB, 20 GiB per GPU over 64 GPUs.
"""

gpu_nodes = [
    (
        f"a100-{i}",
        {
            "ssh_hostname": f"10.30.0.{10 + i}",
            "node_ip": f"10.30.0.{10 + i}",
            "node_role": "head" if i == 0 else "worker",
        },
    )
    for i in range(8)
]
