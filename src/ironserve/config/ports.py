"""Ports the engines use on a node besides the API port (host networking: they are the node's).

The API port (``engine_port``) must not be one of them, nor a port a role on the same node
listens on; validation refuses a clash before any SSH.
"""

from __future__ import annotations

from ironserve.engines.base import RAY_PORT, SGLANG_DIST_PORT, VLLM_DP_RPC_PORT, VLLM_MASTER_PORT

# Ray's defaults that `ray start --head` opens beside the GCS port (ironserve sets neither).
RAY_CLIENT_PORT = 10001
RAY_DASHBOARD_PORT = 8265


def engine_internal_ports() -> dict[int, str]:
    """Every port an engine of ironserve's may open on a node, with what it is."""
    from ironserve.engines import mindie, trtllm

    return {
        RAY_PORT: "Ray GCS",
        RAY_CLIENT_PORT: "Ray Client",
        RAY_DASHBOARD_PORT: "Ray dashboard",
        SGLANG_DIST_PORT: "SGLang rendezvous",
        VLLM_MASTER_PORT: "vLLM rendezvous",
        VLLM_DP_RPC_PORT: "vLLM data-parallel RPC",
        mindie.MANAGEMENT_PORT: "MindIE management",
        mindie.METRICS_PORT: "MindIE metrics",
        mindie.MULTI_NODES_INFER_PORT: "MindIE ranks",
        mindie.INTER_COMM_PORT: "MindIE inter-node",
        trtllm.MPI_SSH_PORT: "TensorRT-LLM mpirun's SSH",
    }
