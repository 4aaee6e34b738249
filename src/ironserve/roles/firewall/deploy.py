"""roles/firewall: ironserve's nftables table on every node (ruleset.py says what it allows).

Only ``table inet ironserve`` is managed; Docker's tables and any other are left alone. The
table is loaded atomically (``nft -f`` of a file that deletes and redefines it, checked with
``nft -c`` first) when its file changes or the kernel lost it, and a oneshot unit loads it at
boot before the network comes up. The SSH port this run came in on always stays open.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.context import host, state
from pyinfra.operations import files, server, systemd

from ironserve.facts.firewall import IronserveTableLoaded, SshServerPort
from ironserve.operations import apt
from ironserve.roles import FACT_TIMEOUT_S, plan_of
from ironserve.roles.firewall.defaults import DEFAULTS, FirewallData
from ironserve.roles.firewall.ruleset import (
    RULESET_PATH,
    UNIT,
    FirewallSpec,
    ruleset_text,
    spec_for,
    unit_text,
)
from ironserve.roles.monitoring.defaults import MonitoringData
from ironserve.roles.peers import group_peers, monitoring_server
from ironserve.roles.webui.defaults import WebuiData

UNIT_PATH = f"/etc/systemd/system/{UNIT}"


def host_spec(data: FirewallData, ssh_port: int | None) -> FirewallSpec:
    """This host's spec, from the run's Plan and the roles' data."""
    hp = plan_of(state, host)
    monitoring = MonitoringData.of(host)
    admin = None
    if monitoring_server(state, host) == host.name:
        admin = ((monitoring.monitoring_prometheus_port,), data.firewall_admin_cidrs)
    api = None
    if hp.launch.serves_api:
        ports = [hp.plan.endpoint.port]
        webui = WebuiData.of(host)
        if webui.webui_enabled:
            ports.append(webui.webui_port)
        api = (tuple(ports), data.serving_allowed_cidrs)
    ssh_ports = (*data.firewall_ssh_ports, *([ssh_port] if ssh_port else []))
    return spec_for(
        host.name,
        hp.group.name,
        group_peers(state, host),
        ssh=(ssh_ports, data.firewall_ssh_cidrs),
        api=api,
        admin=admin,
        monitoring=monitoring.monitoring_enabled,
    )


@deploy("Firewall", data_defaults=DEFAULTS)
def deploy_firewall() -> None:
    data = FirewallData.of(host)
    loaded = host.get_fact(IronserveTableLoaded, _timeout=FACT_TIMEOUT_S)
    if not data.firewall_enabled:
        if loaded:
            server.shell(
                name="Remove the firewall table", commands=["nft delete table inet ironserve"]
            )
        files.file(name="Remove the firewall unit", path=UNIT_PATH, present=False)
        files.file(name="Remove the firewall rules", path=RULESET_PATH, present=False)
        return
    spec = host_spec(data, host.get_fact(SshServerPort, _timeout=FACT_TIMEOUT_S))
    apt.packages(name="Install nftables", packages=["nftables"])
    files.directory(name="ironserve's folder", path="/etc/ironserve", mode="755", present=True)
    rules = files.put(
        name="Write the firewall rules",
        src=StringIO(ruleset_text(spec)),
        dest=RULESET_PATH,
        mode="600",
    )
    check_and_load = f"nft -c -f {RULESET_PATH} && nft -f {RULESET_PATH}"
    if not loaded:
        server.shell(name="Load the firewall table", commands=[check_and_load])
    elif rules.will_change:
        server.shell(
            name="Load the firewall table", commands=[check_and_load], _if=rules.did_change
        )
    unit = files.put(
        name="Write the firewall unit", src=StringIO(unit_text()), dest=UNIT_PATH, mode="644"
    )
    systemd.service(
        name="Load the firewall at boot",
        service=UNIT,
        running=True,
        enabled=True,
        daemon_reload=unit.will_change,
    )
