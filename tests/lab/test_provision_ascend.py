"""roles/ascend end to end on a 2-node ascend910bx8 lab: real SSH, real pyinfra runs, twice.

The first run installs the driver and firmware from the lab's repository, configures every NPU
port with the (simulated, stateful) hccn_tool and writes the rank table; the second run changes
nothing. Afterwards npu-smi lists 8 NPUs, /etc/hccn.conf holds the inventory's addresses and
the rank table is the MindIE builder's. Then an npu-tls-mismatch fault on node 2 (HCCL TLS
switched on) stops the next run in preflight, naming node 2, TLS and the remedy, and nothing
changes on either node.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.facts.ascend import HCCN_TOOL_FALLBACK, parse_hccn_conf
from ironserve.lab import cluster
from ironserve.lab import state as st
from ironserve.operations.hccn import PortSpec
from ironserve.roles.ascend.render import render_hccn_conf
from tests.lab.conftest import BIN, ROOT, Node, lab_in

pytestmark = pytest.mark.lab

DEPLOY = "tests/lab/deploys/ascend.py"
# inventories/lab.py gives every Ascend lab node these
NETMASK = "255.255.0.0"
GATEWAY = "10.201.255.254"
RANK_TABLE = "/etc/ironserve/default/rank_table_file.json"


@pytest.fixture(scope="module")
def ascend_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("ascend-lab")
    with lab_in(directory, 2, "ascend910bx8", light=True, real_vllm=False) as state:
        yield state, directory


def _run(state: st.LabState, directory: Path, mode: str = "-y") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
    return subprocess.run(
        [
            str(BIN / "pyinfra"),
            mode,
            "inventories/lab.py",
            DEPLOY,
            "--data",
            f"ascend_installer_url={state.apt_repository}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _pyinfra(state: st.LabState, directory: Path, mode: str = "-y") -> str:
    done = _run(state, directory, mode)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return out


def _grand_total(out: str) -> list[str]:
    """[hosts, success, error, no change] of pyinfra's results table."""
    match = re.search(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
    assert match, out[-2000:]
    return list(match.groups())


def test_provision_ascend_twice(ascend_lab: Any) -> None:
    state, directory = ascend_lab
    first = _pyinfra(state, directory)
    hosts, changed, errors, _ = _grand_total(first)
    assert changed not in ("-", "0") and errors == "-", first[-3000:]
    assert "Install the Ascend driver" in first and "Configure an NPU RoCE port" in first

    second = _pyinfra(state, directory)
    hosts, changed, errors, unchanged = _grand_total(second)
    assert (changed, errors) == ("-", "-") and unchanged == hosts, second[-3000:]

    dry = _pyinfra(state, directory, "--dry")
    rows = re.findall(r"^\s+(Ascend NPU driver, firmware and HCCN \| .+?)\s{2,}(\S+)", dry, re.M)
    assert rows and all(change == "-" for _, change in rows), dry[-3000:]

    tables = []
    for lab_node in state.nodes:
        node = Node(state, lab_node)
        _, info = node.run("npu-smi info")
        assert len(re.findall(r"^\|\s+\d+\s+910B\S*\s+\|\s+OK", info, re.M)) == 8, info
        _, conf = node.run("cat /etc/hccn.conf")
        ips = lab_node.npu_device_ips
        assert len(ips) == 8
        expected = [PortSpec(i, ip, NETMASK, GATEWAY) for i, ip in enumerate(ips)]
        assert conf == render_hccn_conf(expected)
        assert {n: c["address"] for n, c in parse_hccn_conf(conf.splitlines()).items()} == dict(
            enumerate(ips)
        )
        _, mode = node.run(f"stat -c %a {RANK_TABLE}")
        assert mode.strip() == "640"
        _, table = node.run(f"cat {RANK_TABLE}")
        tables.append(table)
    assert tables[0] == tables[1]
    doc = json.loads(tables[0])
    assert [s["server_id"] for s in doc["server_list"]] == [n.address for n in state.nodes]
    assert [d["device_ip"] for s in doc["server_list"] for d in s["device"]] == [
        ip for n in state.nodes for ip in n.npu_device_ips
    ]
    assert [d["rank_id"] for s in doc["server_list"] for d in s["device"]] == [
        str(r) for r in range(16)
    ]


HCCN_STATE = (
    f"for i in 0 1 2 3 4 5 6 7; do {HCCN_TOOL_FALLBACK} -i $i -tls -g; done; md5sum /etc/hccn.conf"
)


def test_npu_tls_mismatch_stops_the_run_and_changes_nothing(ascend_lab: Any) -> None:
    """Runs after test_provision_ascend_twice: both nodes have the driver (hccn_tool) and TLS 0."""
    state, directory = ascend_lab
    nodes = [Node(state, n) for n in state.nodes]
    second = nodes[1]
    cluster.fault(second.name, "npu-tls-mismatch", directory=directory)
    try:
        before = [n.run(HCCN_STATE)[1] for n in nodes]
        assert before[1].count("tls switch[1]") == 8, before[1]
        done = _run(state, directory)
        out = done.stdout + done.stderr
        assert done.returncode != 0, out[-4000:]
        assert "preflight failed on 1 node(s); nothing was changed" in out, out[-4000:]
        assert f"{second.name}: npu-tls: HCCL TLS switch is 1 on NPU(s) 0, 1, 2" in out
        assert "EI0006" in out and "hccn_tool -i N -tls -s enable 0" in out
        assert f"{nodes[0].name}: npu-tls" not in out
        assert "Starting operation" not in out
        assert [n.run(HCCN_STATE)[1] for n in nodes] == before
    finally:
        cluster.heal(second.name, directory=directory)
    assert nodes[1].run(HCCN_STATE)[1].count("tls switch[0]") == 8
