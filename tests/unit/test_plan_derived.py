"""What the Plan derives from the inventory once (endpoint, API key location, launch layout,
ports, disk per node), and that every reader takes it from there: health's serving and cluster
tiers, bench, runbook filling, monitoring's scrape targets, the engine role's Ray rule."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from ironserve.bench.target import endpoint_of as bench_endpoint
from ironserve.config.inventory import HostRecord, load_inventory
from ironserve.config.loader import build_cluster
from ironserve.config.schema import Cluster
from ironserve.errors import InputError
from ironserve.health import cluster_tier as ct
from ironserve.health import serving_tier as sv
from ironserve.plan.plan import Plan, plan_group
from ironserve.rules.disk import node_disk_need_bytes
from ironserve.runbooks import site_values
from ironserve.serving import ray_status

ROOT = Path(__file__).resolve().parents[2]
L40S = str(ROOT / "inventories" / "l40sx2_3node_distill32b_vllm.py")
MINDIE = str(ROOT / "inventories" / "ascend910b_2node_r1_mindie.py")
RAY_3NODE = ROOT / "tests" / "fixtures" / "ray" / "b2-active-usage-placement-groups.2080tix16.txt"


def _records(inventory: str, **data: Any) -> list[HostRecord]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        records = load_inventory(inventory)
    return [HostRecord(r.name, r.groups, {**r.data, **data}) for r in records]


def _cluster(inventory: str = L40S, **data: Any) -> Cluster:
    return build_cluster(_records(inventory, **data))


def _plan(inventory: str = L40S, **data: Any) -> Plan:
    return plan_group(_cluster(inventory, **data).groups[0])


def test_the_endpoint_is_the_serving_nodes_address_and_the_planned_port() -> None:
    plan = _plan(engine_port=8123)
    assert plan.endpoint.node == "deepseek01" == plan.serving.node
    assert plan.endpoint.url == "http://172.16.0.102:8123/v1"
    assert plan.endpoint.health_url == "http://172.16.0.102:8123/health"
    assert plan.endpoint.metrics_url == "http://172.16.0.102:8123/metrics"
    assert plan.summary()["endpoint"]["url"] == plan.endpoint.url  # `ironserve plan --json`


def test_the_api_key_location_names_both_files(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("sk-test\n")
    key.chmod(0o600)
    given = _plan(serving_api_key_file=str(key))
    assert (given.api_key.control_file, given.api_key.generated) == (str(key), False)
    assert given.api_key.node_file == "/etc/ironserve/default/secrets.env"
    assert given.api_key.enforced
    generated = _plan(serving_api_key_file=None, serving_api_key_dir=str(tmp_path))
    assert generated.api_key.generated
    assert Path(generated.api_key.control_file).parent == tmp_path
    # The key's folder under its former name (a roles/engine key) still counts.
    old = _plan(serving_api_key_file=None, serve_api_key_dir=str(tmp_path))
    assert old.api_key == generated.api_key
    # MindIE serves no key of its own: only the gateway (on by default) enforces one.
    assert _plan(MINDIE).api_key.enforced
    assert not _plan(MINDIE, serving_gateway=False).api_key.enforced


def test_the_gateway_fronts_the_engine_on_the_public_port() -> None:
    plan = _plan(engine_port=8123, serving_backend_port=18123)
    gw = plan.gateway
    assert gw is not None and (gw.node, gw.port) == ("deepseek01", 8123) == (
        plan.endpoint.node,
        plan.endpoint.port,
    )
    assert gw.upstream == "127.0.0.1:18123"
    assert gw.public_paths == []  # every path wants the key
    argv = plan.serving.container.command
    assert argv[argv.index("--host") + 1 : argv.index("--port") + 2] == [
        "127.0.0.1",
        "--port",
        "18123",
    ]
    mindie = _plan(MINDIE).gateway  # MindIE binds its node's address (ServerConfig.ipAddress)
    assert mindie is not None and mindie.upstream == f"{_plan(MINDIE).endpoint.address}:18000"
    opened = _plan(serving_public_health=True, serving_public_metrics=True).gateway
    assert opened is not None and opened.public_paths == ["/health", "/metrics"]
    off = _plan(engine_port=8123, serving_gateway=False)
    assert off.gateway is None
    argv = off.serving.container.command
    assert argv[argv.index("--host") + 1 : argv.index("--port") + 2] == [
        "0.0.0.0",
        "--port",
        "8123",
    ]


def test_the_launch_layout_ray_and_native() -> None:
    ray = _plan(engine_version="0.11.0").layout
    assert ray.kind == "ray" and ray.ray is not None and ray.rendezvous is None
    assert ray.ray.head_address == "172.16.0.102" and ray.ray.port == 6379
    assert ray.ray.planned() == {
        "deepseek01": ("172.16.0.102", 2.0),
        "deepseek02": ("172.16.0.43", 2.0),
        "deepseek03": ("172.16.0.44", 2.0),
    }
    assert ray.ray.gpus == 6.0
    assert "ray.nodes()" in ray.ray.probe_command()
    assert ray.ray.status_command() == "docker exec ironserve-default-ray ray status"
    native = _plan().layout
    assert native.kind == "native" and native.ray is None and native.rendezvous is not None
    assert (native.rendezvous.address, native.rendezvous.port) == ("172.16.0.102", 29501)
    assert native.rendezvous.dp_rpc_port == 29550  # TP 2 x DP 3: replicas meet at node 0


def test_ray_is_short_of_the_plan() -> None:
    ray = _plan(engine_version="0.11.0").layout.ray
    assert ray is not None
    assert ray.is_short(ray_status.RayStatus(2, 4.0, 0.0, "active"))
    assert ray.is_short(ray_status.RayStatus(3, 4.0, 0.0, "active"))  # a node without its GPUs
    assert not ray.is_short(ray_status.RayStatus(3, 6.0, 0.0, "active"))


def test_ports_and_disk_per_node() -> None:
    plan = _plan(engine_port=8123)
    assert [(p.port, p.nodes, p.purpose) for p in plan.ports] == [
        (8123, ["deepseek01"], "OpenAI API"),
        (18000, ["deepseek01"], "engine API behind the gateway"),
        (29501, ["deepseek01"], "rank rendezvous"),
        (29550, ["deepseek01"], "data-parallel RPC"),
    ]
    ray = _plan(engine_version="0.11.0")
    assert (6379, ["deepseek01"], "Ray GCS") in [(p.port, p.nodes, p.purpose) for p in ray.ports]
    assert [d.node for d in plan.disk] == ["deepseek01", "deepseek02", "deepseek03"]
    assert {d.weights_bytes for d in plan.disk} == {plan.sizing.weights_bytes}
    assert {d.path for d in plan.disk} == {plan.context.weights_path}


def test_the_plan_states_each_nodes_disk_need_with_its_own_margin() -> None:
    """The free disk a node needs (ironserve.rules.disk: weights x the node's own
    preflight_disk_margin) is in the Plan, per node, and in `ironserve plan --json`."""
    records = [
        HostRecord(r.name, r.groups, {**r.data, "preflight_disk_margin": 1.5})
        if r.name == "deepseek02"
        else r
        for r in _records(L40S)
    ]
    plan = plan_group(build_cluster(records).groups[0])
    weights = plan.sizing.weights_bytes
    assert {d.node: (d.margin, d.need_bytes) for d in plan.disk} == {
        "deepseek01": (1.1, node_disk_need_bytes(weights, 1.1)),
        "deepseek02": (1.5, node_disk_need_bytes(weights, 1.5)),
        "deepseek03": (1.1, node_disk_need_bytes(weights, 1.1)),
    }
    assert node_disk_need_bytes(weights, 1.5) == int(weights * 1.5)
    # With part of the weights in place the need shrinks by it, from the Plan's own figures.
    half = weights // 2
    assert plan.disk_of("deepseek02").need(half).need_bytes == int(weights * 1.5) - half
    doc = {d["node"]: d for d in plan.summary()["disk"]}
    assert doc["deepseek02"]["need_bytes"] == int(weights * 1.5)
    assert doc["deepseek02"]["margin"] == 1.5


@pytest.mark.parametrize("margin", ["lots", 0, -1.1])
def test_a_bad_disk_margin_is_bad_input_naming_host_and_key(margin: object) -> None:
    with pytest.raises(InputError) as error:
        _cluster(preflight_disk_margin=margin)
    assert any(
        p.host == "deepseek01" and p.field == "preflight_disk_margin" for p in error.value.problems
    )


@pytest.mark.parametrize("port", [8000, 9123])
def test_every_reader_takes_the_plans_endpoint_and_key(tmp_path: Path, port: int) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret\n")
    key_file.chmod(0o600)
    cluster = _cluster(engine_port=port, serving_api_key_file=str(key_file))
    plan = plan_group(cluster.groups[0])
    url = f"http://172.16.0.102:{port}/v1"
    assert plan.endpoint.url == url
    target = bench_endpoint(cluster)
    assert (target.base_url, target.api_key) == (url, "s3cret")
    gp = ct.group_plans(cluster)[0]
    assert sv.endpoint_of(gp, None).base + "/v1" == url
    assert sv.key_of(gp) == ("s3cret", None)
    values = site_values(cluster, L40S)
    assert values["endpoint"] == url and values["api_key_file"] == str(key_file)
    assert values["health_url"] == plan.endpoint.health_url


def test_monitoring_scrapes_the_plans_endpoint() -> None:
    from ironserve.roles.monitoring import render
    from ironserve.roles.monitoring.defaults import DEFAULTS

    plan = _plan(engine_port=9123)
    engine = [t for t in render.scrape_targets([plan], DEFAULTS) if t.job == "engine"]
    assert [(t.address, t.node) for t in engine] == [("172.16.0.102:9123", "deepseek01")]


def test_a_key_readable_by_others_is_refused_by_every_reader(tmp_path: Path) -> None:
    from ironserve.errors import InputError

    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret\n")
    key_file.chmod(0o600)
    cluster = _cluster(serving_api_key_file=str(key_file))
    key_file.chmod(0o644)  # after validation: the readers check again when they read it
    with pytest.raises(InputError, match="0600"):
        bench_endpoint(cluster)
    key, why = sv.key_of(ct.group_plans(cluster)[0])
    assert key is None and "0600" in str(why)


def test_the_engine_role_and_the_cluster_tier_share_rays_rule() -> None:
    from ironserve.roles.engine.decide import ray_short

    plan = _plan(engine_version="0.11.0")
    three_nodes = RAY_3NODE.read_text()  # 2 nodes, 16 GPUs: short of 3 nodes
    assert ray_short(plan, three_nodes)
    gp = ct.GroupPlan(_cluster(engine_version="0.11.0").groups[0], plan)
    rows = ct.ray_nodes(gp.plan, three_nodes, {"172.16.0.102": 2.0, "172.16.0.43": 2.0}, True)
    failed = [r.node for r in rows if r.status.value == "FAIL"]
    assert failed == ["deepseek03"]
