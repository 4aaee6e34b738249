"""TensorRT-LLM on the lab: deploys/site.py from a bare node with ``engine_kind: trtllm`` pulls
the lab's stand-in ``nvcr.io/nvidia/tensorrt-llm/release:1.2.1`` (lab/engine/trtllm_cli.py:
trtllm-serve's click options checked against the same flag table), serves the model under its
folder's name, and the gateway checks the key (trtllm-serve has none). One node: the stand-in
runs no MPI world."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from ironserve.catalog.engines import ENGINES, EngineKind
from ironserve.lab import real_model
from ironserve.lab import state as st
from tests.lab.conftest import lab_in, nodes_of
from tests.lab.serving import FAST, api_key, changed, client, pyinfra, status

pytestmark = pytest.mark.lab

VERSION = ENGINES[EngineKind.TRTLLM].default_version  # pushed by `lab up`
IMAGE = ENGINES[EngineKind.TRTLLM].image(VERSION)
CONTAINER = "ironserve-default-trtllm"
SERVED = real_model.REPO_ID.split("/")[1]  # inventories/lab.py's model_served_name


def test_trtllm_serves_behind_the_gateway_under_the_folders_name(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("trtllm-lab")
    with lab_in(directory, 1, "labgpu"):
        registry = st.load(directory).services["registry"].address  # type: ignore[union-attr]
        trtllm = [
            *("--data", "engine_kind=trtllm", "--data", f"engine_version={VERSION}"),
            *("--data", f"engine_image={registry}:5000/{IMAGE}"),
            *("--data", "engine_extra_args=[]", "--data", "model_max_len=2048"),
            # One 512 MiB lab GPU holds the whole model (the demo splits it over three).
            *("--data", "engine_memory_utilization=0.95"),
        ]
        started = time.monotonic()
        code, out, took = pyinfra(directory, "deploys/site.py", *FAST, *trtllm)
        assert code == 0, out[-6000:]
        assert "Prove a chat completion with the API key" in out
        print(f"\ntrtllm site.py from a bare node {took:.1f}s", flush=True)
        (head,) = nodes_of(directory)
        _, args = head.run(f"docker inspect --format '{{{{json .Args}}}}' {CONTAINER}")
        assert "/ironserve/models/" in args and "--tp_size" in args, args
        # The model is named after its folder (the served name), and only with the key.
        api = client(directory)
        assert [m.id for m in api.models.list().data] == [SERVED]
        assert f"/ironserve/models/{SERVED}" in args
        base = status(directory)["endpoint"]
        assert httpx.get(f"{base}/models", timeout=30).status_code == 401
        assert api_key(directory) not in out
        # A second run changes nothing.
        code, out, _ = pyinfra(directory, "deploys/site.py", *FAST, *trtllm)
        assert code == 0, out[-6000:]
        assert changed(out) in ("-", "0"), out[-3000:]
        print(f"trtllm lab test {time.monotonic() - started:.1f}s", flush=True)
