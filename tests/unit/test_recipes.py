"""The recipe collection's deployments as example inventories (issue 16): each validates, plans
with its pools explained and renders (goldens: tests/golden/test_golden_dynamo.py); workers
over several nodes, data-expert parallel weights, and the recipes whose numbers do not fit the
hardware they name."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from ironserve.catalog.models import get_model
from ironserve.config import build_cluster
from ironserve.config.inventory import HostRecord, load_inventory
from ironserve.engines.base import ContainerSpec
from ironserve.engines.dynamo import components
from ironserve.errors import InputError
from ironserve.plan.plan import Plan, plan_group
from ironserve.plan.sizing import size
from ironserve.plan.types import SizingRequest
from tests.conftest import ROOT

# Every recipe of the collection, as its example inventory: (inventory, its pools).
RECIPE_INVENTORIES = {
    "h100x8_llama3_70b_vllm_dynamo_agg": ("worker",),
    "h100x8_2node_llama3_70b_vllm_dynamo_disagg": ("prefill", "decode"),
    "h100x8_2node_qwen3_32b_vllm_dynamo_kv": ("prefill", "decode"),
    "gb200x4_gpt_oss_120b_trtllm_dynamo_agg": ("worker",),
    "h200x8_2node_r1_sglang_dynamo_disagg": ("prefill", "decode"),
    "h200x8_4node_r1_vllm_dynamo_dep16": ("prefill", "decode"),
    "h200x8_4node_r1_sglang_dynamo_wideep": ("prefill", "decode"),
    "gb200x4_4node_r1_vllm_dynamo_dep8": ("prefill", "decode"),
    "gb200x4_4node_r1_fp4_trtllm_dynamo_wideep": ("prefill", "decode"),
    "gb200x4_9node_r1_fp4_trtllm_dynamo_wideep_dep32": ("prefill", "decode"),
    "h100x8_2node_qwen3_235b_trtllm_dynamo_agg": ("worker",),
    "h200x8_2node_qwen3_235b_trtllm_dynamo_disagg": ("prefill", "decode"),
}


def _records(inventory: str, **extra: Any) -> list[HostRecord]:
    return [
        HostRecord(r.name, r.groups, {**r.data, **extra})
        for r in load_inventory(f"inventories/{inventory}.py", str(ROOT))
    ]


def _plan(records: list[HostRecord]) -> Plan:
    (group,) = build_cluster(records).groups
    return plan_group(group)


def _problems(records: list[HostRecord]) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as caught:
        build_cluster(records)
    return [(p.host, p.field, p.message) for p in caught.value.problems]


def _workers(plan: Plan, node: str, pool: str = "") -> list[ContainerSpec]:
    """The node's Dynamo workers (not etcd, NATS or the frontend), or one pool's."""
    backends = ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm")
    # A TensorRT-LLM worker over nodes: mpirun on its first node, sshd on the others.
    return [
        c
        for c in plan.node(node).containers
        if (
            (c.command[2:3] and c.command[2] in backends)
            or c.command[:1] == ["mpirun"]
            or "/usr/sbin/sshd" in " ".join(c.command)
        )
        and (not pool or f"-{pool}-" in c.name)
    ]


def _worker(plan: Plan, node: str) -> ContainerSpec:
    (worker,) = _workers(plan, node)
    return worker


def _option(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


@pytest.mark.parametrize("inventory", sorted(RECIPE_INVENTORIES))
def test_each_recipe_inventory_plans_feasible_with_every_pool_explained(inventory: str) -> None:
    plan = _plan(_records(inventory))
    assert plan.sizing.feasible, plan.sizing.blockers
    assert plan.context.dynamo is not None
    pools = RECIPE_INVENTORIES[inventory]
    assert [p.name for p in plan.context.dynamo.pools] == list(pools)
    for pool in pools:
        assert any(r.startswith(f"{pool} pool: ") for r in plan.sizing.reasons), pool
    # Every node of a pool runs its workers: the rendered commands are the pools' shape.
    for pool in plan.context.dynamo.pools:
        for node in pool.nodes:
            assert len(_workers(plan, node, pool.name)) == pool.workers_on(node)


def test_the_makefile_plans_every_recipe_inventory() -> None:
    """`make plans` validates and plans every example inventory but the lab's."""
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "show"],
        input="show:\n\t@echo $(INVENTORIES)\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    planned = set(done.stdout.split())
    for inventory in RECIPE_INVENTORIES:
        assert f"inventories/{inventory}.py" in planned
        assert (ROOT / "inventories" / "group_data" / f"{inventory}.py").exists()


# --- hardware too small for the recipe -------------------------------------------------------


def test_r1_on_one_h100_node_is_infeasible_naming_the_weights() -> None:
    records = _records(
        "h100x8_llama3_70b_vllm_dynamo_agg",
        model_id="deepseek-ai/DeepSeek-R1",
        dynamo_worker={"tensor_parallel_size": 8},
    )
    plan = _plan(records)
    assert not plan.sizing.feasible
    (blocker,) = plan.sizing.blockers
    assert blocker.startswith("each aggregated worker: weights do not fit: 80.2 GiB per GPU")


def test_gpt_oss_tp4_on_a_node_of_two_gpus_is_refused_naming_the_fit() -> None:
    records = _records("gb200x4_gpt_oss_120b_trtllm_dynamo_agg", accelerator_count=2)
    (problem,) = _problems(records)
    assert problem[:2] == ("gb200-tray-0", "dynamo_worker")
    assert "TP 1 x DP 4 = 4 devices does not fit this node's 2 (gb200-186g)" in problem[2]


def test_the_8_gpu_sglang_recipe_on_one_node_is_refused_naming_its_16_devices() -> None:
    """disagg-8gpu's manifest asks 8 GPUs for prefill and 8 for decode: one node of 8 shared by
    both pools holds half of it."""
    (head,) = _records("h200x8_2node_r1_sglang_dynamo_disagg")[:1]
    head.data.update(node_dynamo_pool=["prefill", "decode"], node_dynamo_workers={"decode": 1})
    head.data["dynamo_prefill"] = {**head.data["dynamo_prefill"], "workers_per_node": 1}
    assert _problems([head]) == [
        (
            "h200-prefill",
            "node_dynamo_pool",
            "1 prefill worker(s) x 8 + 1 decode worker(s) x 8 devices = 16; this node has 8 "
            "(h200-141g)",
        )
    ]


def test_the_235b_disaggregated_recipe_on_h100_names_the_prefill_worker() -> None:
    plan = _plan(
        _records("h200x8_2node_qwen3_235b_trtllm_dynamo_disagg", accelerator_kind="h100-80g")
    )
    assert not plan.sizing.feasible
    assert plan.sizing.blockers == [
        "each prefill worker: weights do not fit: 110.1 GiB per GPU is more than the 66.5 GiB "
        "left after the runtime reserve (220.2 GiB over 2 GPUs)"
    ]


def test_llama_single_node_disaggregated_in_bf16_says_prefill_caps_the_prompt() -> None:
    """The disagg-single-node recipe (2 TP 2 prefill + 1 TP 4 decode on one node of 8 H100)
    with the BF16 checkpoint: 0.8 GiB of KV per prefill GPU, 5120 tokens."""
    (head,) = _records("h100x8_2node_llama3_70b_vllm_dynamo_disagg")[:1]
    head.data.update(
        node_dynamo_pool=["prefill", "decode"],
        node_dynamo_workers={"prefill": 2, "decode": 1},
        dynamo_prefill={"tensor_parallel_size": 2},
        dynamo_decode={"tensor_parallel_size": 4},
    )
    plan = _plan([head])
    assert plan.sizing.feasible
    assert (
        "prefill workers hold 5120 tokens of context, decode workers 131072: a prompt longer "
        "than 5120 fails in prefill (give prefill workers more devices, or set model_max_len "
        "5120)"
    ) in plan.sizing.reasons


# --- pools sharing a node --------------------------------------------------------------------


def test_pools_sharing_a_node_split_its_devices_and_ports_prefill_first() -> None:
    """The 235B recipe's 6 prefill + 1 decode workers on 16 GPUs: the second node runs 2 prefill
    workers on GPUs 0-3 and the decode worker on 4-7, each with its own system port."""
    plan = _plan(_records("h200x8_2node_qwen3_235b_trtllm_dynamo_disagg"))
    assert plan.context.dynamo is not None
    prefill, decode = plan.context.dynamo.pools
    assert (prefill.workers, decode.workers) == (6, 1)
    shared = [(c.name, c.env["DYN_SYSTEM_PORT"]) for c in _workers(plan, "h200-mixed")]
    assert shared == [
        ("ironserve-default-prefill-0", "18100"),
        ("ironserve-default-prefill-1", "18101"),
        ("ironserve-default-decode-0", "18102"),
    ]
    devices = [c.run_args[c.run_args.index("--gpus") + 1] for c in _workers(plan, "h200-mixed")]
    assert devices == ['"device=0,1"', '"device=2,3"', '"device=4,5,6,7"']
    assert {f.path for f in plan.node("h200-mixed").files} == {
        "/etc/ironserve/default/trtllm-prefill.yaml",
        "/etc/ironserve/default/trtllm-decode.yaml",
    }
    ports = {(p.port, tuple(p.nodes), p.purpose) for p in plan.ports}
    assert (18100, ("h200-prefill", "h200-mixed"), "prefill worker 0 system") in ports
    assert (18102, ("h200-prefill",), "prefill worker 2 system") in ports
    assert (18102, ("h200-mixed",), "decode worker 0 system") in ports
    # Health names each container of the shared node with its pool and system port.
    labels = [(c.label, c.system_port) for c in components(plan.context, "h200-mixed")]
    assert labels == [
        ("prefill worker 0", 18100),
        ("prefill worker 1", 18101),
        ("decode worker 0", 18102),
    ]


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        (
            {"node_dynamo_workers": {"worker": 1}},
            "node_dynamo_workers",
            "worker is not this node's pool (prefill, decode)",
        ),
        (
            {"node_dynamo_workers": {"prefill": 2}},
            "dynamo_decode",
            "pools sharing a node (prefill, decode) split its devices as each says: set "
            "tensor_parallel_size, and workers_per_node (or this node's node_dynamo_workers)",
        ),
        (
            {"node_dynamo_workers": {"prefill": 3, "decode": 1}},
            "node_dynamo_pool",
            "3 prefill worker(s) x 2 + 1 decode worker(s) x 4 devices = 10; this node has 8 "
            "(h200-141g)",
        ),
        (
            {"node_dynamo_pool": ["prefill", "prefill"]},
            "node_dynamo_pool",
            "a pool named twice: prefill, prefill",
        ),
    ],
)
def test_a_shared_node_that_cannot_be_is_refused_naming_the_key(
    node: dict[str, Any], field: str, message: str
) -> None:
    records = _records("h200x8_2node_qwen3_235b_trtllm_dynamo_disagg")
    records[1].data.update(node)
    assert ("h200-mixed", field, message) in _problems(records)


# --- data-expert parallelism: what a rank holds ------------------------------------------------


def test_the_catalog_counts_r1s_routed_expert_parameters_from_its_config() -> None:
    r1 = get_model("deepseek-ai/DeepSeek-R1")
    # 61 layers, the first 3 dense, and 1 multi-token-prediction layer: 59 MoE layers of 256
    # experts, gate/up/down 7168 x 2048.
    assert r1.expert_parameters == 59 * 256 * 3 * 7168 * 2048
    assert get_model("Qwen/Qwen3-32B").expert_parameters == 0


def test_dp_ranks_with_expert_parallel_hold_their_share_of_experts_and_the_rest_whole() -> None:
    r1 = get_model("deepseek-ai/DeepSeek-R1")
    weights = r1.bytes_on_disk
    experts = r1.expert_bytes(weights)
    request = SizingRequest(
        model_id=r1.id,
        accelerator_id="h200-141g",
        nodes=2,
        devices_per_node=8,
        tensor_parallel_size=1,
        data_parallel_size=16,
        pipeline_parallel_size=1,
        expert_parallel=True,
    )
    dep = size(request)
    assert dep.parallelism.expert == 16
    assert dep.memory.weights_bytes == -(-(weights - experts + experts / 16) // 1)
    # Without EP the 16 DP ranks each hold the whole model: it does not fit.
    replicated = size(request.model_copy(update={"expert_parallel": False}))
    assert replicated.memory.weights_bytes == weights
    assert not replicated.feasible
    # EP = TP (no DP): the split is the plain TP one.
    tp8 = size(
        request.model_copy(update={"nodes": 1, "tensor_parallel_size": 8, "data_parallel_size": 1})
    )
    assert tp8.memory.weights_bytes == -(-weights // 8)


# --- workers over several nodes ---------------------------------------------------------------


def test_a_vllm_dep16_worker_spans_two_nodes_each_serving_its_local_ranks() -> None:
    plan = _plan(_records("h200x8_4node_r1_vllm_dynamo_dep16"))
    assert plan.context.dynamo is not None
    prefill, decode = plan.context.dynamo.pools
    assert (prefill.nodes_per_worker, prefill.workers, prefill.units_per_node) == (2, 1, 8)
    for rank, node in enumerate(decode.nodes):
        worker = _worker(plan, node)
        command = worker.command
        assert _option(command, "--data-parallel-size") == "16"
        assert _option(command, "--data-parallel-size-local") == "8"
        assert _option(command, "--data-parallel-start-rank") == str(8 * rank)
        assert _option(command, "--data-parallel-address") == "10.50.0.13"  # decode-0
        assert "--data-parallel-hybrid-lb" in command
        assert '"device=0,1,2,3,4,5,6,7"' in worker.run_args
        assert "NCCL_MNNVL_ENABLE" not in worker.env  # H200: NVLink stops at the node
    ports = {(p.port, tuple(p.nodes)) for p in plan.ports}
    assert (29550, ("h200-prefill-0",)) in ports and (29550, ("h200-decode-0",)) in ports


def test_gb200_trays_of_one_worker_talk_over_multi_node_nvlink() -> None:
    plan = _plan(_records("gb200x4_4node_r1_vllm_dynamo_dep8"))
    worker = _worker(plan, "gb200-prefill-1")
    assert worker.env["NCCL_MNNVL_ENABLE"] == "1"
    assert _option(worker.command, "--data-parallel-start-rank") == "4"
    assert '"device=0,1,2,3"' in worker.run_args


def test_an_sglang_worker_over_two_nodes_is_one_instance_with_node_ranks() -> None:
    plan = _plan(_records("h200x8_4node_r1_sglang_dynamo_wideep"))
    for rank, node in enumerate(("h200-decode-0", "h200-decode-1")):
        command = _worker(plan, node).command
        assert (_option(command, "--tp-size"), _option(command, "--dp-size")) == ("16", "16")
        assert "--enable-dp-attention" in command
        assert (_option(command, "--nnodes"), _option(command, "--node-rank")) == ("2", str(rank))
        assert _option(command, "--dist-init-addr") == "10.50.1.13:5000"
    prefill = _worker(plan, "h200-prefill-1").command
    assert (_option(prefill, "--tp-size"), _option(prefill, "--ep-size")) == ("16", "16")
    ports = {(p.port, tuple(p.nodes)) for p in plan.ports}
    assert (5000, ("h200-prefill-0",)) in ports and (5000, ("h200-decode-0",)) in ports


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (
            {
                "dynamo_decode": {
                    "tensor_parallel_size": 1,
                    "data_parallel_size": 8,
                    "nodes_per_worker": 2,
                }
            },
            "dynamo_decode",
            "a decode worker over 2 nodes holds their 16 devices; TP 1 x DP 8 = 8",
        ),
        (
            {"dynamo_decode": {"tensor_parallel_size": 16, "nodes_per_worker": 2}},
            "dynamo_decode",
            "vLLM spreads a worker over nodes by its DP ranks: TP 16 stays inside a node",
        ),
        (
            {
                "dynamo_decode": {
                    "tensor_parallel_size": 1,
                    "data_parallel_size": 32,
                    "nodes_per_worker": 4,
                }
            },
            "node_dynamo_pool",
            "the decode pool's 2 node(s) are not whole workers of nodes_per_worker 4",
        ),
        (
            {"dynamo_decode": {"data_parallel_size": 16, "nodes_per_worker": 2}},
            "dynamo_decode",
            "a decode worker over 2 nodes needs its tensor_parallel_size",
        ),
    ],
)
def test_a_worker_over_nodes_that_cannot_be_is_refused_naming_the_key(
    data: dict[str, Any], field: str, fragment: str
) -> None:
    problems = _problems(_records("h200x8_4node_r1_vllm_dynamo_dep16", **data))
    assert any(f == field and fragment in m for _, f, m in problems), problems


def test_a_worker_over_nodes_outside_an_nvlink_domain_needs_the_hcas() -> None:
    h200 = _records("h200x8_4node_r1_vllm_dynamo_dep16")
    for record in h200[:2]:
        record.data["network_ib_hcas"] = []
    problems = _problems(h200)
    assert ("h200-prefill-1", "network_ib_hcas") in {(h, f) for h, f, _ in problems}
    assert any("talk across its 2 nodes over RDMA" in m for _, _, m in problems)
    # GB200 trays of one NVL72 rack: the prefill worker's ranks need no HCA (its KV hand-over
    # to decode still does, over NIXL; tcp here keeps to the worker's own need).
    gb200 = _records("gb200x4_4node_r1_vllm_dynamo_dep8", dynamo_kv_fabric="tcp")
    for record in gb200:
        record.data["network_ib_hcas"] = []
    assert _plan(gb200).sizing.feasible


DEP32 = "gb200x4_9node_r1_fp4_trtllm_dynamo_wideep_dep32"
DECODE_TRAYS = [f"gb200-decode-{i}" for i in range(8)]


def test_the_trtllm_wide_ep_decode_is_one_dep32_worker_over_8_trays_sized_per_gpu() -> None:
    plan = _plan(_records(DEP32))
    assert plan.context.dynamo is not None
    decode = plan.context.dynamo.pools[1]
    assert (decode.nodes, decode.nodes_per_worker) == (DECODE_TRAYS, 8)
    assert (decode.data, decode.expert, decode.units_per_worker) == (32, 32, 32)
    # Per GPU: 1/32 of the routed experts plus the rest on every DP rank.
    reasons = decode.sizing.reasons
    assert any("routed experts" in r and "split over EP 32" in r for r in reasons), reasons
    prefill = plan.context.dynamo.pools[0]
    gib = 1024**3
    # 363.6 GiB of routed experts / 32 + 31.0 GiB of the rest = 42.3 GiB (DEP 4: 121.8 GiB).
    assert 42 * gib < decode.sizing.memory.weights_bytes < 43 * gib
    assert prefill.sizing.memory.weights_bytes > 120 * gib
    assert any(r.startswith("decode pool: one MPI world over the worker's nodes") for r in reasons)


def test_the_dep32_worker_is_one_mpi_world_launched_from_its_first_tray() -> None:
    plan = _plan(_records(DEP32))
    leader = _worker(plan, "gb200-decode-0").command
    assert leader[0] == "mpirun"
    hosts = ",".join(f"10.60.3.{21 + i}:4" for i in range(8))
    assert (_option(leader, "-H"), _option(leader, "-np")) == (hosts, "32")
    launched = leader[leader.index("trtllm-llmapi-launch") + 1 :]
    assert launched[:3] == ["python3", "-m", "dynamo.trtllm"]
    assert (_option(launched, "--tensor-parallel-size"), _option(launched, "--gpus-per-node")) == (
        "32",
        "4",
    )
    assert _option(launched, "--disaggregation-mode") == "decode"
    # Ranks started over SSH get mpirun's env: the planes and the fabric.
    for key in ("ETCD_ENDPOINTS", "NATS_SERVER", "NCCL_MNNVL_ENABLE", "NCCL_IB_HCA"):
        assert leader[leader.index(key) - 1] == "-x"
    for node in DECODE_TRAYS[1:]:
        member = _worker(plan, node)
        assert member.command[:2] == ["/bin/sh", "-c"] and "sshd" in member.command[2]
        assert "-v" in member.run_args and any("/mpi:" in a for a in member.run_args)
    # mpirun's SSH port: on the other trays only; their /health is the leader's.
    (ssh,) = [p for p in plan.ports if p.port == 2233]
    assert ssh.nodes == DECODE_TRAYS[1:]
    assert plan.mpi_keys is not None and plan.mpi_keys.endswith(".mpi")
    ctx = plan.context
    assert [c.system_port for c in components(ctx, "gb200-decode-1")] == [None]
    assert [c.registers for c in components(ctx, "gb200-decode-0")] == [True]


def test_a_trtllm_worker_over_trays_with_other_hcas_is_refused() -> None:
    records = _records(DEP32)
    records[5].data["network_ib_hcas"] = ["mlx5_0", "mlx5_1"]
    problems = _problems(records)
    assert any(
        (h, f) == (records[5].name, "network_ib_hcas") and "one MPI world" in m
        for h, f, m in problems
    ), problems


def test_the_api_ports_may_not_take_the_mpi_worlds_ssh_port() -> None:
    for key in ("engine_port", "serving_backend_port"):
        problems = _problems(_records(DEP32, **{key: 2233}))
        assert ("gb200-decode-1", key) in {(h, f) for h, f, _ in problems}, problems
