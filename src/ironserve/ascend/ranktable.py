"""rank_table_file.json (format 1.0, Atlas A2) from the LIVE ``hccn_tool -i N -ip -g`` facts.

Pure: no I/O. The MindIE builder renders the same table from the inventory's ``npu_device_ips``
(engines/mindie.py); this module renders it from what the NPUs actually carry, and refuses what
would break HCCL at launch (anchors_mission.md section 9, pitfall 14): an NPU with no address,
``-.-.-.-`` (hccn not configured), anything that is not one IPv4 address, or an address that
differs from the inventory's. When hccn is configured as planned both tables are byte-equal.

Format: every value a string; ``device_id`` the physical NPU index; ``rank_id`` global and
contiguous per server, in plan order (head first, so rank 0 is the master).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address
from typing import Any

RANK_TABLE_VERSION = "1.0"  # Atlas A2 (910B); A3 SuperPoD needs 1.2
UNCONFIGURED = "-.-.-.-"


class RankTableError(ValueError):
    """The live NPU addresses cannot make a rank table; one line per host and NPU at fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "cannot build the rank table from the live hccn_tool facts:\n"
            + "\n".join(f"  {p}" for p in problems)
        )


@dataclass(frozen=True)
class ServerNpus:
    """One server of the group as the rank table needs it."""

    name: str  # the inventory host, for messages
    address: str  # server_id and container_ip (the node's address; containers use --net=host)
    device_count: int
    planned_ips: Sequence[str] = ()  # the inventory's npu_device_ips
    # HccnDeviceIps fact: {npu: {"ipaddr": "...", "netmask": "..."}}
    live: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)


def _check_ip(server: ServerNpus, npu: int, problems: list[str]) -> str | None:
    remedy = "configure it with `hccn_tool -i N -ip -s address A netmask M` (roles/ascend)"
    entry = server.live.get(npu)
    value = entry.get("ipaddr") if entry else None
    where = f"{server.name}: NPU {npu}"
    if value is None or str(value).strip() == "":
        problems.append(f"{where}: no device IP from `hccn_tool -i {npu} -ip -g`; {remedy}")
        return None
    ip = str(value).strip()
    if ip == UNCONFIGURED:
        problems.append(f"{where}: device IP is {UNCONFIGURED} (hccn not configured); {remedy}")
        return None
    try:
        IPv4Address(ip)
    except (AddressValueError, ValueError):
        problems.append(f"{where}: device IP {ip!r} is not an IPv4 address; {remedy}")
        return None
    planned = list(server.planned_ips)
    if npu < len(planned) and planned[npu] != ip:
        problems.append(
            f"{where}: device IP {ip} differs from the inventory's npu_device_ips[{npu}] "
            f"{planned[npu]}; re-run roles/ascend or fix the inventory"
        )
        return None
    if npu >= len(planned):
        problems.append(f"{where}: the inventory has no npu_device_ips[{npu}]")
        return None
    return ip


def build_rank_table(servers: Sequence[ServerNpus]) -> dict[str, Any]:
    """The rank table of ``servers`` (plan order), or RankTableError naming every bad NPU."""
    problems: list[str] = []
    server_list: list[dict[str, Any]] = []
    rank = 0
    for server in servers:
        devices = []
        for npu in range(server.device_count):
            ip = _check_ip(server, npu, problems)
            devices.append({"device_id": str(npu), "device_ip": ip or "", "rank_id": str(rank)})
            rank += 1
        server_list.append(
            {"server_id": server.address, "container_ip": server.address, "device": devices}
        )
    if problems:
        raise RankTableError(problems)
    return {
        "version": RANK_TABLE_VERSION,
        "server_count": str(len(servers)),
        "status": "completed",
        "server_list": server_list,
    }


def render_rank_table(table: Mapping[str, Any]) -> str:
    """The file's text, laid out as the MindIE builder writes it (2-space JSON, final newline)."""
    return json.dumps(table, indent=2, sort_keys=False) + "\n"
