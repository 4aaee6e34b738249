"""roles/firewall: the engine's internal ports reachable from the serving group only."""

from ironserve.roles.firewall.deploy import deploy_firewall

__all__ = ["deploy_firewall"]
