"""The node's fabric, decided from parsed facts only (facts/host.py ``PciDevices``,
facts/nvidia.py ``NvSwitchPresent``, facts/rdma.py ``IbPorts``):

- HCAs: the ones the inventory names (``network_ib_hcas``: names such as ``mlx5_0`` or PCI
  slots), else one per Mellanox network function (Ethernet for RoCE, InfiniBand) on the bus;
- IB/RoCE ports: every port of those HCAs is ACTIVE and LinkUp (missing named HCAs too);
- fabric manager: wanted where NVSwitches are present (``nvidia_fabricmanager: auto``) or
  where the site forces it.

roles/fabric (install and port check), roles/nvidia (fabric manager) and ``ironserve health``
(fabric.ib_port, nvidia.fabric_manager) read these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ironserve.facts.rdma import IbPort

MELLANOX_VENDOR_ID = "15b3"
HCA_PCI_CLASSES = frozenset({"0200", "0207"})  # Ethernet controller (RoCE), InfiniBand
PORT_STATE = "ACTIVE"
PHYSICAL_STATE = "LinkUp"


def mellanox_hcas(pci: Iterable[Mapping[str, Any]]) -> list[str]:
    """PCI slots of the Mellanox network functions on the bus."""
    return [
        str(d["slot"])
        for d in pci
        if d.get("vendor_id") == MELLANOX_VENDOR_ID and d.get("class_id") in HCA_PCI_CLASSES
    ]


def node_hcas(configured: Sequence[str], pci: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """HCAs named by the inventory, else one entry per Mellanox network function on the bus
    (``pci`` None: lspci unknown, only the inventory's)."""
    if configured:
        return list(configured)
    return mellanox_hcas(pci or [])


def hca_names(hcas: Iterable[str]) -> list[str]:
    """The names (``mlx5_0``) among the HCAs, not the PCI slots."""
    return [ca for ca in hcas if ":" not in ca]


def node_ports(ports: Iterable[IbPort], hcas: Iterable[str]) -> list[IbPort]:
    """The ports of the named HCAs (all ports when the HCAs are PCI slots or none are named)."""
    named = hca_names(hcas)
    return [p for p in ports if not named or p["ca"] in named]


def port_problems(ports: Iterable[IbPort], hcas: Iterable[str]) -> list[str]:
    """What is wrong: a named HCA without ports, a port not ACTIVE / LinkUp. [] when all is well."""
    mine = node_ports(ports, hcas)
    present = {p["ca"] for p in mine}
    problems = [f"HCA {ca} not found" for ca in hca_names(hcas) if ca not in present]
    problems += [
        f"{p['ca']} port {p['port']} is {p['state']} ({p['physical_state']})"
        for p in mine
        if p.get("state") != PORT_STATE or p.get("physical_state") != PHYSICAL_STATE
    ]
    return problems


def slow_ports(ports: Sequence[IbPort], min_rate_gbps: float | None = None) -> list[str]:
    """Up ports below ``min_rate_gbps``, else below the fastest port of the same HCA type and
    link layer (a frontend 100G RoCE NIC is not a slow 400G IB port)."""
    fastest = fastest_rates(ports)
    return [
        f"{p['ca']} port {p['port']} at {p.get('rate_gbps') or 0:g} Gb/s"
        for p in ports
        if p.get("state") == PORT_STATE
        and p.get("physical_state") == PHYSICAL_STATE
        and (p.get("rate_gbps") or 0)
        < (min_rate_gbps or fastest[(p.get("ca_type"), p.get("link_layer"))])
    ]


def fastest_rates(ports: Iterable[IbPort]) -> dict[tuple[str | None, str | None], float]:
    fastest: dict[tuple[str | None, str | None], float] = {}
    for p in ports:
        kind = (p.get("ca_type"), p.get("link_layer"))
        fastest[kind] = max(fastest.get(kind, 0.0), p.get("rate_gbps") or 0.0)
    return fastest


def fabric_manager_wanted(setting: bool | str, nvswitch_present: bool | None) -> bool | None:
    """``nvidia_fabricmanager``: True / False force it; ``auto`` follows the NvSwitchPresent
    fact (None: the fact is unknown)."""
    if isinstance(setting, bool):
        return setting
    return nvswitch_present
