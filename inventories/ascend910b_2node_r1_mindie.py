"""2 x Atlas 800I A2 (8 x Ascend 910B 64GB): DeepSeek-R1 on MindIE from the W8A8 checkpoint
(no FP8 on this chip), TP16 over both nodes. NPU parameter-plane IPs are unique cluster-wide.
"""

npu_nodes = [
    (
        "atlas-0",
        {
            "ssh_hostname": "10.197.90.10",
            "node_role": "head",
            "node_ip": "10.197.90.10",
            "npu_device_ips": [f"10.197.91.{10 + i}" for i in range(8)],
        },
    ),
    (
        "atlas-1",
        {
            "ssh_hostname": "10.197.90.11",
            "node_role": "worker",
            "node_ip": "10.197.90.11",
            "npu_device_ips": [f"10.197.91.{20 + i}" for i in range(8)],
        },
    ),
]
