"""The lab end to end: real containers, real SSH, real pyinfra, real lspci over the node's PCI
tree, nested Docker engines, faults, and a `lab down` that leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import paramiko
import pytest

from ironserve.lab import cluster
from ironserve.lab import state as st
from ironserve.lab.hardware import node_hardware

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODES = 3  # the session lab of conftest.py: 3 full h100x8 nodes
PROFILE = "h100x8"

INVENTORY = str(ROOT / "inventories" / "lab.py")


class Node(Protocol):  # conftest.Node: one lab node over real SSH
    name: str
    node: st.NodeState

    def run(self, command: str, check: bool = True) -> tuple[int, str]: ...


VENDOR_TOOLS = (
    "nvidia-smi",
    "nvidia-ctk",
    "dcgmi",
    "ibstat",
    "ibv_devinfo",
    "npu-smi",
    "hccn_tool",
)


def run(*argv: str, env: dict[str, str] | None = None, timeout: int = 180) -> Any:
    return subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def pyinfra_exec(*args: str) -> Any:
    return run(str(BIN / "pyinfra"), "-y", INVENTORY, *args)


# --- no Docker needed ------------------------------------------------------------------------


def test_inventory_without_a_lab_defines_no_hosts(tmp_path: Path) -> None:
    env = {"IRONSERVE_LAB_DIR": str(tmp_path)}
    result = run(str(BIN / "pyinfra"), "-y", INVENTORY, "exec", "--", "hostname", env=env)
    assert "no lab is up" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    result = run(str(BIN / "ironserve"), "validate", "-i", INVENTORY, env=env)
    assert result.returncode == 2
    assert "defines no hosts" in result.stderr


def _fake_state(directory: Path, profile: str, count: int) -> None:
    """A lab state as `lab up` writes it, without containers: for validation only."""
    from ironserve.lab.hardware import accelerator_of, node_kind

    nodes = []
    for i in range(count):
        name = f"{profile}-{i + 1}"
        hw = node_hardware(profile, i, name)
        accel, n = accelerator_of(profile, i)
        nodes.append(
            st.NodeState(
                name=name,
                index=i,
                profile=profile,
                kind=node_kind(profile, i),
                container=f"x-{name}",
                container_id="0" * 64,
                address=f"172.30.250.{10 + i}",
                ssh_port=22200 + i,
                light=True,
                accelerator_kind=accel,
                accelerator_count=n,
                engine_kind=cluster.ENGINE_OF_VENDOR[hw["vendor"]],
                npu_device_ips=[f"10.201.{i}.{10 + d}" for d in range(n)]
                if hw["vendor"] == "ascend"
                else [],
                sysfs_dir="/nonexistent",
                host_key="ssh-ed25519 AAAA",
            )
        )
    state = st.LabState(
        lab_id="test",
        prefix="x",
        profile=profile,
        light=True,
        created_at=0.0,
        ssh_key=str(directory / "id_ed25519"),
        known_hosts=str(directory / "known_hosts"),
        nodes=nodes,
    )
    st.save(state, directory)


@pytest.mark.parametrize("profile", ["h100x8", "gpu2", "a100-40gx8", "ascend910bx8", "va16"])
def test_lab_inventory_validates(tmp_path: Path, profile: str) -> None:
    """`ironserve validate -i inventories/lab.py` accepts what each profile's lab looks like."""
    _fake_state(tmp_path, profile, 1 if profile == "va16" else 2)
    result = run(
        str(BIN / "ironserve"),
        "validate",
        "-i",
        INVENTORY,
        "--json",
        env={"IRONSERVE_LAB_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["valid"] is True


# --- the session's lab -----------------------------------------------------------------------


@pytest.mark.lab
def test_pyinfra_reaches_three_distinct_hosts(lab: st.LabState) -> None:
    result = pyinfra_exec("exec", "--", "hostname")
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr  # pyinfra logs (and echoes command output) on stderr
    answers = dict(re.findall(r"^\[([\w.-]+)\] ([\w.-]+)$", output, re.MULTILINE))
    names = [n.name for n in lab.nodes]
    assert len(names) == NODES
    assert answers == {name: name for name in names}, output


@pytest.mark.lab
def test_status_json(lab: st.LabState) -> None:
    result = run(str(BIN / "ironserve"), "lab", "status", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [n["name"] for n in doc["nodes"]] == [n.name for n in lab.nodes]
    for entry, node in zip(doc["nodes"], lab.nodes, strict=True):
        assert entry["address"] == node.address
        assert entry["ssh_port"] == node.ssh_port
        assert entry["profile"] == PROFILE
        assert entry["state"] == "running"
    assert "apt_repository" in doc


@pytest.mark.lab
def test_lspci_shows_the_profile_devices(nodes: list[Node]) -> None:
    node = nodes[0]
    hw = node_hardware(PROFILE, 0, node.name)
    _, out = node.run("lspci -d 10de:")
    lines = out.strip().splitlines()
    gpus = [line for line in lines if "3D controller: NVIDIA Corporation GH100" in line]
    switches = [line for line in lines if "Bridge: NVIDIA Corporation" in line]
    assert len(gpus) == 8 and len(switches) == 4, out
    assert {line.split()[0] for line in gpus} == {f"{d['pci_bus']:02x}:00.0" for d in hw["devices"]}
    _, hcas = node.run("lspci -d 15b3:")
    assert hcas.count("Infiniband controller: Mellanox Technologies MT2910 Family") == 8
    _, numeric = node.run("lspci -n -d 10de:2330")
    assert numeric.count("0302: 10de:2330 (rev a1)") == 8


@pytest.mark.lab
def test_no_vendor_tools_before_provisioning(nodes: list[Node]) -> None:
    for node in nodes:
        code, out = node.run(f"command -v {' '.join(VENDOR_TOOLS)}", check=False)
        assert code != 0 and out.strip() == "", f"{node.name} has vendor tools: {out}"
        code, out = node.run("nvidia-smi", check=False)
        assert code == 127, out


@pytest.mark.lab
def test_nested_docker_engine(nodes: list[Node]) -> None:
    node = nodes[0]
    deadline = time.monotonic() + 60
    while True:
        code, out = node.run("docker info --format '{{.ServerVersion}} {{.Driver}}'", check=False)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 0 and "overlay2" in out, out
    # An image made on the node from its own files, run by the node's engine (bridge and host).
    node.run(
        'cd / && files="usr/bin/bash usr/bin/hostname $(ldd /usr/bin/bash /usr/bin/hostname '
        "| grep -o '/[^ ]*' | sort -u | sed s,^/,,)\" && tar -ch $files 2>/dev/null "
        "| docker import - lab-mini >/dev/null"
    )
    _, out = node.run("docker run --rm lab-mini /usr/bin/bash -c 'echo nested-ok'")
    assert "nested-ok" in out
    _, out = node.run("docker run --rm --network host lab-mini /usr/bin/hostname")
    assert out.strip() == node.name
    _, images = nodes[1].run("docker images -q lab-mini")
    assert images.strip() == "", "images are per node: the other node's engine has none"


@pytest.mark.lab
def test_changed_host_key_is_refused(lab: st.LabState, nodes: list[Node]) -> None:
    node = nodes[-1]
    key = "/etc/ssh/ssh_host_ed25519_key"
    reload = "kill -HUP $(cat /run/sshd.pid) && sleep 1"
    node.run(f"cp -p {key} /root/hostkey.bak && cp -p {key}.pub /root/hostkey.pub.bak")
    node.run(f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key} && {reload}")
    try:
        result = pyinfra_exec("--limit", node.name, "exec", "--", "hostname")
        assert result.returncode != 0, result.stdout
        assert re.search(r"host key|BadHostKey", result.stdout + result.stderr, re.I), (
            result.stdout + result.stderr
        )
        with pytest.raises(paramiko.BadHostKeyException):
            node.run("true")
    finally:
        container = cluster.connect().containers.get(node.node.container_id)
        container.exec_run(
            ["bash", "-c", f"mv /root/hostkey.bak {key} && mv /root/hostkey.pub.bak {key}.pub"]
        )
        container.exec_run(["bash", "-c", reload])
    result = pyinfra_exec("--limit", node.name, "exec", "--", "hostname")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.lab
def test_disk_full_and_heal(nodes: list[Node]) -> None:
    node = nodes[1]
    cluster.fault(node.name, "disk-full")
    _, out = node.run("df --output=pcent /data | tail -1")
    assert out.strip() == "100%"
    code, out = node.run("echo x > /data/probe", check=False)
    assert code != 0 and "No space left on device" in out
    cluster.heal(node.name)
    _, out = node.run("df --output=pcent /data | tail -1")
    assert int(out.strip().rstrip("%")) < 5


@pytest.mark.lab
def test_gpu_faults_change_lspci_and_heal(nodes: list[Node]) -> None:
    node = nodes[1]
    cluster.fault(node.name, "gpu-missing", target=2)
    _, out = node.run("lspci -d 10de::0302")
    assert len(out.strip().splitlines()) == 7
    cluster.fault(node.name, "xid-79", target=0)
    _, out = node.run("lspci -d 10de::0302")
    assert out.count("(rev ff)") == 1
    _, out = node.run("ironserve-sim-fault list")
    assert "gpu-missing" in out and "xid-79" in out
    cluster.heal(node.name)
    _, out = node.run("lspci -d 10de::0302")
    assert len(out.strip().splitlines()) == 8 and "(rev ff)" not in out


@pytest.mark.lab
def test_node_down_and_heal(lab: st.LabState, nodes: list[Node]) -> None:
    node = nodes[1]
    cluster.fault(node.name, "node-down")
    with pytest.raises((OSError, paramiko.SSHException)):
        node.run("true")
    doc = cluster.status()
    assert doc is not None
    assert {n["name"]: n["state"] for n in doc["nodes"]}[node.name] == "exited"
    cluster.heal(node.name)
    _, out = node.run("hostname")  # same host key: known_hosts still matches
    assert out.strip() == node.name


@pytest.mark.lab
def test_apt_repository_served_on_the_lab_network(lab: st.LabState, nodes: list[Node]) -> None:
    assert lab.apt_repository and lab.apt_source
    _, out = nodes[0].run(f"curl -sf {lab.apt_repository}Packages")
    assert "Package: nvidia-fabricmanager-580" in out
    # Not configured on the nodes: provisioning writes the source when it asks for it.
    code, _ = nodes[0].run("ls /etc/apt/sources.list.d/ironserve-lab.list", check=False)
    assert code != 0
    _, out = nodes[0].run("getent hosts apt " + nodes[1].name)  # the lab network's DNS
    assert lab.services["apt"].address in out and nodes[1].node.address in out


@pytest.mark.lab
def test_lab_down_removes_only_its_own(
    docker_client: Any, lab: st.LabState, tmp_path: Path, labelled: Any
) -> None:
    """A second lab (one full node: volume, /data disk) comes up beside the session's, and its
    `down` removes everything it labelled and nothing of the session's lab."""
    other = cluster.up(nodes=1, profile="gpu2", directory=tmp_path, real_vllm=False)
    try:
        assert other.lab_id != lab.lab_id
        assert labelled(other.lab_id)
        mount = other.nodes[0].data_mount
        assert mount is not None and os.path.ismount(mount)
    finally:
        cluster.down(tmp_path)
    assert labelled(other.lab_id) == []
    assert not os.path.ismount(mount)
    assert st.load(tmp_path) is None
    assert len(labelled(lab.lab_id)) >= 1 + NODES  # network + nodes untouched
    for node in lab.nodes:
        assert docker_client.containers.get(node.container_id).status == "running"


@pytest.mark.lab
def test_light_nodes(docker_client: Any, tmp_path: Path, labelled: Any) -> None:
    """Light nodes (the control-plane scale mode): sshd alone, reached by pyinfra all the same."""
    light = cluster.up(nodes=2, profile="gpu2", light=True, directory=tmp_path, real_vllm=False)
    try:
        env = {"IRONSERVE_LAB_DIR": str(tmp_path)}
        result = run(
            str(BIN / "pyinfra"), "-y", INVENTORY, "exec", "--", "ps -o comm= -p 1; lspci", env=env
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        for node in light.nodes:
            assert f"[{node.name}] tini" in output
            assert output.count(f"[{node.name}] ") >= 3  # tini + 2 x "3D controller"
        assert "NVIDIA Corporation Device 26b9" in output
        assert all(not n.volumes and n.data_mount is None for n in light.nodes)
    finally:
        cluster.down(tmp_path)
    assert labelled(light.lab_id) == []
