"""The lab model hub as a lab service, on a 2-node light lab of its own: it sits at the lab
network's .3 address, nodes download from it over the lab network (python3 urllib over real SSH),
its counters name each node's address with the exact bytes it was sent, a gated repo refuses a
node without a token, the inventory hands nodes its URL, and `lab down` removes it."""

from __future__ import annotations

import ipaddress
import json
import os
import runpy
import stat
import subprocess
import time
from typing import Any

import pytest

from ironserve.lab import real_model
from ironserve.lab import state as st
from ironserve.lab.hub.control import HubControl
from tests.lab.conftest import BIN, ROOT, Node, lab_in

pytestmark = pytest.mark.lab

PUBLIC = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
GATED = "meta-llama/Llama-3.3-70B-Instruct"
SHARD = "model-00001-of-00004.safetensors"
FETCH = (
    "python3 - <<'EOF'\n"
    "import hashlib, json, urllib.request, urllib.error\n"
    "def get(url):\n"
    "    try:\n"
    "        with urllib.request.urlopen(url, timeout=60) as r:\n"
    "            return r.status, hashlib.sha256(r.read()).hexdigest(), dict(r.headers)\n"
    "    except urllib.error.HTTPError as e:\n"
    "        return e.code, None, dict(e.headers)\n"
    "print(json.dumps([get('{hub}{public}/resolve/main/{shard}'),\n"
    "                  get('{hub}{gated}/resolve/main/config.json')]))\n"
    "EOF"
)


def _print(message: str) -> None:
    print(f"[lab-hub] {message}", flush=True)


def test_nodes_download_from_the_hub_over_the_lab_network(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("hub-lab")
    started = time.monotonic()
    with lab_in(directory, 2, "gpu2", light=True, real_vllm=False) as state:
        _print(f"lab up {time.monotonic() - started:.1f}s")
        hub = state.services["hub"]
        expected_ip = str(list(ipaddress.IPv4Network(state.subnet).hosts())[2])
        assert (hub.address, hub.url) == (expected_ip, f"http://{expected_ip}/")
        token_file = directory / "hub-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token_file.read_text().strip()

        control = HubControl(hub.url)  # this machine reaches the bridge directly
        repos = control.repos()
        assert repos[GATED]["gated"] and not repos[PUBLIC]["gated"]
        assert real_model.REPO_ID not in repos  # a lab without the real vLLM serves no real model
        shard = repos[PUBLIC]["files"][SHARD]
        control.reset()

        nodes = [Node(state, n) for n in state.nodes]
        for node in nodes:
            _, out = node.run(FETCH.format(hub=hub.url, public=PUBLIC, gated=GATED, shard=SHARD))
            (status, digest, headers), (gated_status, _, gated_headers) = json.loads(
                out.strip().splitlines()[-1]
            )
            assert (status, digest) == (200, shard["sha256"]), node.name
            assert headers["X-Repo-Commit"] == repos[PUBLIC]["commit"]
            assert (gated_status, gated_headers["X-Error-Code"]) == (401, "GatedRepo")

        stats = control.stats()
        assert stats["clients"] == {n.node.address: shard["size"] for n in nodes}
        assert stats["repos"] == {PUBLIC: 2 * shard["size"]}

        # The inventory gives every node the hub's URL; the CLI reads the same counters.
        env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
        os.environ["IRONSERVE_LAB_DIR"], old = str(directory), os.environ.get("IRONSERVE_LAB_DIR")
        try:
            hosts = runpy.run_path(str(ROOT / "inventories" / "lab.py"))["lab"]
        finally:
            os.environ.pop("IRONSERVE_LAB_DIR")
            if old is not None:
                os.environ["IRONSERVE_LAB_DIR"] = old
        assert {data["hub_endpoint"] for _, data in hosts} == {hub.url}
        done = subprocess.run(
            [str(BIN / "ironserve"), "lab", "hub", "stats", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["clients"] == stats["clients"]
        container_id = hub.container_id
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container_id)
    assert not (directory / "hub").exists()
    assert st.load(directory) is None
