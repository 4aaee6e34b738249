"""roles/nvidia: driver, CUDA, fabric manager, persistence mode, DCGM (see deploy.py)."""

from ironserve.roles.nvidia.deploy import deploy_nvidia

__all__ = ["deploy_nvidia"]
