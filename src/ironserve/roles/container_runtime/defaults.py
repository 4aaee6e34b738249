"""Data keys of roles/container_runtime (role-prefixed; None = must be given)."""

DEFAULTS = {
    # Installed only when no `docker` command exists (an existing docker-ce stays).
    "container_runtime_docker_package": "docker.io",
    "container_runtime_registry_mirrors": [],
    "container_runtime_insecure_registries": [],
    "container_runtime_log_max_size": "100m",
    "container_runtime_log_max_file": "5",
    # Shared memory and locked memory of engine containers unless they set their own.
    "container_runtime_default_shm_size": "1G",
    # More daemon.json settings, merged like the rest (objects key by key, lists by item).
    "container_runtime_daemon_settings": {},
    # NVIDIA nodes: make nvidia Docker's default runtime.
    "container_runtime_nvidia_default": True,
}
