"""Data keys of roles/firewall (role-prefixed, plus the serving group's public reach)."""

import ipaddress

from pydantic import field_validator

from ironserve.deploy.role_data import RoleData


class FirewallData(RoleData):
    # On by default: Ray's GCS and client ports run code for whoever reaches them, and the
    # ranks' rendezvous and the exporters have no authentication at all.
    firewall_enabled: bool = True
    # Who may reach the public API port (and Open WebUI's) of the group's API node.
    serving_allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    # Who may reach SSH (the port this run connects through is always kept open as well).
    firewall_ssh_cidrs: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    firewall_ssh_ports: tuple[int, ...] = (22,)
    # Who else may reach the admin ports (Prometheus) besides the group's nodes: none by
    # default (an SSH tunnel reaches them).
    firewall_admin_cidrs: tuple[str, ...] = ()

    @field_validator("serving_allowed_cidrs", "firewall_ssh_cidrs", "firewall_admin_cidrs")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each an address or a network (``10.0.0.0/8``, ``2001:db8::/32``), normalised."""
        return tuple(str(ipaddress.ip_network(v, strict=False)) for v in value)

    @field_validator("firewall_ssh_ports")
    @classmethod
    def _ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [p for p in value if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"not a TCP port: {bad}")
        return value


DEFAULTS = FirewallData.defaults()
