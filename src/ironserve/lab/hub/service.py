"""The lab hub as a lab service: a container of the lab base image (Debian's python3) at the lab
network's .3 address, port 80, running this package (bind-mounted read-only as ``labhub``).

Files under the lab dir: ``hub/`` (the generated repos, reused across restarts) and
``hub-token`` (0600: the token the gated default repo accepts; tests read it, it never goes on
a command line). ``lab down`` removes the container with the other recorded services.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from ironserve.lab.state import LabState, ServiceState
from ironserve.lab.waits import wait_http_ok

PORT = 80
PACKAGE_DIR = Path(__file__).resolve().parent
CATALOG_DIR = PACKAGE_DIR.parents[1] / "catalog" / "data" / "models"
MOUNT = "/opt/ironserve-hub"
TOKEN_FILE = "hub-token"
DATA_DIR = "hub"
MODELS_MOUNT = "/srv/models"  # the real models (lab/real_model.py), served as they are
SERVER_ARGS = [
    *("--data", "/srv/hub", "--port", str(PORT), "--catalog", f"{MOUNT}/catalog"),
    *("--token-file", "/srv/hub-token", "--defaults"),
]


def models_dir() -> Path:
    from ironserve.lab.real_model import model_dir

    folder = model_dir().parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def token_path(directory: Path) -> Path:
    return directory / TOKEN_FILE


def ensure_token(directory: Path) -> str:
    """The gated repo's accepted token (``<lab dir>/hub-token``, 0600), made once per lab dir."""
    path = token_path(directory)
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"hf_lab{secrets.token_hex(16)}\n")
    os.chmod(path, 0o600)
    return path.read_text().strip()


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Until ``GET /_lab/health`` answers (the default repos are generated before it listens)."""
    wait_http_ok(f"{url.rstrip('/')}/_lab/health", "the lab hub", timeout)


def start(
    client: Any, state: LabState, directory: Path, address: str, host_port: int
) -> ServiceState:
    """Start the hub container; wait until it answers; the service record."""
    ensure_token(directory)
    data = directory / DATA_DIR
    data.mkdir(parents=True, exist_ok=True)
    api = client.api
    name = f"{state.prefix}-hub"
    binds = {
        str(PACKAGE_DIR): {"bind": f"{MOUNT}/labhub", "mode": "ro"},
        str(CATALOG_DIR): {"bind": f"{MOUNT}/catalog", "mode": "ro"},
        str(token_path(directory)): {"bind": "/srv/hub-token", "mode": "ro"},
        str(data): {"bind": "/srv/hub", "mode": "rw"},
    }
    args = list(SERVER_ARGS)
    if state.real_vllm:  # the real model (lab/real_model.py) next to the synthetic repos
        binds[str(models_dir())] = {"bind": MODELS_MOUNT, "mode": "ro"}
        args += ["--models", MODELS_MOUNT]
    container = api.create_container(
        state.images["base"],
        command=["python3", "-m", "labhub.server", *args],
        hostname="hub",
        name=name,
        labels=state.labels("service"),
        environment={"PYTHONPATH": MOUNT, "PYTHONDONTWRITEBYTECODE": "1"},
        working_dir=MOUNT,
        ports=[PORT],
        host_config=api.create_host_config(
            binds=binds, port_bindings={PORT: ("127.0.0.1", host_port)}
        ),
        networking_config=api.create_networking_config(
            {state.network_name: api.create_endpoint_config(ipv4_address=address, aliases=["hub"])}
        ),
    )
    cid = str(container["Id"])
    api.start(cid)
    service = ServiceState(
        name=name,
        container_id=cid,
        address=address,
        url=f"http://{address}/",
        host_url=f"http://127.0.0.1:{host_port}/",
    )
    wait_ready(service.host_url or service.url)
    return service
