"""roles/container_runtime: Docker present, daemon.json merged (never clobbered), the NVIDIA
runtime registered by nvidia-ctk only when missing, dockerd restarted only when its
configuration changed. With the group's image cache on (roles/image_cache), every node of the
group lists it as an insecure registry and, when it proxies Docker Hub, as its mirror."""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO
from typing import Any

from pyinfra.api.deploy import deploy
from pyinfra.context import host, state
from pyinfra.facts.server import Which
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from ironserve.facts.docker import DockerRuntimes
from ironserve.operations import apt, docker
from ironserve.operations.templates import render
from ironserve.roles import FACT_TIMEOUT_S, vendor_of
from ironserve.roles.container_runtime.defaults import DEFAULTS
from ironserve.roles.image_cache.group import cache_of
from ironserve.serving import image_cache
from ironserve.serving.image_cache import ImageCache

DOCKER_DROPIN = "/etc/systemd/system/docker.service.d/90-ironserve-limits.conf"


def daemon_settings(data: Any, cache: ImageCache | None = None) -> dict[str, Any]:
    """The daemon.json keys this role owns, from the host's data and its group's image cache."""
    settings: dict[str, Any] = {
        "log-driver": "json-file",
        "log-opts": {
            "max-size": str(data.container_runtime_log_max_size),
            "max-file": str(data.container_runtime_log_max_file),
        },
        "default-shm-size": str(data.container_runtime_default_shm_size),
        "default-ulimits": {"memlock": {"Name": "memlock", "Hard": -1, "Soft": -1}},
    }
    if data.container_runtime_registry_mirrors:
        settings["registry-mirrors"] = list(data.container_runtime_registry_mirrors)
    if data.container_runtime_insecure_registries:
        settings["insecure-registries"] = list(data.container_runtime_insecure_registries)
    if cache is not None:
        for key, values in image_cache.daemon_settings(cache).items():
            settings[key] = list(dict.fromkeys([*settings.get(key, []), *values]))
    settings.update(dict(data.container_runtime_daemon_settings))
    return settings


@deploy("Container runtime", data_defaults=DEFAULTS)
def deploy_container_runtime() -> None:
    if not host.get_fact(Which, command="docker", _timeout=FACT_TIMEOUT_S):
        apt.packages(
            name="Install the Docker engine",
            packages=[str(host.data.container_runtime_docker_package)],
        )
    limits = files.put(
        name="Lift dockerd's locked-memory limit",
        src=StringIO(render("container_runtime", "docker-limits.conf")),
        dest=DOCKER_DROPIN,
        mode="644",
    )
    merged = docker.daemon_json(
        name="Merge Docker's daemon.json",
        settings=daemon_settings(host.data, cache_of(state, host)),
    )
    changes = [limits, merged]
    nvidia = vendor_of(state, host) == "nvidia"
    if nvidia:
        changes.append(
            docker.nvidia_runtime(
                name="Register the NVIDIA runtime with Docker",
                set_as_default=bool(host.data.container_runtime_nvidia_default),
            )
        )
    # Conditional steps are only added when their trigger will change, so a converged node
    # shows nothing at all under --dry.
    if limits.will_change:
        systemd.daemon_reload(name="Reload systemd units", _if=limits.did_change)
    restart = any_changed(*changes)
    # dockerd still running an older configuration (a run that stopped before its restart).
    runtimes = host.get_fact(DockerRuntimes, _timeout=FACT_TIMEOUT_S)
    live: Mapping[str, Any] = runtimes or {}
    stale = (
        nvidia
        and bool(host.data.container_runtime_nvidia_default)
        and not any(op.will_change for op in changes)
        and live.get("error") is None
        and live.get("default_runtime") not in (None, "nvidia")
    )
    if not (stale or any(op.will_change for op in changes)):
        return
    systemd.service(
        name="Restart Docker when its configuration changed",
        service="docker",
        running=True,
        restarted=True,
        _if=lambda: stale or restart(),
    )
