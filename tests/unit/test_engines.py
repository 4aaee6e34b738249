"""Engine builders: what each node runs, checked by its observable effects."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from ironserve.catalog.engines import (
    ENGINES,
    EngineKind,
    MultiNodeLaunch,
    check_flags,
    flag_table,
    known_versions,
)
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import get_model
from ironserve.engines import build_launches, sglang
from ironserve.engines.base import LaunchContext, NodeLaunch, NodeTarget
from ironserve.engines.common import EngineBuildError
from ironserve.plan.plan import launch_context
from ironserve.plan.types import SizingRequest
from tests.golden.test_golden_engines import IB_HCAS, R1, TOPOLOGIES, nodes

DISTILL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"


def ctx_for(
    model_id: str,
    accelerator: str,
    targets: list[NodeTarget],
    *,
    engine: EngineKind = EngineKind.VLLM,
    version: str | None = None,
    extra_args: list[str] | None = None,
    **request: Any,
) -> LaunchContext:
    sizing = SizingRequest(
        model_id=model_id,
        accelerator_id=accelerator,
        nodes=len(targets),
        devices_per_node=targets[0].device_count,
        engine=engine,
        engine_version=version,
        **request,
    )
    return launch_context("g", get_model(model_id), sizing, targets, extra_args=extra_args)


def all_launches() -> list[tuple[str, LaunchContext, list[NodeLaunch]]]:
    out = []
    for name, make in sorted(TOPOLOGIES.items()):
        ctx = make()
        out.append((name, ctx, build_launches(ctx)))
    return out


def sglang_argv(launch: NodeLaunch) -> list[str]:
    """The `sglang.launch_server` options after the key wrapper (`python3 -c WRAPPER ...`)."""
    command = launch.container.command
    assert command[:2] == ["-c", sglang.KEY_WRAPPER]
    return command[2:]


def option_value(argv: list[str], option: str) -> str:
    assert argv.count(option) == 1, f"{option} appears {argv.count(option)} times in {argv}"
    return argv[argv.index(option) + 1]


def vllm_serve_options(launch: NodeLaunch) -> list[str]:
    """The options after `vllm serve <weights>`, wherever the builder put the command."""
    argv = launch.serve_exec or ["vllm", *launch.container.command]
    assert argv[:2] == ["vllm", "serve"]
    return argv[3:]


# --- SGLang -------------------------------------------------------------------------------


def test_sglang_dist_init_addr_is_node0_on_every_node() -> None:
    addresses = ["10.1.0.5", "10.1.0.9", "10.1.0.2", "10.1.0.7"]
    ctx = ctx_for(R1, "h100-80g", nodes("n", addresses, 8), engine=EngineKind.SGLANG)
    launches = build_launches(ctx)
    assert len(launches) == 4
    for rank, launch in enumerate(launches):
        argv = sglang_argv(launch)
        assert option_value(argv, "--dist-init-addr") == "10.1.0.5:5000"
        assert option_value(argv, "--nnodes") == "4"
        assert option_value(argv, "--node-rank") == str(rank)
        assert launch.serves_api == (rank == 0)


def test_sglang_single_node_has_no_multi_node_options() -> None:
    ctx = ctx_for(R1, "h200-141g", nodes("n", ["10.1.0.5"], 8), engine=EngineKind.SGLANG)
    (launch,) = build_launches(ctx)
    argv = sglang_argv(launch)
    for option in ("--dist-init-addr", "--nnodes", "--node-rank"):
        assert option not in argv
    assert option_value(argv, "--tp-size") == "8"
    assert launch.serves_api


def test_sglang_names_the_deepseek_reasoning_parser_its_own_way() -> None:
    ctx = TOPOLOGIES["h100x8-2node-r1-sglang"]()
    for launch in build_launches(ctx):
        assert option_value(sglang_argv(launch), "--reasoning-parser") == "deepseek-r1"


# --- MindIE -------------------------------------------------------------------------------


def _files(launch: NodeLaunch) -> dict[str, str]:
    return {f.path.rsplit("/", 1)[-1]: f.content for f in launch.files}


def _all_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_strings(v) for v in value)
    return isinstance(value, str)


def test_mindie_rank_table_ranks_are_contiguous_strings_and_rank0_serves() -> None:
    ctx = TOPOLOGIES["ascend910bx8-2node-r1-mindie"]()
    launches = build_launches(ctx)
    tables = {_files(launch)["rank_table_file.json"] for launch in launches}
    assert len(tables) == 1, "every node must get the same rank table"
    table = json.loads(tables.pop())
    assert _all_strings(table)
    assert table["server_count"] == "2"
    ranks = [d["rank_id"] for s in table["server_list"] for d in s["device"]]
    assert ranks == [str(i) for i in range(16)]
    for server, target in zip(table["server_list"], ctx.nodes, strict=True):
        assert server["server_id"] == server["container_ip"] == target.address
        assert [d["device_id"] for d in server["device"]] == [str(i) for i in range(8)]
        assert [d["device_ip"] for d in server["device"]] == target.npu_device_ips
    master = table["server_list"][0]
    assert master["device"][0]["rank_id"] == "0"
    serving = [launch for launch in launches if launch.serves_api]
    assert [launch.address for launch in serving] == [master["server_id"]]
    for launch in launches:
        assert launch.container.env["RANKTABLEFILE"].endswith("/rank_table_file.json")
        assert launch.container.env["MIES_CONTAINER_IP"] == launch.address
        assert all(f.mode == "0640" for f in launch.files)


def test_mindie_config_listens_on_each_nodes_own_address() -> None:
    ctx = TOPOLOGIES["ascend910bx8-2node-r1-mindie"]()
    for launch in build_launches(ctx):
        config = json.loads(_files(launch)["mindie-config.json"])
        assert config["ServerConfig"]["ipAddress"] == launch.address
        # Behind the gateway (the default) MindIE serves on the backend port, not the public one.
        assert config["ServerConfig"]["port"] == ctx.backend_port != ctx.port
        backend = config["BackendConfig"]
        assert backend["multiNodesInferEnabled"] is True
        assert backend["interNodeTLSEnabled"] is False
        assert backend["npuDeviceIds"] == [list(range(8))]
        model = backend["ModelDeployConfig"]["ModelConfig"][0]
        assert model["worldSize"] == 8
        assert model["modelWeightPath"] == ctx.weights_path
        assert backend["ModelDeployConfig"]["maxSeqLen"] == ctx.sizing.max_model_len


def test_mindie_single_node_has_no_rank_table() -> None:
    targets = nodes("atlas", ["10.2.0.1"], 8, npu_ips=[[f"100.97.0.{i}" for i in range(8)]])
    ctx = ctx_for(DISTILL, "ascend-910b-64g", targets, engine=EngineKind.MINDIE)
    (launch,) = build_launches(ctx)
    assert "RANKTABLEFILE" not in launch.container.env
    assert set(_files(launch)) == {"mindie-config.json"}
    assert not any("rank_table" in arg for arg in launch.container.docker_run_argv())
    config = json.loads(_files(launch)["mindie-config.json"])
    assert config["BackendConfig"]["multiNodesInferEnabled"] is False
    assert launch.serves_api


def test_mindie_multi_node_needs_every_npu_address() -> None:
    targets = nodes("atlas", ["10.2.0.1", "10.2.0.2"], 8, npu_ips=[["100.97.0.1"] * 8, []])
    ctx = ctx_for(
        R1, "ascend-910b-64g", targets, engine=EngineKind.MINDIE, weight_format=WeightFormat.W8A8
    )
    with pytest.raises(EngineBuildError, match="atlas-1"):
        build_launches(ctx)


def test_mindie_passes_each_npu_and_no_gpu_runtime() -> None:
    ctx = TOPOLOGIES["ascend910bx8-2node-r1-mindie"]()
    for launch in build_launches(ctx):
        argv = launch.container.docker_run_argv()
        devices = [argv[i + 1] for i, a in enumerate(argv) if a == "--device"]
        assert devices[:8] == [f"/dev/davinci{i}" for i in range(8)]
        assert {"/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"} <= set(devices)
        assert "--gpus" not in argv
        assert "--privileged" not in argv
        assert launch.container.env["HCCL_SOCKET_IFNAME"] == "enp189s0f0"


# --- secrets ------------------------------------------------------------------------------


def test_no_secret_reaches_a_command_line() -> None:
    for name, ctx, launches in all_launches():
        for launch in launches:
            words = [w for line in launch.shell_lines() for w in shlex.split(line)]
            assert "--api-key" not in words, name
            assert not any(w.startswith("--api-key=") for w in words), name
            assert not any("API_KEY=" in w or "HF_TOKEN" in w for w in words), name
            if ctx.engine.kind in (EngineKind.MINDIE, EngineKind.TRTLLM):
                assert "--env-file" not in words, "MindIE and trtllm-serve take no secrets"
            else:
                assert option_value(words, "--env-file") == ctx.secrets_env_file
            if ctx.engine.kind is EngineKind.SGLANG:
                # No shell expands a key into the engine's argv: the wrapper adds it in-process.
                argv = launch.container.run_args + launch.container.command
                assert option_value(argv, "--entrypoint") == "python3", name
                assert not any("API_KEY" in w for w in sglang_argv(launch)), name


# --- flags per version --------------------------------------------------------------------


def _vllm_ctx(version: str) -> LaunchContext:
    targets = nodes("h100", ["10.10.0.11", "10.10.0.12"], 8, ifname="ens10f0")
    return ctx_for(R1, "h100-80g", targets, version=version)


@pytest.mark.parametrize("version", ["0.8.5", known_versions("vllm")[-1]])
def test_vllm_options_are_accepted_by_that_version(version: str) -> None:
    ctx = _vllm_ctx(version)
    table = flag_table(ctx.engine, ctx.engine_version)
    assert table is not None
    head = build_launches(ctx)[0]
    options = vllm_serve_options(head)
    assert check_flags(table, options) == []
    assert option_value(options, "--reasoning-parser") == "deepseek_r1"


def test_enable_reasoning_only_where_vllm_required_it() -> None:
    old = vllm_serve_options(build_launches(_vllm_ctx("0.8.5"))[0])
    new = vllm_serve_options(build_launches(_vllm_ctx(known_versions("vllm")[-1]))[0])
    assert "--enable-reasoning" in old
    assert "--enable-reasoning" not in new


def test_vllm_omits_the_reasoning_parser_where_the_version_lacks_it() -> None:
    without = []
    for version in known_versions("vllm"):
        table = flag_table(ENGINES[EngineKind.VLLM], version)
        assert table is not None
        if "--reasoning-parser" not in table.flags:
            without.append(version)
    if not without:
        pytest.skip("every vLLM flag table has --reasoning-parser")
    options = vllm_serve_options(build_launches(_vllm_ctx(without[-1]))[0])
    assert "--reasoning-parser" not in options
    assert "--enable-reasoning" not in options


@pytest.mark.parametrize("version", [None, "newest"])
def test_sglang_options_are_accepted_by_that_version(version: str | None) -> None:
    wanted = known_versions("sglang")[-1] if version == "newest" else None
    targets = nodes("h100", ["10.10.0.11", "10.10.0.12"], 8)
    ctx = ctx_for(R1, "h100-80g", targets, engine=EngineKind.SGLANG, version=wanted)
    table = flag_table(ctx.engine, ctx.engine_version)
    assert table is not None
    for launch in build_launches(ctx):
        assert check_flags(table, sglang_argv(launch)) == []


def test_vacc_options_are_vllm_085_options() -> None:
    ctx = TOPOLOGIES["va16-1node-r10528-vacc"]()
    table = flag_table(ctx.engine, ctx.engine_version)
    assert table is not None and table.version == "0.8.5"
    (launch,) = build_launches(ctx)
    options = vllm_serve_options(launch)
    assert check_flags(table, options) == []
    assert options[options.index("--enable-reasoning") + 1 :][:2] == [
        "--reasoning-parser",
        "deepseek_r1",
    ]


# --- parallelism --------------------------------------------------------------------------


def test_serve_command_carries_the_planned_tp_and_pp() -> None:
    for name, ctx, launches in all_launches():
        par = ctx.sizing.parallelism
        serving = [launch for launch in launches if launch.serves_api]
        assert len(serving) == 1, name
        assert serving[0] is launches[0], f"{name}: the head serves"
        kind = ctx.engine.kind
        if kind in (EngineKind.VLLM, EngineKind.VLLM_VACC):
            options = vllm_serve_options(serving[0])
            assert option_value(options, "--tensor-parallel-size") == str(par.tensor), name
            if "--pipeline-parallel-size" in options:
                assert option_value(options, "--pipeline-parallel-size") == str(par.pipeline)
            else:
                assert par.pipeline == 1, name
        elif kind is EngineKind.SGLANG:
            for launch in launches:
                assert option_value(sglang_argv(launch), "--tp-size") == str(par.tensor), name


def test_l40s_seed_layout_is_tp2_pp3_over_ray() -> None:
    ctx = TOPOLOGIES["l40sx2-3node-r1distill32b-vllm"]()
    head, *workers = build_launches(ctx)
    options = vllm_serve_options(head)
    assert option_value(options, "--tensor-parallel-size") == "2"
    assert option_value(options, "--pipeline-parallel-size") == "3"
    assert option_value(options, "--distributed-executor-backend") == "ray"
    assert head.container.command[:3] == ["start", "--block", "--head"]
    assert option_value(head.container.command, "--num-gpus") == "2"
    for worker in workers:
        assert worker.serve_exec is None and not worker.serves_api
        assert option_value(worker.container.command, "--address") == "172.16.0.102:6379"
        assert option_value(worker.container.command, "--node-ip-address") == worker.address
        assert worker.container.name == head.container.name


def test_single_node_vllm_serves_without_ray() -> None:
    ctx = TOPOLOGIES["h200x8-1node-r1-vllm"]()
    (launch,) = build_launches(ctx)
    assert launch.serve_exec is None
    assert launch.container.command[:2] == ["serve", ctx.weights_path]
    assert "--distributed-executor-backend" not in launch.container.command
    assert option_value(launch.container.run_args, "--entrypoint") == "vllm"


def test_data_and_expert_parallel_reach_vllm() -> None:
    targets = nodes("h200", ["10.0.0.1"], 8)
    ctx = ctx_for(
        R1, "h200-141g", targets, tensor_parallel_size=4, data_parallel_size=2, expert_parallel=True
    )
    options = vllm_serve_options(build_launches(ctx)[0])
    assert option_value(options, "--data-parallel-size") == "2"
    assert "--enable-expert-parallel" in options


def test_vacc_pp2_for_long_inputs_only() -> None:
    va = nodes("va16", ["192.168.10.5"], 8)
    model = "deepseek-ai/DeepSeek-R1-0528"
    short = ctx_for(model, "va16-128g", va, engine=EngineKind.VLLM_VACC)
    long = ctx_for(model, "va16-128g", va, engine=EngineKind.VLLM_VACC, max_model_len=131072)
    (s,), (lng,) = build_launches(short), build_launches(long)
    assert "--pipeline-parallel-size" not in vllm_serve_options(s)
    assert "LLM_MAX_PREFILL_SEQ_LEN" not in s.container.env
    assert option_value(vllm_serve_options(lng), "--pipeline-parallel-size") == "2"
    assert lng.container.env["LLM_MAX_PREFILL_SEQ_LEN"] == "102400"
    assert s.container.env["VACC_VISIBLE_DEVICES"] == ",".join(str(i) for i in range(32))
    assert option_value(vllm_serve_options(s), "--max-num-seqs") == "4"


def test_vacc_refuses_more_than_one_server() -> None:
    va = nodes("va16", ["192.168.10.5", "192.168.10.6"], 8)
    ctx = ctx_for("deepseek-ai/DeepSeek-R1-0528", "va16-128g", va, engine=EngineKind.VLLM_VACC)
    with pytest.raises(EngineBuildError, match="one server"):
        build_launches(ctx)


# --- per-node environment -----------------------------------------------------------------


def test_vllm_host_ip_is_each_nodes_own_address() -> None:
    for name, ctx, launches in all_launches():
        if ctx.engine.kind is not EngineKind.VLLM:
            continue
        for launch, target in zip(launches, ctx.nodes, strict=True):
            assert launch.container.env["VLLM_HOST_IP"] == target.address == launch.address, name
            if len(ctx.nodes) > 1 and launch.container.command[0] == "start":  # a Ray node
                assert option_value(launch.container.command, "--node-ip-address") == target.address


def test_native_multi_node_runs_vllm_serve_on_every_node_by_rank() -> None:
    ctx = TOPOLOGIES["h100x8-2node-r1-vllm"]()
    assert ctx.engine_version == "0.33.0"
    launches = build_launches(ctx)
    for launch in launches:
        options = vllm_serve_options(launch)
        assert launch.serve_exec is None
        assert option_value(launch.container.run_args, "--entrypoint") == "vllm"
        assert option_value(options, "--nnodes") == "2"
        assert option_value(options, "--node-rank") == str(launch.rank)
        assert option_value(options, "--master-addr") == "10.10.0.11"  # node 0's, everywhere
        assert option_value(options, "--master-port") == "29501"
        assert ("--headless" in options) == (launch.rank > 0)
        assert launch.serves_api == (launch.rank == 0)
        assert "--distributed-executor-backend" not in options
    assert len({launch.container.name for launch in launches}) == 1


def test_data_parallel_over_nodes_meets_at_node0() -> None:
    ctx = TOPOLOGIES["l40sx2-3node-r1distill32b-vllm-dp"]()
    par = ctx.sizing.parallelism
    assert (par.tensor, par.pipeline, par.data) == (2, 1, 3)
    for launch in build_launches(ctx):
        options = vllm_serve_options(launch)
        assert option_value(options, "--data-parallel-size") == "3"
        assert option_value(options, "--data-parallel-size-local") == "1"  # one TP 2 per node
        assert option_value(options, "--data-parallel-address") == "172.16.0.102"
        assert option_value(options, "--data-parallel-rpc-port") == "29550"


def test_engine_multi_node_ray_keeps_the_ray_launch_on_current_vllm() -> None:
    targets = nodes("h100", ["10.10.0.11", "10.10.0.12"], 8, ifname="ens10f0")
    ctx = ctx_for(R1, "h100-80g", targets, multi_node=MultiNodeLaunch.RAY)
    head, worker = build_launches(ctx)
    assert head.container.command[:3] == ["start", "--block", "--head"]
    assert option_value(vllm_serve_options(head), "--distributed-executor-backend") == "ray"
    assert "--nnodes" not in vllm_serve_options(head)
    assert worker.serve_exec is None and worker.container.command[0] == "start"


def test_ib_devices_only_on_nodes_with_hcas() -> None:
    with_ib, without = nodes("h100", ["10.3.0.1", "10.3.0.2"], 8, ib_hcas=IB_HCAS)
    without = without.model_copy(update={"ib_hcas": []})
    with_ib = with_ib.model_copy(update={"ib_gid_index": 3})
    for engine in (EngineKind.VLLM, EngineKind.SGLANG):
        ctx = ctx_for(R1, "h100-80g", [with_ib, without], engine=engine)
        first, second = build_launches(ctx)
        argv = first.container.docker_run_argv()
        assert option_value(argv, "--device") == "/dev/infiniband"
        assert option_value(argv, "--cap-add") == "IPC_LOCK"
        assert option_value(argv, "--ulimit") == "memlock=-1"
        assert first.container.env["NCCL_IB_HCA"] == ",".join(IB_HCAS)
        assert first.container.env["NCCL_IB_GID_INDEX"] == "3"
        other = second.container.docker_run_argv()
        assert "/dev/infiniband" not in other and "IPC_LOCK" not in other
        assert not any(key.startswith("NCCL_IB") for key in second.container.env)
        assert "--privileged" not in argv + other


def test_socket_interface_pins_every_collective_library() -> None:
    ctx = TOPOLOGIES["h100x8-2node-r1-vllm"]()
    for launch in build_launches(ctx):
        env = launch.container.env
        for key in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "TP_SOCKET_IFNAME"):
            assert env[key] == "ens10f0"
        assert env["HF_HUB_OFFLINE"] == "1"


# --- shape --------------------------------------------------------------------------------


def test_extra_args_come_last() -> None:
    extra = ["--enable-prefix-caching", "--max-num-batched-tokens", "8192"]
    targets = nodes("h200", ["10.0.0.1"], 8)
    ctx = ctx_for(R1, "h200-141g", targets, extra_args=extra)
    (launch,) = build_launches(ctx)
    assert launch.container.command[-3:] == extra


def test_builders_are_pure() -> None:
    for name, make in TOPOLOGIES.items():
        ctx = make()
        assert build_launches(ctx) == build_launches(ctx), name
        assert build_launches(ctx) == build_launches(make()), name


def test_nodes_out_of_rank_order_are_refused() -> None:
    a, b = nodes("h100", ["10.3.0.1", "10.3.0.2"], 8)
    ctx = ctx_for(R1, "h100-80g", [b, a])
    with pytest.raises(EngineBuildError, match="head first"):
        build_launches(ctx)


def test_one_container_name_per_group_and_engine() -> None:
    for name, ctx, launches in all_launches():
        names = {launch.container.name for launch in launches}
        assert len(names) == 1, name
        assert names.pop().startswith(f"ironserve-{ctx.group}-"), name
