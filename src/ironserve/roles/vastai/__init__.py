"""Vastai VA16 nodes: IOMMU off, the driver, the devices present."""

from ironserve.roles.vastai.deploy import deploy_vastai

__all__ = ["deploy_vastai"]
