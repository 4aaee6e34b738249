"""roles/fabric: RDMA user space on nodes with HCAs, and their ports ACTIVE.

Which HCAs a node has and what a healthy port is are ironserve.rules.fabric's, the rules
``ironserve health`` (fabric.ib_port) applies too.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.api.operation import operation
from pyinfra.context import host, state
from pyinfra.facts.server import Which
from pyinfra.operations import python

from ironserve.facts.host import PciDevice, PciDevices
from ironserve.facts.rdma import IbPort, IbPorts
from ironserve.operations import apt
from ironserve.roles import FACT_TIMEOUT_S, plan_of
from ironserve.roles.fabric.defaults import DEFAULTS, FabricData
from ironserve.rules.fabric import PORT_STATE, node_hcas, port_problems

REMEDY = (
    "check the cable and the switch port (ibstat, `ibportstate`), that a subnet manager "
    "runs on the fabric (InfiniBand), then run again"
)


def failure_text(problems: list[str]) -> str:
    return f"fabric: {'; '.join(problems)}. Remedy: {REMEDY}"


@operation()
def ports_state(hcas: list[str]) -> Generator[str, None, None]:
    """Every port of the node's HCAs ACTIVE / LinkUp, from the IbPorts fact (ibstat is there):
    nothing to run when they are; else a command that fails this node with the problems."""
    ports: list[IbPort] = host.get_fact(IbPorts, _timeout=FACT_TIMEOUT_S)
    problems = port_problems(ports, hcas)
    if not problems:
        host.noop(f"all HCA ports {PORT_STATE}")
        return
    yield f"echo {shlex.quote(failure_text(problems))} >&2; exit 1"


def check_ports_now(hcas: list[str]) -> None:
    """First run (ibstat arrives with the packages): the same rule on the IbPorts fact read
    after the install; a problem fails this node."""
    ports: list[IbPort] = host.get_fact(IbPorts, _timeout=FACT_TIMEOUT_S)
    problems = port_problems(ports, hcas)
    if problems:
        text = failure_text(problems)
        host.log_styled(text, fg="red")
        raise OperationError(text)


@deploy("Fabric", data_defaults=DEFAULTS)
def deploy_fabric() -> None:
    node = plan_of(state, host).node
    pci: list[PciDevice] = host.get_fact(PciDevices, _timeout=FACT_TIMEOUT_S)
    hcas = node_hcas(node.network.ib_hcas, pci)
    if not hcas:
        host.noop("no InfiniBand/RoCE HCAs: no RDMA packages")
        return
    packages = FabricData.of(host).fabric_packages
    apt.packages(name="Install the RDMA user space", packages=packages)
    if host.get_fact(Which, command="ibstat", _timeout=FACT_TIMEOUT_S):
        ports_state(name="Check that every HCA port is up", hcas=hcas)
    else:
        python.call(
            name="Check that every HCA port is up (after the install)",
            function=check_ports_now,
            hcas=hcas,
        )
