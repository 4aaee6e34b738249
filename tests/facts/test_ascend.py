"""npu-smi, hccn_tool and hccn.conf parsers, on verbatim captured outputs."""

from __future__ import annotations

import pytest

from ironserve.facts.ascend import (
    HccnConf,
    HccnDeviceIps,
    HccnLinks,
    HccnNetHealth,
    HccnTls,
    NpuHealth,
    NpuSmiInfo,
    parse_hccn_conf,
    parse_hccn_ip,
    parse_hccn_tls,
    parse_hccn_value,
    parse_npu_health,
    parse_npu_smi_info,
)
from tests.facts.conftest import lines

# --- npu-smi info ------------------------------------------------------------------------------


def test_npu_smi_1a_910b2_eight_npus_with_a_running_job() -> None:
    table = parse_npu_smi_info(lines("npu-smi-info.910b2.23.0.7.txt"))
    assert table["version"] == "23.0.7"
    chips = table["chips"]
    assert [c["npu"] for c in chips] == list(range(8))
    assert {c["name"] for c in chips} == {"910B2"}
    assert {c["health"] for c in chips} == {"OK"}
    assert [c["hbm_used_mb"] for c in chips] == [29954, 29951, 29950, 29951, 3347, 3350, 3347, 3347]
    assert {c["hbm_total_mb"] for c in chips} == {65536}
    assert chips[0]["bus_id"] == "0000:C1:00.0"
    assert chips[0]["power_w"] == 96.5
    assert chips[0]["temp_c"] == 36
    assert chips[0]["aicore_pct"] == 0
    assert chips[7]["bus_id"] == "0000:42:00.0"


def test_npu_smi_1b_910b4_32g() -> None:
    table = NpuSmiInfo().process(lines("npu-smi-info.910b4.24.1.rc3.txt"))
    assert table["version"] == "24.1.rc3"
    assert len(table["chips"]) == 8
    assert {c["hbm_total_mb"] for c in table["chips"]} == {32768}
    assert table["chips"][5]["temp_c"] == 55
    assert table["chips"][2]["power_w"] == 84.5


def test_npu_smi_1c_excerpt_and_prompt() -> None:
    table = parse_npu_smi_info(lines("npu-smi-info.910b4.24.1.1.excerpt.txt"))
    assert table["version"] == "24.1.1"
    assert [(c["npu"], c["hbm_used_mb"]) for c in table["chips"]] == [(0, 26838), (1, 29356)]


def test_npu_smi_1d_author_elided() -> None:
    table = parse_npu_smi_info(lines("npu-smi-info.910b1.23.0.rc2.txt"))
    assert table["version"] == "23.0.rc2"
    assert [c["npu"] for c in table["chips"]] == [0, 1, 7]
    assert table["chips"][2]["name"] == "910B1"
    assert table["chips"][2]["hbm_used_mb"] == 4174


@pytest.mark.parametrize(
    ("fixture", "version", "npus", "memory_used"),
    [
        ("npu-smi-info.xxx.24.1.rc1.txt", "24.1.rc1", [7], [2505]),
        ("npu-smi-info.xxx.23.0.5.txt", "23.0.5", [0, 7], [920, 2346]),
    ],
)
def test_npu_smi_1e_huawei_doc_samples(
    fixture: str, version: str, npus: list[int], memory_used: list[int]
) -> None:
    table = parse_npu_smi_info(lines(fixture))
    assert table["version"] == version
    assert [c["npu"] for c in table["chips"]] == npus
    assert [c["memory_used_mb"] for c in table["chips"]] == memory_used
    assert {c["hbm_used_mb"] for c in table["chips"]} == {0}
    assert {c["name"] for c in table["chips"]} == {"xxx"}
    assert table["chips"][-1]["bus_id"] == "0000:3D:00.0"


def test_npu_smi_a3_layout_two_chips_per_npu() -> None:
    # No public A3 capture; this follows the documented layout (a "Chip  Phy-ID" header row and
    # one row per chip under the NPU row).
    output = [
        "| NPU     Name                | Health          | Power(W)     Temp(C)           Hugepages-Usage(page) |",  # noqa: E501
        "| Chip    Phy-ID              | Bus-Id          | AICore(%)    Memory-Usage(MB)  HBM-Usage(MB)        |",  # noqa: E501
        "+===========================+===============+====================================================+",
        "| 0       Ascend910           | OK              | 166.5        38                0    / 0              |",  # noqa: E501
        "| 0       0                   | 0000:9D:00.0    | 0            0    / 0          3400 / 65536          |",  # noqa: E501
        "| 1       1                   | 0000:9F:00.0    | 0            0    / 0          3390 / 65536          |",  # noqa: E501
    ]
    chips = parse_npu_smi_info(output)["chips"]
    assert [(c["npu"], c["chip"], c["phy_id"], c["bus_id"]) for c in chips] == [
        (0, 0, 0, "0000:9D:00.0"),
        (0, 1, 1, "0000:9F:00.0"),
    ]
    assert {c["name"] for c in chips} == {"Ascend910"}


# --- npu-smi info -t health --------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["npu-smi-health.txt", "npu-smi-health.leading-space.txt"])
def test_npu_health_ok(fixture: str) -> None:
    assert parse_npu_health(lines(fixture)) == {
        "health": "OK",
        "error_code": None,
        "error_info": None,
    }


def test_npu_health_fact_splits_per_npu() -> None:
    output = ["@@npu 0", *lines("npu-smi-health.txt"), "@@npu 1", "Health Status : Warning",
              "Error Code : 80E01801", "Error Information : demo"]  # fmt: skip
    health = NpuHealth().process(output)
    assert health[0]["health"] == "OK"
    assert health[1] == {"health": "Warning", "error_code": "80E01801", "error_info": "demo"}


def test_npu_health_command_loops_over_ids() -> None:
    command = NpuHealth().command(npu_count=16)
    assert "$(seq 0 15)" in command
    assert 'npu-smi info -t health -i "$i" -c 0' in command
    with pytest.raises(ValueError):
        NpuHealth().command(npu_count=0)


# --- hccn_tool ---------------------------------------------------------------------------------


def test_hccn_ip_masked_doc_sample_and_blog_sample_with_route() -> None:
    assert parse_hccn_ip(lines("hccn-ip-g.txt")) == {
        "ipaddr": "10.xx.xx.10",
        "netmask": "255.255.255.0",
    }
    assert parse_hccn_ip(lines("hccn-ip-route-g.910b1.txt")) == {
        "ipaddr": "29.1.112.213",
        "netmask": "255.255.0.0",
    }


def test_hccn_device_ips_per_npu() -> None:
    output = ["@@npu 0", *lines("hccn-ip-g.txt"), "@@npu 1", "hccn_tool fail"]
    ips = HccnDeviceIps().process(output)
    assert ips[0]["ipaddr"] == "10.xx.xx.10"
    assert ips[1] == {"ipaddr": None, "netmask": None}


def test_hccn_link() -> None:
    assert parse_hccn_value(lines("hccn-link-g.txt"), "link status") == "UP"
    output = ["@@npu 0", *lines("hccn-link-g.txt"), "@@npu 1", "link status: DOWN"]
    assert HccnLinks().process(output) == {0: "UP", 1: "DOWN"}


@pytest.mark.parametrize(
    ("fixture", "status"),
    [
        ("hccn-net-health-success.txt", "Success"),
        ("hccn-net-health-init.txt", "Init"),
        ("hccn-net-health-fault.txt", "Fault"),
    ],
)
def test_hccn_net_health(fixture: str, status: str) -> None:
    assert HccnNetHealth().process(["@@npu 3", *lines(fixture)]) == {3: status}


def test_hccn_tls_switch() -> None:
    assert parse_hccn_tls(lines("hccn-tls-g.txt")) == {
        "enabled": False,
        "preconfigured": True,
        "alarm_days": 60,
    }
    assert HccnTls().process(["@@npu 0", *lines("hccn-tls-g.txt")])[0]["enabled"] is False


def test_hccn_commands_find_the_tool_off_path() -> None:
    command = HccnLinks().command(npu_count=8)
    assert "command -v hccn_tool || echo /usr/local/Ascend/driver/tools/hccn_tool" in command
    assert '"$HCCN" -i "$i" -link -g' in command
    assert "$(seq 0 7)" in command


# --- /etc/hccn.conf ----------------------------------------------------------------------------


def test_hccn_conf_blog_sample_with_prompt_and_elision() -> None:
    conf = parse_hccn_conf(lines("hccn.conf.txt"))
    assert sorted(conf) == [0, 7]
    assert conf[0] == {
        "address": "29.1.137.205",
        "netmask": "255.255.0.0",
        "netdetect": "29.1.0.1",
        "gateway": "29.1.0.1",
        "send_arp_status": "1",
    }
    assert conf[7]["address"] == "29.1.170.143"


def test_hccn_conf_tls_and_comments() -> None:
    conf = HccnConf().process(["# comment", "tls_enable_3=1", "address_3 = 10.0.0.3", "junk"])
    assert conf == {3: {"tls_enable": "1", "address": "10.0.0.3"}}
    assert "'/etc/my hccn.conf'" in HccnConf().command(path="/etc/my hccn.conf")
