"""deploys/provision.py end to end on a 2-node h100x8 lab of its own (real SSH, real apt, real
dpkg, simulated GPUs): a preflight fault (disk-full, gpu-missing, a wrong NIC) stops the run and
changes nothing; provisioning converges; a second run changes nothing; --dry shows nothing to do;
the GPUs and Docker's nvidia runtime answer."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.lab import cluster
from tests.lab.conftest import BIN, ROOT, lab_in, nodes_of

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
DEPLOY = "deploys/provision.py"
# What provisioning changes on a node: packages, holds, and the files the roles write.
SNAPSHOT = (
    "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' | md5sum; "
    "ls -l /etc/apt/sources.list.d /etc/sysctl.d /etc/security/limits.d /etc/modprobe.d "
    "/etc/systemd/system/docker.service.d /etc/docker 2>&1 | md5sum; "
    "docker info --format '{{.DefaultRuntime}}'"
)


@pytest.fixture(scope="module")
def small_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("provision-lab")
    with lab_in(directory, 2, "h100x8", real_vllm=False):
        yield directory


def pyinfra(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(lab_dir)}
    return subprocess.run(
        [str(BIN / "pyinfra"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def grand_total_changed(output: str) -> str:
    """The Success column of pyinfra's "Grand total" row (what /work/shared/checks reads)."""
    line = next(line for line in output.splitlines() if re.match(r"^\s+Grand total", line))
    return line.split()[3]


def test_preflight_fault_stops_the_run_and_changes_nothing(small_lab: Path) -> None:
    first, second = nodes_of(small_lab)
    cluster.fault(first.name, "disk-full", directory=small_lab)
    cluster.fault(second.name, "gpu-missing", directory=small_lab)
    try:
        before = [n.run(SNAPSHOT)[1] for n in (first, second)]
        result = pyinfra(small_lab, "-y", INVENTORY, DEPLOY)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "preflight failed on 2 node(s)" in output
        assert f"{first.name}: disk:" in output
        assert f"{second.name}: accelerators: the PCI bus shows 7" in output
        assert output.count("Remedy:") >= 2
        assert "Starting operation" not in output
        assert [n.run(SNAPSHOT)[1] for n in (first, second)] == before
    finally:
        cluster.heal(first.name, directory=small_lab)
        cluster.heal(second.name, directory=small_lab)


def test_wrong_nic_stops_the_run_and_changes_nothing(small_lab: Path) -> None:
    nodes_ = nodes_of(small_lab)
    before = [n.run(SNAPSHOT)[1] for n in nodes_]
    result = pyinfra(small_lab, "-y", INVENTORY, DEPLOY, "--data", "network_socket_ifname=eth9")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "preflight failed on 2 node(s); nothing was changed" in output, output[-4000:]
    for n in nodes_:
        assert f"{n.name}: network: network_socket_ifname 'eth9' does not exist" in output
    assert "Remedy: set network_socket_ifname to the NIC that carries node_ip" in output
    assert "Starting operation" not in output
    assert [n.run(SNAPSHOT)[1] for n in nodes_] == before


def test_provision_converges_and_a_second_run_changes_nothing(small_lab: Path) -> None:
    result = pyinfra(small_lab, "-y", INVENTORY, DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert grand_total_changed(result.stdout + result.stderr) not in ("-", "0")

    again = pyinfra(small_lab, "-y", INVENTORY, DEPLOY)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert grand_total_changed(output) in ("-", "0"), output

    dry = pyinfra(small_lab, "--dry", INVENTORY, DEPLOY)
    output = dry.stdout + dry.stderr
    assert dry.returncode == 0, output
    rows = [line for line in output.splitlines() if " | " in line and line.startswith("    ")]
    assert rows, output
    changes = [row for row in rows if row.split()[-2:] != ["-", "-"]]
    assert changes == [], output

    for node in nodes_of(small_lab):
        _, listed = node.run("nvidia-smi -L")
        assert len([line for line in listed.splitlines() if line.startswith("GPU ")]) == 8
        _, runtime = node.run("docker info --format '{{.DefaultRuntime}}'")
        assert runtime.strip() == "nvidia"
        _, held = node.run("apt-mark showhold")
        assert {"nvidia-fabricmanager-580", "nvidia-driver-580-server-open"} <= set(held.split())


def test_ib_port_down_fails_that_node_with_a_remedy(small_lab: Path) -> None:
    first, second = nodes_of(small_lab)
    cluster.fault(second.name, "ib-port-down", directory=small_lab)
    try:
        result = pyinfra(small_lab, "-y", INVENTORY, DEPLOY)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert f"[{second.name}] fabric: mlx5_7 port 1 is DOWN" in output
        assert "Remedy: check the cable" in output
        assert f"[{first.name}] fabric:" not in output
    finally:
        cluster.heal(second.name, directory=small_lab)
