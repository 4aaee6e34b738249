"""``ironserve health`` cluster and serving tiers on a served 3-node gpu2 lab of its own (what
`make demo` builds: deploys/site.py, vLLM on Ray, TP 2 x PP 3, the lab engine image).

Healthy: every tier OK, exit 0, in a few seconds. A stopped worker engine container: the
cluster-tier container check FAILs on exactly that node (engine-container) and, once Ray's GCS
has marked the node dead (tens of seconds), ``cluster.ray_nodes`` FAILs on that node too
(ray-nodes); the serving tier stays OK, because the lab engine answers from the head alone (a real
vLLM would lose a pipeline stage). A stopped head container: the head's container FAILs and its
endpoint checks FAIL (endpoint-down), Ray is UNKNOWN (unreadable), nothing on another node.
deploys/restart.py heals both. A shard changed on one node FAILs that node's weights. After
deploys/stop.py the group is *not deployed*: one WARN
(first-deploy), exit 1, no serving results."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import BIN, ROOT, lab_in, nodes_of

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
CONTAINER = "ironserve-default-ray"
FAST = ["--data", "serve_poll_interval=1"]
RAY_NOTICE_S = 90  # Ray's GCS marks a stopped raylet's node dead within about 30 s


def _print(message: str) -> None:
    print(f"[lab-health-serving] {message}", flush=True)


def _run(lab_dir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(lab_dir)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _pyinfra(lab_dir: Path, deploy: str) -> None:
    started = time.monotonic()
    done = _run(lab_dir, str(BIN / "pyinfra"), "-y", INVENTORY, deploy, *FAST)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    _print(f"{deploy} {time.monotonic() - started:.1f}s")


def _health(lab_dir: Path, *args: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    done = _run(lab_dir, str(BIN / "ironserve"), "health", "-i", INVENTORY, "--json", *args)
    took = time.monotonic() - started
    assert done.stdout.strip(), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout), took


def _not_ok(report: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (r["node"], r["check"], r["status"], r["runbook"])
        for r in report["results"]
        if r["status"] != "OK"
    }


@pytest.fixture(scope="module")
def served(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("health-serving-lab")
    started = time.monotonic()
    with lab_in(directory, 3, "gpu2"):
        _print(f"lab up {time.monotonic() - started:.1f}s")
        _pyinfra(directory, "deploys/site.py")
        yield directory


def test_a_served_lab_is_ok_in_every_tier(served: Path) -> None:
    code, report, took = _health(served)  # the default tier: node + cluster + serving
    _print(f"health (default tier, 3 nodes) {took:.1f}s: {report['summary']}")
    assert (code, _not_ok(report)) == (0, set())
    checks = {r["check"] for r in report["results"]}
    assert {
        "cluster.engine_containers",
        "cluster.ray_nodes",
        "cluster.weights",
        "serving.health",
        "serving.models",
        "serving.completion",
        "serving.metrics",
    } <= checks
    assert any(c.startswith("nvidia.") for c in checks)  # the node tier ran alongside
    names = [n.name for n in nodes_of(served)]
    for check in ("cluster.engine_containers", "cluster.ray_nodes", "cluster.weights"):
        assert sorted(r["node"] for r in report["results"] if r["check"] == check) == names
    metrics = next(r for r in report["results"] if r["check"] == "serving.metrics")
    assert "vllm:kv_cache_usage_perc" in metrics["observed"]  # the lab engine is vLLM 0.11
    assert took < 30
    for tier in ("cluster", "serving"):
        code, report, took = _health(served, "--tier", tier)
        _print(f"health --tier {tier} {took:.1f}s")
        assert code == 0 and {r["tier"] for r in report["results"]} == {tier}


def test_a_stopped_worker_container_fails_exactly_that_node(served: Path) -> None:
    worker = nodes_of(served)[2]
    worker.run(f"docker stop {CONTAINER}")
    try:
        code, report, _ = _health(served)
        assert code == 2
        failing = _not_ok(report)
        assert (worker.name, "cluster.engine_containers", "FAIL", "engine-container") in failing
        # Ray may not have noticed yet; whatever else fails is that node's Ray membership.
        assert failing <= {
            (worker.name, "cluster.engine_containers", "FAIL", "engine-container"),
            (worker.name, "cluster.ray_nodes", "FAIL", "ray-nodes"),
        }, failing
        deadline = time.monotonic() + RAY_NOTICE_S
        while (worker.name, "cluster.ray_nodes", "FAIL", "ray-nodes") not in failing:
            assert time.monotonic() < deadline, f"Ray still lists {worker.name}: {failing}"
            time.sleep(5)
            code, report, _ = _health(served, "--tier", "cluster")
            failing = _not_ok(report)
        ray = next(
            r
            for r in report["results"]
            if (r["node"], r["check"]) == (worker.name, "cluster.ray_nodes")
        )
        assert "2/3 nodes" in ray["observed"] and "not in the Ray cluster" in ray["observed"]
        # The lab engine answers from the head alone: the endpoint stays up (see the docstring).
        code, report, _ = _health(served, "--tier", "serving")
        assert (code, _not_ok(report)) == (0, set())
    finally:
        _pyinfra(served, "deploys/restart.py")
    code, report, _ = _health(served)
    assert (code, _not_ok(report)) == (0, set())


def test_a_stopped_head_container_takes_the_endpoint_down(served: Path) -> None:
    head = nodes_of(served)[0]
    head.run(f"docker stop {CONTAINER}")
    try:
        code, report, _ = _health(served)
        assert code == 2
        assert _not_ok(report) == {
            (head.name, "cluster.engine_containers", "FAIL", "engine-container"),
            (head.name, "cluster.ray_nodes", "UNKNOWN", "ray-nodes"),
            (head.name, "serving.health", "FAIL", "endpoint-down"),
            (head.name, "serving.models", "FAIL", "endpoint-down"),
            (head.name, "serving.completion", "FAIL", "endpoint-down"),
            (head.name, "serving.metrics", "UNKNOWN", "endpoint-down"),
        }
    finally:
        _pyinfra(served, "deploys/restart.py")
    code, report, _ = _health(served)
    assert (code, _not_ok(report)) == (0, set())


def test_a_changed_shard_fails_the_weights_of_exactly_that_node(served: Path) -> None:
    """A flipped byte (as tests/lab/test_runbooks.py corrupts a shard) gives the file a new mtime:
    the cheap check FAILs it; the original copied back with its mtime is OK again."""
    node = nodes_of(served)[1]
    _, report, _ = _health(served, "--tier", "cluster")
    row = next(
        r for r in report["results"] if (r["node"], r["check"]) == (node.name, "cluster.weights")
    )
    path = row["expected"].split(":")[0]
    shard = f"f=$(ls {path}/*.safetensors | head -1) && "
    node.run(
        shard + 'cp -p "$f" /tmp/shard.orig && '
        'printf X | dd of="$f" bs=1 seek=64 conv=notrunc status=none'
    )
    try:
        code, report, _ = _health(served, "--tier", "cluster")
        assert (code, _not_ok(report)) == (
            2,
            {(node.name, "cluster.weights", "FAIL", "weights-corrupt")},
        )
    finally:
        node.run(shard + 'cp -p /tmp/shard.orig "$f" && rm /tmp/shard.orig')
    code, report, _ = _health(served, "--tier", "cluster")
    assert (code, _not_ok(report)) == (0, set())


def test_a_stopped_group_is_not_deployed(served: Path) -> None:
    """Runs last: it removes the serving group's containers."""
    _pyinfra(served, "deploys/stop.py")
    head = nodes_of(served)[0]
    for tier in ([], ["--tier", "serving"], ["--tier", "cluster"]):
        code, report, _ = _health(served, *tier)
        assert code == 1, tier
        assert _not_ok(report) == {(head.name, "cluster.deployed", "WARN", "first-deploy")}
        assert not [r for r in report["results"] if r["tier"] == "serving"]
