"""tests/infra (the testinfra node-state suite) against a provisioned 2-node lab, run as an
operator runs it: it passes on a converged site, fails naming the node and the file after a file
mode is broken on one node, and passes again once provisioning has repaired it. With serving
deployed it also checks the secrets file (0600) and the engine containers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from ironserve.lab import state as st
from tests.lab.conftest import BIN, ROOT, Node, lab_in

pytestmark = pytest.mark.lab
INVENTORY = "inventories/lab.py"


@pytest.fixture(scope="module")
def site(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[st.LabState]:
    directory = tmp_path_factory.mktemp("lab-infra")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IRONSERVE_LAB_DIR", str(directory))
        # Serving here is vLLM on Ray (the stand-in): 16 simulated H100s are not CPU ranks.
        env.setenv("IRONSERVE_LAB_ENGINE_VERSION", "0.11.0")
        with lab_in(directory, 2, "h100x8") as state:
            _run([str(BIN / "pyinfra"), "-y", INVENTORY, "deploys/provision.py"])
            yield state


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=900, env=os.environ.copy()
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def _suite(*extra: str) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/infra"]
    return _run([*argv, "--inventory", INVENTORY, *extra], check=False)


def test_suite_passes_fails_on_a_broken_mode_and_passes_after_repair(site: st.LabState) -> None:
    ok = _suite()
    assert ok.returncode == 0, ok.stdout
    assert "10 passed" in ok.stdout  # 5 checks x 2 nodes ran (the others skip by vendor)
    node = Node(site, site.nodes[1])
    node.run("chmod 0600 /etc/sysctl.d/90-ironserve.conf")
    broken = _suite()
    assert broken.returncode == 1, broken.stdout
    assert f"{node.name}: /etc/sysctl.d/90-ironserve.conf mode 600, expected 644" in broken.stdout
    assert "1 failed" in broken.stdout
    _run([str(BIN / "pyinfra"), "-y", INVENTORY, "deploys/provision.py"])
    assert _suite().returncode == 0


def test_serving_state_secrets_and_containers(site: st.LabState) -> None:
    _run([str(BIN / "pyinfra"), "-y", INVENTORY, "deploys/site.py"])
    ok = _suite("--serving")
    assert ok.returncode == 0, ok.stdout
    head = Node(site, site.nodes[0])
    secrets = head.run("ls /etc/ironserve/*/secrets.env")[1].split()[0]
    head.run(f"chmod 0644 {secrets}")
    broken = _suite("--serving")
    assert broken.returncode == 1
    assert f"{head.name}: {secrets} mode 644, expected 600" in broken.stdout
