"""roles/preflight, base, nvidia, container_runtime, fabric and firewall on ``@fake`` hosts: what
a first run does on a bare HGX node, that a provisioned node gets no command at all, and that
preflight stops a run before any operation."""

from __future__ import annotations

from typing import Any

import pytest
from pyinfra.api.exceptions import PyinfraError

from ironserve import roles
from ironserve.deploy import context
from ironserve.roles.base import deploy_base
from ironserve.roles.container_runtime import deploy_container_runtime
from ironserve.roles.fabric import deploy_fabric
from ironserve.roles.firewall import deploy_firewall
from ironserve.roles.nvidia import deploy_nvidia
from ironserve.roles.preflight import deploy_preflight
from tests.deploys import nvidia_node as node
from tests.deploys.conftest import FakeRun

HOST = "@fake/h100-a"


@pytest.fixture(autouse=True)
def _fresh_plans() -> None:
    context._RUNS.clear()  # plans are cached by id(state); ids are reused between tests


def provision() -> None:
    """deploys/provision.py as one deploy."""
    deploy_preflight()
    deploy_base()
    roles.vendor_deploy("nvidia")()
    deploy_container_runtime()
    deploy_fabric()
    deploy_firewall()


def run(
    provisioned: bool, deploy: Any = provision, check_failed: bool = True, **overrides: Any
) -> FakeRun:
    data = {**node.HOST_DATA, "fake_responses": node.responses(provisioned, **overrides)}
    fake = FakeRun([(HOST, data)], {})
    fake.prepare(deploy)
    fake.execute()
    if check_failed:
        assert fake.failed() == []
    return fake


def operation_commands(fake: FakeRun) -> list[str]:
    """Commands the operations ran (fact commands left out)."""
    facts = (
        "db:Status-Abbrev",
        "lspci",
        "ip -j",
        "df -P",
        "du -sb",
        "-release",
        "uname",
        "ulimit",
        "timedatectl",
        "docker info",
        "daemon.json ];",
        "command -v",
        "--query-gpu",
        "systemctl show",
        "nft list table",
        "SSH_CONNECTION",
        "stat -c",
        "sha1sum",
        "nvidia-nvswitch",
        "ibstat 2>&1",
    )
    return [c for c in fake.commands(HOST) if not any(f in c for f in facts)]


def test_bare_node_first_run_installs_and_configures() -> None:
    cmds = operation_commands(run(provisioned=False))
    text = "\n".join(cmds)
    assert (
        "apt-get update -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/ironserve-nvidia.list"
        in text
    )
    install = next(c for c in cmds if "nvidia-driver-580-server-open" in c and "install" in c)
    assert "nvidia-utils-580-server" in install
    # The exact pinned version of both (nvidia_driver_version), not whatever the branch has now.
    assert f" nvidia-driver-580-server-open={node.DRIVER} " in install
    assert install.endswith(f" nvidia-utils-580-server={node.DRIVER}")
    assert "apt-mark hold nvidia-driver-580-server-open nvidia-utils-580-server" in text
    assert "cuda-toolkit-12-8" in text and "datacenter-gpu-manager-4-cuda12" in text
    fm = next(c for c in cmds if "nvidia-fabricmanager-580" in c)
    assert "apt-cache madison nvidia-fabricmanager-580" in fm
    assert "apt-mark hold nvidia-fabricmanager-580" in fm
    assert "nvidia-smi -pm 1" in cmds
    assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in cmds
    assert any("systemctl restart docker" in c for c in cmds)
    assert any("rdma-core infiniband-diags ibverbs-utils" in c for c in cmds)
    assert not any("reboot" in c for c in cmds)  # nvidia_driver_reboot=False
    # Order: the vendor repository and toolkit before nvidia-ctk, dockerd restarted after it.
    ctk = cmds.index("nvidia-ctk runtime configure --runtime=docker --set-as-default")
    assert text.index("nvidia-container-toolkit") < text.index("nvidia-ctk")
    assert ctk < max(i for i, c in enumerate(cmds) if "systemctl restart docker" in c)


def test_provisioned_node_gets_no_command() -> None:
    fake = run(provisioned=True)
    assert operation_commands(fake) == []
    assert fake.changed_ops(HOST) == []


@pytest.mark.parametrize(
    "deploy", [deploy_base, deploy_nvidia, deploy_container_runtime, deploy_fabric]
)
def test_each_role_is_idempotent(deploy: Any) -> None:
    assert operation_commands(run(provisioned=True, deploy=deploy)) == []


def test_no_fabric_manager_without_nvswitch() -> None:
    pci = [line for line in node.pci_lines() if "0680" not in line]
    cmds = operation_commands(
        run(
            provisioned=False,
            deploy=deploy_nvidia,
            **{
                "nvidia-nvswitch": ["## proc", "## lspci"],
                "lspci -Dnnmm": pci,
            },
        )
    )
    assert not any("fabricmanager" in c for c in cmds)


def test_fabric_manager_follows_the_driver_version() -> None:
    # Driver upgraded by hand to another version: the fabric manager is re-pinned to it.
    rows = [
        r.replace("580.95.05-1", "580.82.07-1") if "fabricmanager" in r else r
        for r in node.selections(True)
    ]
    cmds = operation_commands(
        run(provisioned=True, deploy=deploy_nvidia, **{"dpkg-query -W": rows})
    )
    assert len(cmds) == 1 and 'nvidia-fabricmanager-580"=$fmv"' in cmds[0]


def test_daemon_json_is_merged_not_clobbered() -> None:
    mine = {"insecure-registries": ["registry.lab:5000"], "data-root": "/data/docker"}
    fake = run(
        provisioned=True,
        deploy=deploy_container_runtime,
        **{
            "/etc/docker/daemon.json": [
                __import__("json").dumps({**node.provisioned_daemon_json(), **mine})
            ],
        },
    )
    assert operation_commands(fake) == []  # foreign keys kept, nothing to do
    fake = run(
        provisioned=True,
        deploy=deploy_container_runtime,
        **{
            "/etc/docker/daemon.json": [__import__("json").dumps(mine)],
        },
    )
    cmds = operation_commands(fake)
    assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in cmds
    assert any("systemctl restart docker" in c for c in cmds)


def test_proprietary_modules_before_turing() -> None:
    pascal = [
        line.replace("GH100 [H100 SXM5 80GB] [2330]", "GP100GL [Tesla P100] [15f8]")
        for line in node.pci_lines()
    ]
    cmds = operation_commands(
        run(provisioned=False, deploy=deploy_nvidia, **{"lspci -Dnnmm": pascal})
    )
    assert any("nvidia-driver-580-server " in c + " " for c in cmds)
    assert not any("server-open" in c for c in cmds)


def test_reboot_refused_on_the_control_machine() -> None:
    data = {
        **node.HOST_DATA,
        "nvidia_driver_reboot": True,
        "ssh_hostname": "127.0.0.1",
        "fake_responses": node.responses(False),
    }
    fake = FakeRun([(HOST, data)], {})
    with pytest.raises(PyinfraError, match="control machine"):
        fake.prepare(deploy_nvidia)


@pytest.mark.parametrize(
    ("overrides", "check", "remedy"),
    [
        ({"lspci -Dnnmm": node.pci_lines(gpus=7)}, "accelerators", "reseat or replace"),
        ({"df -P -B1": node.df("/data", 10 * 1024**3)}, "disk", "free space"),
        ({"ip -j addr": node.ip_addr(ifname="ens10f0")}, "network", "network_socket_ifname"),
        ({"ip -j addr": node.ip_addr(address="10.9.9.9")}, "network", "does not carry"),
        (
            {"-release": ["/etc/os-release", "ID=centos", 'VERSION_ID="7"', "---"]},
            "os",
            "supported distribution",
        ),
    ],
)
def test_preflight_failure_stops_before_any_operation(
    overrides: dict[str, Any], check: str, remedy: str
) -> None:
    data = {**node.HOST_DATA, "fake_responses": node.responses(False, **overrides)}
    ok = {
        **node.HOST_DATA,
        "node_role": "worker",
        "node_ip": "10.10.0.12",
        "fake_responses": node.responses(False, **{"ip -j addr": node.ip_addr("10.10.0.12")}),
    }
    fake = FakeRun([(HOST, data), ("@fake/h100-b", ok)], {})
    with pytest.raises(PyinfraError) as error:
        fake.prepare(provision)
    message = str(error.value)
    assert f"{HOST}: {check}:" in message and remedy in message
    assert "@fake/h100-b" not in message
    for name in (HOST, "@fake/h100-b"):
        assert operation_commands(fake) == []
        assert fake.changed_ops(name) == []


def test_unknown_vendor_role_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        roles.VENDOR_ROLES, "vastai", ("ironserve.roles.not_here", "deploy_not_here")
    )
    with pytest.raises(PyinfraError, match="roles/not_here"):
        roles.vendor_deploy("vastai")


def test_preflight_result_is_per_run() -> None:
    bad = {**node.HOST_DATA, "fake_responses": node.responses(True, **{"lspci -Dnnmm": []})}
    with pytest.raises(PyinfraError, match="accelerators"):
        FakeRun([(HOST, bad)], {}).prepare(provision)
    assert operation_commands(run(provisioned=True)) == []  # a new run checks again
