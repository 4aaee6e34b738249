"""Serving end to end on a 3-node gpu2 lab of its own (2 simulated GPUs per node, the real lab
engine image from the lab registry, real Ray): deploys/site.py from bare nodes gives an OpenAI
endpoint that answers the `openai` client with the key and refuses it without; `ray status` in
the head shows 3 nodes and 6 GPUs; the serve command carries the Plan's TP 2 x PP 3; a second
run changes nothing and restarts nothing; a changed flag re-runs only the serve command; faults:
an image missing in the registry stops the run before any container is touched, a killed worker
container is brought back by deploys/restart.py, a worker node down before serve makes the Ray
wait fail within its timeout naming that node; deploys/stop.py leaves nothing running."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ironserve.lab import cluster
from tests.lab.conftest import BIN, ROOT, Node, lab_in, nodes_of

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
CONTAINER = "ironserve-default-ray"
# Short waits for the faults; the defaults (10 min for Ray, 2 h / 15 min stall for the load)
# are for real clusters.
FAST = ["--data", "serve_poll_interval=1"]
SERVE_CMDLINE = (
    f"docker exec {CONTAINER} sh -c "
    '\'tr "\\0" " " < /proc/$(cat /run/ironserve/serve.pid)/cmdline\''
)


def _print(message: str) -> None:
    print(f"[lab-serve] {message}", flush=True)


def pyinfra(lab_dir: Path, *args: str, timeout: int = 600) -> tuple[int, str, float]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(lab_dir)}
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "pyinfra"), "-y", INVENTORY, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def changed(output: str) -> str:
    """The Success column of pyinfra's "Grand total" row."""
    line = next(line for line in output.splitlines() if re.match(r"^\s+Grand total", line))
    return line.split()[3]


def containers(nodes: list[Node]) -> dict[str, list[tuple[str, str, str, str]]]:
    """Per node: (name, id, StartedAt, RestartCount) of every container, running or not."""
    fmt = "{{.Name}} {{.Id}} {{.State.StartedAt}} {{.RestartCount}}"
    found = {}
    for node in nodes:
        _, ids = node.run("docker ps -aq")
        rows: list[tuple[str, str, str, str]] = []
        if ids.split():
            _, out = node.run(f"docker inspect --format '{fmt}' {' '.join(ids.split())}")
            rows = sorted(tuple(line.split()) for line in out.splitlines() if line.strip())  # type: ignore[misc]
        found[node.name] = rows
    return found


def status(lab_dir: Path) -> dict[str, Any]:
    doc = cluster.status(lab_dir)
    assert doc is not None
    return doc


def client(lab_dir: Path, key: str | None = None) -> openai.OpenAI:
    doc = status(lab_dir)
    if key is None:
        key = Path(doc["api_key_file"]).read_text().strip().split("=")[-1]
    return openai.OpenAI(base_url=doc["endpoint"], api_key=key, max_retries=0, timeout=30)


def complete(lab_dir: Path) -> str:
    api = client(lab_dir)
    model = api.models.list().data[0].id
    answer = api.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    return answer.choices[0].message.content or ""


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("serve-lab")
    started = time.monotonic()
    with lab_in(directory, 3, "gpu2"):
        _print(f"lab up {time.monotonic() - started:.1f}s")
        # -vv: pyinfra prints every command and fact output; the key must be in none of them.
        code, out, took = pyinfra(directory, "deploys/site.py", "-vv", *FAST)
        assert code == 0, out[-6000:]
        assert changed(out) not in ("-", "0")
        key = (directory / "api_key").read_text().strip()
        assert key not in out
        assert "docker run -d --name ironserve-default-ray" in out  # -vv shows the commands
        _print(f"site.py from bare nodes {took:.1f}s")
        yield directory


def test_site_serves_the_plan_and_the_key_is_required(lab: Path) -> None:
    head = nodes_of(lab)[0]
    _, ray = head.run(f"docker exec {CONTAINER} ray status")
    assert re.search(r"^Active:\n( 1 node_[0-9a-f]+\n){3}Pending:", ray, re.M), ray
    # All 6 GPUs declared, and reserved by vLLM's placement group (TP 2 x PP 3 bundles).
    assert re.search(r" [\d.]+/6\.0 GPU \([\d.]+ used of 6\.0 reserved in placement groups\)", ray)
    plan = subprocess.run(
        [str(BIN / "ironserve"), "plan", "-i", INVENTORY, "--json"],
        cwd=ROOT,
        env={**os.environ, "IRONSERVE_LAB_DIR": str(lab)},
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(plan.stdout)
    doc = doc[0] if isinstance(doc, list) else doc
    tp, pp = doc["tensor_parallel_size"], doc["pipeline_parallel_size"]
    assert (tp, pp) == (2, 3)
    _, cmdline = head.run(SERVE_CMDLINE)
    assert f"--tensor-parallel-size {tp} --pipeline-parallel-size {pp}" in cmdline, cmdline
    assert "--distributed-executor-backend ray" in cmdline and "api-key" not in cmdline
    assert complete(lab).strip()
    with pytest.raises(openai.AuthenticationError):
        client(lab, key="wrong").models.list()
    assert httpx.get(f"{status(lab)['endpoint']}/models", timeout=10).status_code == 401
    key = Path(status(lab)["api_key_file"])
    assert key.stat().st_mode & 0o777 == 0o600
    for node in nodes_of(lab):
        _, mode = node.run("stat -c %a /etc/ironserve/default/secrets.env")
        assert mode.strip() == "600"
        _, logs = node.run(f"docker logs {CONTAINER} 2>&1")
        assert key.read_text().strip() not in logs


def test_a_second_run_changes_nothing_and_restarts_nothing(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    code, out, took = pyinfra(lab, "deploys/site.py", *FAST)
    assert code == 0, out[-4000:]
    assert changed(out) in ("-", "0"), out[-4000:]
    assert containers(nodes) == before
    assert all(rows and rows[0][3] == "0" for rows in before.values()), before
    _print(f"site.py again: 0 changes in {took:.1f}s")


def test_a_changed_flag_reruns_only_the_serve_command(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    code, out, _ = pyinfra(lab, "deploys/serve.py", *FAST, "--data", "model_max_len=4096")
    assert code == 0, out[-4000:]
    assert "Start the serve command in the Ray head" in out
    assert "engine container" not in out.split("--> Results:")[0]
    assert containers(nodes) == before  # no Ray container was touched
    _, cmdline = nodes[0].run(SERVE_CMDLINE)
    assert "--max-model-len 4096" in cmdline
    code, out, _ = pyinfra(lab, "deploys/serve.py", *FAST)  # back to the inventory's value
    assert code == 0, out[-4000:]
    _, cmdline = nodes[0].run(SERVE_CMDLINE)
    assert "--max-model-len 8192" in cmdline
    assert complete(lab).strip()


def test_an_image_missing_in_the_registry_changes_nothing(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    registry = status(lab)["services"]["registry"]["address"]
    image = f"{registry}:5000/vllm/vllm-openai:v9.9.9"
    code, out, _ = pyinfra(lab, "deploys/serve.py", "--data", f"engine_image={image}")
    assert code != 0
    assert f"engine_image: image {image} is not in its registry" in out, out[-3000:]
    assert "Starting operation" not in out
    assert containers(nodes) == before


def test_a_killed_worker_container_is_brought_back_by_restart(lab: Path) -> None:
    nodes = nodes_of(lab)
    nodes[2].run(f"docker kill {CONTAINER}")
    _, state_ = nodes[2].run(f"docker inspect -f '{{{{.State.Status}}}}' {CONTAINER}")
    assert state_.strip() == "exited"  # `docker kill` is not restarted by unless-stopped
    code, out, took = pyinfra(lab, "deploys/restart.py", *FAST)
    assert code == 0, out[-4000:]
    _print(f"restart.py (head, workers, ray, serve, ready) {took:.1f}s")
    _, ray = nodes[0].run(f"docker exec {CONTAINER} ray status")
    assert re.search(r"^Active:\n( 1 node_[0-9a-f]+\n){3}Pending:", ray, re.M), ray
    assert complete(lab).strip()


def test_stop_leaves_nothing_running_then_a_node_down_fails_the_ray_wait_naming_it(
    lab: Path,
) -> None:
    nodes = nodes_of(lab)
    code, out, _ = pyinfra(lab, "deploys/stop.py")
    assert code == 0, out[-3000:]
    for node in nodes:
        _, running = node.run("docker ps -aq")
        assert running.strip() == "", (node.name, running)
    code, out, _ = pyinfra(lab, "deploys/stop.py")
    assert code == 0 and changed(out) in ("-", "0"), out[-3000:]

    worker = nodes[2]
    cluster.fault(worker.name, "node-down", directory=lab)
    try:
        timeout = 20
        code, out, took = pyinfra(
            lab, "deploys/serve.py", *FAST, "--data", f"serve_ray_timeout={timeout}"
        )
        assert code != 0
        address = worker.node.address
        assert f"Missing: {worker.name} ({address}): not in the Ray cluster" in out, out[-4000:]
        assert "its SSH connection failed in this run" in out
        # Connect (~10 s SSH timeout for the down node) + facts + containers + the wait.
        assert took < timeout + 90, took
        _print(f"node down: the Ray wait failed naming {worker.name} in {took:.1f}s")
    finally:
        cluster.heal(worker.name, directory=lab)
    code, out, _ = pyinfra(lab, "deploys/serve.py", *FAST)
    assert code == 0, out[-4000:]
    assert complete(lab).strip()
