"""roles/ascend data defaults (lowest precedence: inventory, group_data and --data win).

Version pins live here as constants; the DEFAULTS point at them. The artifact source is inventory
data and must be given: the vendor's download folder (``VENDOR_URL``, behind a support account),
a local mirror offline, the lab's repository in the lab (``ascend_installer_url`` ends with
``/``; the file names are the vendor's).

Every installer is verified on the node by its sha256 before it runs (kubespray-style
``ascend_checksums``: artifact -> version -> sha256). The vendor publishes the sha256 of each
file on its download page; this project ships none it could not check, so a site adds the sums
of the versions it installs to its group_data, and validation refuses a configured version
without one (``DOWNLOADS`` names each artifact's version key and file).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ironserve.config.values import NodePath, Url, UserName, Version
from ironserve.deploy.role_data import RoleData

DRIVER_VERSION = "24.1.rc3"
FIRMWARE_VERSION = "7.5.0.3.220"
HDK_RELEASE = "24.1.RC3"  # the vendor's folder for this driver and firmware
VENDOR_URL = (
    "https://ascend-repo.obs.cn-east-2.myhuaweicloud.com/"
    f"Ascend%20HDK/Ascend%20HDK%20{HDK_RELEASE}/"
)

# sha256 per artifact and version (64 hex digits); a site's mapping in group_data replaces
# this one whole, so it carries every version it installs.
CHECKSUMS: dict[str, dict[str, str]] = {"driver": {}, "firmware": {}}

# What the role downloads: artifact -> the data key of its version, of its source, its file name.
DOWNLOADS = {
    "driver": {
        "version_key": "ascend_driver_version",
        "source_key": "ascend_installer_url",
        "file": "Ascend-hdk-910b-npu-driver_{version}_linux-x86-64.run",
    },
    "firmware": {
        "version_key": "ascend_firmware_version",
        "source_key": "ascend_installer_url",
        "file": "Ascend-hdk-910b-npu-firmware_{version}.run",
    },
}


class AscendData(RoleData):
    ascend_driver_version: Version = DRIVER_VERSION
    ascend_firmware_version: Version = FIRMWARE_VERSION
    # The vendor's folder (VENDOR_URL), a mirror, or the lab's repository: must be given.
    ascend_installer_url: Url | None = None
    # artifact -> version -> sha256; its shape and sums are config/downloads.py's to check.
    ascend_checksums: Any = Field(default_factory=lambda: CHECKSUMS)
    # Where the .run installers are downloaded to on the node.
    ascend_download_dir: NodePath = "/var/cache/ironserve/ascend"
    # The driver's running user (the installer refuses to run without it).
    ascend_user: UserName = "HwHiAiUser"
    ascend_user_home: NodePath = "/home/HwHiAiUser"


DEFAULTS = AscendData.defaults()
