"""Data keys of roles/monitoring (role-prefixed; None = must be given or derived)."""

from ironserve.deploy.role_data import RoleData


class MonitoringData(RoleData):
    # Off by default: a site turns it on in its group data.
    monitoring_enabled: bool = False
    # Inventory host running Prometheus; None = the head of the first serving group.
    monitoring_server: str | None = None
    # Images (pinned tags; mirror them for offline sites).
    monitoring_prometheus_image: str = "prom/prometheus:v3.5.0"
    monitoring_node_exporter_image: str = "prom/node-exporter:v1.9.1"
    monitoring_dcgm_exporter_image: str = "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04"
    monitoring_npu_exporter_image: str = (
        "swr.cn-south-1.myhuaweicloud.com/ascendhub/npu-exporter:v6.0.0"
    )
    monitoring_prometheus_port: int = 9090
    monitoring_node_exporter_port: int = 9100
    monitoring_dcgm_exporter_port: int = 9400
    monitoring_npu_exporter_port: int = 8082
    monitoring_scrape_interval: str = "15s"
    monitoring_retention: str = "15d"
    # Folder on the nodes for the rendered configuration.
    monitoring_dir: str = "/etc/ironserve/monitoring"
    # Alert when a filesystem (/ or /data) has less than this fraction free. The KV-cache and
    # queue alerts take health's numbers (ironserve.rules.serving): no setting of their own.
    monitoring_disk_free_alert: float = 0.05


DEFAULTS = MonitoringData.defaults()
