"""Facts preflight needs that ironserve.facts does not have: addresses per interface."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api.facts import FactBase


def parse_ip_addr(lines: list[str]) -> dict[str, list[str]]:
    """``ip -j addr`` -> {interface: [IPv4/IPv6 addresses]}; {} when the output is not JSON."""
    try:
        data = json.loads("".join(lines) or "[]")
    except json.JSONDecodeError:
        return {}
    out: dict[str, list[str]] = {}
    for link in data if isinstance(data, list) else []:
        name = link.get("ifname")
        if name:
            out[name] = [a["local"] for a in link.get("addr_info", []) if a.get("local")]
    return out


class InterfaceAddresses(FactBase[dict[str, list[str]]]):
    """Every network interface and its addresses, from ``ip -j addr``.

    .. code:: python

        {"lo": ["127.0.0.1"], "eth0": ["172.30.100.10"]}
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "ip"

    def command(self) -> str:
        return "ip -j addr 2>/dev/null || echo '[]'"

    @staticmethod
    def default() -> dict[str, list[str]]:
        return {}

    def process(self, output: list[str]) -> dict[str, list[str]]:
        return parse_ip_addr(output)
