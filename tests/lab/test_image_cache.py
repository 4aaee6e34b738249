"""Issue 17's image cache on a 3-node gpu2 lab of its own: provisioning lists the head's
pull-through cache on every node (roles/container_runtime), then the cache (roles/image_cache)
and roles/engine's pull by digest through it (tests/lab/deploys/image_pull.py). The lab
registry is the upstream; its access log counts the bytes it sends per repository
(lab/registry.py ``served_bytes``): the engine image's blobs leave it exactly once for three
nodes, and a second run pulls nothing and changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironserve.lab import registry as lab_registry
from ironserve.lab import state as st
from ironserve.serving.registry import parse_image
from tests.lab.conftest import lab_in, nodes_of
from tests.lab.serving import changed, pyinfra

pytestmark = pytest.mark.lab

ENGINE = "vllm/vllm-openai"  # the stand-in vLLM 0.11.0 (about 570 MB)


def _print(message: str) -> None:
    print(f"[image-cache] {message}", flush=True)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("image-cache-lab")
    with pytest.MonkeyPatch.context() as patch, lab_in(directory, 3, "gpu2", real_vllm=False):
        patch.setenv("IRONSERVE_LAB_ENGINE_VERSION", "0.11.0")
        patch.setenv("IRONSERVE_LAB_IMAGE_CACHE", "1")
        code, out, took = pyinfra(directory, "deploys/provision.py", timeout=900)
        assert code == 0, out[-4000:]
        _print(f"provision {took:.1f}s")
        yield directory


def _registry_log(docker_client: Any, state: st.LabState) -> str:
    container = docker_client.containers.get(state.services["registry"].container_id)
    return str(container.logs(stdout=True, stderr=False).decode())


def _image_bytes(state: st.LabState, digest: str) -> int:
    """The bytes of the image's distinct blobs (config and layers; a layer listed twice is
    pulled once), from its manifest in the lab registry."""
    host_url = state.services["registry"].host_url
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    answer = httpx.get(
        f"{host_url}/v2/{ENGINE}/manifests/{digest}", headers={"Accept": accept}, timeout=30
    )
    answer.raise_for_status()
    manifest = answer.json()
    found = {b["digest"]: int(b["size"]) for b in [manifest["config"], *manifest["layers"]]}
    return sum(found.values())


def test_three_nodes_pull_the_engine_image_from_upstream_once(
    lab: Path, docker_client: Any
) -> None:
    state = st.load(lab)
    assert state is not None
    head, *others = nodes_of(lab)
    cache = f"{head.node.address}:5050"
    for node in (head, *others):  # provisioning made the head's cache every node's registry
        _, text = node.run("cat /etc/docker/daemon.json")
        assert cache in json.loads(text)["insecure-registries"], node.name

    before = lab_registry.served_bytes(_registry_log(docker_client, state), ENGINE)
    code, out, took = pyinfra(lab, "tests/lab/deploys/image_pull.py", timeout=900)
    assert code == 0, out[-4000:]
    time.sleep(1)  # the access log line is written when the response ends
    served = lab_registry.served_bytes(_registry_log(docker_client, state), ENGINE) - before

    engine = next(ref for ref in state.engine_images if ENGINE in ref and "v0.11.0" in ref)
    digest = state.engine_images[engine]
    image = _image_bytes(state, digest)
    _print(f"first run {took:.1f}s: upstream sent {served} bytes for a {image}-byte image")
    assert served == image, f"the upstream sent {served / image:.2f} images for 3 nodes"
    pinned = f"{cache}/{parse_image(engine).repository}@{digest}"
    for node in (head, *others):  # every node holds the image, under the cache's name
        node.run(f"docker image inspect {pinned} >/dev/null")

    code, out, took = pyinfra(lab, "tests/lab/deploys/image_pull.py", timeout=600)
    assert code == 0, out[-4000:]
    time.sleep(1)
    again = lab_registry.served_bytes(_registry_log(docker_client, state), ENGINE) - before
    _print(f"second run {took:.1f}s: upstream sent {again - served} more bytes")
    assert again == served
    assert changed(out) == "-", out[-3000:]
