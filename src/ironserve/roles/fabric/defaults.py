"""Data keys of roles/fabric (role-prefixed; None = must be given).

The port state every HCA port must reach is a rule, not a setting: ironserve.rules.fabric.
"""

from pydantic import Field

from ironserve.config.values import PackageName
from ironserve.deploy.role_data import RoleData


class FabricData(RoleData):
    # Installed on nodes with InfiniBand/RoCE HCAs (network_ib_hcas, or Mellanox PCI functions).
    fabric_packages: list[PackageName] = Field(
        default_factory=lambda: ["rdma-core", "infiniband-diags", "ibverbs-utils"]
    )


DEFAULTS = FabricData.defaults()
