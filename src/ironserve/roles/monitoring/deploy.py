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
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files, server

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.deploy.context import host_plans
from ironserve.errors import InputError
from ironserve.plan.plan import Plan
from ironserve.roles import FACT_TIMEOUT_S
from ironserve.roles.monitoring import render as r
from ironserve.roles.monitoring.defaults import DEFAULTS, MonitoringData
from ironserve.roles.monitoring.facts import MonitoringContainers


def settings_of(host: Any) -> dict[str, Any]:
    """The host's monitoring settings, typed (its inventory values, else the defaults)."""
    return MonitoringData.of(host).model_dump()


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
        commands=[
            f"{shlex.join(['docker', 'rm', '-f', name])} >/dev/null 2>&1 || true",
            shlex.join(argv),
        ],
    )


@deploy("Monitoring", data_defaults=DEFAULTS)
def deploy_monitoring() -> None:
    if not host.data.monitoring_enabled:
        logger.info(f"{host.name}: monitoring_enabled is off; nothing to do")
        return
    settings = settings_of(host)
    plans = distinct_plans(state)
    mine = host_plans(state)[host.name]
    vendor = ACCELERATORS[mine.plan.context.accelerator.id].vendor
    folder = settings["monitoring_dir"]
    files.directory(name="Monitoring folder", path=folder, mode="755", present=True)
    running = host.get_fact(MonitoringContainers, _timeout=FACT_TIMEOUT_S)

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
        texts = r.server_files(plans, settings)
        for name, text in texts.items():
            files.put(
                name="Monitoring configuration",
                src=StringIO(text),
                dest=f"{folder}/{name}",
                mode="644",
            )
        digest = r.config_digest(texts["prometheus.yml"], texts["alerts.yml"])
        wanted.append((r.PROMETHEUS, r.prometheus_argv(settings, digest)))

    for name, argv in wanted:
        _ensure(name, argv, running)
