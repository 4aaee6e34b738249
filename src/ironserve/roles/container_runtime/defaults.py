"""Data keys of roles/container_runtime (role-prefixed; None = must be given)."""

from typing import Any

from pydantic import Field

from ironserve.config.values import DockerSize, Flag, PackageName, Registry, Url, Version
from ironserve.deploy.role_data import RoleData


class ContainerRuntimeData(RoleData):
    # Installed only when no `docker` command exists (an existing docker-ce stays).
    container_runtime_docker_package: PackageName = "docker.io"
    container_runtime_registry_mirrors: list[Url] = Field(default_factory=lambda: [])
    container_runtime_insecure_registries: list[Registry] = Field(default_factory=lambda: [])
    container_runtime_log_max_size: DockerSize = "100m"
    container_runtime_log_max_file: Version = "5"
    # Shared memory and locked memory of engine containers unless they set their own.
    container_runtime_default_shm_size: DockerSize = "1G"
    # More daemon.json settings, merged like the rest (objects key by key, lists by item). A
    # finite default-ulimits memlock here is what ironserve.rules.limits expects of the hosts.
    container_runtime_daemon_settings: dict[str, Any] = Field(default_factory=lambda: {})
    # NVIDIA nodes: make nvidia Docker's default runtime.
    container_runtime_nvidia_default: Flag = True


DEFAULTS = ContainerRuntimeData.defaults()
