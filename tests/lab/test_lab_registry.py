"""The lab registry and the lab engine image, end to end on a 3-node gpu2 lab of its own:
provisioning (with the registry as insecure registry and Docker Hub mirror, from
inventories/lab.py) lets every node pull ``vllm/vllm-openai:v0.11.0`` unchanged; the Ray head and
worker containers started with the exact commands the vLLM builder renders form one Ray cluster
(3 nodes, 6 GPUs); ``vllm serve`` through ``docker exec -d`` reserves the GPUs in a placement
group, checks the weights on every node and serves a chat completion with the API key."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironserve.lab import state as st
from tests.lab.conftest import BIN, ROOT, Node, lab_in
from tests.lab_sim.test_lab_engine import make_model

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
KEY = "lab-registry-test-key"
IMAGE = "vllm/vllm-openai:v0.11.0"


def _print(message: str) -> None:
    print(f"[lab-registry] {message}", flush=True)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("registry-lab")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch, lab_in(directory, 3, "gpu2"):
        # vLLM on Ray (the stand-in image) serving the synthetic 8B: the builder's Ray commands.
        patch.setenv("IRONSERVE_LAB_ENGINE_VERSION", "0.11.0")
        patch.setenv("IRONSERVE_LAB_MODEL", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B")
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
    assert state.engine_images[f"{address}:5000/{IMAGE}"].startswith("sha256:")


def test_nodes_pull_the_builders_image_name_through_the_mirror(lab: Path) -> None:
    state = _state(lab)
    nodes = _nodes(lab)
    digest = state.engine_images[f"{state.services['registry'].address}:5000/{IMAGE}"]
    started = time.monotonic()
    _parallel(nodes, lambda n: n.run(f"docker pull -q {IMAGE}"))
    _print(f"pull of {IMAGE} on {len(nodes)} nodes in parallel {time.monotonic() - started:.1f}s")
    for node in nodes:
        _, out = node.run(f"docker image inspect --format '{{{{json .RepoDigests}}}}' {IMAGE}")
        assert any(d.endswith(digest) for d in json.loads(out)), (node.name, out, digest)
    # The image refuses a flag its declared version does not have (argparse: exit 2).
    code, out = nodes[0].run(f"docker run --rm {IMAGE} /m --enable-reasoning", check=False)
    assert code == 2 and "unrecognized arguments: --enable-reasoning" in out


def _put_model_and_key(node: Node, model_dir: str, local: Path, secrets_env: str) -> None:
    client = node.client()
    try:
        client.exec_command(f"mkdir -p {shlex.quote(model_dir)} {os.path.dirname(secrets_env)}")[
            1
        ].channel.recv_exit_status()
        sftp = client.open_sftp()
        for path in local.iterdir():
            sftp.put(str(path), f"{model_dir}/{path.name}")
        sftp.putfo(io.BytesIO(f"VLLM_API_KEY={KEY}\n".encode()), secrets_env)
        sftp.chmod(secrets_env, 0o600)
        sftp.close()
    finally:
        client.close()


def test_ray_forms_across_the_nodes_and_vllm_serves(lab: Path, tmp_path: Path) -> None:
    nodes = _nodes(lab)
    head = nodes[0]
    commands = {n.name: _rendered(lab, n.name) for n in nodes}
    run_head, serve = commands[head.name]
    assert "--tensor-parallel-size 2 --pipeline-parallel-size 3" in serve
    # Where the builder mounts the weights and the env file: put a lab model and the key there.
    argv = shlex.split(run_head)
    model_dir = argv[argv.index("-v") + 1].split(":")[0]
    secrets_env = argv[argv.index("--env-file") + 1]
    local = make_model(tmp_path / "model")
    _parallel(nodes, lambda n: _put_model_and_key(n, model_dir, local, secrets_env))
    container = argv[argv.index("--name") + 1]
    try:
        started = time.monotonic()
        head.run(run_head)
        _parallel(nodes[1:], lambda n: n.run(commands[n.name][0]))
        status = ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            code, status = head.run(f"docker exec {container} ray status", check=False)
            if code == 0 and " 0.0/6.0 GPU" in status and status.count(" 1 node_") == 3:
                break
            time.sleep(2)
        assert " 0.0/6.0 GPU" in status and status.count(" 1 node_") == 3, status
        _print(f"ray cluster of 3 nodes / 6 GPUs formed in {time.monotonic() - started:.1f}s")

        started = time.monotonic()
        head.run(serve.replace("docker exec -d", "docker exec -d -e IRONSERVE_LAB_LOAD_SECONDS=3"))
        base = f"http://{head.node.address}:8000"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                _, logs = head.run(f"docker logs --tail 40 {container}", check=False)
                raise AssertionError(f"no /health within 180 s:\n{logs}")
            time.sleep(1)
        _print(f"vllm serve to /health {time.monotonic() - started:.1f}s (3 s of it the load)")
        body = {
            "model": "DeepSeek-R1-Distill-Llama-8B",
            "messages": [{"role": "user", "content": "Say hello"}],
            "max_tokens": 8,
        }
        refused = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10)
        assert refused.status_code == 401
        answer = httpx.post(
            f"{base}/v1/chat/completions",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["choices"][0]["message"]["content"].split()) == 8
        _, status = head.run(f"docker exec {container} ray status")
        assert "6.0 reserved in placement groups" in status, status
        # A second serve asking for more GPUs than the cluster has is refused, naming them.
        more = serve.replace("docker exec -d", "docker exec").replace(
            "--tensor-parallel-size 2 --pipeline-parallel-size 3",
            "--tensor-parallel-size 4 --pipeline-parallel-size 2",
        )
        code, out = head.run(more.replace("--port 8000", "--port 8001"), check=False)
        assert code == 1 and "The number of required GPUs (8" in out, out
        _, logs = head.run(f"docker logs {container}")
        assert "Loading safetensors checkpoint shards: 100% Completed | 4/4" in logs
        assert logs.count("weights present and well-formed on") == 3, logs
        assert KEY not in logs
        for node in nodes:
            _, mem = node.run(f"docker stats --no-stream --format '{{{{.MemUsage}}}}' {container}")
            _print(f"{node.name}: Ray container memory {mem.strip()}")
    finally:
        _parallel(nodes, lambda n: n.run(f"docker rm -f {container}", check=False))
