"""Inventory schema: every rule names the host and the key, and all problems come out at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ironserve.config import build_cluster, load_cluster
from ironserve.config.inventory import HostRecord
from ironserve.errors import InputError
from tests.conftest import EXAMPLE_INVENTORIES

H100_GROUP = {
    "model_id": "deepseek-ai/DeepSeek-R1",
    "engine_kind": "vllm",
    "accelerator_kind": "h100-80g",
    "accelerator_count": 8,
    "network_socket_ifname": "eth0",
}


def host(name: str, role: str, ip: str, **extra: Any) -> HostRecord:
    data = {**H100_GROUP, "node_role": role, "node_ip": ip, "ssh_hostname": ip, **extra}
    return HostRecord(name, ("gpu_nodes",), data)


def problems(records: list[HostRecord]) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as caught:
        build_cluster(records)
    return [(p.host, p.field, p.message) for p in caught.value.problems]


def test_valid_two_node_group_has_the_head_first() -> None:
    cluster = build_cluster([host("b", "worker", "10.0.0.2"), host("a", "head", "10.0.0.1")])
    (group,) = cluster.groups
    assert [n.name for n in group.nodes] == ["a", "b"]
    assert group.model.id == "deepseek-ai/DeepSeek-R1"
    assert str(group.nodes[1].node.ip) == "10.0.0.2"


@pytest.mark.parametrize("inventory", EXAMPLE_INVENTORIES, ids=lambda p: p.stem)
def test_every_example_inventory_validates(inventory: Path, root: Path) -> None:
    cluster = load_cluster(str(inventory), cwd=str(root))
    assert cluster.groups and all(g.nodes for g in cluster.groups)


def test_seed_npu_address_with_five_parts_is_rejected() -> None:
    ips = ["10.197.90.1.10", *[f"10.197.91.{i}" for i in range(1, 8)]]
    record = HostRecord(
        "atlas-0",
        (),
        {
            "model_id": "deepseek-ai/DeepSeek-R1",
            "engine_kind": "mindie",
            "accelerator_kind": "ascend-910b-64g",
            "accelerator_count": 8,
            "node_role": "head",
            "node_ip": "10.197.90.10",
            "npu_device_ips": ips,
        },
    )
    found = problems([record])
    assert len(found) == 1
    name, field, message = found[0]
    assert (name, field) == ("atlas-0", "npu_device_ips")
    assert "10.197.90.1.10" in message and "IPv4" in message


def test_invalid_node_ip_names_host_and_field() -> None:
    found = problems([host("a", "head", "10.0.0.256")])
    assert [(h, f) for h, f, _ in found] == [("a", "node_ip")]


def test_exactly_one_head_per_group() -> None:
    two = problems([host("a", "head", "10.0.0.1"), host("b", "head", "10.0.0.2")])
    assert any(f == "node_role" and "exactly one head" in m and "a, b" in m for _, f, m in two)
    none = problems([host("a", "worker", "10.0.0.1"), host("b", "worker", "10.0.0.2")])
    assert any(f == "node_role" and "has 0" in m for _, f, m in none)


def test_two_groups_each_need_their_own_head() -> None:
    cluster = build_cluster(
        [
            host("a", "head", "10.0.0.1", serving_group="r1"),
            host("b", "worker", "10.0.0.2", serving_group="r1"),
            host("c", "head", "10.0.0.3", serving_group="r1-second"),
        ]
    )
    assert sorted(g.name for g in cluster.groups) == ["r1", "r1-second"]


def test_duplicate_node_ip_is_refused() -> None:
    found = problems([host("a", "head", "10.0.0.1"), host("b", "worker", "10.0.0.1")])
    assert ("b", "node_ip", "10.0.0.1 is already the address of a") in found


def test_npu_device_ips_must_be_unique_cluster_wide() -> None:
    def atlas(name: str, role: str, ip: str, first: int) -> HostRecord:
        return HostRecord(
            name,
            (),
            {
                "model_id": "deepseek-ai/DeepSeek-R1",
                "model_format": "w8a8",
                "engine_kind": "mindie",
                "accelerator_kind": "ascend-910b-64g",
                "accelerator_count": 8,
                "network_socket_ifname": "enp189s0f0",
                "node_role": role,
                "node_ip": ip,
                "npu_device_ips": [f"10.1.0.{first + i}" for i in range(8)],
            },
        )

    found = problems([atlas("n0", "head", "10.0.0.1", 10), atlas("n1", "worker", "10.0.0.2", 17)])
    assert [(h, f) for h, f, _ in found] == [("n1", "npu_device_ips")]
    assert "10.1.0.17" in found[0][2] and "n0 NPU 7" in found[0][2]


def test_accelerators_must_match_inside_a_group() -> None:
    found = problems(
        [
            host("a", "head", "10.0.0.1"),
            host("b", "worker", "10.0.0.2", accelerator_kind="a100-80g"),
        ]
    )
    assert any(h == "b" and f == "accelerator_kind" and "identical" in m for h, f, m in found)


def test_group_settings_must_agree() -> None:
    found = problems(
        [
            host("a", "head", "10.0.0.1"),
            host("b", "worker", "10.0.0.2", model_max_len=8192),
        ]
    )
    assert any(h == "b" and f == "model_max_len" and "same on every node" in m for h, f, m in found)


def test_unknown_key_suggests_the_right_one() -> None:
    found = problems([host("a", "head", "10.0.0.1", engine_tensor_paralel_size=8)])
    assert found == [
        (
            "a",
            "engine_tensor_paralel_size",
            "unknown key (did you mean 'engine_tensor_parallel_size'?)",
        )
    ]


def test_secrets_are_refused_in_inventory_data() -> None:
    found = problems([host("a", "head", "10.0.0.1", serving_api_key="sk-123")])
    assert len(found) == 1 and found[0][1] == "serving_api_key"
    assert "serving_api_key_file" in found[0][2] and "sk-123" not in found[0][2]


def test_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("sk-123\n")
    os.chmod(key, 0o644)
    found = problems([host("a", "head", "10.0.0.1", serving_api_key_file=str(key))])
    assert [(h, f) for h, f, _ in found] == [("a", "serving_api_key_file")]
    os.chmod(key, 0o600)
    build_cluster([host("a", "head", "10.0.0.1", serving_api_key_file=str(key))])


def test_multi_node_group_needs_its_nic() -> None:
    found = problems(
        [
            host("a", "head", "10.0.0.1", network_socket_ifname=None),
            host("b", "worker", "10.0.0.2"),
        ]
    )
    assert [(h, f) for h, f, _ in found] == [("a", "network_socket_ifname")]


def test_unknown_accelerator_and_model_get_suggestions() -> None:
    found = problems(
        [host("a", "head", "10.0.0.1", accelerator_kind="h100", model_id="deepseek-ai/DeepSeek-R")]
    )
    messages = {f: m for _, f, m in found}
    assert "did you mean 'h100-80g'?" in messages["accelerator_kind"]
    assert "did you mean 'deepseek-ai/DeepSeek-R1'?" in messages["model_id"]


def test_engine_must_run_on_the_vendor() -> None:
    record = HostRecord(
        "atlas-0",
        (),
        {
            "model_id": "deepseek-ai/DeepSeek-R1",
            "engine_kind": "vllm",
            "accelerator_kind": "ascend-910b-64g",
            "accelerator_count": 8,
            "node_role": "head",
            "node_ip": "10.0.0.1",
            "npu_device_ips": [f"10.1.0.{i}" for i in range(1, 9)],
        },
    )
    found = problems([record])
    assert any(f == "engine_kind" and "use mindie" in m for _, f, m in found)


@pytest.mark.parametrize(
    ("engine", "args", "needle"),
    [
        ("vllm", ["--enable-reasoning"], "--enable-reasoning is not a vllm"),
        ("vllm", ["--num-scheduler-steps", "20"], "--num-scheduler-steps is not a vllm"),
        ("vllm", ["--gpumemoryutilization", "0.95"], "did you mean '--gpu-memory-utilization'"),
        ("vllm", ["--dtyp=half"], "--dtyp is not a vllm"),
        ("vllm", ["--model-path", "/m"], "--model-path is not a vllm"),
        ("vllm", ["start", "--config", "vllm_config.yaml"], "'start' is not an option"),
    ],
)
def test_seed_flags_that_vllm_does_not_take_are_refused(
    engine: str, args: list[str], needle: str
) -> None:
    found = problems([host("a", "head", "10.0.0.1", engine_kind=engine, engine_extra_args=args)])
    assert any(f == "engine_extra_args" and needle in m for _, f, m in found), found


def test_enable_reasoning_is_accepted_where_it_still_exists() -> None:
    cluster = build_cluster(
        [
            host(
                "a",
                "head",
                "10.0.0.1",
                engine_version="0.8.5",
                engine_extra_args=["--enable-reasoning"],
            )
        ]
    )
    assert cluster.groups[0].engine.extra_args == ["--enable-reasoning"]


def test_inventory_file_with_group_data_loads_through_pyinfra(tmp_path: Path) -> None:
    (tmp_path / "group_data").mkdir()
    (tmp_path / "site.py").write_text(
        'gpu = [("n0", {"node_role": "head", "node_ip": "10.9.0.1"})]\n'
    )
    (tmp_path / "group_data" / "site.py").write_text(
        'model_id = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"\n'
        'accelerator_kind = "rtx4090-24g"\naccelerator_count = 1\n'
    )
    cluster = load_cluster(str(tmp_path / "site.py"), cwd=str(tmp_path))
    node = cluster.groups[0].nodes[0]
    assert (node.name, node.accelerator.kind) == ("n0", "rtx4090-24g")


def test_missing_inventory_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_cluster(str(tmp_path / "nope.py"))
    assert caught.value.problems[0].field == "inventory"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dtype", "half", "--quantization", "awq"], "--quantization awq does not match the fp8"),
        (["--dtype=float16"], "--dtype float16 is not valid for the fp8 checkpoint"),
        (["--tensor-parallel-size", "16"], "set that instead"),
        (["--gpu-memory-utilization", "0.95"], "engine_memory_utilization"),
        (["--api-key", "sk-123"], "0600 file"),
        (["--reasoning-parser", "deepseekr1"], "did you mean 'deepseek_r1'?"),
    ],
)
def test_seed_flag_values_that_contradict_the_model_are_refused(
    args: list[str], needle: str
) -> None:
    found = problems([host("a", "head", "10.0.0.1", engine_extra_args=args)])
    messages = [m for _, f, m in found if f == "engine_extra_args"]
    assert any(needle in m for m in messages), messages
    assert all("sk-123" not in m for m in messages)


def test_right_flag_values_pass() -> None:
    build_cluster(
        [
            host(
                "a",
                "head",
                "10.0.0.1",
                engine_extra_args=["--quantization", "fp8", "--reasoning-parser", "deepseek_r1"],
            )
        ]
    )
