"""roles/fabric: RDMA user space on nodes with HCAs, and their ports ACTIVE."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any

from pyinfra.api.deploy import deploy
from pyinfra.api.operation import operation
from pyinfra.context import host, state
from pyinfra.facts.server import Which

from ironserve.facts.host import PciDevices
from ironserve.facts.rdma import IbPorts
from ironserve.operations import apt
from ironserve.roles import plan_of
from ironserve.roles.fabric.defaults import DEFAULTS

MELLANOX = "15b3"
NETWORK_CLASSES = ("0200", "0207")  # Ethernet (RoCE), InfiniBand


def node_hcas(configured: list[str], pci: Sequence[Mapping[str, Any]]) -> list[str]:
    """HCAs named by the inventory, else one entry per Mellanox network function on the bus."""
    if configured:
        return list(configured)
    return [
        d["slot"]
        for d in pci
        if d.get("vendor_id") == MELLANOX and d.get("class_id") in NETWORK_CLASSES
    ]


def port_problems(ports: Sequence[Mapping[str, Any]], hcas: list[str], expected: str) -> list[str]:
    """What is wrong with the ports: configured HCAs missing, ports not in ``expected`` state."""
    problems = []
    names = {p["ca"] for p in ports}
    problems += [f"HCA {ca} not found" for ca in hcas if not ca.count(":") and ca not in names]
    problems += [
        f"{p['ca']} port {p['port']} is {p['state']} ({p['physical_state']})"
        for p in ports
        if p.get("state") != expected
    ]
    return problems


REMEDY = (
    "check the cable and the switch port (ibstat, `ibportstate`), that a subnet manager "
    "runs on the fabric (InfiniBand), then run again"
)


@operation()
def ports_state(hcas: list[str], expected: str = "ACTIVE") -> Generator[str, None, None]:
    """Every HCA port in ``expected`` state: checked from the IbPorts fact when ibstat is there
    (no command), else by a command after the packages are installed (first run)."""
    if host.get_fact(Which, command="ibstat"):
        ports = host.get_fact(IbPorts)
        problems = port_problems(ports, hcas, expected)
        if not problems:
            host.noop(f"all HCA ports {expected}")
            return
        message = "; ".join(problems)
        yield f"echo {_quote(f'fabric: {message}. Remedy: {REMEDY}')} >&2; exit 1"
        return
    yield (
        f"bad=$(ibstat | awk '/^CA /{{ca=$2}} /State:/ && !/Physical/ {{ if ($2 != "
        f'"{expected.capitalize()}") print ca" "$2 }}\'); '
        f'if [ -n "$bad" ]; then echo "fabric: ports not {expected}: $bad. '
        f'Remedy: {REMEDY}" >&2; exit 1; fi'
    )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@deploy("Fabric", data_defaults=DEFAULTS)
def deploy_fabric() -> None:
    node = plan_of(state, host).node
    pci = host.get_fact(PciDevices)
    hcas = node_hcas(node.network.ib_hcas, pci)
    if not hcas:
        host.noop("no InfiniBand/RoCE HCAs: no RDMA packages")
        return
    apt.packages(name="Install the RDMA user space", packages=list(host.data.fabric_packages))
    ports_state(
        name="Check that every HCA port is up", hcas=hcas, expected=str(host.data.fabric_port_state)
    )
