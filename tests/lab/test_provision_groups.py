"""deploys/provision.py with two serving groups on a 3-node a100-40gx8 lab of its own: group "a"
is nodes 1 and 2, group "b" node 3 (IRONSERVE_LAB_GROUPS). Node 2 is down: group a fails fast
and node 1 is left unchanged; group b converges; the summary names the node and the group; the
exit code is non-zero. (a100-40gx8 here, h100x8 in test_provision.py: node 3 covers the A100
profile -- NVSwitch so fabric manager, 4 HDR HCAs; then a no-op second run and --dry -- for a
few seconds more.)"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.lab import cluster
from tests.lab.conftest import BIN, ROOT, lab_in, nodes_of
from tests.lab.test_provision import DEPLOY, INVENTORY, SNAPSHOT, grand_total_changed

pytestmark = pytest.mark.lab


@pytest.fixture
def groups_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("groups-lab")
    with lab_in(directory, 3, "a100-40gx8", real_vllm=False):
        yield directory


def _pyinfra(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "pyinfra"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_unreachable_node_fails_its_group_and_the_other_group_converges(
    groups_lab: Path,
) -> None:
    first, second, third = nodes_of(groups_lab)
    before = first.run(SNAPSHOT)[1]
    cluster.fault(second.name, "node-down", directory=groups_lab)
    env = {
        **os.environ,
        "IRONSERVE_LAB_DIR": str(groups_lab),
        "IRONSERVE_LAB_GROUPS": f"{first.name}=a,{second.name}=a,{third.name}=b",
    }
    started = time.monotonic()
    result = _pyinfra(env, "-y", INVENTORY, DEPLOY)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"serving group 'a': FAILED: unreachable {second.name}" in output, output
    assert f"not provisioned {first.name}" in output, output
    assert f"serving group 'b': ok ({third.name})" in output, output
    assert f"[{first.name}] serving group 'a' failed" in output, output
    assert f"[{first.name}] Success" not in output, output
    assert first.run(SNAPSHOT)[1] == before
    _, runtime = third.run("docker info --format '{{.DefaultRuntime}}'")
    assert runtime.strip() == "nvidia"
    _, listed = third.run("nvidia-smi -L")
    assert len([line for line in listed.splitlines() if "A100-SXM4-40GB" in line]) == 8
    _, held = third.run("apt-mark showhold; systemctl is-active nvidia-fabricmanager")
    assert {"nvidia-fabricmanager-580", "nvidia-driver-580-server-open", "active"} <= set(
        held.split()
    )
    _, rates = third.run("ibstat | grep -c 'Rate: 200'")
    assert rates.strip() == "4"  # 4 HDR HCAs
    assert elapsed < 240, f"took {elapsed:.0f} s"

    # Group b again, on its own (--limit: node 2 is not tried): nothing changes, --dry agrees.
    again = _pyinfra(env, "-y", "--limit", third.name, INVENTORY, DEPLOY)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert grand_total_changed(output) in ("-", "0"), output
    dry = _pyinfra(env, "--dry", "--limit", third.name, INVENTORY, DEPLOY)
    output = dry.stdout + dry.stderr
    assert dry.returncode == 0, output
    rows = [line for line in output.splitlines() if " | " in line and line.startswith("    ")]
    assert rows and [r for r in rows if r.split()[-2:] != ["-", "-"]] == [], output
