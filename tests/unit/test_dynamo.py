"""Dynamo groups (issue 16): validation before SSH, sizing per pool, the builders' containers,
the flag table and the serving roles' refusal. Goldens: tests/golden/test_golden_dynamo.py."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from collections import Counter
from typing import Any

import pytest

from ironserve.catalog.dynamo import (
    DynamoBackend,
    component_table,
    pinned_engine_version,
    worker_flags_problems,
)
from ironserve.config import build_cluster
from ironserve.config.inventory import HostRecord
from ironserve.engines.base import ContainerSpec
from ironserve.errors import InputError
from ironserve.plan.plan import Plan, plan_group
from tests.conftest import ROOT

GROUP = {
    "model_id": "Qwen/Qwen3-32B",
    "engine_kind": "dynamo",
    "accelerator_kind": "h100-80g",
    "accelerator_count": 8,
    "network_socket_ifname": "eth0",
    "network_ib_hcas": ["mlx5_0"],
    "dynamo_mode": "disaggregated",
}


def _records(*pools: str, **data: Any) -> list[HostRecord]:
    """One node per pool named, the first the head."""
    return [
        HostRecord(
            f"n{i}",
            ("site",),
            {
                **GROUP,
                "node_role": "head" if i == 0 else "worker",
                "node_ip": f"10.0.0.{10 + i}",
                "node_dynamo_pool": pool,
                **data,
            },
        )
        for i, pool in enumerate(pools)
    ]


def _problems(records: list[HostRecord]) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as caught:
        build_cluster(records)
    return [(p.host, p.field, p.message) for p in caught.value.problems]


def _plan(records: list[HostRecord]) -> Plan:
    (group,) = build_cluster(records).groups
    return plan_group(group)


def _containers(plan: Plan, node: str) -> list[ContainerSpec]:
    return plan.node(node).containers


def _option(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


# --- validation -------------------------------------------------------------------------------


def test_a_prefill_pool_without_a_decode_pool_is_refused_naming_the_head() -> None:
    (problem,) = _problems(_records("prefill", "prefill"))
    host, key, message = problem
    assert (host, key) == ("n0", "node_dynamo_pool")
    assert "a prefill pool without a decode pool" in message


def test_every_node_of_a_dynamo_group_names_its_pool() -> None:
    records = _records("prefill", "decode")
    records[1].data.pop("node_dynamo_pool")
    assert [(h, k) for h, k, _ in _problems(records)] == [("n1", "node_dynamo_pool")]


def test_a_pool_of_the_other_mode_is_refused() -> None:
    problems = _problems(_records("prefill", "decode", dynamo_mode="aggregated"))
    assert {(h, k) for h, k, _ in problems} == {
        ("n0", "node_dynamo_pool"),
        ("n1", "node_dynamo_pool"),
    }
    assert all("not a pool of dynamo_mode aggregated" in m for _, _, m in problems)


def test_the_frontend_pool_is_the_head_only() -> None:
    problems = _problems(_records("prefill", "frontend", "decode"))
    assert [(h, k) for h, k, _ in problems] == [("n1", "node_dynamo_pool")]
    assert "the frontend runs on the head (n0)" in problems[0][2]


def test_a_worker_tp_larger_than_its_node_is_refused_naming_node_and_key() -> None:
    records = _records("prefill", "decode", dynamo_prefill={"tensor_parallel_size": 16})
    (problem,) = _problems(records)
    assert problem[:2] == ("n0", "dynamo_prefill")
    assert "TP 16 x DP 1 = 16 devices does not fit this node's 8" in problem[2]


def test_more_workers_than_a_node_holds_are_refused() -> None:
    pool = {"tensor_parallel_size": 4, "workers_per_node": 3}
    (problem,) = _problems(_records("prefill", "decode", dynamo_decode=pool))
    assert problem[:2] == ("n1", "dynamo_decode")
    assert "need 12; this node has 8" in problem[2]


def test_disaggregated_across_nodes_over_rdma_needs_the_hcas_of_every_worker_node() -> None:
    problems = _problems(_records("prefill", "decode", network_ib_hcas=[]))
    assert [(h, k) for h, k, _ in problems] == [
        ("n0", "network_ib_hcas"),
        ("n1", "network_ib_hcas"),
    ]
    assert "dynamo_kv_fabric: tcp" in problems[0][2]


def test_disaggregated_over_tcp_needs_no_hcas_and_tells_ucx() -> None:
    plan = _plan(_records("prefill", "decode", network_ib_hcas=[], dynamo_kv_fabric="tcp"))
    worker = _containers(plan, "n1")[-1]
    assert worker.env["UCX_TLS"] == "tcp,cuda_copy"
    assert "/dev/infiniband" not in worker.run_args


def test_file_discovery_is_for_one_node() -> None:
    (problem,) = _problems(_records("prefill", "decode", dynamo_control_plane="file"))
    assert problem[:2] == ("n0", "dynamo_control_plane")


def test_engine_parallelism_keys_are_refused_for_dynamo_in_favour_of_the_pools() -> None:
    (problem,) = _problems(_records("prefill", "decode", engine_tensor_parallel_size=4))
    assert problem[:2] == ("n0", "engine_tensor_parallel_size")
    assert "dynamo_prefill" in problem[2]


def test_dynamo_keys_on_another_engine_are_refused() -> None:
    records = _records("worker", engine_kind="vllm", dynamo_mode="aggregated")
    assert {(h, k) for h, k, _ in _problems(records)} == {
        ("n0", "dynamo_mode"),
        ("n0", "node_dynamo_pool"),
    }


def test_a_dynamo_group_keeps_the_gateway_since_its_frontend_checks_no_key() -> None:
    (problem,) = _problems(_records("prefill", "decode", serving_gateway=False))
    assert problem[:2] == ("n0", "serving_gateway")


def test_extra_args_are_checked_against_dynamo_and_the_pinned_engine() -> None:
    # A Dynamo worker option and a vLLM 0.31 option pass; an unknown one is named.
    extra = ["--engine-request-limit", "64", "--enable-prefix-caching", "--is-prefill-worker"]
    (problem,) = _problems(_records("prefill", "decode", engine_extra_args=extra))
    assert problem[:2] == ("n0", "engine_extra_args")
    assert problem[2].startswith(
        "--is-prefill-worker is not a dynamo.vllm 1.6.1 (with vllm 0.31.0)"
    )


def test_a_dynamo_version_older_than_every_table_is_refused() -> None:
    (problem,) = _problems(_records("prefill", "decode", engine_version="0.4.0"))
    assert problem[:2] == ("n0", "engine_version")


def test_a_pools_settings_are_typed_one_line_naming_the_key() -> None:
    records = _records("prefill", "decode", dynamo_decode={"tensor_parallel_size": 0, "tp": 2})
    problems = {(h, k, m) for h, k, m in _problems(records)}
    assert ("n0", "dynamo_decode", "item tp: Extra inputs are not permitted (got 2)") in problems
    assert any(
        k == "dynamo_decode" and m.startswith("item tensor_parallel_size: Input should be greater")
        for _, k, m in problems
    )


def test_the_api_ports_are_none_of_the_planned_dynamo_listeners() -> None:
    with pytest.raises(InputError) as caught:
        _plan(_records("prefill", "decode", serving_backend_port=2379))
    ((host, key, message),) = [(p.host, p.field, p.message) for p in caught.value.problems]
    assert (host, key) == ("n0", "serving_backend_port")
    assert message.startswith("2379 is the etcd (Dynamo discovery) port on n0")
    with pytest.raises(InputError, match="engine_port: 18100 is the prefill worker 0 system port"):
        _plan(_records("prefill", "decode", engine_port=18100))


# --- sizing per pool ----------------------------------------------------------------------------


def test_each_pool_is_sized_on_its_own_workers() -> None:
    plan = _plan(
        _records(
            "prefill",
            "decode",
            dynamo_prefill={"tensor_parallel_size": 8},
            dynamo_decode={"tensor_parallel_size": 2},
        )
    )
    assert plan.context.dynamo is not None
    prefill, decode = plan.context.dynamo.pools
    assert (prefill.tensor, prefill.workers_per_node) == (8, 1)
    assert (decode.tensor, decode.workers_per_node) == (2, 4)
    # TP 8 spreads the same weights thinner: more KV cache per GPU than TP 2.
    assert prefill.sizing.memory.kv_cache_bytes > decode.sizing.memory.kv_cache_bytes
    assert prefill.sizing.memory.weights_bytes * 4 == decode.sizing.memory.weights_bytes
    reasons = plan.sizing.reasons
    assert any(r.startswith("prefill pool: 1 node(s) (n0) x 1 worker(s) of TP 8") for r in reasons)
    assert any(r.startswith("decode pool: 1 node(s) (n1) x 4 worker(s) of TP 2") for r in reasons)
    # The group's layout tables show the serving pool: decode.
    assert plan.sizing.parallelism.tensor == 2


def test_without_a_tp_the_backend_search_picks_the_smallest_that_serves() -> None:
    plan = _plan(_records("prefill", "decode"))
    assert plan.context.dynamo is not None
    assert [(p.tensor, p.workers_per_node) for p in plan.context.dynamo.pools] == [(2, 4), (2, 4)]


def test_one_pool_that_does_not_fit_makes_the_group_infeasible_with_its_reason() -> None:
    records = _records(
        "prefill",
        "decode",
        model_id="deepseek-ai/DeepSeek-R1",
        dynamo_prefill={"tensor_parallel_size": 8, "expert_parallel": True},
        dynamo_decode={"tensor_parallel_size": 8, "expert_parallel": True},
        accelerator_kind="h200-141g",
    )
    assert _plan(records).feasible
    records = _records(
        "prefill",
        "decode",
        model_id="deepseek-ai/DeepSeek-R1",
        dynamo_prefill={"tensor_parallel_size": 4},
        dynamo_decode={"tensor_parallel_size": 8, "expert_parallel": True},
        accelerator_kind="h200-141g",
    )
    plan = _plan(records)
    assert not plan.feasible
    assert plan.sizing.blockers
    assert all(b.startswith("each prefill worker: ") for b in plan.sizing.blockers)
    doc = plan.dynamo_summary()
    assert doc is not None
    assert [p["feasible"] for p in doc["pools"]] == [False, True]


# --- builders -----------------------------------------------------------------------------------


def test_the_head_runs_the_control_plane_and_the_frontend_behind_the_gateway() -> None:
    plan = _plan(_records("prefill", "decode", dynamo_router_mode="round-robin"))
    names = [c.name for c in _containers(plan, "n0")]
    assert names == [
        "ironserve-default-etcd",
        "ironserve-default-nats",
        "ironserve-default-frontend",
        *[f"ironserve-default-prefill-{i}" for i in range(4)],
    ]
    frontend = _containers(plan, "n0")[2].command
    assert frontend[:3] == ["python3", "-m", "dynamo.frontend"]
    assert _option(frontend, "--router-mode") == "round-robin"
    assert (_option(frontend, "--http-host"), _option(frontend, "--http-port")) == (
        "127.0.0.1",
        str(plan.context.backend_port),
    )
    assert plan.gateway is not None and plan.gateway.upstream.endswith(
        f":{plan.context.backend_port}"
    )
    assert [c.name for c in _containers(plan, "n1")] == [
        f"ironserve-default-decode-{i}" for i in range(4)
    ]


def test_a_frontend_head_runs_only_the_control_plane_and_the_frontend() -> None:
    plan = _plan(_records("frontend", "prefill", "decode"))
    assert [c.name for c in _containers(plan, "n0")] == [
        "ironserve-default-etcd",
        "ironserve-default-nats",
        "ironserve-default-frontend",
    ]
    assert plan.endpoint.node == "n0"
    assert plan.context.dynamo is not None
    assert [p.nodes for p in plan.context.dynamo.pools] == [["n1"], ["n2"]]


def test_data_parallel_workers_get_a_block_of_kv_event_ports() -> None:
    pool = {"tensor_parallel_size": 2, "data_parallel_size": 2}
    plan = _plan(_records("prefill", "decode", dynamo_decode=pool))
    workers = _containers(plan, "n1")
    assert len(workers) == 2
    endpoints = [json.loads(_option(w.command, "--kv-events-config"))["endpoint"] for w in workers]
    assert endpoints == ["tcp://*:20600", "tcp://*:20602"]
    events = sorted(p.port for p in plan.ports if "n1" in p.nodes and "KV events" in p.purpose)
    assert events == [20600, 20601, 20602, 20603]


def test_every_process_finds_the_planes_on_the_head() -> None:
    plan = _plan(_records("prefill", "decode"))
    for node in ("n0", "n1"):
        for container in _containers(plan, node):
            if container.name.endswith(("etcd", "nats")):
                continue
            assert container.env["ETCD_ENDPOINTS"] == "http://10.0.0.10:2379"
            assert container.env["NATS_SERVER"] == "nats://10.0.0.10:4222"
            assert container.env["DYN_NAMESPACE"] == "default"


def test_workers_of_a_node_get_their_own_devices_and_ports() -> None:
    plan = _plan(_records("prefill", "decode"))
    workers = _containers(plan, "n1")
    devices = [_option(w.run_args, "--gpus") for w in workers]
    assert devices == ['"device=0,1"', '"device=2,3"', '"device=4,5"', '"device=6,7"']
    system = [w.env["DYN_SYSTEM_PORT"] for w in workers]
    side = [w.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] for w in workers]
    assert len(set(system)) == len(set(side)) == 4
    for w in workers:
        command = w.command
        assert command[:3] == ["python3", "-m", "dynamo.vllm"]
        assert _option(command, "--disaggregation-mode") == "decode"
        assert json.loads(_option(command, "--kv-transfer-config"))["kv_connector"] == (
            "NixlConnector"
        )
        assert w.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "10.0.0.11"
    # No two planned listeners share a port on one node.
    for node in ("n0", "n1"):
        taken = Counter(p.port for p in plan.ports if node in p.nodes)
        assert max(taken.values()) == 1, taken


def test_sglang_prefill_workers_each_get_a_bootstrap_port() -> None:
    plan = _plan(
        _records(
            "prefill",
            "decode",
            dynamo_backend="sglang",
            dynamo_prefill={"tensor_parallel_size": 4},
        )
    )
    prefill = [c for c in _containers(plan, "n0") if "prefill" in c.name]
    ports = [_option(c.command, "--disaggregation-bootstrap-port") for c in prefill]
    assert len(ports) == 2 and len(set(ports)) == 2
    for c in prefill:
        assert c.command[:3] == ["python3", "-m", "dynamo.sglang"]
        assert _option(c.command, "--disaggregation-transfer-backend") == "nixl"
    assert {p.port for p in plan.ports if p.purpose.endswith("SGLang bootstrap")} == set(
        map(int, ports)
    )
    decode = _containers(plan, "n1")
    assert all("--disaggregation-bootstrap-port" not in c.command for c in decode)
    assert all("VLLM_NIXL_SIDE_CHANNEL_PORT" not in c.env for c in prefill + decode)
    assert not [p for p in plan.ports if "NIXL" in p.purpose]


def test_one_node_with_file_discovery_runs_no_services() -> None:
    records = _records("worker", dynamo_mode="aggregated", dynamo_control_plane="file")
    plan = _plan(records)
    containers = _containers(plan, "n0")
    assert containers[0].name == "ironserve-default-frontend"
    for c in containers:
        assert c.env["DYN_DISCOVERY_BACKEND"] == "file"
        assert (c.env["DYN_REQUEST_PLANE"], c.env["DYN_EVENT_PLANE"]) == ("tcp", "zmq")
        assert "--disaggregation-mode" not in c.command
    assert plan.layout.kind == "dynamo" and plan.layout.rendezvous is not None
    assert plan.layout.rendezvous.port is None


@pytest.mark.parametrize("backend", ["vllm", "sglang", "trtllm"])
def test_no_secret_reaches_a_dynamo_container(backend: str) -> None:
    plan = _plan(_records("prefill", "decode", dynamo_backend=backend))
    secrets = plan.context.secrets_env_file
    folder = secrets.rsplit("/", 1)[0]
    for node in ("n0", "n1"):
        for container in _containers(plan, node):
            assert "--env-file" not in container.run_args
            mounts = [
                container.run_args[i + 1] for i, a in enumerate(container.run_args) if a == "-v"
            ]
            assert not any(m.split(":")[0] in (folder, secrets) for m in mounts), mounts


def test_trtllm_disaggregated_workers_read_their_nixl_options_file() -> None:
    plan = _plan(_records("prefill", "decode", dynamo_backend="trtllm"))
    (file,) = plan.node("n1").files
    assert file.path == "/etc/ironserve/default/trtllm-decode.yaml"
    assert "cache_transceiver_config:\n  backend: NIXL" in file.content
    worker = _containers(plan, "n1")[0]
    assert _option(worker.command, "--extra-engine-args") == file.path
    assert f"{file.path}:{file.path}:ro" in worker.run_args


def test_the_flag_table_holds_the_real_parsers_options() -> None:
    frontend = component_table("1.6.1", "frontend")
    assert {"--router-mode", "--http-port", "--http-host"} <= frontend.flags
    assert "--is-prefill-worker" not in component_table("1.6.1", "vllm").flags
    assert "--disaggregation-mode" in component_table("1.6.1", "vllm").flags
    assert pinned_engine_version("1.6.1", DynamoBackend.VLLM) == "0.31.0"
    assert pinned_engine_version("1.6.1", DynamoBackend.SGLANG) == "0.5.21"
    # SGLang's disaggregation options are SGLang's own, passed through by dynamo.sglang.
    assert not worker_flags_problems(
        "1.6.1", DynamoBackend.SGLANG, ["--disaggregation-bootstrap-port", "1"]
    )
    assert worker_flags_problems("1.6.1", DynamoBackend.TRTLLM, ["--enable-prefix-caching"])


# --- tools/dynamo_flag_table.py -----------------------------------------------------------------


def _load_tool() -> types.ModuleType:
    path = ROOT / "tools/dynamo_flag_table.py"
    spec = importlib.util.spec_from_file_location("dynamo_flag_table_tool", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_tool_reads_option_strings_and_which_take_a_value() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--router-mode", choices=["kv", "round-robin"])
    parser.add_argument("--kv-events", action=argparse.BooleanOptionalAction)
    parser.add_argument("--flag", action="store_true")
    read = _load_tool().read(parser)
    assert read["flags"] == [
        "--flag",
        "--help",
        "--kv-events",
        "--no-kv-events",
        "--router-mode",
        "-h",
    ]
    assert read["value_flags"] == ["--router-mode"]


def test_catalog_flags_checks_a_dynamo_component() -> None:
    from typer.testing import CliRunner

    from ironserve.cli import app

    runner = CliRunner()
    worker = ["catalog", "flags", "dynamo", "--component", "vllm", "--"]
    ok = runner.invoke(
        app, [*worker, "--disaggregation-mode", "prefill", "--enable-prefix-caching"]
    )
    assert ok.exit_code == 0 and "dynamo.vllm 1.6.1 (with vllm 0.31.0)" in ok.stdout
    refused = runner.invoke(app, ["catalog", "flags", "dynamo", "--", "--is-prefill-worker"])
    assert refused.exit_code == 1 and "not a dynamo.frontend 1.6.1 option" in refused.stdout


def test_plan_and_render_show_the_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ironserve.cli import app

    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    inventory = "inventories/h100x8_2node_qwen3_32b_vllm_dynamo_kv.py"
    shown = runner.invoke(app, ["plan", "-i", inventory], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "Dynamo pools (vllm 0.31.0, disaggregated, router kv" in shown.stdout
    assert "decode pool: 1 node(s) (h100-decode) x 4 worker(s) of TP 2" in shown.stdout
    doc = json.loads(runner.invoke(app, ["plan", "-i", inventory, "--json"]).stdout)
    assert [(p["name"], p["workers"]) for p in doc["dynamo"]["pools"]] == [
        ("prefill", 4),
        ("decode", 4),
    ]
    node = runner.invoke(app, ["render", "-i", inventory, "--node", "h100-decode"])
    assert node.exit_code == 0
    assert node.stdout.count("python3 -m dynamo.vllm") == 4
    assert "# environment (ironserve-default-decode-3)" in node.stdout
