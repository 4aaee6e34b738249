"""The lab registry and the lab engine images on a 2-node gpu2 lab of its own: provisioning (with
the registry as insecure registry and Docker Hub mirror, from inventories/lab.py) lets every node
pull ``vllm/vllm-openai:v0.11.0`` unchanged under its Docker Hub name, at the digest the registry
holds for the registry-prefixed name the builder renders. Ray forming from those images and
serving is tests/lab/test_serve_ray.py's."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironserve.lab import registry_push, vllm_image
from ironserve.lab import state as st
from tests.lab.conftest import BIN, ROOT, Node, lab_in

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
IMAGE = "vllm/vllm-openai:v0.11.0"


def _print(message: str) -> None:
    print(f"[lab-registry] {message}", flush=True)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("registry-lab")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch, lab_in(directory, 2, "gpu2", real_vllm=False):
        # The Ray stand-in's image (vLLM 0.11.0), the one this test pulls.
        patch.setenv("IRONSERVE_LAB_ENGINE_VERSION", "0.11.0")
        _print(f"lab up (registry + engine images included) {time.monotonic() - started:.1f}s")
        env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
        started = time.monotonic()
        done = subprocess.run(
            [str(BIN / "pyinfra"), "-y", INVENTORY, "deploys/provision.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _print(f"provision {time.monotonic() - started:.1f}s")
        yield directory


def _state(directory: Path) -> st.LabState:
    state = st.load(directory)
    assert state is not None
    return state


def _nodes(directory: Path) -> list[Node]:
    state = _state(directory)
    return [Node(state, n) for n in state.nodes]


def _parallel(nodes: list[Node], work: Any) -> list[Any]:
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return list(pool.map(work, nodes))


def _rendered(directory: Path, node: str) -> list[str]:
    """The docker command lines ``ironserve render`` prints for ``node`` (the builder's)."""
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
    done = subprocess.run(
        [str(BIN / "ironserve"), "render", "-i", INVENTORY, "--node", node],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line.startswith("docker ")]


def test_the_registry_holds_the_engine_images(lab: Path) -> None:
    state = _state(lab)
    registry = state.services["registry"]
    address = str(list(__import__("ipaddress").ip_network(state.subnet).hosts())[3])
    assert registry.address == address and registry.url == f"http://{address}:5000"
    assert registry.host_url is not None and registry.host_url.startswith("http://127.0.0.1:")
    catalog = httpx.get(f"{registry.host_url}/v2/_catalog").json()["repositories"]
    assert {"vllm/vllm-openai", "lmsysorg/sglang"} <= set(catalog)
    tags = httpx.get(f"{registry.host_url}/v2/vllm/vllm-openai/tags/list").json()["tags"]
    assert "v0.11.0" in tags
    digest = state.engine_images[f"{address}:5000/{IMAGE}"]
    assert digest.startswith("sha256:")
    # lab/registry_push.py puts layers in as docker save wrote them: a tar layer's digest is its
    # diff ID. (A storage that outlives labs may still hold a tag an older lab pushed gzipped.)
    accept = {"Accept": registry_push.MANIFEST}
    base = f"{registry.host_url}/v2/vllm/vllm-openai"
    manifest = httpx.get(f"{base}/manifests/{digest}", headers=accept).json()
    config = httpx.get(f"{base}/blobs/{manifest['config']['digest']}").json()
    layers = manifest["layers"]
    assert len(layers) == len(config["rootfs"]["diff_ids"])
    for layer, diff_id in zip(layers, config["rootfs"]["diff_ids"], strict=True):
        assert layer["mediaType"] in (registry_push.TAR, registry_push.TAR_GZIP)
        assert layer["mediaType"] != registry_push.TAR or layer["digest"] == diff_id
    # A lab made without the real vLLM publishes only the stand-ins (and builds no real image).
    assert f"{address}:5000/vllm/vllm-openai:v{vllm_image.VERSION}" not in state.engine_images


def test_nodes_pull_the_builders_image_name_through_the_mirror(lab: Path) -> None:
    state = _state(lab)
    nodes = _nodes(lab)
    rendered = f"{state.services['registry'].address}:5000/{IMAGE}"  # the builder's image
    digest = state.engine_images[rendered]
    lines = _rendered(lab, nodes[0].name)
    assert any(f" {rendered} " in line for line in lines), lines
    started = time.monotonic()
    _parallel(nodes, lambda n: n.run(f"docker pull -q {IMAGE}"))
    _print(f"pull of {IMAGE} on {len(nodes)} nodes in parallel {time.monotonic() - started:.1f}s")
    for node in nodes:
        _, out = node.run(f"docker image inspect --format '{{{{json .RepoDigests}}}}' {IMAGE}")
        assert any(d.endswith(digest) for d in json.loads(out)), (node.name, out, digest)
    # The image refuses a flag its declared version does not have (argparse: exit 2).
    code, out = nodes[0].run(f"docker run --rm {IMAGE} /m --enable-reasoning", check=False)
    assert code == 2 and "unrecognized arguments: --enable-reasoning" in out
