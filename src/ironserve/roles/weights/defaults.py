"""Data keys of roles/weights (role-prefixed; None = not set).

The free space a node needs for the weights is ironserve.rules.disk's (margin:
``preflight_disk_margin``), the same rule as preflight's and health's.
"""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from ironserve.config.values import Count, LocalPath, NodePath, Url, existing_file
from ironserve.deploy.role_data import RoleData
from ironserve.weights import client_lock


def _a_lock(path: Path) -> Path:
    """A lock pip's --require-hashes takes: every line pinned with == and a sha256."""
    client_lock.read(path)  # LockError (a ValueError) names the line
    return path


ClientLock = Annotated[Path, AfterValidator(existing_file), AfterValidator(_a_lock)]


class WeightsData(RoleData):
    # The hub client's venv on a node (the seed downloads with it); installed by pip from the lock
    # (every package pinned with its sha256, --require-hashes) when missing or not as locked.
    weights_client_venv: NodePath = "/opt/ironserve/hub-client"
    # An operator's own lock in that format (None: ironserve's, ironserve/weights/data).
    weights_client_lock: ClientLock | None = None
    # A PyPI mirror for that install (None: pip's default index).
    weights_pip_index_url: Url | None = None
    # Download attempts on the seed (a drop resumes, a corrupt file is fetched again).
    weights_attempts: Count = 4
    # Node-side files: the pull script, and per group its config, token and fan-out key.
    weights_script: NodePath = "/opt/ironserve/weights-pull.py"
    weights_config_dir: NodePath = "/etc/ironserve/weights"
    # Where ironserve keeps each cluster's fan-out SSH key pair on the control machine.
    weights_fanout_key_dir: LocalPath = "~/.ironserve/fanout"
    # The fan-out key's forced command on the nodes that serve a copy: read-only rsync of the
    # weights folder (Debian/Ubuntu ship rrsync with rsync as /usr/bin/rrsync).
    weights_rrsync: NodePath = "/usr/bin/rrsync"
    # Keep the fan-out key, its authorized_keys line and the hub token on the nodes after the
    # transfer (by default they exist only while the weights are pulled).
    weights_keep_fanout_key: bool = False


DEFAULTS = WeightsData.defaults()
