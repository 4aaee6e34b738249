"""The staging estimate (plan/staging.py): the bandwidth and size strings an operator writes, the
time to stage the weights and the image as the deploy moves them, the link that bounds each step,
and where it shows (`ironserve plan`, `--json`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironserve.catalog.engines import EngineKind
from ironserve.cli import app
from ironserve.config.inventory import HostRecord, load_inventory
from ironserve.config.loader import build_cluster
from ironserve.config.values import bytes_per_second, size_bytes
from ironserve.errors import InputError
from ironserve.plan.plan import Plan, plan_group, plan_sizing
from ironserve.plan.staging import Links, duration, rate_text, staging_of
from ironserve.plan.types import SizingRequest
from tests.conftest import ROOT

L40S = str(ROOT / "inventories" / "l40sx2_3node_distill32b_vllm.py")
R1_BYTES = 688_586_727_753  # DeepSeek-R1's FP8 checkpoint on disk (641.3 GiB)
GBIT = 125_000_000  # bytes per second in 1 Gbit/s
runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1Gbit/s", 125e6),
        ("10Gbit", 1.25e9),
        ("10Gbps", 1.25e9),
        ("25 Gbit/s", 3.125e9),
        ("1.25GB/s", 1.25e9),
        ("400MiB/s", 400 * 2**20),
        ("100MBps", 100e6),
        ("800Mbit/s", 100e6),
        ("1Tbit/s", 125e9),
    ],
)
def test_a_bandwidth_is_read_in_bytes_per_second(text: str, rate: float) -> None:
    assert bytes_per_second(text) == pytest.approx(rate)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("10", "a number and a unit"),
        ("fast", "a number and a unit"),
        ("-1Gbit/s", "a number and a unit"),
        ("1.2.3GB/s", "a number and a unit"),
        ("10Gbit/s/s", "a number and a unit"),
        ("10Gb", "unclear unit 'Gb'"),  # gigabits or gigabytes?
        ("10Gb/s", "unclear unit 'Gb'"),
        ("10G", "unknown unit 'G'"),
        ("10Gxx/s", "unknown unit"),
        ("0Gbit/s", "between 1Mbit/s and 10Tbit/s"),
        ("100kbit/s", "between 1Mbit/s and 10Tbit/s"),
        ("100Tbit/s", "between 1Mbit/s and 10Tbit/s"),
        ("1Gbit/s\n", "control character"),
    ],
)
def test_a_bad_bandwidth_is_refused_naming_the_value(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        bytes_per_second(text)
    assert needle in str(caught.value)


def test_a_size_is_bytes_only() -> None:
    assert size_bytes("12GB") == 12 * 10**9
    assert size_bytes("9.5GiB") == int(9.5 * 2**30)
    assert size_bytes("800MB") == 800 * 10**6
    for bad in ("12", "12Gbit", "12GB/s", "12Gb", "5TB", "10kB"):
        with pytest.raises(ValueError):
            size_bytes(bad)


def _r1(nodes: int) -> Plan:
    return plan_sizing(
        SizingRequest(
            model_id="deepseek-ai/DeepSeek-R1",
            accelerator_id="h100-80g",
            nodes=nodes,
            devices_per_node=8,
            engine=EngineKind.VLLM,
        )
    )


def test_two_nodes_one_download_one_round_two_image_pulls() -> None:
    plan = _r1(2)
    st = plan.staging  # defaults: 1 Gbit/s site link, 25 Gbit/s cluster network, vLLM 12 GB
    assert st.weights_bytes == R1_BYTES == plan.sizing.weights_bytes
    # 688,586,727,753 B / 125,000,000 B/s = 5,508.69 s over the site link, once.
    assert st.download.seconds == pytest.approx(5508.69, abs=0.01)
    assert st.download.link == "the site link to the hub"
    # ceil(log2 2) = 1 round of the whole checkpoint at 3,125,000,000 B/s: 220.35 s.
    assert (st.fanout.rounds, st.fanout.link) == (1, "the cluster network")
    assert st.fanout.seconds == pytest.approx(220.35, abs=0.01)
    # Both nodes pull 12 GB over the 1 Gbit/s site link at once: 24e9 / 125e6 = 192 s.
    assert (st.image_bytes, st.image_pull.sharing) == (12 * 10**9, 2)
    assert st.image_pull.seconds == pytest.approx(192.0)
    assert st.image_pull.link == "the site link to the registry"
    assert st.weights_seconds == pytest.approx(5729.04, abs=0.01)
    assert st.total_seconds == pytest.approx(5921.04, abs=0.01)
    assert st.bound_by == "the site link"
    assert duration(st.total_seconds) == "1h 38m 42s"


def test_eight_nodes_three_rounds_eight_image_pulls() -> None:
    st = _r1(8).staging
    assert st.download.seconds == pytest.approx(5508.69, abs=0.01)
    # ceil(log2 8) = 3 rounds x 220.35 s; 8 x 12 GB / 125 MB/s = 768 s.
    assert st.fanout.rounds == 3
    assert st.fanout.seconds == pytest.approx(661.04, abs=0.01)
    assert st.image_pull.seconds == pytest.approx(768.0)
    assert st.total_seconds == pytest.approx(6937.74, abs=0.01)


def test_one_node_has_no_fan_out() -> None:
    st = _r1(1).staging
    assert (st.fanout.rounds, st.fanout.seconds) == (0, 0.0)
    assert st.total_seconds == pytest.approx(5508.69 + 96.0, abs=0.01)


def test_the_bounding_link_is_the_slower_one() -> None:
    ctx = _r1(2).context
    # A 100 Gbit/s site link and 10 Gbit/s ports: the seed's own port bounds the download, and
    # every node's port its image pull (12e9 / 1.25e9 = 9.6 s > 2 x 12e9 / 12.5e9 = 1.92 s).
    st = staging_of(ctx, Links(site=100 * GBIT, fabric={"node-0": 10 * GBIT, "node-1": 10 * GBIT}))
    assert st.download.link == "the cluster network (node-0's port)"
    assert st.download.seconds == pytest.approx(R1_BYTES / 1.25e9)
    assert st.image_pull.link == "the cluster network"
    assert st.image_pull.seconds == pytest.approx(9.6)
    assert st.bound_by == "the cluster network"
    # One slow worker bounds every fan-out round and is named.
    st = staging_of(ctx, Links(fabric={"node-1": 1 * GBIT}))
    assert st.fanout.link == "the cluster network (node-1's port)"
    assert st.fanout.seconds == pytest.approx(R1_BYTES / GBIT)
    assert st.image_pull.link == "the site link to the registry"  # 2 x 96 s > 96 s
    # An engine_image_size replaces the catalog's figure.
    assert staging_of(ctx, Links(image_bytes=5 * 10**9)).image_pull.seconds == pytest.approx(80.0)


def test_durations_and_rates_read_as_people_write_them() -> None:
    assert [duration(s) for s in (0, 41.2, 185, 5508.69)] == ["0s", "42s", "3m 05s", "1h 31m 49s"]
    assert [rate_text(r) for r in (GBIT, 25 * GBIT, 12.5e6, 1.25e12)] == [
        "1 Gbit/s",
        "25 Gbit/s",
        "100 Mbit/s",
        "10 Tbit/s",
    ]


def _records(inventory: str, per_node: dict[str, dict[str, Any]] | None = None, **data: Any):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        records = load_inventory(inventory)
    return [
        HostRecord(r.name, r.groups, {**r.data, **data, **(per_node or {}).get(r.name, {})})
        for r in records
    ]


def test_the_inventory_names_the_links_and_the_image_size() -> None:
    records = _records(
        L40S,
        {"deepseek03": {"network_fabric_bandwidth": "10Gbit/s"}},
        hub_bandwidth="400MiB/s",
        network_fabric_bandwidth="100Gbit/s",
        engine_image_size="20GB",
    )
    plan = plan_group(build_cluster(records).groups[0])
    st = plan.staging
    site = 400 * 2**20
    assert st.download.bytes_per_second == site and st.download.link == "the site link to the hub"
    # Three nodes: two rounds, bound by deepseek03's 10 Gbit/s port.
    assert st.fanout.rounds == 2
    assert st.fanout.link == "the cluster network (deepseek03's port)"
    assert st.fanout.seconds == pytest.approx(2 * st.weights_bytes / 1.25e9)
    assert st.image_pull.seconds == pytest.approx(3 * 20e9 / site)
    assert plan.summary()["staging"] == st.model_dump()


def test_a_bad_bandwidth_in_the_inventory_exits_2_naming_host_and_key(tmp_path: Path) -> None:
    (tmp_path / "site.py").write_text(
        "nodes = [\n"
        '  ("n0", {"node_role": "head", "node_ip": "10.0.0.1"}),\n'
        '  ("n1", {"node_role": "worker", "node_ip": "10.0.0.2",'
        ' "network_fabric_bandwidth": "25Gb"}),\n'
        "]\n"
    )
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "site.py").write_text(
        'model_id = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"\n'
        'accelerator_kind = "h100-80g"\naccelerator_count = 1\n'
        'network_socket_ifname = "eth0"\nhub_bandwidth = "fast"\n'
    )
    result = runner.invoke(app, ["plan", "-i", str(tmp_path / "site.py")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("n1: network_fabric_bandwidth: '25Gb': unclear") for line in lines)
    assert any(line.startswith("n0: hub_bandwidth: 'fast' is not a bandwidth") for line in lines)


def test_the_hub_link_is_the_groups_own() -> None:
    records = _records(L40S)
    records[1] = HostRecord(
        records[1].name, records[1].groups, {**records[1].data, "hub_bandwidth": "10Gbit/s"}
    )
    with pytest.raises(InputError) as caught:
        build_cluster(records)
    assert [(p.host, p.field) for p in caught.value.problems] == [("deepseek02", "hub_bandwidth")]


def test_plan_prints_the_estimate_and_json_carries_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["plan", "-i", L40S, "--json"])
    doc = json.loads(result.stdout)
    st = doc["staging"]
    assert st["weights_bytes"] == doc["weights_bytes"] and st["nodes"] == len(doc["nodes"])
    assert st["image"] == doc["image"]
    steps = [st["download"], st["fanout"], st["image_pull"]]
    assert st["total_seconds"] == pytest.approx(sum(s["seconds"] for s in steps))
    assert {"what", "bytes", "rounds", "sharing", "link", "bytes_per_second", "seconds"} == set(
        st["download"]
    )
    human = runner.invoke(app, ["plan", "-i", L40S], env={"COLUMNS": "200"})
    assert "Staging estimate (3 nodes, nothing in place)" in human.stdout
    assert "weights fan-out, 2 rounds" in human.stdout
    assert duration(st["total_seconds"]) in human.stdout
