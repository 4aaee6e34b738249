"""Data keys of roles/nvidia (role-prefixed; None = must be given)."""

from typing import Literal

from ironserve.deploy.role_data import RoleData


class NvidiaData(RoleData):
    # Driver branch: nvidia-driver-<branch>-server[-open], nvidia-utils-<branch>-server and
    # nvidia-fabricmanager-<branch> all come from it.
    nvidia_driver_branch: str = "580"
    # "auto": open kernel modules for Turing and newer (by PCI device id), proprietary for older;
    # True / False force one flavour.
    nvidia_driver_open_modules: bool | Literal["auto"] = "auto"
    # Reboot when the driver package changed (never the control machine itself).
    nvidia_driver_reboot: bool = True
    # The apt source line of the vendor repository; "cuda": NVIDIA's CUDA repository for the
    # node's distribution. A local mirror or the lab's repository goes here.
    nvidia_apt_source: str = "cuda"
    # Key of the CUDA repository (used with nvidia_apt_source "cuda").
    nvidia_apt_key_url: str = (
        "https://developer.download.nvidia.com/compute/cuda/repos/{repo}/{arch}/3bf863cc.pub"
    )
    nvidia_cuda_toolkit_package: str = "cuda-toolkit-12-8"
    nvidia_dcgm_package: str = "datacenter-gpu-manager-4-cuda12"
    nvidia_container_toolkit_package: str = "nvidia-container-toolkit"
    # "auto": fabric manager where NVSwitches are present (ironserve.rules.fabric); True /
    # False force it.
    nvidia_fabricmanager: bool | Literal["auto"] = "auto"
    nvidia_persistence_mode: bool = True


DEFAULTS = NvidiaData.defaults()
