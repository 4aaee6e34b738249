"""roles/container_runtime: Docker and its daemon.json (see deploy.py)."""

from ironserve.roles.container_runtime.deploy import daemon_settings, deploy_container_runtime

__all__ = ["daemon_settings", "deploy_container_runtime"]
