"""roles/vastai data defaults (lowest precedence: inventory, group_data and --data win).

Vastai publishes no download URL for its driver: ``vastai_installer_url`` (the folder holding
``vastai_driver_install_<version>.run``, ending with ``/``) must be given -- a local mirror, or
the lab's repository in the lab. ``None`` fails loudly with the key's name.

The installer is verified on the node by its sha256 before it runs (kubespray-style
``vastai_checksums``: artifact -> version -> sha256). Vastai hands its installers out per
customer, so the sums come from the site (group_data) with the installer; validation refuses a
configured installer version without one.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ironserve.config.values import NodePath, Url, Version
from ironserve.deploy.role_data import RoleData

DRIVER_VERSION = "3.3.0"  # the version the lab's simulated driver carries

# sha256 per artifact and version (64 hex digits); a site's mapping in group_data replaces
# this one whole, so it carries every version it installs.
CHECKSUMS: dict[str, dict[str, str]] = {"driver": {}}

# What the role downloads: artifact -> the data key of its version, of its source, its file name.
DOWNLOADS = {
    "driver": {
        "version_key": "vastai_driver_version",
        "source_key": "vastai_installer_url",
        "file": "vastai_driver_install_{version}.run",
    },
}


class VastaiData(RoleData):
    vastai_driver_version: Version = DRIVER_VERSION
    # The folder holding the installer (a mirror, or the lab's repository): must be given.
    vastai_installer_url: Url | None = None
    # artifact -> version -> sha256; its shape and sums are config/downloads.py's to check.
    vastai_checksums: Any = Field(default_factory=lambda: CHECKSUMS)
    vastai_download_dir: NodePath = "/var/cache/ironserve/vastai"


DEFAULTS = VastaiData.defaults()
