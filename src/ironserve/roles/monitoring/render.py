"""Pure renderers of roles/monitoring: scrape targets from the Plans, prometheus.yml, the alert
rules, the Grafana dashboard, the DCGM counters, and each container's `docker run` argv.

Everything a node receives comes from here, so golden tests pin it (tests/golden/monitoring/).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.operations.templates import render
from ironserve.plan.plan import Plan
from ironserve.rules import serving

PROMETHEUS = "ironserve-prometheus"
NODE_EXPORTER = "ironserve-node-exporter"
DCGM_EXPORTER = "ironserve-dcgm-exporter"
NPU_EXPORTER = "ironserve-npu-exporter"
SPEC_LABEL = "ironserve.monitoring.spec"  # sha256 of a container's argv: changed -> replaced


@dataclass(frozen=True)
class Target:
    job: str  # engine, node, dcgm, npu
    address: str  # host:port
    node: str
    group: str


def scrape_targets(plans: Iterable[Plan], settings: Mapping[str, Any]) -> list[Target]:
    """Engine /metrics on each group's API node, node exporter on every node, dcgm-exporter on
    NVIDIA nodes, the Ascend npu-exporter on Ascend nodes (Vastai: node exporter only)."""
    targets = []
    for plan in plans:
        vendor = ACCELERATORS[plan.context.accelerator.id].vendor
        api = plan.endpoint
        targets.append(Target("engine", f"{api.address}:{api.port}", api.node, plan.group))
        for node in plan.nodes:
            at = node.address
            port = settings["monitoring_node_exporter_port"]
            targets.append(Target("node", f"{at}:{port}", node.node, plan.group))
            if vendor == "nvidia":
                port = settings["monitoring_dcgm_exporter_port"]
                targets.append(Target("dcgm", f"{at}:{port}", node.node, plan.group))
            elif vendor == "ascend":
                port = settings["monitoring_npu_exporter_port"]
                targets.append(Target("npu", f"{at}:{port}", node.node, plan.group))
    return targets


def prometheus_config(targets: list[Target], settings: Mapping[str, Any]) -> str:
    jobs: dict[str, list[Target]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append(target)
    return render(
        "monitoring",
        "prometheus.yml",
        interval=settings["monitoring_scrape_interval"],
        jobs=jobs,
    )


def alert_rules(plans: Iterable[Plan], settings: Mapping[str, Any]) -> str:
    """Alerts for the FAIL conditions of `ironserve health`, each naming its runbook; the
    KV-cache and queue alerts are health's serving.metrics rule (ironserve.rules.serving) under
    vLLM's and SGLang's metric names."""
    groups = []
    for plan in plans:
        accelerator = ACCELERATORS[plan.context.accelerator.id]
        groups.append(
            {
                "name": plan.group,
                "vendor": accelerator.vendor,
                "devices": plan.context.nodes[0].device_count,
                "nodes": len(plan.nodes),
            }
        )
    return render(
        "monitoring",
        "alerts.yml",
        groups=groups,
        serving_alerts=serving.alert_exprs("engine"),
        disk_free_alert=settings["monitoring_disk_free_alert"],
    )


# (title, PromQL, unit): the serving dashboard, vLLM's metric names (current and deprecated).
DASHBOARD_PANELS: tuple[tuple[str, str, str], ...] = (
    ("Requests running", 'sum by (instance) (vllm:num_requests_running{job="engine"})', "short"),
    ("Requests waiting", 'sum by (instance) (vllm:num_requests_waiting{job="engine"})', "short"),
    (
        "KV cache usage",
        'max by (instance) (vllm:kv_cache_usage_perc{job="engine"} '
        'or vllm:gpu_cache_usage_perc{job="engine"})',
        "percentunit",
    ),
    (
        "Generation throughput (tok/s)",
        'sum by (instance) (rate(vllm:generation_tokens_total{job="engine"}[1m]))',
        "short",
    ),
    (
        "Prompt throughput (tok/s)",
        'sum by (instance) (rate(vllm:prompt_tokens_total{job="engine"}[1m]))',
        "short",
    ),
    (
        "Time to first token p50 / p99",
        "histogram_quantile(0.99, sum by (le) "
        '(rate(vllm:time_to_first_token_seconds_bucket{job="engine"}[5m])))',
        "s",
    ),
    (
        "End-to-end latency p99",
        "histogram_quantile(0.99, sum by (le) "
        '(rate(vllm:e2e_request_latency_seconds_bucket{job="engine"}[5m])))',
        "s",
    ),
    (
        "Successful requests (req/s)",
        'sum by (finished_reason) (rate(vllm:request_success_total{job="engine"}[1m]))',
        "reqps",
    ),
    ("GPU utilisation", 'avg by (node) (DCGM_FI_DEV_GPU_UTIL{job="dcgm"})', "percent"),
    ("NPU health (1 = OK)", 'min by (node) (npu_chip_info_health_status{job="npu"})', "short"),
)


def dashboard(title: str = "ironserve: serving") -> str:
    panels = [
        {"id": i + 1, "title": t, "expr": e, "unit": u, "x": (i % 2) * 12, "y": (i // 2) * 8}
        for i, (t, e, u) in enumerate(DASHBOARD_PANELS)
    ]
    text = render("monitoring", "dashboard.json", title=title, panels=panels)
    return json.dumps(json.loads(text), indent=2) + "\n"  # validated and normalised


def dcgm_counters() -> str:
    return render("monitoring", "dcgm-counters.csv")


def server_files(plans: list[Plan], settings: Mapping[str, Any]) -> dict[str, str]:
    """What the Prometheus node gets in ``monitoring_dir``, by file name: the scrape
    configuration and alert rules from the Plans, and the dashboard."""
    return {
        "prometheus.yml": prometheus_config(scrape_targets(plans, settings), settings),
        "alerts.yml": alert_rules(plans, settings),
        "grafana-dashboard.json": dashboard(),
    }


def _spec(name: str, argv: list[str]) -> list[str]:
    """``argv`` with its own hash as a label: a changed spec is a changed label."""
    digest = hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:16]
    return ["docker", "run", "-d", "--name", name, "--label", f"{SPEC_LABEL}={digest}", *argv]


def node_exporter_argv(settings: Mapping[str, Any]) -> list[str]:
    port = settings["monitoring_node_exporter_port"]
    return _spec(
        NODE_EXPORTER,
        [
            "--restart", "unless-stopped", "--network", "host", "--pid", "host",
            "-v", "/:/host:ro,rslave",
            settings["monitoring_node_exporter_image"],
            "--path.rootfs=/host", f"--web.listen-address=:{port}",
        ],
    )  # fmt: skip


def dcgm_exporter_argv(settings: Mapping[str, Any]) -> list[str]:
    port = settings["monitoring_dcgm_exporter_port"]
    counters = f"{settings['monitoring_dir']}/dcgm-counters.csv"
    return _spec(
        DCGM_EXPORTER,
        [
            "--restart", "unless-stopped", "--network", "host", "--gpus", "all",
            "--cap-add", "SYS_ADMIN",
            "-v", f"{counters}:/etc/dcgm-exporter/ironserve-counters.csv:ro",
            settings["monitoring_dcgm_exporter_image"],
            "dcgm-exporter", "-f", "/etc/dcgm-exporter/ironserve-counters.csv",
            "-a", f":{port}",
        ],
    )  # fmt: skip


def npu_exporter_argv(settings: Mapping[str, Any], devices: int) -> list[str]:
    port = settings["monitoring_npu_exporter_port"]
    device_args = [arg for i in range(devices) for arg in ("--device", f"/dev/davinci{i}")]
    return _spec(
        NPU_EXPORTER,
        [
            "--restart", "unless-stopped", "--network", "host",
            *device_args,
            "--device", "/dev/davinci_manager", "--device", "/dev/devmm_svm",
            "--device", "/dev/hisi_hdc",
            "-v", "/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro",
            "-v", "/usr/local/dcmi:/usr/local/dcmi:ro",
            settings["monitoring_npu_exporter_image"],
            "npu-exporter", "-ip=0.0.0.0", f"-port={port}",
        ],
    )  # fmt: skip


def prometheus_argv(settings: Mapping[str, Any], config_digest: str) -> list[str]:
    """Prometheus on the host network; the configuration's digest is part of the spec, so a new
    configuration replaces the container (no reload endpoint to guard)."""
    folder = settings["monitoring_dir"]
    port = settings["monitoring_prometheus_port"]
    return _spec(
        PROMETHEUS,
        [
            "--restart", "unless-stopped", "--network", "host",
            "--label", f"ironserve.monitoring.config={config_digest}",
            "-v", f"{folder}/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
            "-v", f"{folder}/alerts.yml:/etc/prometheus/alerts.yml:ro",
            "-v", "ironserve-prometheus-data:/prometheus",
            settings["monitoring_prometheus_image"],
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={settings['monitoring_retention']}",
            f"--web.listen-address=:{port}",
        ],
    )  # fmt: skip


def config_digest(*texts: str) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


def spec_of(argv: list[str]) -> str:
    """The spec label value inside an argv made by this module."""
    label = next(a for a in argv if a.startswith(f"{SPEC_LABEL}="))
    return label.split("=", 1)[1]
