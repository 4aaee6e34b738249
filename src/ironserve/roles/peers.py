"""Who counts as inside a serving group on the network: its nodes and the monitoring server.

The firewall opens the engine's internal ports to exactly these addresses, and the gateway lets
them read ``/metrics`` without the key (Prometheus scrapes it from the monitoring server).
"""

from __future__ import annotations

from typing import Any

from ironserve.deploy.context import host_plans
from ironserve.roles import plan_of
from ironserve.roles.monitoring.defaults import MonitoringData
from ironserve.roles.monitoring.deploy import distinct_plans, server_of


def monitoring_server(state: Any, host: Any) -> str | None:
    """The inventory name of the node running Prometheus, or None when monitoring is off."""
    monitoring = MonitoringData.of(host)
    if not monitoring.monitoring_enabled:
        return None
    return server_of(distinct_plans(state), monitoring.monitoring_server)


def group_peers(state: Any, host: Any) -> list[str]:
    """The addresses of ``host``'s group's nodes, then the monitoring server's (if any)."""
    peers = [str(n.node.ip) for n in plan_of(state, host).group.nodes]
    chosen = monitoring_server(state, host)
    if chosen is not None:
        peers.append(str(host_plans(state)[chosen].node.node.ip))
    return list(dict.fromkeys(peers))
