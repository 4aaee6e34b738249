"""The inventory's data as typed models.

pyinfra hands every host a flat dict (host data over group data over ``all``). Keys are prefixed
by what they describe, and each prefix maps to one model here: ``model_id`` is ``ModelSettings.id``,
``engine_image`` is ``EngineSettings.image``, and so on. Settings of a serving group must agree on
every node of the group; node settings are per host.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ironserve.catalog.dynamo import DynamoBackend
from ironserve.catalog.engines import EngineKind, MultiNodeLaunch
from ironserve.catalog.formats import WeightFormat
from ironserve.config.values import (
    Bandwidth,
    Count,
    DockerSize,
    ExistingFile,
    Flag,
    Fraction,
    Image,
    LocalPath,
    Name,
    NodePath,
    NonNegative,
    Port,
    RepoId,
    SafeText,
    Size,
    Url,
)
from ironserve.rules.disk import DISK_MARGIN

# Groups without serving_api_key_file get a generated key (0600) in this folder of the control
# machine; the Plan names the file (plan/derived.py), every reader takes it from there.
DEFAULT_API_KEY_DIR = "~/.ironserve/api-keys"
# Behind the gateway, the engine's own port on the API node's loopback.
DEFAULT_BACKEND_PORT = 18000

# The links the staging estimate (plan/staging.py) assumes where the inventory names none.
# The site's link to the hub or mirror: 1 Gbit/s, a common uplink share for one site's downloads
# (what one download gets from a public hub is often less, seldom more); the cluster network
# between nodes: 25 Gbit/s, the usual Ethernet port of a GPU server's front-end network, over
# which the weights fan-out's rsync runs (node_ip addresses, not the RDMA fabric).
DEFAULT_SITE_BANDWIDTH = "1Gbit/s"
DEFAULT_FABRIC_BANDWIDTH = "25Gbit/s"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Strict):
    id: RepoId = Field(description="Catalog id (Hugging Face repo id) of the model")
    revision: SafeText = Field("main", description="Hub revision (branch, tag or commit)")
    served_name: SafeText | None = Field(
        None, description="Name the API serves; default: repo name"
    )
    max_len: Count | None = Field(None, description="Context length; default: what fits")
    weights_dir: NodePath = Field(
        "/data/models", description="Folder on every node holding weights"
    )
    format: WeightFormat | None = Field(None, description="Checkpoint format; default: native")
    config_file: ExistingFile | None = Field(
        None, description="Local config.json for a model the catalog lacks"
    )


class EngineSettings(_Strict):
    kind: EngineKind = Field(
        EngineKind.VLLM,
        description="vllm, sglang, trtllm, mindie, vllm_ascend, vllm_vacc or dynamo (dynamo_* "
        "keys); default: the accelerator vendor's engine (vllm, mindie, vllm_vacc)",
    )
    version: SafeText | None = Field(None, description="Engine version; picks the flag table")
    multi_node: MultiNodeLaunch | None = Field(
        None,
        description="vLLM across nodes: native (--nnodes, from 0.12) or ray; default: native "
        "where the version has it",
    )
    image: Image | None = Field(None, description="Container image; default: the version's image")
    port: Port | None = Field(None, description="API port on the head node")
    tensor_parallel_size: Count | None = Field(None, description="Force TP")
    pipeline_parallel_size: Count | None = Field(None, description="Force PP")
    data_parallel_size: Count | None = Field(None, description="Force DP")
    expert_parallel: Flag | None = Field(None, description="Experts spread over ranks (MoE)")
    memory_utilization: Fraction | None = Field(
        None, description="Fraction of device memory for the engine"
    )
    max_num_seqs: Count | None = Field(None, description="Concurrent sequences")
    extra_args: list[str] = Field(
        default_factory=list, description="More engine flags, checked against the flag table"
    )
    shm_size: DockerSize = Field("32g", description="Shared memory of the engine container")
    image_size: Size | None = Field(
        None,
        description="Bytes a node pulls for the image (12GB); default: the engine's catalog "
        "figure. Only the staging estimate reads it",
    )


class HubSettings(_Strict):
    kind: Literal["huggingface", "modelscope"] = "huggingface"
    endpoint: Url | None = Field(None, description="Mirror URL (HF_ENDPOINT / MODELSCOPE_ENDPOINT)")
    token_file: ExistingFile | None = Field(None, description="0600 file holding the hub token")
    bandwidth: Bandwidth = Field(
        DEFAULT_SITE_BANDWIDTH,
        description="The site's link to the hub, mirror and image registry, shared by the group "
        "(10Gbit/s, 1.25GB/s); the staging estimate reads it",
    )


class ServingSettings(_Strict):
    group: Name = Field("default", description="Serving group this node belongs to")
    api_key_file: ExistingFile | None = Field(None, description="0600 file holding the API key")
    api_key_dir: LocalPath = Field(
        DEFAULT_API_KEY_DIR,
        description="Without api_key_file: where the generated key is kept on the control machine",
    )
    gateway: Flag = Field(
        True,
        description="The API key checked on every path of the public port by a reverse proxy "
        "(roles/gateway); the engine listens on the API node's loopback",
    )
    backend_port: Port = Field(
        DEFAULT_BACKEND_PORT, description="With the gateway: the engine's own port behind it"
    )
    public_metrics: Flag = Field(
        False,
        description="With the gateway: /metrics without the key (else only with the key, or from "
        "the group's nodes and the monitoring server)",
    )
    public_health: Flag = Field(
        False,
        description="With the gateway: /health without the key too (for a load balancer's "
        "probe that cannot send a header)",
    )


class NetworkSettings(_Strict):
    socket_ifname: Name | None = Field(
        None, description="NIC for GLOO/NCCL/TP (and HCCL) sockets on this node"
    )
    ib_hcas: list[Name] = Field(default_factory=list, description="IB/RoCE HCAs for NCCL_IB_HCA")
    ib_gid_index: NonNegative | None = Field(None, description="NCCL_IB_GID_INDEX (RoCE: often 3)")
    fabric_bandwidth: Bandwidth = Field(
        DEFAULT_FABRIC_BANDWIDTH,
        description="This node's link to the cluster network (node_ip), which the weights "
        "fan-out uses (25Gbit/s); the staging estimate reads it",
    )


class NpuSettings(_Strict):
    device_ips: list[IPv4Address] = Field(
        default_factory=list, description="Ascend: one parameter-plane IP per NPU"
    )
    netmask: IPv4Address = Field(IPv4Address("255.255.255.0"))
    gateway: IPv4Address | None = Field(None, description="Ascend: gateway / netdetect address")
    tls: Flag = Field(False, description="HCCL TLS; must be the same on every node")


DynamoPoolName = Literal["frontend", "prefill", "decode", "worker"]
DynamoWorkerPool = Literal["prefill", "decode", "worker"]


class NodeSettings(_Strict):
    role: Literal["head", "worker"]
    ip: IPv4Address = Field(description="The node's address on the cluster network")
    dynamo_pool: DynamoPoolName | list[DynamoWorkerPool] | None = Field(
        None,
        description="engine_kind dynamo: the node's pool: frontend (the frontend and control "
        "plane only; the head), prefill, decode (disaggregated) or worker (aggregated); or a "
        "list of worker pools sharing the node (prefill and decode on one node: their workers "
        "take its devices in the order listed)",
    )

    dynamo_workers: dict[DynamoWorkerPool, Count] = Field(
        default_factory=dict,
        description="engine_kind dynamo: how many workers of each of the node's pools it runs, "
        "where it differs from the pool's workers_per_node (e.g. {prefill: 2, decode: 1} on a "
        "node that prefill and decode share)",
    )

    @property
    def dynamo_pools(self) -> tuple[str, ...]:
        """The pools the node is in: none, one, or the worker pools sharing it."""
        if self.dynamo_pool is None:
            return ()
        if isinstance(self.dynamo_pool, list):
            return tuple(self.dynamo_pool)
        return (self.dynamo_pool,)


class DynamoPoolSettings(_Strict):
    """One worker pool's shape: each worker's parallelism and how many share a node."""

    tensor_parallel_size: Count | None = Field(None, description="TP of each worker")
    data_parallel_size: Count = Field(1, description="DP ranks inside each worker")
    expert_parallel: Flag = Field(False, description="Experts spread over the worker's ranks")
    workers_per_node: Count | None = Field(
        None, description="Workers on each node of the pool; default: as many as fit"
    )
    nodes_per_worker: Count = Field(
        1,
        description="Nodes each worker spans (TP x DP = nodes_per_worker x the node's devices): "
        "vLLM's DP ranks over nodes, SGLang's --nnodes, TensorRT-LLM's MPI ranks (a GB200 "
        "NVL72 tray is a node of 4 GPUs in one NVLink domain)",
    )


class DynamoSettings(_Strict):
    """engine_kind: dynamo. The frontend and control plane run on the head."""

    backend: DynamoBackend = Field(DynamoBackend.VLLM, description="vllm, sglang or trtllm")
    mode: Literal["aggregated", "disaggregated"] = Field(
        "aggregated",
        description="aggregated (worker pool) or disaggregated (prefill and decode pools, the "
        "KV cache handed over NIXL)",
    )
    router_mode: Literal["kv", "round-robin", "random"] = Field(
        "kv", description="The frontend's --router-mode: kv (KV-aware), round-robin or random"
    )
    control_plane: Literal["etcd-nats", "file"] = Field(
        "etcd-nats",
        description="etcd discovery and NATS request/event planes on the head (containers), or "
        "file discovery with TCP and ZMQ planes (no services; one node only)",
    )
    kv_fabric: Literal["rdma", "tcp"] = Field(
        "rdma",
        description="Disaggregated across nodes: NIXL over RDMA (network_ib_hcas on every worker "
        "node) or over TCP (UCX sockets, slow: a lab)",
    )
    prefill: DynamoPoolSettings = Field(
        default_factory=DynamoPoolSettings, description="The prefill pool's workers"
    )
    decode: DynamoPoolSettings = Field(
        default_factory=DynamoPoolSettings, description="The decode pool's workers"
    )
    worker: DynamoPoolSettings = Field(
        default_factory=DynamoPoolSettings, description="The aggregated pool's workers"
    )
    etcd_image: Image = Field(
        "quay.io/coreos/etcd:v3.5.16", description="etcd container (control_plane etcd-nats)"
    )
    nats_image: Image = Field("nats:2.10.27", description="nats-server container (JetStream)")


class AcceleratorSettings(_Strict):
    kind: Name = Field(description="Catalog id, e.g. h100-80g")
    count: Count = Field(description="Physical devices (cards) in the node")


class Node(_Strict):
    """One host of the inventory, validated."""

    name: str
    node: NodeSettings
    accelerator: AcceleratorSettings
    network: NetworkSettings
    npu: NpuSettings
    # preflight_disk_margin (roles/preflight's data key): the Plan's disk need per node.
    disk_margin: float = Field(DISK_MARGIN, gt=0)


class ServingGroup(_Strict):
    """Nodes that serve one model together, with the settings they share. Head first."""

    name: str
    model: ModelSettings
    engine: EngineSettings
    hub: HubSettings
    serving: ServingSettings
    nodes: list[Node]
    dynamo: DynamoSettings = Field(default_factory=DynamoSettings)

    @property
    def head(self) -> Node:
        return self.nodes[0]


class Cluster(_Strict):
    groups: list[ServingGroup]


# Which settings model each key prefix fills, and whether it is shared by the serving group.
SECTIONS: dict[str, tuple[type[_Strict], bool]] = {
    "model_": (ModelSettings, True),
    "engine_": (EngineSettings, True),
    "hub_": (HubSettings, True),
    "serving_": (ServingSettings, True),
    "dynamo_": (DynamoSettings, True),
    "node_": (NodeSettings, False),
    "accelerator_": (AcceleratorSettings, False),
    "network_": (NetworkSettings, False),
    "npu_": (NpuSettings, False),
}

# Keys that look like secrets: refused with where the secret belongs instead.
SECRET_KEYS = {
    "serving_api_key": "serving_api_key_file",
    "hub_token": "hub_token_file",
    "hf_token": "hub_token_file",
    "modelscope_token": "hub_token_file",
}


# Keys that moved: the old name is still read, as the new one (documented names stay valid).
RENAMED_KEYS = {"serve_api_key_dir": "serving_api_key_dir"}


def known_keys() -> set[str]:
    return {
        prefix + field for prefix, (model, _) in SECTIONS.items() for field in model.model_fields
    }
