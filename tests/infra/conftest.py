"""The node-state suite (pytest-testinfra) against any pyinfra inventory.

    pytest tests/infra --inventory inventories/lab.py [--serving]

Each inventory host becomes a testinfra host over paramiko, built from the inventory's own ssh_*
data (hostname, port, user, key) with its host key checked against ``ssh_known_hosts_file`` when
the inventory names one. What each node should look like comes from the site's Plan (its vendor,
device count, serving group, containers, files) and the roles' data keys (packages, settings),
never from guessing. ``--serving`` also expects the serving state (secrets file, engine
containers, planned files). Without ``--inventory`` (or $IRONSERVE_INFRA_INVENTORY) every test
here is deselected: the default ``pytest tests`` run has no site to look at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
import testinfra

from ironserve.config.inventory import load_inventory
from ironserve.config.loader import build_cluster
from ironserve.config.role_keys import role_defaults
from ironserve.config.schema import Node, ServingGroup
from ironserve.engines.base import NodeLaunch
from ironserve.plan.plan import Plan, plan_group

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENV = "IRONSERVE_INFRA_INVENTORY"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ironserve node state")
    group.addoption("--inventory", default=None, help="pyinfra inventory of the site to check")
    group.addoption(
        "--serving", action="store_true", default=False, help="expect serving to be deployed"
    )


def _inventory(config: pytest.Config) -> str | None:
    return config.getoption("--inventory", default=None) or os.environ.get(ENV) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a site the suite is deselected, not skipped: tests/lab/test_infra.py runs it
    against a provisioned lab, so the default run still exercises every test here."""
    if _inventory(config):
        return
    ours = [i for i in items if Path(str(i.fspath)).resolve().is_relative_to(HERE)]
    if ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [i for i in items if i not in ours]


@dataclass(repr=False)
class Site:
    """One inventory host: its testinfra host, merged data with role defaults, and Plan."""

    name: str
    data: dict[str, Any]
    group: ServingGroup
    node: Node
    plan: Plan
    launch: NodeLaunch
    host: Any  # testinfra.host.Host

    def __repr__(self) -> str:  # assertion messages name the node, not its whole Plan
        return f"Site({self.name})"

    @property
    def vendor(self) -> str:
        from ironserve.catalog.accelerators import ACCELERATORS

        return ACCELERATORS[self.plan.context.accelerator.id].vendor


def _connect(data: dict[str, Any], name: str) -> Any:
    """A testinfra host whose paramiko client checks the inventory's known_hosts."""
    address = data.get("ssh_hostname") or name
    user = data.get("ssh_user") or "root"
    port = int(data.get("ssh_port") or 22)
    key = data.get("ssh_key")
    url = f"paramiko://{user}@{address}:{port}"
    if key:
        url += f"?ssh_identity_file={key}"
    host = testinfra.get_host(url)
    known_hosts = data.get("ssh_known_hosts_file")
    if known_hosts:
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            address,
            port=port,
            username=user,
            key_filename=key,
            look_for_keys=not key,
            allow_agent=not key,
            timeout=10,
        )
        host.backend.__dict__["client"] = client  # testinfra's cached client, pre-built
    return host


@pytest.fixture(scope="session")
def sites(request: pytest.FixtureRequest) -> dict[str, Site]:
    inventory = _inventory(request.config)
    assert inventory, "no inventory"
    records = load_inventory(inventory)
    cluster = build_cluster(records)
    defaults = role_defaults()
    out: dict[str, Site] = {}
    by_name = {r.name: r for r in records}
    for group in cluster.groups:
        plan = plan_group(group)
        for node in group.nodes:
            data = {**defaults, **by_name[node.name].data}
            out[node.name] = Site(
                node.name,
                data,
                group,
                node,
                plan,
                plan.node(node.name),
                _connect(data, node.name),
            )
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per inventory host for every test taking ``name``."""
    if "name" not in metafunc.fixturenames:
        return
    inventory = _inventory(metafunc.config)
    names = [r.name for r in load_inventory(inventory)] if inventory else ["no-inventory"]
    metafunc.parametrize("name", names)


@pytest.fixture
def site(sites: dict[str, Site], name: str) -> Site:
    return sites[name]


@pytest.fixture
def serving(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--serving", default=False))
