"""Data keys of roles/fabric (role-prefixed; None = must be given)."""

DEFAULTS = {
    # Installed on nodes with InfiniBand/RoCE HCAs (network_ib_hcas, or Mellanox PCI functions).
    "fabric_packages": ["rdma-core", "infiniband-diags", "ibverbs-utils"],
    # Port state every HCA port must have.
    "fabric_port_state": "ACTIVE",
}
