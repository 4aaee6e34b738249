"""Data keys of roles/nvidia (role-prefixed; None = must be given).

Version pins and the repository key's identity live here as constants; the model's defaults point
at them. The driver is pinned by branch (the package names) and by exact apt version (what is
installed, ``package=version``), so nodes installed a month apart get the same driver.
"""

from typing import Literal

from ironserve.config.values import AptSource, AptVersion, DriverBranch, Flag, PackageName, Url
from ironserve.deploy.role_data import RoleData

DRIVER_BRANCH = "580"
# The exact apt version of nvidia-driver-<branch>-server[-open] and nvidia-utils-<branch>-server
# (Ubuntu's packaging of 580.95.05; the lab's repository offers the same). A mirror carrying
# another build of the branch pins its own version in group_data.
DRIVER_VERSION = "580.95.05-0ubuntu0.24.04.1"
# NVIDIA's CUDA repository signing key (3bf863cc.pub): its primary key fingerprint. The key file
# is verified by it on the node before apt may use it; a fingerprint names the key itself, so it
# holds when NVIDIA re-signs or re-armours the file (its sha256 would not).
CUDA_KEY_FINGERPRINT = "EB693B3035CD5710E231E123A4B469963BF863CC"


class NvidiaData(RoleData):
    # Driver branch: nvidia-driver-<branch>-server[-open], nvidia-utils-<branch>-server and
    # nvidia-fabricmanager-<branch> all come from it.
    nvidia_driver_branch: DriverBranch = DRIVER_BRANCH
    # The driver's exact apt version (epoch and Debian revision included, as ``apt-cache
    # policy`` shows it); it must belong to the branch. Health names a node running another.
    nvidia_driver_version: AptVersion = DRIVER_VERSION
    # "auto": open kernel modules for Turing and newer (by PCI device id), proprietary for older;
    # True / False force one flavour.
    nvidia_driver_open_modules: Flag | Literal["auto"] = "auto"
    # Reboot when the driver package changed (never the control machine itself).
    nvidia_driver_reboot: Flag = True
    # The apt source line of the vendor repository; "cuda": NVIDIA's CUDA repository for the
    # node's distribution. A local mirror or the lab's repository goes here.
    nvidia_apt_source: AptSource = "cuda"
    # Key of the CUDA repository (used with nvidia_apt_source "cuda") and the fingerprint it
    # must have (40 hex digits): a file with another key is refused, nothing installed.
    nvidia_apt_key_url: Url = (
        "https://developer.download.nvidia.com/compute/cuda/repos/{repo}/{arch}/3bf863cc.pub"
    )
    nvidia_apt_key_fingerprint: str = CUDA_KEY_FINGERPRINT
    nvidia_cuda_toolkit_package: PackageName = "cuda-toolkit-12-8"
    nvidia_dcgm_package: PackageName = "datacenter-gpu-manager-4-cuda12"
    nvidia_container_toolkit_package: PackageName = "nvidia-container-toolkit"
    # "auto": fabric manager where NVSwitches are present (ironserve.rules.fabric); True /
    # False force it.
    nvidia_fabricmanager: Flag | Literal["auto"] = "auto"
    nvidia_persistence_mode: Flag = True


DEFAULTS = NvidiaData.defaults()
