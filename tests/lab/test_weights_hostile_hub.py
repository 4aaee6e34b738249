"""A hostile hub, on a 1-node light lab of its own: the lab hub lists the weights repository with
two extra names, one climbing out of the weights folder and one absolute. `ironserve weights pull`
(both hub APIs) and `pyinfra deploys/weights.py` refuse them, naming the hub and the file, before
the hub sends a byte and before any node is touched: no file outside (or inside) the weights
folder changes on the node, planted victims included."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.lab import state as st
from ironserve.lab.hub.control import HubControl
from tests.lab.conftest import BIN, ROOT, Node, lab_in, nodes_of

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
TRAVERSAL = "../../../../../etc/cron.d/ironserve-x"
ABSOLUTE = "/root/.ssh/authorized_keys"
# Every file under the places a traversal or absolute name could reach, with size and mtime.
SNAPSHOT = (
    "find /etc /root /data /opt /var/cache -xdev \\( -type f -o -type l \\) "
    "-printf '%p %s %T@\\n' 2>/dev/null | sort | sha256sum"
)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("hostile-hub-lab")
    with lab_in(directory, 1, "gpu2", light=True, real_vllm=False) as state:
        hub = state.services["hub"]
        control = HubControl(hub.host_url or hub.url)
        spec = control.repos()[REPO]
        control.add_repo(
            REPO, total_bytes=spec["total_bytes"], shards=4, unsafe_names=[TRAVERSAL, ABSOLUTE]
        )
        yield directory


def run(lab_dir: Path, tool: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    lab_env = {"IRONSERVE_LAB_DIR": str(lab_dir), "IRONSERVE_LAB_MODEL": REPO}
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=ROOT,
        env={**os.environ, **lab_env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def snapshot(node: Node) -> str:
    return node.run(SNAPSHOT)[1].strip()


@pytest.mark.parametrize(
    ("tool", "args", "env"),
    [
        ("ironserve", ("weights", "pull", "-i", INVENTORY), {}),
        ("ironserve", ("weights", "pull", "-i", INVENTORY), {"IRONSERVE_LAB_HUB": "modelscope"}),
        ("ironserve", ("weights", "verify", "-i", INVENTORY), {}),
        ("pyinfra", ("-y", INVENTORY, "deploys/weights.py"), {}),
    ],
    ids=["pull-hf", "pull-modelscope", "verify", "pyinfra-role"],
)
def test_traversal_names_are_refused_before_any_node_is_touched(
    lab: Path, tool: str, args: tuple[str, ...], env: dict[str, str]
) -> None:
    state = st.load(lab)
    assert state is not None
    hub = state.services["hub"]
    control = HubControl(hub.host_url or hub.url)
    (node,) = nodes_of(lab)
    node.run("mkdir -p /etc/cron.d && echo victim > /etc/cron.d/ironserve-x")
    node.run("mkdir -p /root/.ssh && touch /root/.ssh/authorized_keys")
    victims = node.run("cat /etc/cron.d/ironserve-x; sha256sum /root/.ssh/authorized_keys")[1]
    before = snapshot(node)
    control.reset()

    result = run(lab, tool, *args, **env)
    output = result.stdout + result.stderr

    assert "Traceback" not in output
    assert repr(TRAVERSAL) in output and "(and 1 more)" in output
    assert hub.url.rstrip("/") in output  # the hub named, as the inventory gives it
    if tool == "ironserve":
        assert result.returncode == 2, output
    else:
        assert result.returncode != 0, output
    stats = control.stats()
    assert stats["total_bytes"] == 0 and node.node.address not in stats["clients"]
    assert snapshot(node) == before
    assert node.run("cat /etc/cron.d/ironserve-x; sha256sum /root/.ssh/authorized_keys")[1] == (
        victims
    )
    assert node.run("test -e /etc/ironserve/weights || test -e /data/models", check=False)[0] != 0
