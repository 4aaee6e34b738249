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
from ironserve.engines.dynamo import Component, components
from ironserve.facts.dynamo import parse_discovery
from ironserve.facts.engine import parse_container, parse_system_health
from ironserve.health import cluster_tier as ct
from ironserve.health import dynamo_checks
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


def _registered(gp: ct.GroupPlan) -> dict[str, Any]:
    """DynamoDiscovery as the head reads it with every planned worker registered."""
    found = []
    for launch in gp.plan.nodes:
        for i, c in enumerate(w for w in gp.components(launch.node) if w.registers):
            found.append(
                {
                    "namespace": "default",
                    "component": "prefill" if c.pool == "prefill" else "backend",
                    "endpoint": "generate",
                    "instance_id": f"{launch.node}-{i}",
                    "address": gp.address(launch.node),
                    "port": c.system_port,
                }
            )
    return {"etcd": None, "nats": 200, "registrations": found}


def _facts(gp: ct.GroupPlan, **changed: dict[str, Any]) -> dict[str, ct.NodeFacts]:
    out = {}
    for launch in gp.plan.nodes:
        containers = {c.container: _fact() for c in gp.components(launch.node)}
        containers |= {k: v for k, v in changed.items() if k in containers}
        health = {
            int(c.system_port): 200 for c in gp.components(launch.node) if c.system_port is not None
        }
        # Every worker's /metrics as the lab's decode worker served them (no errors, KV 0%).
        page = (200, (FIXTURES / "worker-metrics-decode-ok.txt").read_text())
        out[launch.node] = ct.NodeFacts(
            reachable=True,
            containers=containers,
            system_health=health,
            worker_metrics=dict.fromkeys(health, page),
        )
    out[gp.head].discovery, out[gp.head].discovery_read = _registered(gp), True
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
    registered = [r for r in results if r.check == "cluster.dynamo_discovery"]
    assert len(registered) == 8 and {r.status for r in registered} == {Status.OK}
    (plane,) = [r for r in results if r.check == "cluster.dynamo_control_plane"]
    assert (plane.node, plane.status) == (HEAD, Status.OK)


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
    assert failing[0].runbook == "dynamo-decode-lost"


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


FIXTURES = ROOT / "tests" / "fixtures" / "dynamo"


def _lab_worker(pool: str) -> Component:
    """The lab's one worker of ``pool`` (inventories/lab_dynamo.py; tests/fixtures/dynamo)."""
    return Component(
        container=f"ironserve-default-{pool}-0",
        label=f"{pool} worker 0",
        pool=pool,
        system_port=18100,
    )


def _discovery(name: str) -> dict[str, Any] | None:
    return parse_discovery((FIXTURES / name).read_text().splitlines())


LAB_PREFILL = ("labgpu-2", "172.30.108.11", _lab_worker("prefill"))
LAB_DECODE = ("labgpu-3", "172.30.108.12", _lab_worker("decode"))


def test_registrations_read_from_the_labs_etcd() -> None:
    ok = _discovery("discovery-ok.txt")
    for node, address, worker in (LAB_PREFILL, LAB_DECODE):
        result = dynamo_checks.registration(node, address, worker, ok)
        assert result.status is Status.OK, result
    # The decode worker frozen past its lease: running, not registered; named with its pool.
    paused = _discovery("discovery-decode-paused.txt")
    result = dynamo_checks.registration(*LAB_DECODE, paused)
    assert (result.status, result.node, result.runbook) == (
        Status.FAIL,
        "labgpu-3",
        "dynamo-decode-lost",
    )
    assert result.observed.startswith(
        "decode worker 0 (ironserve-default-decode-0) on labgpu-3 runs but is not registered"
    )
    assert dynamo_checks.registration(*LAB_PREFILL, paused).status is Status.OK
    stopped = _discovery("discovery-prefill-stopped.txt")
    result = dynamo_checks.registration(*LAB_PREFILL, stopped)
    assert (result.status, result.runbook) == (Status.FAIL, "dynamo-prefill-lost")
    # etcd unreadable: not judged here (the control plane's result says why).
    etcd_down = _discovery("discovery-etcd-stopped.txt")
    assert dynamo_checks.registration(*LAB_DECODE, etcd_down).status is Status.UNKNOWN


def test_the_control_plane_down_fails_naming_etcd_or_nats() -> None:
    urls = ("labgpu-1", "http://172.30.108.10:2379", "http://172.30.108.10:8222")
    ok = dynamo_checks.control_plane(*urls, _discovery("discovery-ok.txt"))
    assert (ok.status, ok.observed) == (Status.OK, "etcd and NATS answer, 2 instances")
    etcd = dynamo_checks.control_plane(*urls, _discovery("discovery-etcd-stopped.txt"))
    assert (etcd.status, etcd.runbook) == (Status.FAIL, "dynamo-control-plane")
    assert etcd.observed.startswith("etcd at http://172.30.108.10:2379 does not answer (curl: (7)")
    nats = dynamo_checks.control_plane(*urls, _discovery("discovery-nats-stopped.txt"))
    assert (nats.status, nats.observed) == (
        Status.FAIL,
        "NATS at http://172.30.108.10:8222 /healthz: no answer",
    )
    assert dynamo_checks.control_plane(*urls, None).status is Status.UNKNOWN


def test_a_running_worker_missing_from_discovery_fails_on_its_node(disagg: ct.GroupPlan) -> None:
    facts = _facts(disagg)
    found = facts[HEAD].discovery or {}
    address = disagg.address(DECODE)
    found["registrations"] = [
        r for r in found["registrations"] if (r["address"], r["port"]) != (address, 18102)
    ]
    failing = _not_ok(ct.judge_group(disagg, facts))
    assert [(r.node, r.check, r.runbook) for r in failing] == [
        (DECODE, "cluster.dynamo_discovery", "dynamo-decode-lost")
    ]
    assert "decode worker 2 (ironserve-default-decode-2)" in failing[0].observed
    # etcd down: the head's control plane FAILs naming it; registrations are not judged.
    facts[HEAD].discovery = _discovery("discovery-etcd-stopped.txt")
    failing = _not_ok(ct.judge_group(disagg, facts))
    assert {(r.node, r.check, r.status) for r in failing if r.status is Status.FAIL} == {
        (HEAD, "cluster.dynamo_control_plane", Status.FAIL)
    }
    assert {r.check for r in failing if r.status is Status.UNKNOWN} == {"cluster.dynamo_discovery"}


def _frontend(name: str, served: str = "SmolLM2-135M-Instruct") -> dynamo_checks.FrontendMetrics:
    return dynamo_checks.frontend_metrics((FIXTURES / name).read_text(), served)


def test_the_frontends_metrics_judged_on_the_labs_frontend() -> None:
    judge = dynamo_checks.judge_frontend
    runbooks = ("dynamo-decode-lost", "dynamo-prefill-lost")
    ok = judge("labgpu-1", "SmolLM2-135M-Instruct", _frontend("frontend-metrics-ok.txt"), runbooks)
    assert ok.status is Status.OK, ok
    assert ok.observed.startswith("SmolLM2-135M-Instruct ready, 0 queued, router pending")
    lost = _frontend("frontend-metrics-decode-lost.txt")
    assert lost.ready == 0
    result = judge("labgpu-1", "SmolLM2-135M-Instruct", lost, runbooks)
    assert (result.status, result.runbook) == (Status.FAIL, "dynamo-decode-lost")
    # A request refused while the prefill worker was gone: stated, the model still ready.
    refused = _frontend("frontend-metrics-prefill-stopped.txt")
    assert refused.failed == {"unavailable": 1.0} and refused.succeeded == 1.0
    result = judge("labgpu-1", "SmolLM2-135M-Instruct", refused, runbooks)
    assert result.status is Status.OK and "failed since start: unavailable 1" in result.observed
    # Another model's name: not served by this frontend.
    other = judge("labgpu-1", "Qwen3-32B", _frontend("frontend-metrics-ok.txt", "Qwen3-32B"), ())
    assert (other.status, other.observed.split(":")[0]) == (
        Status.FAIL,
        "dynamo_frontend_model_ready for Qwen3-32B absent",
    )


def test_requests_pending_in_the_kv_router_warn() -> None:
    text = (FIXTURES / "frontend-metrics-ok.txt").read_text()
    line = (
        'dynamo_frontend_router_queue_pending_requests{model="SmolLM2-135M-Instruct",'
        'policy_class="default",worker_type="decode"} '
    )
    assert line + "0" in text
    pending = dynamo_checks.frontend_metrics(
        text.replace(line + "0", line + "3"), "SmolLM2-135M-Instruct"
    )
    result = dynamo_checks.judge_frontend("labgpu-1", "SmolLM2-135M-Instruct", pending, ())
    assert (result.status, result.runbook) == (Status.WARN, "kv-cache-full")
    assert "router pending decode 3, prefill 0" in result.observed
    # The frontend's own queue (received, no first token yet) holds the check's own request.
    queued = 'dynamo_frontend_queued_requests{model="SmolLM2-135M-Instruct"} '
    own = dynamo_checks.frontend_metrics(
        text.replace(queued + "0", queued + "1"), "SmolLM2-135M-Instruct"
    )
    result = dynamo_checks.judge_frontend("labgpu-1", "SmolLM2-135M-Instruct", own, ())
    assert result.status is Status.OK and "1 queued" in result.observed


def test_a_dynamo_frontends_metrics_are_read_as_dynamos(disagg: ct.GroupPlan) -> None:
    from ironserve.health import serving_tier as sv

    ep = sv.endpoint_of(disagg, "k")
    assert (ep.engine, ep.runbooks) == ("dynamo", ("dynamo-decode-lost", "dynamo-prefill-lost"))
    text = (
        (FIXTURES / "frontend-metrics-ok.txt")
        .read_text()
        .replace("SmolLM2-135M-Instruct", "Qwen3-32B")
    )
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, text=text)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        result = sv.check_metrics(ep, client)
    assert result is not None and (result.check, result.status) == (
        "serving.dynamo_metrics",
        Status.OK,
    )
    assert seen == ["Bearer k"]
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as client:
        down = sv.check_metrics(ep, client)
    assert down is not None and down.status is Status.UNKNOWN


def test_a_paused_worker_is_not_running(disagg: ct.GroupPlan) -> None:
    # docker inspect's State of the lab's frozen decode worker (`docker pause`), verbatim.
    state = {
        "Status": "paused",
        "Running": True,
        "Paused": True,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 984,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": "2026-12-03T21:48:00.108090622Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
    }
    doc = {"Labels": {}, "State": state, "RestartCount": 0, "Image": "sha256:" + "1" * 64}
    paused = parse_container(["@@inspect", json.dumps(doc)])
    failing = _not_ok(
        ct.judge_group(disagg, _facts(disagg, **{"ironserve-default-decode-1": paused}))
    )
    assert [(r.node, r.check, r.observed, r.runbook) for r in failing] == [
        (
            DECODE,
            "cluster.engine_containers",
            "decode worker 1 (ironserve-default-decode-1) paused",
            "dynamo-decode-lost",
        )
    ]


def test_a_restart_waits_until_every_worker_is_registered_once(disagg: ct.GroupPlan) -> None:
    from types import SimpleNamespace

    from ironserve.roles.engine.waits import registrations_settled

    group: Any = SimpleNamespace(plan=disagg.plan)
    found = _registered(disagg)
    assert registrations_settled(group, found)
    # A worker killed just before the restart: its old registration lingers beside the new one.
    stale = {**found["registrations"][-1], "instance_id": "dead"}
    assert not registrations_settled(
        group, {**found, "registrations": [*found["registrations"], stale]}
    )
    assert not registrations_settled(group, {**found, "registrations": found["registrations"][1:]})
    assert not registrations_settled(group, _discovery("discovery-etcd-stopped.txt"))
    assert not registrations_settled(group, None)


def test_a_worker_over_nodes_registers_from_its_first_node_only() -> None:
    """SGLang's wide-EP recipe: a prefill and a decode worker over 2 nodes each; the other
    ranks join the first node's and serve no endpoint, so neither health nor the restart's
    readiness wait expects their registration."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        cluster = load_cluster(
            str(ROOT / "inventories" / "h200x8_4node_r1_sglang_dynamo_wideep.py")
        )
    gp = ct.group_plans(cluster)[0]
    workers = [
        (launch.node, c.pool, c.registers)
        for launch in gp.plan.nodes
        for c in gp.components(launch.node)
        if c.pool is not None
    ]
    assert [registers for _, _, registers in workers] == [True, False, True, False], workers
    results = ct.judge_group(gp, _facts(gp))
    discovery = [r for r in results if r.check == "cluster.dynamo_discovery"]
    assert len(discovery) == 2 and {r.status for r in discovery} == {Status.OK}
