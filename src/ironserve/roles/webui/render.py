"""Open WebUI's container and env file, as pure functions (golden-tested).

Secrets (the admin password, the engine's API key, the session secret) go only into the 0600
env file; the command line carries the endpoint, the admin's e-mail and name, and switches:
sign-up off (the admin is the only account until they invite others), Ollama off.
"""

from __future__ import annotations

import hashlib
import hmac

from ironserve.engines.base import NODE_STATE_DIR, ContainerSpec

CONTAINER_PORT = 8080  # Open WebUI's port inside its image


def container_name(group: str) -> str:
    return f"ironserve-{group}-webui"


def env_file_path(group: str) -> str:
    return f"{NODE_STATE_DIR}/{group}/webui.env"


def session_secret(api_key: str, group: str) -> str:
    """WEBUI_SECRET_KEY: stable across runs (a new one would log every user out and make the
    env file change on every run), derived from the group's API key, never stored elsewhere."""
    return hmac.new(api_key.encode(), f"open-webui/{group}".encode(), hashlib.sha256).hexdigest()


def env_file(password: str, api_key: str, group: str) -> str:
    return (
        f"WEBUI_ADMIN_PASSWORD={password}\n"
        f"OPENAI_API_KEY={api_key}\n"
        f"WEBUI_SECRET_KEY={session_secret(api_key, group)}\n"
    )


def container(
    group: str,
    image: str,
    endpoint: str,
    port: int,
    admin_email: str,
    admin_name: str,
    served_name: str,
) -> ContainerSpec:
    return ContainerSpec(
        name=container_name(group),
        image=image,
        run_args=[
            "--restart",
            "unless-stopped",
            "-p",
            f"{port}:{CONTAINER_PORT}",
            "-v",
            f"{container_name(group)}:/app/backend/data",
            "--env-file",
            env_file_path(group),
        ],
        env={
            "OPENAI_API_BASE_URL": endpoint,
            "ENABLE_OLLAMA_API": "False",
            "ENABLE_SIGNUP": "False",
            "WEBUI_ADMIN_EMAIL": admin_email,
            "WEBUI_ADMIN_NAME": admin_name,
            "DEFAULT_MODELS": served_name,
        },
        command=[],
    )
