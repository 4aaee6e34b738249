"""The lab's state file: what `lab up` created, so `status`, `fault`, `down` and the
inventory (inventories/lab.py, which reads the same JSON) find it again.

Where: ``$IRONSERVE_LAB_DIR``, else ``.lab/`` at the project root (the folder holding
pyproject.toml above this package, or the current directory when installed elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

STATE_FILE = "state.json"
LABEL = "ironserve.lab"  # "1" on everything a lab creates (containers, network, volumes)
LABEL_ID = "ironserve.lab.id"  # the lab's random id: `down` removes exactly its own objects
LABEL_ROLE = "ironserve.lab.role"  # node | service
LABEL_NODE = "ironserve.lab.node"
# Set by whoever starts labs in bulk (CI): every object gets it, so that run removes exactly what
# it created even when a test dies before its own teardown.
LABEL_RUN = "ironserve.lab.run"
RUN_ENV = "IRONSERVE_LAB_RUN"
DYNAMO_ENV = "IRONSERVE_LAB_DYNAMO"  # "1": `lab up` makes a Dynamo lab (as `lab up --dynamo`)


def project_root() -> Path:
    here = Path(__file__).resolve().parents[3]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def lab_dir() -> Path:
    env = os.environ.get("IRONSERVE_LAB_DIR")
    return Path(env).resolve() if env else project_root() / ".lab"


class ServiceState(BaseModel):
    name: str
    container_id: str
    address: str
    url: str  # as the lab's nodes reach it (the lab network)
    host_url: str | None = None  # as this machine reaches it, where that differs (127.0.0.1:port)


class NodeState(BaseModel):
    name: str  # inventory host name = hostname = network alias
    index: int
    profile: str
    kind: str  # the node kind within the profile (hardware.node_kind)
    container: str  # container name
    container_id: str
    address: str  # on the lab network
    interface: str = "eth0"
    ssh_port: int
    light: bool
    accelerator_kind: str
    accelerator_count: int
    engine_kind: str
    npu_device_ips: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    data_disk: str | None = None  # sparse ext4 image behind /data (full nodes)
    data_mount: str | None = None  # where the host mounts it (bound to the node's /data)
    sysfs_dir: str  # fake /sys/bus/pci/devices of the node
    host_key: str  # "ssh-ed25519 AAAA..." as written to known_hosts
    faults: list[str] = Field(default_factory=list)


class LabState(BaseModel):
    version: int = 1
    lab_id: str
    prefix: str  # container/network name prefix
    profile: str
    light: bool
    created_at: float
    docker_host: str | None = None
    images: dict[str, str] = Field(default_factory=dict)
    network_id: str = ""
    network_name: str = ""
    subnet: str = ""
    gateway: str = ""
    ssh_user: str = "root"
    ssh_key: str = ""
    known_hosts: str = ""
    apt_repository: str | None = None  # base URL of the flat repository (and .run installers)
    apt_source: str | None = None  # the sources.list line provisioning writes on nodes
    # sha256 of each .run installer the repository serves (lab/packages.py), by file name
    installer_sha256: dict[str, str] = Field(default_factory=dict)
    services: dict[str, ServiceState] = Field(default_factory=dict)
    # Engine images in the lab registry, as nodes name them -> manifest digest (lab/registry.py)
    engine_images: dict[str, str] = Field(default_factory=dict)
    # A lab serving NVIDIA Dynamo (`lab up --dynamo`): its registry holds Dynamo's images and its
    # inventory is inventories/lab_dynamo.py.
    dynamo: bool = False
    # The real vLLM and its model (SmolLM2) in the lab's registry and hub. A lab without them
    # (provisioning, health, weights, stand-in engines) comes up without waiting for the real
    # vLLM's image, minutes to build on a cold machine.
    real_vllm: bool = True
    nodes: list[NodeState] = Field(default_factory=list)

    def node(self, name: str) -> NodeState:
        for node in self.nodes:
            if name in (node.name, node.container):
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no lab node {name!r} (nodes: {known})")

    def labels(self, role: str, node: str | None = None) -> dict[str, str]:
        labels = {LABEL: "1", LABEL_ID: self.lab_id, LABEL_ROLE: role}
        if node is not None:
            labels[LABEL_NODE] = node
        if os.environ.get(RUN_ENV):
            labels[LABEL_RUN] = os.environ[RUN_ENV]
        return labels


def state_path(directory: Path | None = None) -> Path:
    return (directory or lab_dir()) / STATE_FILE


def load(directory: Path | None = None) -> LabState | None:
    path = state_path(directory)
    if not path.is_file():
        return None
    return LabState.model_validate_json(path.read_text())


def save(state: LabState, directory: Path | None = None) -> None:
    path = state_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)


def remove(directory: Path | None = None) -> None:
    state_path(directory).unlink(missing_ok=True)
