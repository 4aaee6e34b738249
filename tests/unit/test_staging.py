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


def test_two_nodes_the_download_bounds_the_stream_which_adds_one_hop() -> None:
    plan = _r1(2)
    st = plan.staging  # defaults: 1 Gbit/s site link, 25 Gbit/s cluster network, vLLM 12 GB
    assert st.weights_bytes == R1_BYTES == plan.sizing.weights_bytes
    # 688,586,727,753 B / 125,000,000 B/s = 5,508.69 s over the site link, once.
    assert st.download.seconds == pytest.approx(5508.69, abs=0.01)
    assert st.download.link == "the site link to the hub"
    # node-0 serves node-1 alone: one copy at the whole 3.125e9 B/s port, whose 220.35 s for the
    # checkpoint hide behind the download; the last 5 GB shard's one hop adds 5e9 / 3.125e9 = 1.6 s.
    stream = st.stream
    assert (stream.hops, stream.sharing, stream.file_bytes) == (1, 1, 5 * 10**9)
    assert stream.copy_bytes_per_second == 25 * GBIT
    assert stream.link == "the site link to the hub"
    assert stream.seconds == pytest.approx(1.6)
    # Both nodes pull 12 GB over the 1 Gbit/s site link at once: 24e9 / 125e6 = 192 s.
    assert (st.image_bytes, st.image_pull.sharing) == (12 * 10**9, 2)
    assert st.image_pull.seconds == pytest.approx(192.0)
    assert st.image_pull.link == "the site link to the registry"
    assert st.weights_seconds == pytest.approx(5510.29, abs=0.01)
    assert st.total_seconds == pytest.approx(5702.29, abs=0.01)
    assert st.bound_by == "the site link"
    assert duration(st.total_seconds) == "1h 35m 03s"


@pytest.mark.parametrize(
    ("nodes", "hops", "tail", "pulls", "total"),
    [
        # Fan-out 2: a copy at 25 / 2 = 12.5 Gbit/s (1.5625e9 B/s), the checkpoint in 440.70 s,
        # still behind the download; each hop of a 5 GB shard adds 3.2 s. 8 and 16 x 96 s pulls.
        (8, 3, 9.6, 768.0, 6286.29),
        (16, 4, 12.8, 1536.0, 7057.49),
    ],
)
def test_more_nodes_add_only_the_hops_of_the_last_shard(
    nodes: int, hops: int, tail: float, pulls: float, total: float
) -> None:
    st = _r1(nodes).staging
    assert st.download.seconds == pytest.approx(5508.69, abs=0.01)
    assert (st.stream.hops, st.stream.sharing) == (hops, 2)
    assert st.stream.copy_bytes_per_second == pytest.approx(1.5625e9)
    assert st.stream.link == "the site link to the hub"
    assert st.stream.seconds == pytest.approx(tail)
    assert st.weights_seconds == pytest.approx(5508.69 + tail, abs=0.01)
    assert st.image_pull.seconds == pytest.approx(pulls)
    assert st.total_seconds == pytest.approx(total, abs=0.01)


def test_one_node_has_no_stream() -> None:
    st = _r1(1).staging
    assert (st.stream.hops, st.stream.sharing, st.stream.seconds) == (0, 0, 0.0)
    assert st.total_seconds == pytest.approx(5508.69 + 96.0, abs=0.01)


def test_a_fast_site_link_leaves_the_stream_bound_by_its_fan_out() -> None:
    ctx = _r1(8).context
    ports = {f"node-{i}": 10 * GBIT for i in range(8)}
    st = staging_of(ctx, Links(site=100 * GBIT, fabric=ports))
    # A 100 Gbit/s site link and 10 Gbit/s ports: the seed's own port bounds the download,
    # 688,586,727,753 / 1.25e9 = 550.87 s.
    assert st.download.link == "the cluster network (node-0's port)"
    assert st.download.seconds == pytest.approx(550.87, abs=0.01)
    # Each serving port carries two copies at 5 Gbit/s (6.25e8 B/s): the checkpoint in 1,101.74 s,
    # 550.87 s behind the download, then 3 hops x 5e9 / 6.25e8 = 24 s.
    assert (st.stream.link, st.stream.sharing, st.stream.hops) == ("the cluster network", 2, 3)
    assert st.stream.copy_bytes_per_second == pytest.approx(6.25e8)
    assert st.stream.seconds == pytest.approx(574.87, abs=0.01)
    assert st.weights_seconds == pytest.approx(1125.74, abs=0.01)
    # Every node's port bounds its image pull (12e9 / 1.25e9 = 9.6 s > 8 x 12e9 / 12.5e9 = 7.68 s).
    assert st.image_pull.link == "the cluster network"
    assert st.image_pull.seconds == pytest.approx(9.6)
    assert st.total_seconds == pytest.approx(1135.34, abs=0.01)
    assert st.bound_by == "the cluster network"


def test_a_slow_node_bounds_the_stream_and_is_named() -> None:
    ctx = _r1(8).context
    # node-1 (serving node-3 and node-4) on 1 Gbit/s: a copy at 500 Mbit/s (6.25e7 B/s), the
    # checkpoint in 11,017.39 s, 5,508.69 s behind the download, then 3 x 5e9 / 6.25e7 = 240 s.
    st = staging_of(ctx, Links(fabric={"node-1": 1 * GBIT}))
    assert st.stream.link == "the cluster network (node-1's port)"
    assert st.stream.copy_bytes_per_second == pytest.approx(6.25e7)
    assert st.stream.seconds == pytest.approx(5748.69, abs=0.01)
    assert st.weights_seconds == pytest.approx(11257.39, abs=0.01)
    assert st.image_pull.link == "the site link to the registry"  # 8 x 96 s > 96 s
    # An engine_image_size replaces the catalog's figure: 8 x 5e9 / 1.25e8 = 320 s.
    assert staging_of(ctx, Links(image_bytes=5 * 10**9)).image_pull.seconds == pytest.approx(320.0)


def test_a_small_checkpoint_streams_as_one_file() -> None:
    ctx = _r1(8).context
    ctx = ctx.model_copy(update={"sizing": ctx.sizing.model_copy(update={"weights_bytes": 10**9})})
    st = staging_of(ctx)
    # 1 GB: one file, the whole of it, 3 hops at 1.5625e9 B/s = 1.92 s after the 8 s download.
    assert st.stream.file_bytes == 10**9
    assert st.stream.seconds == pytest.approx(1.92)


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
    # Three nodes: the seed serves both at 10 Gbit/s / 2, faster than the 400 MiB/s download,
    # so one hop of a 5 GB shard is all the stream adds: 5e9 / 6.25e8 = 8 s.
    assert (st.stream.hops, st.stream.sharing) == (1, 2)
    assert st.stream.link == "the site link to the hub"
    assert st.stream.seconds == pytest.approx(8.0)
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
    steps = [st["download"], st["stream"], st["image_pull"]]
    assert st["total_seconds"] == pytest.approx(sum(s["seconds"] for s in steps))
    assert {"what", "bytes", "sharing", "link", "bytes_per_second", "seconds"} == set(
        st["download"]
    )
    assert {"hops", "file_bytes", "copy_bytes_per_second"} < set(st["stream"])
    human = runner.invoke(app, ["plan", "-i", L40S], env={"COLUMNS": "200"})
    assert "Staging estimate (3 nodes, nothing in place)" in human.stdout
    assert "weights stream, 1 hop, fan-out 2" in human.stdout
    assert duration(st["total_seconds"]) in human.stdout
