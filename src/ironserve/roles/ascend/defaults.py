"""roles/ascend data defaults (lowest precedence: inventory, group_data and --data win).

Version pins live here as constants; the DEFAULTS point at them. The artifact source is inventory
data: the vendor's download site by default, a local mirror offline, the lab's repository in
the lab (``ascend_installer_url`` must end with ``/``; the file names are the vendor's).
"""

from __future__ import annotations

from typing import Any

DRIVER_VERSION = "24.1.rc3"
FIRMWARE_VERSION = "7.5.0.3.220"
HDK_RELEASE = "24.1.RC3"  # the vendor's folder for this driver and firmware
VENDOR_URL = (
    "https://ascend-repo.obs.cn-east-2.myhuaweicloud.com/"
    f"Ascend%20HDK/Ascend%20HDK%20{HDK_RELEASE}/"
)

DEFAULTS: dict[str, Any] = {
    "ascend_driver_version": DRIVER_VERSION,
    "ascend_firmware_version": FIRMWARE_VERSION,
    "ascend_installer_url": VENDOR_URL,
    # Where the .run installers are downloaded to on the node.
    "ascend_download_dir": "/var/cache/ironserve/ascend",
    # The driver's running user (the installer refuses to run without it).
    "ascend_user": "HwHiAiUser",
    "ascend_user_home": "/home/HwHiAiUser",
}
