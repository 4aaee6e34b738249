"""roles/monitoring: Prometheus with scrape targets from the inventory and Plan, exporters on the
nodes, alert rules for the health FAIL conditions, a Grafana dashboard (see deploy.py)."""

from ironserve.roles.monitoring.deploy import deploy_monitoring

__all__ = ["deploy_monitoring"]
