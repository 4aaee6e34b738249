"""What an engine builder takes (LaunchContext) and gives (one NodeLaunch per node).

Builders are pure functions: the same context always renders the same containers, commands and
files, so golden-file tests pin them and roles only execute what they return.
"""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ironserve.catalog.accelerators import Accelerator
from ironserve.catalog.engines import Engine
from ironserve.catalog.models import ModelSpec
from ironserve.plan.types import DynamoSpec, Sizing

# Where ironserve keeps per-group files on a node (env files with secrets, rank tables).
NODE_STATE_DIR = "/etc/ironserve"
RAY_PORT = 6379
SGLANG_DIST_PORT = 5000
# vLLM's native multi-node launch: torch.distributed's rendezvous on node 0 (vLLM's own default)
# and, with data parallel over nodes, where the replicas' engines meet (vLLM's default too).
VLLM_MASTER_PORT = 29501
VLLM_DP_RPC_PORT = 29550


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeTarget(_Frozen):
    """A node as a builder sees it. Addresses may be placeholders in sizing-only plans."""

    name: str
    address: str
    role: Literal["head", "worker"]
    rank: int
    device_count: int  # physical devices (cards)
    socket_ifname: str | None = None
    ib_hcas: list[str] = []
    ib_gid_index: int | None = None
    npu_device_ips: list[str] = []


class LaunchContext(_Frozen):
    group: str
    model: ModelSpec
    accelerator: Accelerator
    engine: Engine
    engine_version: str
    image: str
    sizing: Sizing
    served_name: str
    weights_path: str  # the model's folder, the same path on every node
    port: int
    nodes: list[NodeTarget]  # head first
    extra_args: list[str] = []
    reasoning_parser: str | None = None
    shm_size: str = "32g"
    npu_tls: bool = False
    # The public port's reverse proxy (roles/gateway) checks the API key on every path; the
    # engine then listens on the API node's loopback at ``backend_port``.
    gateway: bool = True
    backend_port: int = 18000
    # engine_kind dynamo: the pools and planes the planner chose (plan/dynamo.py).
    dynamo: DynamoSpec | None = None

    @property
    def head(self) -> NodeTarget:
        return self.nodes[0]

    @property
    def listen_host(self) -> str:
        """Where the engine's API server binds: loopback behind the gateway, else everywhere."""
        return "127.0.0.1" if self.gateway else "0.0.0.0"

    @property
    def listen_port(self) -> int:
        """The engine's own API port: ``backend_port`` behind the gateway, else ``port``."""
        return self.backend_port if self.gateway else self.port

    @property
    def secrets_env_file(self) -> str:
        """0600 env file on every node: the API key (and hub token) reach containers only here."""
        return f"{NODE_STATE_DIR}/{self.group}/secrets.env"


# A service container beside the engine (the gateway, the image cache): restarted by dockerd,
# on the host network (its port is the node's), no privilege gained after start.
SERVICE_RUN_ARGS = (
    "--restart",
    "unless-stopped",
    "--network",
    "host",
    "--security-opt",
    "no-new-privileges",
)


class ContainerSpec(_Frozen):
    """One detached container: ``docker run -d --name NAME RUN_ARGS -e K=V... IMAGE COMMAND``."""

    name: str
    image: str
    run_args: list[str]
    env: dict[str, str]
    command: list[str]

    def docker_run_argv(self) -> list[str]:
        argv = ["docker", "run", "-d", "--name", self.name, *self.run_args]
        for key, value in sorted(self.env.items()):
            argv += ["-e", f"{key}={value}"]
        return [*argv, self.image, *self.command]


class RenderedFile(_Frozen):
    path: str
    content: str
    mode: str  # octal, e.g. "0640"


class NodeLaunch(_Frozen):
    node: str
    address: str
    role: Literal["head", "worker"]
    rank: int
    serves_api: bool  # this node answers the OpenAI API
    container: ContainerSpec
    # A command run inside the container once the cluster has formed (vLLM on Ray: `vllm serve`
    # on the head after `ray status` shows every node); None when the container command serves.
    serve_exec: list[str] | None = None
    files: list[RenderedFile] = []
    # More detached containers on the node, started before ``container`` in this order (Dynamo:
    # the control plane and the frontend on the head, a pool's further workers); roles/engine
    # starts them wave by wave over the group's nodes (engines/dynamo.py WAVES).
    companions: list[ContainerSpec] = []

    @property
    def containers(self) -> list[ContainerSpec]:
        return [*self.companions, self.container]

    def shell_lines(self) -> list[str]:
        """The launch as shell lines, for `ironserve render` and the golden files."""
        lines = [shlex.join(c.docker_run_argv()) for c in self.companions]
        lines.append(shlex.join(self.container.docker_run_argv()))
        if self.serve_exec is not None:
            lines.append(
                shlex.join(["docker", "exec", "-d", self.container.name, *self.serve_exec])
            )
        return lines
