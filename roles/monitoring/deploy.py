"""roles/monitoring: node exporter on every node, dcgm-exporter on NVIDIA nodes or the Ascend
npu-exporter on Ascend nodes, and Prometheus (scrape targets and alert rules from the inventory's
Plans) plus the Grafana dashboard file on one node. Off unless ``monitoring_enabled``.

Containers carry a hash of their own `docker run` argv as a label: a container is (re)created only
when it is missing, stopped or its spec changed, so a second run changes nothing.
"""

from __future__ import annotations

import shlex
from io import StringIO
from typing import Any

from pyinfra import logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files, server

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.deploy.context import host_plans
from ironserve.errors import InputError
from ironserve.plan.plan import Plan
from roles.monitoring import render as r
from roles.monitoring.defaults import DEFAULTS
from roles.monitoring.facts import MonitoringContainers


def settings_of(data: Any) -> dict[str, Any]:
    return {key: data.get(key) for key in DEFAULTS}


def distinct_plans(state: Any) -> list[Plan]:
    try:
        plans = host_plans(state)
    except InputError as error:
        raise DeployError(f"the inventory is not valid:\n{error}") from error
    return list({p.plan.group: p.plan for p in plans.values()}.values())


def server_of(plans: list[Plan], chosen: str | None) -> str:
    """The node running Prometheus: ``monitoring_server``, else the first group's API node."""
    names = [n.node for p in plans for n in p.nodes]
    if chosen is not None:
        if chosen not in names:
            raise DeployError(f"monitoring_server: {chosen!r} is not a host of the inventory")
        return chosen
    return plans[0].endpoint.node


def _ensure(name: str, argv: list[str], running: dict[str, tuple[str, str]]) -> None:
    if running.get(name) == (r.spec_of(argv), "running"):
        return
    server.shell(
        name="Start a monitoring container",
        commands=[f"docker rm -f {name} >/dev/null 2>&1 || true", shlex.join(argv)],
    )


@deploy("Monitoring", data_defaults=DEFAULTS)
def deploy_monitoring() -> None:
    if not host.data.monitoring_enabled:
        logger.info(f"{host.name}: monitoring_enabled is off; nothing to do")
        return
    settings = settings_of(host.data)
    plans = distinct_plans(state)
    mine = host_plans(state)[host.name]
    vendor = ACCELERATORS[mine.plan.context.accelerator.id].vendor
    folder = settings["monitoring_dir"]
    files.directory(name="Monitoring folder", path=folder, mode="755", present=True)
    running = host.get_fact(MonitoringContainers)

    wanted = [(r.NODE_EXPORTER, r.node_exporter_argv(settings))]
    if vendor == "nvidia":
        files.put(
            name="DCGM exporter counters",
            src=StringIO(r.dcgm_counters()),
            dest=f"{folder}/dcgm-counters.csv",
            mode="644",
        )
        wanted.append((r.DCGM_EXPORTER, r.dcgm_exporter_argv(settings)))
    elif vendor == "ascend":
        devices = mine.node.accelerator.count
        wanted.append((r.NPU_EXPORTER, r.npu_exporter_argv(settings, devices)))

    if host.name == server_of(plans, settings["monitoring_server"]):
        config = r.prometheus_config(r.scrape_targets(plans, settings), settings)
        rules = r.alert_rules(plans, settings)
        for name, text in (
            ("prometheus.yml", config),
            ("alerts.yml", rules),
            ("grafana-dashboard.json", r.dashboard()),
        ):
            files.put(
                name="Monitoring configuration",
                src=StringIO(text),
                dest=f"{folder}/{name}",
                mode="644",
            )
        digest = r.config_digest(config, rules)
        wanted.append((r.PROMETHEUS, r.prometheus_argv(settings, digest)))

    for name, argv in wanted:
        _ensure(name, argv, running)
