"""The node's nftables table, from the Plan: pure, no I/O.

Inbound traffic is refused unless it is a reply, comes from this node's own containers, from a
node of the same serving group (or the monitoring server), or is addressed to a public port from
an allowed network: SSH, the group's API port and Open WebUI on the API node, and the admin ports
(Prometheus) for ``firewall_admin_cidrs``. Whatever the engine opens between the nodes (Ray's
GCS, client, object manager and worker ports, NCCL/Gloo/HCCL, the ranks' rendezvous, the
exporters) is thereby reachable from the group and nowhere else, whichever port it picks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ironserve.operations.templates import render

RULESET_PATH = "/etc/ironserve/firewall.nft"
UNIT = "ironserve-firewall.service"
FAMILIES = {"ip": 4, "ip6": 6}


@dataclass(frozen=True)
class PublicPorts:
    """TCP ``ports`` open to ``networks`` (``name`` names the nftables sets)."""

    name: str
    ports: tuple[int, ...]
    networks: tuple[str, ...]
    purpose: str


@dataclass(frozen=True)
class FirewallSpec:
    node: str
    group: str
    peers: tuple[str, ...]  # the group's node addresses, and the monitoring server's
    monitoring: bool
    public: tuple[PublicPorts, ...]

    def _networks(self, name: str, family: str) -> list[str]:
        listed = self.peers if name == "peers" else self._public(name).networks
        parsed = [ipaddress.ip_network(a, strict=False) for a in listed]
        # nftables refuses overlapping intervals in one set: merge them first.
        if FAMILIES[family] == 4:
            v4 = [n for n in parsed if isinstance(n, ipaddress.IPv4Network)]
            return [str(n) for n in ipaddress.collapse_addresses(v4)]
        v6 = [n for n in parsed if isinstance(n, ipaddress.IPv6Network)]
        return [str(n) for n in ipaddress.collapse_addresses(v6)]

    def _public(self, name: str) -> PublicPorts:
        return next(r for r in self.public if r.name == name)

    def has(self, name: str, family: str) -> bool:
        return bool(self._networks(name, family))

    def sets(self) -> list[tuple[str, str, list[str]]]:
        """(set name, nftables address type, elements) of every non-empty set."""
        names = ["peers", *(r.name for r in self.public)]
        return [
            (f"{name}_{family}", "ipv4" if family == "ip" else "ipv6", self._networks(name, family))
            for name in names
            for family in FAMILIES
            if self.has(name, family)
        ]


def spec_for(
    node: str,
    group: str,
    peers: Iterable[str],
    *,
    ssh: tuple[tuple[int, ...], tuple[str, ...]],
    api: tuple[tuple[int, ...], tuple[str, ...]] | None,
    admin: tuple[tuple[int, ...], tuple[str, ...]] | None,
    monitoring: bool,
) -> FirewallSpec:
    """One node's spec: ``api`` on the group's API node only, ``admin`` on the monitoring
    server only (None elsewhere); each is (ports, networks)."""
    public = [PublicPorts("ssh", tuple(sorted(set(ssh[0]))), ssh[1], "SSH")]
    if api is not None:
        public.append(PublicPorts("api", tuple(sorted(set(api[0]))), api[1], "serving API"))
    if admin is not None and admin[1]:
        public.append(PublicPorts("admin", tuple(sorted(set(admin[0]))), admin[1], "admin"))
    return FirewallSpec(node, group, tuple(dict.fromkeys(peers)), monitoring, tuple(public))


def ruleset_text(spec: FirewallSpec) -> str:
    return render("firewall", "ironserve.nft", spec=spec)


def unit_text() -> str:
    return render("firewall", "ironserve-firewall.service", path=RULESET_PATH)
