"""Monitoring (optional): exporters on every node, Prometheus with the Plan's scrape targets,
alert rules for the health FAIL conditions and the Grafana dashboard. Off unless the inventory
sets monitoring_enabled.

    pyinfra -y inventories/<site>.py deploys/monitoring.py
"""

from ironserve.roles.monitoring import deploy_monitoring

deploy_monitoring()
