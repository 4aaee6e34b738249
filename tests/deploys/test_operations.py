"""ironserve.operations: the pure parts (merge, versions, dpkg selections) and each operation on
an ``@fake`` host."""

from __future__ import annotations

import pytest

from ironserve.operations.apt import (
    Selection,
    missing_packages,
    parse_selections,
    update_command,
)
from ironserve.operations.apt_versions import upstream_version
from ironserve.operations.docker import merge_daemon_config, nvidia_runtime_configured
from ironserve.operations.nvidia import fabricmanager_matches
from ironserve.roles.fabric import deploy_fabric
from ironserve.rules.fabric import node_hcas, port_problems
from tests.deploys import nvidia_node as node
from tests.deploys.conftest import FakeRun
from tests.deploys.test_provision_roles import HOST, operation_commands, run


def test_upstream_version() -> None:
    assert upstream_version("580.95.05-0ubuntu0.24.04.1") == "580.95.05"
    assert upstream_version("1:4.4.2-1") == "4.4.2"
    assert upstream_version("580.95.05") == "580.95.05"


def test_parse_selections_reads_holds_and_removed_packages() -> None:
    got = parse_selections(
        ["a\t1.0-1\tii \tinstall", "b\t2.0-1\thi \thold", "c\t3.0\trc \tdeinstall", "junk"]
    )
    assert got == {
        "a": Selection(version="1.0-1", installed=True, held=False),
        "b": Selection(version="2.0-1", installed=True, held=True),
        "c": Selection(version="3.0", installed=False, held=False),
    }


def test_missing_packages_honours_pins() -> None:
    have = parse_selections(["a\t1.0-1\tii \tinstall", "c\t3.0\trc \tdeinstall"])
    assert missing_packages(["a", "a=1.0-1", "a=2.0-1", "b", "c"], have) == ["a=2.0-1", "b", "c"]


def test_update_limited_to_one_source_list() -> None:
    assert update_command(None) == "apt-get update -q"
    assert "Dir::Etc::sourceparts=-" in update_command("/etc/apt/sources.list.d/x.list")


@pytest.mark.parametrize(
    ("fm", "held", "ok"),
    [("580.95.05-1", True, True), ("580.95.05-1", False, False), ("580.82.07-1", True, False)],
)
def test_fabricmanager_must_match_the_driver_and_be_held(fm: str, held: bool, ok: bool) -> None:
    selections = {
        "drv": Selection(version="580.95.05-0ubuntu0.24.04.1", installed=True, held=True),
        "fm": Selection(version=fm, installed=True, held=held),
    }
    assert fabricmanager_matches(selections, "drv", "fm") is ok
    assert not fabricmanager_matches({}, "drv", "fm")


def test_merge_daemon_config() -> None:
    current = {"log-opts": {"max-size": "10m", "labels": "a"}, "dns": ["1.1.1.1"], "x": 1}
    wanted = {"log-opts": {"max-size": "100m"}, "dns": ["1.1.1.1", "8.8.8.8"], "y": True}
    assert merge_daemon_config(current, wanted) == {
        "log-opts": {"max-size": "100m", "labels": "a"},
        "dns": ["1.1.1.1", "8.8.8.8"],
        "x": 1,
        "y": True,
    }
    assert current["log-opts"] == {"max-size": "10m", "labels": "a"}  # not mutated


def test_nvidia_runtime_check() -> None:
    runtime = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    assert not nvidia_runtime_configured({})
    assert not nvidia_runtime_configured(runtime)
    assert nvidia_runtime_configured(runtime, set_as_default=False)
    assert nvidia_runtime_configured({**runtime, "default-runtime": "nvidia"})


def test_hcas_from_inventory_or_pci() -> None:
    pci = [{"slot": "0000:1a:00.0", "vendor_id": "15b3", "class_id": "0207"}]
    assert node_hcas(["mlx5_0"], pci) == ["mlx5_0"]
    assert node_hcas([], pci) == ["0000:1a:00.0"]
    assert node_hcas([], []) == []


def test_port_problems_name_the_port() -> None:
    ports = [
        {"ca": "mlx5_0", "port": 1, "state": "ACTIVE", "physical_state": "LinkUp"},
        {"ca": "mlx5_1", "port": 1, "state": "DOWN", "physical_state": "Disabled"},
    ]
    assert port_problems(ports, ["mlx5_0", "mlx5_1", "mlx5_9"]) == [
        "HCA mlx5_9 not found",
        "mlx5_1 port 1 is DOWN (Disabled)",
    ]


def test_fabric_skips_nodes_without_hcas() -> None:
    pci = [line for line in node.pci_lines() if "15b3" not in line]
    assert operation_commands(run(False, deploy=deploy_fabric, **{"lspci -Dnnmm": pci})) == []


def test_fabric_port_down_fails_with_remedy() -> None:
    # On a node, this command fails the host (exit 1); the @fake connector only records it.
    fake = run(True, deploy=deploy_fabric, **{"ibstat 2>&1": node.ibstat("Down")})
    cmds = operation_commands(fake)
    assert len(cmds) == 1
    assert "mlx5_0 port 1 is DOWN (LinkUp)" in cmds[0]
    assert "Remedy" in cmds[0] and cmds[0].endswith("exit 1")


def test_fabric_first_run_checks_the_ports_after_the_install() -> None:
    # ibstat arrives with the packages: the same rule (ironserve.rules.fabric) on the IbPorts fact
    # read after the install fails the node whose port is down, the other goes on; no shell
    # parsing on the node.
    down = {
        **node.HOST_DATA,
        "fake_responses": node.responses(False, **{"ibstat 2>&1": node.ibstat("Down")}),
    }
    up = {
        **node.HOST_DATA,
        "node_role": "worker",
        "node_ip": "10.10.0.12",
        "fake_responses": node.responses(
            False, **{"ibstat 2>&1": node.ibstat(), "ip -j addr": node.ip_addr("10.10.0.12")}
        ),
    }
    fake = FakeRun([(HOST, down), ("@fake/h100-b", up)], {})
    fake.prepare(deploy_fabric)
    for name in (HOST, "@fake/h100-b"):
        assert fake.changed_ops(name) == [
            "Fabric | Install the RDMA user space",
            "Fabric | Check that every HCA port is up (after the install)",
        ]
    fake.execute()
    assert fake.failed() == [HOST]
    assert not any("awk" in c for c in fake.commands(HOST))
