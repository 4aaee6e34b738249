"""`ironserve health --tier cluster` NPU peer pings on a provisioned 2-node ascend910bx8 lab of its
own (the lab runs no MindIE, so the group is *not deployed*: one WARN, and the pings,
which judge the fabric, run anyway). Healthy: every NPU answers its same-index peer; the
npu-link-down fault on node 2 turns ``cluster.npu_ping`` FAIL on exactly that node (npu-link);
``lab heal`` returns it to OK."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import BIN, ROOT, lab_in

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"


def _run(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(lab_dir)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("health-npu-lab")
    with lab_in(directory, 2, "ascend910bx8", real_vllm=False):
        done = _run(directory, str(BIN / "pyinfra"), "-y", INVENTORY, "deploys/provision.py")
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        yield directory


def _cluster(lab_dir: Path) -> tuple[int, set[tuple[str, str, str, str]], float]:
    started = time.monotonic()
    done = _run(
        lab_dir, str(BIN / "ironserve"), "health", "-i", INVENTORY, "--tier", "cluster", "--json"
    )
    took = time.monotonic() - started
    report = json.loads(done.stdout)
    rows = {(r["node"], r["check"], r["status"], r["runbook"]) for r in report["results"]}
    return done.returncode, rows, took


def test_npu_peer_pings_fail_on_exactly_the_node_whose_link_is_down(lab: Path) -> None:
    n1, n2 = "ascend910bx8-1", "ascend910bx8-2"
    not_deployed = (n1, "cluster.deployed", "WARN", "first-deploy")
    code, rows, took = _cluster(lab)
    print(f"[lab-health-npu] health --tier cluster {took:.1f}s", flush=True)
    assert (code, rows) == (
        1,
        {not_deployed, (n1, "cluster.npu_ping", "OK", ""), (n2, "cluster.npu_ping", "OK", "")},
    )
    fault = _run(lab, str(BIN / "ironserve"), "lab", "fault", n2, "npu-link-down")
    assert fault.returncode == 0, fault.stderr
    code, rows, _ = _cluster(lab)
    assert (code, rows) == (
        2,
        {
            not_deployed,
            (n1, "cluster.npu_ping", "OK", ""),
            (n2, "cluster.npu_ping", "FAIL", "npu-link"),
        },
    )
    assert _run(lab, str(BIN / "ironserve"), "lab", "heal", n2).returncode == 0
    code, rows, _ = _cluster(lab)
    assert code == 1 and (n2, "cluster.npu_ping", "OK", "") in rows
