"""TensorRT-LLM (trtllm-serve) and vLLM-Ascend as engines of their own: their command lines
against their flag tables, the planner's layouts, and what cannot work refused before any SSH."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from ironserve.catalog.engines import (
    ENGINES,
    EngineKind,
    FlagTable,
    check_flags,
    default_engine,
    flag_table,
)
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import get_model
from ironserve.config import build_cluster
from ironserve.config.inventory import HostRecord
from ironserve.engines import build_launches, trtllm, vllm
from ironserve.engines.common import EngineBuildError
from ironserve.errors import InputError
from ironserve.plan.plan import Plan, launch_context
from ironserve.plan.sizing import size
from ironserve.plan.types import SizingRequest
from tests.golden.test_golden_engines import IB_HCAS, R1, TOPOLOGIES, nodes

TRTLLM = ENGINES[EngineKind.TRTLLM]
ASCEND = ENGINES[EngineKind.VLLM_ASCEND]


def _without(table: FlagTable, option: str) -> FlagTable:
    return table.model_copy(update={"flags": table.flags - {option}})


def _trtllm_ctx(nodes_: int = 1, devices: int = 8, accel: str = "h200-141g", **request: Any):
    request.setdefault("engine", EngineKind.TRTLLM)
    sizing = SizingRequest(
        model_id=R1, accelerator_id=accel, nodes=nodes_, devices_per_node=devices, **request
    )
    targets = nodes(
        "n", [f"10.0.0.{10 + i}" for i in range(nodes_)], devices, ifname="eth0", ib_hcas=IB_HCAS
    )
    return launch_context("r1", get_model(R1), sizing, targets, served_name="DeepSeek-R1")


def _ascend_ctx(nodes_: int = 2):
    sizing = SizingRequest(
        model_id=R1,
        accelerator_id="ascend-910b-64g",
        nodes=nodes_,
        devices_per_node=8,
        engine=EngineKind.VLLM_ASCEND,
        weight_format=WeightFormat.W8A8,
        max_model_len=32768,
    )
    targets = nodes("a", [f"10.1.0.{10 + i}" for i in range(nodes_)], 8, ifname="enp189s0f0")
    return launch_context("r1", get_model(R1), sizing, targets, served_name="DeepSeek-R1")


def _trtllm_options(argv: list[str]) -> list[str]:
    return argv[argv.index("trtllm-serve") + 2 :] if "trtllm-serve" in argv else argv[1:]


# --- command lines against the flag tables ---------------------------------------------------


@pytest.mark.parametrize("name", [n for n in sorted(TOPOLOGIES) if "trtllm" in n])
def test_every_golden_trtllm_serve_line_is_in_its_table(name: str) -> None:
    ctx = TOPOLOGIES[name]()
    if ctx.engine.kind is not EngineKind.TRTLLM:
        pytest.skip("a Dynamo group")
    table = flag_table(TRTLLM, ctx.engine_version)
    assert table is not None
    head = build_launches(ctx)[0]
    argv = head.container.command
    options = argv[argv.index("trtllm-serve") + 2 :] if "trtllm-serve" in argv else argv[1:]
    assert check_flags(table, options) == []
    assert "--tp_size" in options and "--kv_cache_free_gpu_memory_fraction" in options


def test_a_flag_the_trtllm_table_lacks_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    table = flag_table(TRTLLM, TRTLLM.default_version)
    assert table is not None
    lacking = _without(table, "--kv_cache_free_gpu_memory_fraction")
    monkeypatch.setattr(trtllm, "table_for", lambda ctx: lacking)
    with pytest.raises(EngineBuildError, match="--kv_cache_free_gpu_memory_fraction is not a"):
        build_launches(_trtllm_ctx())


def test_a_flag_the_vllm_table_lacks_fails_the_vllm_ascend_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = flag_table(ASCEND, ASCEND.default_version)
    assert table is not None
    monkeypatch.setattr(vllm, "table_for", lambda ctx: _without(table, "--quantization"))
    with pytest.raises(EngineBuildError, match=r"--quantization is not a vllm 0\.23\.0 option"):
        build_launches(_ascend_ctx())
    monkeypatch.setattr(vllm, "table_for", lambda ctx: _without(table, "--nnodes"))
    with pytest.raises(EngineBuildError, match="needs --nnodes"):
        build_launches(_ascend_ctx())


def test_trtllm_table_is_clicks_exact_names() -> None:
    table = flag_table(TRTLLM, "1.2.1")
    assert table is not None and table.version == "1.2.1"
    assert check_flags(table, ["--tp_size", "8", "--ep_size", "8", "--trust_remote_code"]) == []
    # vLLM's spelling, and the option 1.2.1 does not have, are refused with their notes.
    problems = check_flags(table, ["--tensor-parallel-size", "8", "--served_model_name", "x"])
    assert len(problems) == 2
    assert "underscores" in problems[0] and "folder's name" in problems[1]
    # The alias pairs of the click options are both accepted.
    for a, b in [("--tp_size", "--tensor_parallel_size"), ("--config", "--extra_llm_api_options")]:
        assert {a, b} <= table.flags and {a, b} <= table.value_flags


def test_vllm_ascend_takes_vllms_table_at_the_release_it_is_built_on() -> None:
    assert flag_table(ASCEND, "0.23.0.post1").version == "0.23.0"  # type: ignore[union-attr]
    assert flag_table(ASCEND, "0.11.0rc1").version == "0.11.0"  # type: ignore[union-attr]
    assert flag_table(ASCEND, "0.9.1").version == "0.9.0"  # type: ignore[union-attr]


# --- what each node runs ---------------------------------------------------------------------


def test_trtllm_names_the_model_after_the_mounted_folder() -> None:
    (head,) = build_launches(_trtllm_ctx())
    argv = head.container.docker_run_argv()
    assert "/data/models/deepseek-ai/DeepSeek-R1:/ironserve/models/DeepSeek-R1:ro" in argv
    assert head.container.command[0] == "/ironserve/models/DeepSeek-R1"
    assert "--env-file" not in argv  # trtllm-serve has no API key: the gateway checks it
    plan = Plan.build(_trtllm_ctx())
    assert plan.api_key.enforced  # by the gateway


def test_a_served_name_that_is_no_folder_name_is_refused() -> None:
    sizing = SizingRequest(
        model_id=R1,
        accelerator_id="h200-141g",
        nodes=1,
        devices_per_node=8,
        engine=EngineKind.TRTLLM,
    )
    ctx = launch_context(
        "r1", get_model(R1), sizing, nodes("n", ["10.0.0.10"], 8), served_name="org/R1"
    )
    with pytest.raises(EngineBuildError) as caught:
        build_launches(ctx)
    assert caught.value.field == "model_served_name"


def test_trtllm_across_nodes_is_one_mpi_world_over_ssh() -> None:
    launches = build_launches(_trtllm_ctx(nodes_=2))
    head, worker = launches
    assert option_of(head.container.run_args, "--entrypoint") == "mpirun"
    command = head.container.command
    assert option_of(command, "-H") == "10.0.0.10:8,10.0.0.11:8"
    assert option_of(command, "-np") == "16"
    rsh = shlex.split(option_of(command, "plm_rsh_args"))
    assert option_of(rsh, "-p") == str(trtllm.MPI_SSH_PORT)
    assert "StrictHostKeyChecking=yes" in rsh
    # The head's NCCL env reaches every rank (ranks started over SSH get no container env).
    forwarded = {command[i + 1] for i, word in enumerate(command) if word == "-x"}
    assert {"NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"} <= forwarded
    serve = command[command.index("trtllm-llmapi-launch") + 1 :]
    assert serve[0] == "trtllm-serve"
    assert option_of(serve, "--tp_size") == "16" and option_of(serve, "--gpus_per_node") == "8"
    # The worker runs only the SSH server mpirun's launcher reaches, keys only.
    assert option_of(worker.container.run_args, "--entrypoint") == "/bin/sh"
    script = worker.container.command[1]
    assert "/usr/sbin/sshd -D" in script and "PasswordAuthentication=no" in script
    assert not worker.serves_api and head.serves_api
    plan = Plan.build(_trtllm_ctx(nodes_=2))
    ports = {(p.port, tuple(p.nodes)) for p in plan.ports}
    assert (trtllm.MPI_SSH_PORT, ("n-1",)) in ports
    # Its SSH keys live in one 0600 file on the control machine (roles/engine makes it).
    assert plan.mpi_keys is not None and plan.mpi_keys.endswith(".mpi")
    assert Plan.build(_trtllm_ctx()).mpi_keys is None  # one node: no MPI world over SSH


def test_vllm_ascend_gets_the_npus_and_the_hccl_env() -> None:
    head, worker = build_launches(_ascend_ctx())
    argv = worker.container.docker_run_argv()
    assert "--gpus" not in argv
    assert [argv[i + 1] for i, w in enumerate(argv) if w == "--device"][:8] == [
        f"/dev/davinci{i}" for i in range(8)
    ]
    assert "/dev/davinci_manager" in argv
    env = worker.container.env
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert env["HCCL_IF_IP"] == worker.address
    assert env["HCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "enp189s0f0"
    assert not any(k.startswith("NCCL_") for k in env)
    command = worker.container.command
    assert option_of(command, "--quantization") == "ascend"  # the W8A8 checkpoint
    assert "--headless" in command and option_of(command, "--master-addr") == head.address
    assert option_of(argv, "--env-file") == "/etc/ironserve/r1/secrets.env"  # VLLM_API_KEY


def option_of(argv: list[str], option: str) -> str:
    assert argv.count(option) == 1, f"{option} in {argv}"
    return argv[argv.index(option) + 1]


# --- the planner -----------------------------------------------------------------------------


def test_trtllm_serves_one_instance_per_launch() -> None:
    sizing = size(
        SizingRequest(
            model_id="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            accelerator_id="h100-80g",
            nodes=1,
            devices_per_node=8,
            engine=EngineKind.TRTLLM,
        )
    )
    # vLLM would take DP replicas of a small instance here; trtllm-serve runs one instance.
    assert sizing.feasible and sizing.parallelism.data == 1 and sizing.parallelism.tensor == 8
    forced = size(
        SizingRequest(
            model_id="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            accelerator_id="h100-80g",
            nodes=1,
            devices_per_node=8,
            engine=EngineKind.TRTLLM,
            data_parallel_size=2,
        )
    )
    assert not forced.feasible
    assert any("one model instance per launch" in b for b in forced.blockers)


@pytest.mark.parametrize("engine", [EngineKind.VLLM, EngineKind.TRTLLM, EngineKind.SGLANG])
def test_r1_plans_on_two_gb200_trays_inside_one_nvlink_domain(engine: EngineKind) -> None:
    sizing = size(
        SizingRequest(
            model_id=R1, accelerator_id="gb200-186g", nodes=2, devices_per_node=4, engine=engine
        )
    )
    assert sizing.feasible, sizing.blockers
    assert sizing.parallelism.tensor * sizing.parallelism.pipeline == 8
    assert any("one 72-GPU NVLink domain" in r for r in sizing.reasons)
    # One tray's 4 GPUs cannot hold R1's FP8 weights.
    one = size(SizingRequest(model_id=R1, accelerator_id="gb200-186g", nodes=1, devices_per_node=4))
    assert not one.feasible


def test_vllm_ascend_runs_on_ascend_only_and_mindie_stays_the_default() -> None:
    assert default_engine("ascend") is EngineKind.MINDIE
    ok = size(
        SizingRequest(
            model_id=R1,
            accelerator_id="ascend-910b-64g",
            nodes=2,
            devices_per_node=8,
            engine=EngineKind.VLLM_ASCEND,
            max_model_len=32768,
        )
    )
    assert ok.feasible and ok.weight_format is WeightFormat.W8A8
    wrong = size(
        SizingRequest(
            model_id=R1,
            accelerator_id="h200-141g",
            nodes=1,
            devices_per_node=8,
            engine=EngineKind.VLLM_ASCEND,
        )
    )
    assert any("does not run on nvidia" in b for b in wrong.blockers)


# --- validation before any SSH ---------------------------------------------------------------


def _record(name: str, role: str, ip: str, **data: Any) -> HostRecord:
    values = {
        "model_id": R1,
        "engine_kind": "trtllm",
        "accelerator_kind": "h200-141g",
        "accelerator_count": 8,
        "node_role": role,
        "node_ip": ip,
        "network_socket_ifname": "eth0",
        "network_ib_hcas": ["mlx5_0", "mlx5_1"],
        **data,
    }
    return HostRecord(name, ("site",), values)


def test_trtllm_nodes_must_share_the_heads_interface_and_hcas() -> None:
    head = _record("h0", "head", "10.0.0.10")
    same = _record("h1", "worker", "10.0.0.11")
    build_cluster([head, same])  # one fabric: accepted
    other = _record(
        "h1", "worker", "10.0.0.11", network_socket_ifname="eth1", network_ib_hcas=["mlx5_0"]
    )
    with pytest.raises(InputError) as caught:
        build_cluster([head, other])
    fields = {(p.host, p.field) for p in caught.value.problems}
    assert fields == {("h1", "network_socket_ifname"), ("h1", "network_ib_hcas")}


def test_vllm_ascend_is_refused_on_nvidia_naming_the_key() -> None:
    record = _record("h0", "head", "10.0.0.10", engine_kind="vllm_ascend")
    with pytest.raises(InputError) as caught:
        build_cluster([record])
    assert [p.field for p in caught.value.problems] == ["engine_kind"]
