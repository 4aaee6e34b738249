"""What the planner decides, as plain data (JSON-ready through pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ironserve.catalog.dynamo import DynamoBackend
from ironserve.catalog.engines import EngineKind, MultiNodeLaunch
from ironserve.catalog.formats import WeightFormat


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SizingRequest(_Frozen):
    """Everything sizing needs; no addresses, so it also answers "what would it take"."""

    model_id: str
    accelerator_id: str
    nodes: int = Field(gt=0)
    devices_per_node: int = Field(gt=0)
    engine: EngineKind = EngineKind.VLLM
    engine_version: str | None = None
    multi_node: MultiNodeLaunch | None = None  # vLLM across nodes: native or Ray (None: auto)
    weight_format: WeightFormat | None = None
    max_model_len: int | None = Field(None, gt=0)
    tensor_parallel_size: int | None = Field(None, gt=0)
    pipeline_parallel_size: int | None = Field(None, gt=0)
    data_parallel_size: int | None = Field(None, gt=0)
    expert_parallel: bool | None = None
    memory_utilization: float | None = Field(None, gt=0, le=1)
    max_num_seqs: int | None = Field(None, gt=0)
    kv_cache_dtype_bytes: int = 2
    speculative: bool = False  # MTP / speculative decoding asked for


class Parallelism(_Frozen):
    tensor: int
    pipeline: int
    data: int
    expert: int  # 1: experts not spread over ranks

    @property
    def ranks(self) -> int:
        return self.tensor * self.pipeline * self.data


class MemoryBudget(_Frozen):
    """Per parallel unit (one GPU, NPU or die), in bytes."""

    unit_bytes: int
    utilization: float
    usable_bytes: int
    weights_bytes: int
    reserve_bytes: int  # activations, CUDA graphs / HCCL buffers, context
    kv_cache_bytes: int  # usable - weights - reserve (negative: does not fit)
    kv_bytes_per_token: int  # this unit's share of one token's KV cache
    kv_tokens: int  # tokens the KV cache of the whole deployment holds (per DP replica)


class Alternative(_Frozen):
    nodes: int
    devices_per_node: int
    weight_format: WeightFormat
    tensor_parallel_size: int
    pipeline_parallel_size: int
    summary: str


class Sizing(_Frozen):
    request: SizingRequest
    feasible: bool
    reasons: list[str]  # the explanation, in order; failures are among them, marked by blockers
    blockers: list[str]  # the subset of reasons that make the plan infeasible
    weight_format: WeightFormat
    weights_bytes: int
    parallelism: Parallelism
    memory: MemoryBudget
    max_model_len: int
    max_num_seqs: int | None
    full_length_sequences: int  # how many max_model_len sequences the KV cache holds
    alternatives: list[Alternative]


class DynamoPool(_Frozen):
    """One Dynamo worker pool as planned: its nodes, each worker's parallelism, its sizing."""

    name: str  # prefill | decode | worker (aggregated)
    nodes: list[str]
    tensor: int
    data: int
    expert: int  # the worker's EP size; 1: experts not spread
    workers_per_node: int
    units_per_worker: int  # devices one worker holds (TP x DP), over all its nodes
    sizing: Sizing  # one worker, sized as the backend engine would
    nodes_per_worker: int = 1  # > 1: each worker spans that many consecutive pool nodes
    # Nodes that run another count than workers_per_node (node_dynamo_workers).
    workers_on_node: dict[str, int] = {}

    def workers_on(self, node: str) -> int:
        """Workers (their shares, for a worker over nodes) that ``node`` runs."""
        return self.workers_on_node.get(node, self.workers_per_node) if node in self.nodes else 0

    @property
    def workers(self) -> int:
        return sum(self.workers_on(n) for n in self.nodes) // self.nodes_per_worker

    @property
    def units_per_node(self) -> int:
        """Devices one worker holds on each of its nodes."""
        return self.units_per_worker // self.nodes_per_worker

    def worker_nodes(self, node: str) -> list[str]:
        """The nodes of the (multi-node) worker ``node`` belongs to, its leader first."""
        at = self.nodes.index(node) // self.nodes_per_worker * self.nodes_per_worker
        return self.nodes[at : at + self.nodes_per_worker]


class DynamoSpec(_Frozen):
    """What a Dynamo group runs besides its pools: backend, mode, router, planes and images."""

    backend: DynamoBackend
    engine_version: str  # the backend engine version the Dynamo release pins
    mode: Literal["aggregated", "disaggregated"]
    router_mode: Literal["kv", "round-robin", "random"]
    control_plane: Literal["etcd-nats", "file"]
    kv_fabric: Literal["rdma", "tcp"]
    namespace: str
    etcd_image: str
    nats_image: str
    frontend_node: str  # the head: frontend and control plane
    pools: list[DynamoPool]
