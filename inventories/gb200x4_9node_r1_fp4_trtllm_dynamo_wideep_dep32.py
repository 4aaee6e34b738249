"""9 GB200 compute trays (4 Blackwell GPUs of 186 GB each, one NVL72 rack): DeepSeek-R1 from
NVIDIA's FP4 checkpoint (nvidia/DeepSeek-R1-FP4) on NVIDIA Dynamo with TensorRT-LLM wide expert
parallelism, disaggregated, in the recipe's own shape (the recipe collection's
deepseek-r1/trtllm/disagg/wide_ep/gb200: one prefill tray, 8 decode trays): the prefill worker
is DEP 4 on its tray; the decode worker is ONE worker of DEP 32 (attention DP 32, the experts
over all 32 GPUs) over the 8 decode trays, one MPI world: mpirun in the first decode tray's
container over SSH to an sshd in each other tray's container (engines/dynamo.py). The trays
share the rack's NVLink domain (MNNVL). gb200x4_4node_r1_fp4_trtllm_dynamo_wideep.py is the
4-tray stand-in with a DEP 4 decode worker per tray. deploys/site.py deploys it.
"""

_IB_HCAS = [f"mlx5_{i}" for i in range(4)]


def _tray(name: str, ip: str, role: str, pool: str) -> tuple[str, dict[str, object]]:
    return (
        name,
        {
            "ssh_hostname": ip,
            "node_role": role,
            "node_ip": ip,
            "node_dynamo_pool": pool,
            "network_ib_hcas": _IB_HCAS,
        },
    )


gpu_nodes = [
    _tray("gb200-prefill-0", "10.60.3.11", "head", "prefill"),
    *(_tray(f"gb200-decode-{i}", f"10.60.3.{21 + i}", "worker", "decode") for i in range(8)),
]
