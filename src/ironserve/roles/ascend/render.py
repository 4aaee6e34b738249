"""Pure helpers of roles/ascend: the planned ports of a node, the expected /etc/hccn.conf and
the rank table inputs. No I/O but reading the package's templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from ironserve.ascend.ranktable import ServerNpus
from ironserve.config.schema import Node
from ironserve.engines.base import NodeTarget
from ironserve.operations.hccn import PortSpec
from ironserve.operations.templates import package_loader

_ENV = jinja2.Environment(
    loader=package_loader("templates/ascend"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def port_specs(node: Node, tls: bool) -> list[PortSpec]:
    """One PortSpec per NPU that the inventory gives an address (npu_device_ips order).

    ``tls`` is the group's setting (the head's npu_tls): one value cluster-wide.
    """
    gateway = str(node.npu.gateway) if node.npu.gateway is not None else None
    return [
        PortSpec(npu=npu, address=str(ip), netmask=str(node.npu.netmask), gateway=gateway, tls=tls)
        for npu, ip in enumerate(node.npu.device_ips[: node.accelerator.count])
    ]


def render_hccn_conf(ports: list[PortSpec]) -> str:
    """The /etc/hccn.conf that hccn_tool leaves once ``ports`` are configured."""
    return _ENV.get_template("hccn.conf.j2").render(ports=ports)


def server_npus(target: NodeTarget, live: Mapping[int, Any]) -> ServerNpus:
    """The rank-table view of one planned node with its live HccnDeviceIps fact."""
    return ServerNpus(
        name=target.name,
        address=target.address,
        device_count=target.device_count,
        planned_ips=list(target.npu_device_ips),
        live=dict(live),
    )
