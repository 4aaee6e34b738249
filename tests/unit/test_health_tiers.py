"""Cluster and serving tiers of `ironserve health`: verdicts against the Plans of the example
inventories, from facts parsed out of captured outputs (docker inspect, `ray status` in every
fixture layout, hccn_tool -ping) and from a real HTTP endpoint (the lab engine's server, in this
process, with vLLM's old and new metric names); the tier dispatch and the not-deployed rule."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.config.loader import load_cluster
from ironserve.facts.engine import parse_container
from ironserve.facts.metrics import EngineMetrics
from ironserve.facts.npu_ping import parse_ping
from ironserve.health import RUNBOOKS, tiers
from ironserve.health import cluster_tier as ct
from ironserve.health import serving_tier as sv
from ironserve.health.model import CheckResult, Status, exit_code
from ironserve.lab.engine.server import EngineServer, Settings
from ironserve.serving import apikey, ray_status, spec

ROOT = Path(__file__).resolve().parents[2]
RAY = ROOT / "tests" / "fixtures" / "ray"
OUTPUTS = ROOT / "tests" / "fixtures" / "outputs"
INSPECT = ROOT / "tests" / "facts" / "fixtures" / "docker-inspect-format.engine-container.txt"
RAY_3NODE = "tests/fixtures/ray/b2-active-usage-placement-groups.2080tix16.txt"


def _plans(inventory: str, **engine: Any) -> list[ct.GroupPlan]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        cluster = load_cluster(str(ROOT / "inventories" / inventory))
    groups = [
        g.model_copy(update={"engine": g.engine.model_copy(update=engine)}) for g in cluster.groups
    ]
    return ct.group_plans(cluster.model_copy(update={"groups": groups}))


@pytest.fixture(scope="module")
def l40s() -> ct.GroupPlan:
    """3 nodes x 2 L40S, vLLM 0.11 on Ray (TP 2 x PP 3 over the nodes)."""
    return _plans("l40sx2_3node_distill32b_vllm.py", version="0.11.0")[0]


@pytest.fixture(scope="module")
def l40s_native() -> ct.GroupPlan:
    """The same nodes on current vLLM: every node runs its rank (TP 2 x DP 3), no Ray."""
    return _plans("l40sx2_3node_distill32b_vllm.py")[0]


@pytest.fixture(scope="module")
def ascend() -> ct.GroupPlan:
    return _plans("ascend910b_2node_r1_mindie.py")[0]


def _container(
    restarts: int = 0, state: str = "running", serve: str | None = "s"
) -> dict[str, Any]:
    """The captured `docker inspect` of a labelled container, with state/restarts changed."""
    doc = json.loads(INSPECT.read_text())
    doc["RestartCount"] = restarts
    doc["State"].update(Status=state, Running=state == "running")
    lines = ["@@inspect", json.dumps(doc), "@@serve", *([serve] if serve else []), "@@ray"]
    return parse_container(lines)


# --- cluster.engine_containers ------------------------------------------------------------------


def test_engine_container_verdicts_from_the_captured_inspect() -> None:
    ok = ct.engine_container("n1", "c", _container())
    assert (ok.status, ok.runbook, ok.check) == (Status.OK, "", "cluster.engine_containers")
    stopped = ct.engine_container("n1", "c", _container(state="exited"))
    assert (stopped.status, stopped.runbook) == (Status.FAIL, "engine-container")
    assert stopped.observed == "c exited"
    loop = ct.engine_container("n1", "c", _container(restarts=2, state="restarting"))
    assert (loop.status, loop.observed) == (Status.FAIL, "c restarting, 2 restarts (crash loop)")
    came_back = ct.engine_container("n1", "c", _container(restarts=1))
    assert (came_back.status, came_back.runbook) == (Status.WARN, "engine-container")
    many = ct.engine_container("n1", "c", _container(restarts=ct.RESTARTS_FAIL))
    assert many.status is Status.FAIL
    absent = ct.engine_container("n1", "c", parse_container(["@@inspect", "{}"]))
    assert (absent.status, absent.observed) == (Status.FAIL, "c absent")
    unreachable = ct.engine_container("n1", "c", None)
    assert (unreachable.status, unreachable.runbook) == (Status.UNKNOWN, "node-down")
    no_docker = ct.engine_container("n1", "c", parse_container(["@@no-docker"]))
    assert (no_docker.status, no_docker.runbook) == (Status.FAIL, "container-runtime")


def test_a_ray_head_whose_serve_command_died_fails_and_a_stale_one_warns() -> None:
    dead = ct.engine_container("n1", "c", _container(serve=None), serve_expected="s")
    assert (dead.status, dead.runbook) == (Status.FAIL, "engine-container")
    assert "serve command" in dead.observed
    stale = ct.engine_container("n1", "c", _container(serve="old"), serve_expected="s")
    assert stale.status is Status.WARN
    assert ct.engine_container("n1", "c", _container(), serve_expected="s").status is Status.OK


# --- cluster.ray_nodes ---------------------------------------------------------------------------


def test_every_ray_fixture_parses_in_its_layout() -> None:
    """Every captured `ray status` (old `Healthy:` and new `Active:`/`Idle:` layouts) parses
    into alive nodes; the old layout is recognised as such."""
    fixtures = sorted(RAY.glob("*.txt"))
    assert len(fixtures) >= 10
    layouts = {f.name: ray_status.parse(f.read_text()) for f in fixtures}
    assert all(s.nodes > 0 and s.layout != "none" for s in layouts.values()), layouts
    assert {s.layout for n, s in layouts.items() if n.startswith("a")} == {"healthy"}
    assert {s.layout for n, s in layouts.items() if n[0] in "bcl"} == {"active"}


@pytest.mark.parametrize(
    ("fixture", "gpus", "verdict"),
    [
        # 2 nodes x 8 = 16 GPUs: short of the 3 planned nodes (6 GPUs) -> FAIL
        ("b2-active-usage-placement-groups.2080tix16.txt", 16.0, Status.FAIL),
        ("a1-healthy.a100x32.txt", 32.0, Status.OK),  # 4 nodes (Healthy:), 32 GPUs >= plan
        ("c1-active-total-usage.gh200x8.txt", 8.0, Status.FAIL),  # 2 nodes
        ("a3-healthy-verbose.cpu.txt", 0.0, Status.FAIL),  # 3 nodes, no GPUs
    ],
)
def test_ray_nodes_against_the_plan_in_old_and_new_layouts(
    l40s: ct.GroupPlan, fixture: str, gpus: float, verdict: Status
) -> None:
    text = (RAY / fixture).read_text()
    assert ray_status.parse(text).gpus == gpus
    rows = ct.ray_nodes(l40s.plan, text, None, head_running=True)
    assert {r.status for r in rows} == {verdict}
    if verdict is Status.OK:  # one result per planned node
        assert [r.node for r in rows] == [n.node for n in l40s.plan.nodes]
    else:  # missing nodes unnamed without the probe: one FAIL on the head
        assert [(r.node, r.runbook) for r in rows] == [(l40s.head, "ray-nodes")]


def test_the_nodes_probe_puts_the_fail_on_exactly_the_missing_node(l40s: ct.GroupPlan) -> None:
    text = (RAY / "b3-active-usage.ray2.24.txt").read_text()  # 2 nodes
    alive = {n.address: 2.0 for n in l40s.plan.nodes[:2]}
    rows = ct.ray_nodes(l40s.plan, text, alive, head_running=True)
    failing = [(r.node, r.runbook) for r in rows if r.status is Status.FAIL]
    assert failing == [(l40s.plan.nodes[2].node, "ray-nodes")]
    assert "not in the Ray cluster" in next(r.observed for r in rows if r.status is Status.FAIL)
    assert [r.status for r in rows[:2]] == [Status.OK, Status.OK]


def test_ray_unreadable_or_no_cluster(l40s: ct.GroupPlan) -> None:
    (down,) = ct.ray_nodes(l40s.plan, None, None, head_running=False)
    assert (down.status, down.node) == (Status.UNKNOWN, l40s.head)
    no_status = "No cluster status. It may take a few seconds for the Ray internal services."
    (none,) = ct.ray_nodes(l40s.plan, no_status, None, head_running=True)
    assert (none.status, none.runbook) == (Status.FAIL, "ray-nodes")


# --- cluster.weights -----------------------------------------------------------------------------


def _weights(**changes: Any) -> dict[str, Any]:
    files = {"config.json": {"size": 10, "sha256": "a", "mtime_ns": 5}}
    files["model.safetensors"] = {"size": 2**20, "sha256": "b", "mtime_ns": 7}
    state = {
        "manifest": {"repo_id": "org/m", "files": files},
        "stat": {"config.json": [10, 5], "model.safetensors": [2**20, 7]},
    }
    state.update(changes)
    return state


def test_weights_manifest_sizes_and_mtimes() -> None:
    ok = ct.weights("n1", "/data/m", _weights())
    assert (ok.status, ok.observed) == (Status.OK, "org/m: 2 files, 1 MiB")
    flipped = ct.weights(
        "n1", "/data/m", _weights(stat={"config.json": [10, 5], "model.safetensors": [2**20, 9]})
    )
    assert (flipped.status, flipped.runbook) == (Status.FAIL, "weights-corrupt")
    assert flipped.observed == "changed since verified model.safetensors"
    gone = ct.weights("n1", "/data/m", _weights(stat={"config.json": [10, 5]}))
    assert gone.observed == "missing model.safetensors"
    assert ct.weights("n1", "/data/m", _weights(manifest=None)).status is Status.FAIL
    assert ct.weights("n1", "/data/m", None).status is Status.UNKNOWN


# --- cluster.npu_ping ----------------------------------------------------------------------------


def test_hccn_ping_capture_parses() -> None:
    lines = (OUTPUTS / "hccn-ping.txt").read_text().splitlines()
    assert parse_ping(lines, 0) == {"sent": 3, "received": 3, "loss": 0.0, "rc": 0}
    lost = ["device 3 PING 10.0.0.9", "3 packets transmitted, 0 received, 100.00% packet loss"]
    assert parse_ping(lost, 1)["received"] == 0
    assert parse_ping(["timeout"], 124)["received"] is None


def test_npu_pings_each_device_to_the_same_device_of_every_peer(ascend: ct.GroupPlan) -> None:
    a0, a1 = (n.name for n in ascend.group.nodes)
    targets = ct.ping_targets(ascend.group, a0)
    peer_ips = [str(ip) for ip in ascend.group.nodes[1].npu.device_ips]
    assert targets == list(enumerate(peer_ips))
    good = dict.fromkeys(targets, parse_ping(["3 packets transmitted, 3 received, 0% packet loss"]))
    assert ct.npu_pings(a0, targets, good).status is Status.OK
    bad = dict(good)
    bad[targets[5]] = parse_ping(["3 packets transmitted, 0 received, 100.00% packet loss"])
    failed = ct.npu_pings(a0, targets, bad)
    assert (failed.status, failed.runbook) == (Status.FAIL, "npu-link")
    assert failed.observed == f"no answer: npu5->{peer_ips[5]}"
    assert ct.npu_pings(a0, targets, {}).status is Status.UNKNOWN  # no hccn_tool
    assert ct.npu_pings(a1, targets, None).status is Status.UNKNOWN  # timed out


# --- a group's judgement ------------------------------------------------------------------------


def test_a_group_without_its_head_container_is_not_deployed(l40s: ct.GroupPlan) -> None:
    absent = parse_container(["@@inspect", "{}", "@@serve", "@@ray"])
    facts = {n.node: ct.NodeFacts(reachable=True, container=absent) for n in l40s.plan.nodes}
    (result,) = ct.judge_group(l40s, facts)
    assert (result.check, result.status, result.runbook) == (
        "cluster.deployed",
        Status.WARN,
        "first-deploy",
    )


def test_npu_pings_run_whether_the_group_is_deployed_or_not(ascend: ct.GroupPlan) -> None:
    absent = parse_container(["@@inspect", "{}"])
    good = parse_ping(["3 packets transmitted, 3 received, 0.00% packet loss"], 0)
    facts = {}
    for n in ascend.group.nodes:
        pings = dict.fromkeys(ct.ping_targets(ascend.group, n.name), good)
        facts[n.name] = ct.NodeFacts(reachable=True, container=absent, pings=pings)
    results = ct.judge_group(ascend, facts)
    assert [(r.check, r.status) for r in results] == [
        ("cluster.deployed", Status.WARN),
        ("cluster.npu_ping", Status.OK),
        ("cluster.npu_ping", Status.OK),
    ]


def test_a_stopped_worker_fails_exactly_that_node(l40s: ct.GroupPlan) -> None:
    head, w1, w2 = (n.node for n in l40s.plan.nodes)
    serve = spec.serve_hash(l40s.plan.nodes[0])
    ray_text = (RAY / "b3-active-usage.ray2.24.txt").read_text()  # 2 of 3 nodes
    head_fact = _container(serve=serve) | {"ray_status": ray_text}
    alive = {n.address: 2.0 for n in l40s.plan.nodes[:2]}
    weights = _weights()
    facts = {
        head: ct.NodeFacts(True, head_fact, weights, None, alive),
        w1: ct.NodeFacts(True, _container(serve=None), weights),
        w2: ct.NodeFacts(True, _container(state="exited", serve=None), weights),
    }
    results = ct.judge_group(l40s, facts)
    failing = {(r.node, r.check, r.runbook) for r in results if r.status is not Status.OK}
    assert failing == {
        (w2, "cluster.engine_containers", "engine-container"),
        (w2, "cluster.ray_nodes", "ray-nodes"),
    }
    assert exit_code(results) == 2
    assert all(r.runbook in RUNBOOKS for r in results if r.runbook)


def test_native_layout_a_stopped_headless_rank_fails_that_node_and_no_ray_is_read(
    l40s_native: ct.GroupPlan,
) -> None:
    assert not l40s_native.ray
    head, w1, w2 = (n.node for n in l40s_native.plan.nodes)
    weights = _weights()
    facts = {
        head: ct.NodeFacts(True, _container(serve=None), weights),
        w1: ct.NodeFacts(True, _container(state="exited", serve=None), weights),
        w2: ct.NodeFacts(True, _container(serve=None), weights),
    }
    results = ct.judge_group(l40s_native, facts)
    failing = {(r.node, r.check, r.runbook) for r in results if r.status is not Status.OK}
    assert failing == {(w1, "cluster.engine_containers", "engine-container")}
    assert not any(r.check == "cluster.ray_nodes" for r in results)


# --- serving tier against a real HTTP endpoint ---------------------------------------------------


@pytest.fixture(params=["0.6.3", "0.11.0"], ids=["gpu_cache_usage_perc", "kv_cache_usage_perc"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[sv.Endpoint]:
    """The lab engine's HTTP server (what lab nodes serve) on loopback: vLLM < 0.10 prints the
    deprecated KV-cache name, >= 0.10 the current one."""
    settings = Settings(["m"], "/models/m", 4096, "k3y", version=request.param)
    server = EngineServer(settings, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield sv.Endpoint("g", "n1", f"http://127.0.0.1:{server.server_port}", "m", "vllm", "k3y")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check: r for r in results}


def test_a_healthy_endpoint_is_ok_with_both_kv_metric_names(endpoint: sv.Endpoint) -> None:
    results = _by_check(sv.check_endpoint(endpoint))
    assert {c: r.status for c, r in results.items()} == {
        "serving.health": Status.OK,
        "serving.models": Status.OK,
        "serving.completion": Status.OK,
        "serving.metrics": Status.OK,
    }
    assert results["serving.models"].observed == "serves ['m']"
    metric = results["serving.metrics"].observed
    assert metric.startswith("running 0, waiting 0, kv 0.0% (vllm:")
    assert ("deprecated" in metric) == ("gpu_cache_usage_perc" in metric)


def test_a_wrong_name_a_wrong_key_and_a_tight_budget(endpoint: sv.Endpoint) -> None:
    other = sv.Endpoint(**{**endpoint.__dict__, "served_name": "other"})
    with httpx.Client() as client:
        named = sv.check_models(other, client)
        assert (named.status, named.runbook) == (Status.FAIL, "change-model")
        refused = sv.check_models(sv.Endpoint(**{**endpoint.__dict__, "key": "bad"}), client)
        assert (refused.status, refused.runbook) == (Status.FAIL, "endpoint-down")
        assert "refused" in refused.observed
        slow = sv.check_completion(endpoint, client, budget_s=0.0)
        assert slow.status is Status.WARN  # answered, but over its budget
        nokey = sv.Endpoint(**{**endpoint.__dict__, "key": None, "key_error": "none"})
        assert sv.check_completion(nokey, client).status is Status.UNKNOWN


def test_a_down_endpoint_fails_never_ok() -> None:
    ep = sv.Endpoint("g", "n1", "http://127.0.0.1:9", "m", "vllm", "k")  # discard port: refused
    results = _by_check(sv.check_endpoint(ep))
    for check in ("serving.health", "serving.models", "serving.completion"):
        assert (results[check].status, results[check].runbook) == (Status.FAIL, "endpoint-down")
    assert results["serving.metrics"].status is Status.UNKNOWN


def test_kv_cache_thresholds() -> None:
    ep = sv.Endpoint("g", "n1", "http://x", "m", "vllm", "k")
    full = sv.judge_metrics(ep, EngineMetrics(4, 0, 0.97, "vllm:kv_cache_usage_perc", ()))
    assert (full.status, full.runbook) == (Status.WARN, "kv-cache-full")
    queue = sv.judge_metrics(ep, EngineMetrics(4, 3, 0.85, "vllm:kv_cache_usage_perc", ()))
    assert queue.status is Status.WARN
    busy = sv.judge_metrics(ep, EngineMetrics(4, 3, 0.2, "vllm:kv_cache_usage_perc", ()))
    assert busy.status is Status.OK  # a queue on an empty cache is load, not a full cache
    none = sv.judge_metrics(ep, EngineMetrics(None, None, None, None, ()))
    assert none.status is Status.UNKNOWN


def test_the_key_comes_from_the_plans_file_then_the_node(
    l40s: ct.GroupPlan, tmp_path: Path
) -> None:
    from ironserve.plan.plan import Plan

    ctx = l40s.plan.context
    key_file = tmp_path / "key"
    key_file.write_text("VLLM_API_KEY=s3cret\n")
    key_file.chmod(0o600)
    gp = ct.GroupPlan(l40s.group, Plan.build(ctx, api_key_file=key_file))
    assert sv.key_of(gp) == ("s3cret", None)
    key_file.chmod(0o644)
    key, why = sv.key_of(gp)
    assert key is None and "0600" in str(why)
    # No serving_api_key_file: the key a deploy generated here, else the serving node's env file.
    generated = Plan.build(ctx, api_key_dir=str(tmp_path / "keys"))
    gp = ct.GroupPlan(l40s.group, generated)
    asked: list[tuple[str, str]] = []

    def remote(node: str, path: str) -> str:
        asked.append((node, path))
        return "VLLM_API_KEY=fromnode\nIRONSERVE_API_KEY=fromnode\n"

    assert sv.key_of(gp, remote) == ("fromnode", None)
    assert asked == [(l40s.head, "/etc/ironserve/default/secrets.env")]
    assert sv.key_of(gp)[0] is None
    made, path, _ = apikey.ensure_plan_key(generated.api_key)
    assert path.parent == tmp_path / "keys"
    assert sv.key_of(gp, remote) == (made, None) and len(asked) == 1  # the node is not asked


# --- dispatch ------------------------------------------------------------------------------------


def test_the_cli_knows_every_tier_and_preflight_has_a_hook(tmp_path: Path) -> None:
    assert tiers.TIERS == ("preflight", "node", "cluster", "serving", "all")
    empty = tmp_path / "inv.py"
    empty.write_text("hosts = []\n")
    bogus = CliRunner().invoke(app, ["health", "-i", str(empty), "--tier", "bogus"])
    assert bogus.exit_code == 2 and "preflight, node, cluster, serving, all" in bogus.output
    assert tiers.PREFLIGHT == ("ironserve.health.preflight", "run_preflight_tier")


def _fake_tiers(
    monkeypatch: pytest.MonkeyPatch, cluster: list[CheckResult], deployed: list[CheckResult]
) -> list[str]:
    ran: list[str] = []

    def node_tier(inventory: str, node: str | None) -> tuple[list[str], list[CheckResult]]:
        ran.append("node")
        return ["deepseek01"], [CheckResult("nvidia.xid", "node", "deepseek01", Status.OK, "", "")]

    def serving(plans: list[ct.GroupPlan], *args: Any) -> list[CheckResult]:
        ran.append("serving")
        return [CheckResult("serving.health", "serving", "deepseek01", Status.OK, "200", "200")]

    def cluster_tier(*args: Any) -> list[CheckResult]:
        ran.append("cluster")
        return cluster

    def head_only(*args: Any) -> list[CheckResult]:
        ran.append("deployed")
        return deployed

    monkeypatch.setattr("ironserve.health.runner.run_node_tier", node_tier)
    monkeypatch.setattr("ironserve.deploy.transport.open_state", lambda inventory: None)
    monkeypatch.setattr(ct, "run_cluster_tier", cluster_tier)
    monkeypatch.setattr(ct, "deployed", head_only)
    monkeypatch.setattr(sv, "run_serving_tier", serving)
    return ran


def test_all_runs_every_tier_and_an_undeployed_group_has_no_serving_results(
    monkeypatch: pytest.MonkeyPatch, l40s: ct.GroupPlan
) -> None:
    from ironserve.config.inventory import load_inventory

    inventory = str(ROOT / "inventories" / "l40sx2_3node_distill32b_vllm.py")
    records = load_inventory(inventory)
    ok = CheckResult("cluster.weights", "cluster", "deepseek01", Status.OK, "", "")
    ran = _fake_tiers(monkeypatch, [ok], [])
    nodes, results = tiers.run(inventory, records, "all")
    assert nodes == ["deepseek01"] and sorted(ran) == ["cluster", "node", "serving"]
    assert {r.tier for r in results} == {"node", "cluster", "serving"}
    assert exit_code(results) == 0
    warn = ct.not_deployed(l40s)
    ran = _fake_tiers(monkeypatch, [warn], [warn])
    _, results = tiers.run(inventory, records, "all")
    assert [r.check for r in results] == ["nvidia.xid", "cluster.deployed"]
    assert exit_code(results) == 1
    ran = _fake_tiers(monkeypatch, [], [warn])
    _, results = tiers.run(inventory, records, "serving")
    assert (sorted(ran), [r.check for r in results]) == (
        ["deployed", "serving"],
        ["cluster.deployed"],
    )
    if not _has_preflight():  # the preflight tier's module is another piece of work
        with pytest.raises(tiers.TierMissing):
            tiers.run(inventory, records, "preflight")


def _has_preflight() -> bool:
    import importlib.util

    return importlib.util.find_spec(tiers.PREFLIGHT[0]) is not None


def test_metrics_not_exported_warns_and_mindie_is_not_judged() -> None:
    ep = sv.Endpoint("g", "n1", "http://engine:30000", "m", "sglang", "k")
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404))) as client:
        off = sv.check_metrics(ep, client)
        assert off is not None and off.status is Status.WARN
        assert "--enable-metrics" in off.action
        assert sv.check_metrics(sv.Endpoint(**{**ep.__dict__, "engine": "mindie"}), client) is None
        # trtllm-serve's /metrics is JSON iteration stats, not Prometheus text: not judged.
        assert sv.check_metrics(sv.Endpoint(**{**ep.__dict__, "engine": "trtllm"}), client) is None
