"""2 x 8 H100 80GB (HGX, NVSwitch, 8 ConnectX-7 InfiniBand HCAs per node): DeepSeek-R1 (FP8)
on vLLM over Ray, TP8 (GPUs per node) x PP2 (nodes).
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(8)]

gpu_nodes = [
    (
        "h100-a",
        {
            "ssh_hostname": "10.10.0.11",
            "node_role": "head",
            "node_ip": "10.10.0.11",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
    (
        "h100-b",
        {
            "ssh_hostname": "10.10.0.12",
            "node_role": "worker",
            "node_ip": "10.10.0.12",
            "network_ib_hcas": _IB_HCAS,
        },
    ),
]
