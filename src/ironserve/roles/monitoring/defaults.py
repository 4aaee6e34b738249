"""Data keys of roles/monitoring (role-prefixed; None = must be given or derived)."""

from ironserve.config.values import Duration, Flag, Fraction, HostName, Image, NodePath, Port
from ironserve.deploy.role_data import RoleData


class MonitoringData(RoleData):
    # Off by default: a site turns it on in its group data.
    monitoring_enabled: Flag = False
    # Inventory host running Prometheus; None = the head of the first serving group.
    monitoring_server: HostName | None = None
    # Images (pinned tags; mirror them for offline sites).
    monitoring_prometheus_image: Image = "prom/prometheus:v3.5.0"
    monitoring_node_exporter_image: Image = "prom/node-exporter:v1.9.1"
    monitoring_dcgm_exporter_image: Image = (
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04"
    )
    monitoring_npu_exporter_image: Image = (
        "swr.cn-south-1.myhuaweicloud.com/ascendhub/npu-exporter:v6.0.0"
    )
    monitoring_prometheus_port: Port = 9090
    monitoring_node_exporter_port: Port = 9100
    monitoring_dcgm_exporter_port: Port = 9400
    monitoring_npu_exporter_port: Port = 8082
    monitoring_scrape_interval: Duration = "15s"
    monitoring_retention: Duration = "15d"
    # Folder on the nodes for the rendered configuration.
    monitoring_dir: NodePath = "/etc/ironserve/monitoring"
    # Alert when a filesystem (/ or /data) has less than this fraction free. The KV-cache and
    # queue alerts take health's numbers (ironserve.rules.serving): no setting of their own.
    monitoring_disk_free_alert: Fraction = 0.05


DEFAULTS = MonitoringData.defaults()
