"""The cluster tier on a Dynamo group (the disaggregated example inventory): every container of
every node judged, a missing worker named with its node and pool, each running worker's system
/health, the frontend as the container that says "deployed"; the readiness rule of the serve
run (/v1/models lists the model) and the per-container spec hash."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironserve.config.loader import load_cluster
from ironserve.engines.base import ContainerSpec, RenderedFile
from ironserve.engines.dynamo import components
from ironserve.facts.engine import parse_container, parse_system_health
from ironserve.health import cluster_tier as ct
from ironserve.health.model import Status
from ironserve.roles.engine.waits import served
from ironserve.serving import spec

ROOT = Path(__file__).resolve().parents[2]
HEAD, DECODE = "h100-prefill", "h100-decode"


@pytest.fixture(scope="module")
def disagg() -> ct.GroupPlan:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        cluster = load_cluster(
            str(ROOT / "inventories" / "h100x8_2node_qwen3_32b_vllm_dynamo_kv.py")
        )
    return ct.group_plans(cluster)[0]


def _fact(running: bool = True, exists: bool = True) -> dict[str, Any]:
    if not exists:
        return parse_container(["@@inspect", "{}"])
    doc = {
        "Labels": {"ironserve.group": "default", "ironserve.spec": "s"},
        "State": {"Running": running, "Status": "running" if running else "exited"},
        "RestartCount": 0,
        "Image": "sha256:" + "1" * 64,
    }
    return parse_container(["@@inspect", json.dumps(doc)])


def _facts(gp: ct.GroupPlan, **changed: dict[str, Any]) -> dict[str, ct.NodeFacts]:
    out = {}
    for launch in gp.plan.nodes:
        containers = {c.container: _fact() for c in gp.components(launch.node)}
        containers |= {k: v for k, v in changed.items() if k in containers}
        health = {
            int(c.system_port): 200 for c in gp.components(launch.node) if c.system_port is not None
        }
        out[launch.node] = ct.NodeFacts(reachable=True, containers=containers, system_health=health)
    return out


def _not_ok(results: list[ct.CheckResult]) -> list[ct.CheckResult]:
    """Results that are not OK, but for the weights (these facts do not cover them)."""
    return [r for r in results if r.status is not Status.OK and r.check != "cluster.weights"]


def test_components_are_the_builders_containers_in_order(disagg: ct.GroupPlan) -> None:
    for launch in disagg.plan.nodes:
        assert [c.container for c in components(disagg.plan.context, launch.node)] == [
            c.name for c in launch.containers
        ]
    labels = [c.label for c in disagg.components(HEAD)]
    assert labels[:3] == ["etcd", "NATS", "frontend"]
    assert labels[3:] == [f"prefill worker {i}" for i in range(4)]
    assert [c.system_port for c in disagg.components(DECODE)] == [18100, 18101, 18102, 18103]


def test_every_container_running_and_healthy_is_ok(disagg: ct.GroupPlan) -> None:
    results = ct.judge_group(disagg, _facts(disagg))
    containers = [r for r in results if r.check == "cluster.engine_containers"]
    assert len(containers) == 11 and {r.status for r in containers} == {Status.OK}
    health = [r for r in results if r.check == "cluster.dynamo_worker_health"]
    assert len(health) == 8 and {r.status for r in health} == {Status.OK}


def test_a_missing_decode_worker_fails_naming_its_node_and_pool(disagg: ct.GroupPlan) -> None:
    facts = _facts(disagg, **{"ironserve-default-decode-2": _fact(exists=False)})
    failing = _not_ok(ct.judge_group(disagg, facts))
    assert [(r.node, r.check, r.observed) for r in failing] == [
        (
            DECODE,
            "cluster.engine_containers",
            "decode worker 2 (ironserve-default-decode-2) absent",
        )
    ]
    assert failing[0].runbook == "engine-container"


def test_a_worker_whose_system_health_is_not_200_fails(disagg: ct.GroupPlan) -> None:
    facts = _facts(disagg)
    facts[HEAD].system_health = {18100: 200, 18101: 503, 18102: 0, 18103: 200}
    failing = _not_ok(ct.judge_group(disagg, facts))
    assert [(r.node, r.observed) for r in failing] == [
        (
            HEAD,
            "prefill worker 1 (ironserve-default-prefill-1) system /health on port 18101: HTTP 503",
        ),
        (
            HEAD,
            "prefill worker 2 (ironserve-default-prefill-2) system /health on port 18102: "
            "no answer",
        ),
    ]
    facts[HEAD].system_health = None  # no curl on the node: not asked
    unknown = {
        r.status for r in ct.judge_group(disagg, facts) if r.node == HEAD and "health" in r.check
    }
    assert unknown == {Status.UNKNOWN}


def test_without_the_frontend_the_group_is_not_deployed(disagg: ct.GroupPlan) -> None:
    absent = _fact(exists=False)
    facts = _facts(disagg, **{c.container: absent for c in disagg.components(HEAD)})
    (result,) = ct.judge_group(disagg, facts)
    assert (result.check, result.status) == ("cluster.deployed", Status.WARN)
    assert "ironserve-default-frontend" in result.observed
    # The frontend there, one prefill worker gone: deployed, that worker fails.
    facts = _facts(disagg, **{"ironserve-default-prefill-0": absent})
    assert [r.observed for r in ct.judge_group(disagg, facts) if r.status is Status.FAIL] == [
        "prefill worker 0 (ironserve-default-prefill-0) absent"
    ]


def test_system_health_output_parsing() -> None:
    assert parse_system_health(["18100 200", "18101 000", "000", "junk"]) == {18100: 200, 18101: 0}
    assert parse_system_health(["@@no-curl"]) is None


def test_the_frontend_is_ready_only_once_it_lists_the_model() -> None:
    assert served({"object": "list", "data": [{"id": "Qwen3-32B"}]}, "Qwen3-32B")
    assert not served({"object": "list", "data": []}, "Qwen3-32B")
    assert not served({"error": "x"}, "Qwen3-32B") and not served([], "Qwen3-32B")


def test_a_containers_hash_covers_only_the_files_it_mounts() -> None:
    options = RenderedFile(path="/etc/ironserve/g/trtllm-prefill.yaml", content="a\n", mode="0644")
    changed = options.model_copy(update={"content": "b\n"})
    worker = ContainerSpec(
        name="w",
        image="i@sha256:" + "1" * 64,
        run_args=["-v", f"{options.path}:{options.path}:ro"],
        env={},
        command=[],
    )
    etcd = worker.model_copy(update={"name": "etcd", "run_args": []})
    assert spec.container_hash(worker, [options], "r") != spec.container_hash(
        worker, [changed], "r"
    )
    assert spec.container_hash(etcd, [options], "r") == spec.container_hash(etcd, [changed], "r")
    # The env file's revision counts only for a container that reads the env file.
    assert spec.container_hash(etcd, [], "r1") == spec.container_hash(etcd, [], "r2")
    reads = etcd.model_copy(update={"run_args": ["--env-file", "/etc/ironserve/g/secrets.env"]})
    assert spec.container_hash(reads, [], "r1") != spec.container_hash(reads, [], "r2")


def test_a_dynamo_frontends_metrics_are_not_judged_as_vllms(disagg: ct.GroupPlan) -> None:
    from ironserve.health import serving_tier as sv

    ep = sv.endpoint_of(disagg, "k")
    assert ep.engine == "dynamo"
    # Judged as vLLM's, this 500 would be an UNKNOWN result; None: no result at all.
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as client:
        assert sv.check_metrics(ep, client) is None
