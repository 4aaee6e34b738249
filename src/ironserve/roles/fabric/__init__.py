"""roles/fabric: RDMA packages and HCA port state (see deploy.py)."""

from ironserve.roles.fabric.deploy import deploy_fabric

__all__ = ["deploy_fabric"]
