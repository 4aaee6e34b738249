"""``hccn_tool`` configuration of one Ascend NPU's RoCE (parameter-plane) port, idempotently.

The desired state (address/netmask, netdetect and gateway, TLS switch) is compared with the live
state read through facts -- ``hccn_tool -i N -ip -g`` (HccnDeviceIps), ``-tls -g`` (HccnTls) and
``/etc/hccn.conf`` (HccnConf: netdetect and gateway, which ``hccn_tool`` writes there) -- and
only the ``hccn_tool ... -s`` commands that close the gap are yielded; nothing to do is a noop.

``port_commands`` is the pure part (facts in, commands out) that the operation and the rank-table
logic of roles/ascend share.

.. code:: python

    hccn.port(name="Configure an NPU RoCE port", npu=0, address="10.197.91.10",
              netmask="255.255.255.0", gateway="10.197.91.254", tls=False, npu_count=8)
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

from pyinfra.api.command import StringCommand
from pyinfra.api.operation import operation
from pyinfra.context import host

from ironserve.facts.ascend import HCCN_TOOL_FALLBACK, HccnConf, HccnDeviceIps, HccnTls

#: The driver installs hccn_tool here; the full path works before it is on any PATH.
HCCN_TOOL = HCCN_TOOL_FALLBACK


@dataclass(frozen=True)
class PortSpec:
    """The planned configuration of one NPU port."""

    npu: int
    address: str
    netmask: str
    gateway: str | None = None  # also the netdetect address
    tls: bool = False


def port_commands(
    spec: PortSpec,
    live_ip: Mapping[str, Any] | None,
    live_tls: Mapping[str, Any] | None,
    live_conf: Mapping[str, Any] | None,
    tool: str = HCCN_TOOL,
) -> list[list[str]]:
    """The ``hccn_tool`` argv lists that bring NPU ``spec.npu`` from the live state to ``spec``.

    + live_ip: this NPU's entry of HccnDeviceIps (``{"ipaddr", "netmask"}``), or None
    + live_tls: this NPU's entry of HccnTls (``{"enabled", ...}``), or None
    + live_conf: this NPU's entry of HccnConf (``{"netdetect", "gateway", ...}``), or None
    """
    dev = ["-i", str(spec.npu)]
    ip = dict(live_ip or {})
    tls = dict(live_tls or {})
    conf = dict(live_conf or {})
    commands: list[list[str]] = []
    if ip.get("ipaddr") != spec.address or ip.get("netmask") != spec.netmask:
        commands.append([tool, *dev, "-ip", "-s", "address", spec.address, "netmask", spec.netmask])
    if spec.gateway is not None:
        if conf.get("netdetect") != spec.gateway:
            commands.append([tool, *dev, "-netdetect", "-s", "address", spec.gateway])
        if conf.get("gateway") != spec.gateway:
            commands.append([tool, *dev, "-gateway", "-s", "gateway", spec.gateway])
    if tls.get("enabled") is not spec.tls:
        commands.append([tool, *dev, "-tls", "-s", "enable", "1" if spec.tls else "0"])
    return commands


def node_commands(
    specs: list[PortSpec],
    ips: Mapping[int, Any],
    tls: Mapping[int, Any],
    conf: Mapping[int, Any],
) -> list[list[str]]:
    """Every command that the ports of one node still need (empty: configured as planned)."""
    ips, tls, conf = dict(ips), dict(tls), dict(conf)  # FakeFact-safe (no __bool__/__len__)
    return [
        command
        for spec in specs
        for command in port_commands(spec, ips.get(spec.npu), tls.get(spec.npu), conf.get(spec.npu))
    ]


@operation()
def port(
    npu: int,
    address: str,
    netmask: str,
    gateway: str | None = None,
    tls: bool = False,
    npu_count: int = 8,
) -> Generator[StringCommand, None, None]:
    """
    Configure one NPU's RoCE port with ``hccn_tool``: address and netmask, netdetect and gateway
    (when ``gateway`` is given), and the TLS switch (the same on every node of a cluster).

    + npu: the NPU (physical device id)
    + address: the port's IPv4 address
    + netmask: its netmask
    + gateway: gateway and netdetect address (None: left alone)
    + tls: HCCL TLS on or off
    + npu_count: NPUs on the node (the facts read them all)
    """
    if not 0 <= npu < npu_count:
        raise ValueError(f"npu {npu} is outside 0..{npu_count - 1}")
    spec = PortSpec(npu=npu, address=address, netmask=netmask, gateway=gateway, tls=tls)
    live_ips = host.get_fact(HccnDeviceIps, npu_count=npu_count)
    live_tls = host.get_fact(HccnTls, npu_count=npu_count)
    live_conf = host.get_fact(HccnConf)
    ips, tls_state, conf = dict(live_ips), dict(live_tls), dict(live_conf)
    commands = port_commands(spec, ips.get(npu), tls_state.get(npu), conf.get(npu))
    if not commands:
        host.noop(f"NPU {npu} port is configured as planned")
        return
    for argv in commands:
        yield StringCommand(*argv)
