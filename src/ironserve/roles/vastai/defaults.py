"""roles/vastai data defaults (lowest precedence: inventory, group_data and --data win).

Vastai publishes no download URL for its driver: ``vastai_installer_url`` (the folder holding
``vastai_driver_install_<version>.run``, ending with ``/``) must be given -- a local mirror, or
the lab's repository in the lab. ``None`` fails loudly with the key's name.
"""

from __future__ import annotations

from typing import Any

DRIVER_VERSION = "3.3.0"  # the version the lab's simulated driver carries

DEFAULTS: dict[str, Any] = {
    "vastai_driver_version": DRIVER_VERSION,
    "vastai_installer_url": None,
    "vastai_download_dir": "/var/cache/ironserve/vastai",
}
