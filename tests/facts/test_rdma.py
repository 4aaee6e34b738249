"""ibstat, ibstatus, sysfs and ibv_devinfo parsers, on verbatim captured outputs."""

from __future__ import annotations

import pytest

from ironserve.facts.rdma import (
    IbPorts,
    IbvDevices,
    normalize_state,
    parse_ib_sysfs,
    parse_ibstat,
    parse_ibstatus,
    parse_ibv_devinfo,
    parse_rate,
)
from tests.facts.conftest import lines


def test_ibstat_h100_some_down() -> None:
    ports = parse_ibstat(lines("ibstat.h100.some-down.txt"))
    assert len(ports) == 12
    down = [p for p in ports if p["state"] == "DOWN"]
    assert len(down) == 3
    assert {p["physical_state"] for p in down} == {"Disabled"}
    ib = [p for p in ports if p["link_layer"] == "InfiniBand"]
    assert len(ib) == 8
    assert {p["rate_gbps"] for p in ib} == {400.0}
    assert {p["state"] for p in ib} == {"ACTIVE"}
    first = ports[0]
    assert first == {
        "ca": "mlx5_0",
        "port": 1,
        "ca_type": "MT4129",
        "firmware": "28.39.1002",
        "state": "ACTIVE",
        "physical_state": "LinkUp",
        "rate_gbps": 400.0,
        "link_layer": "InfiniBand",
        "base_lid": 75,
        "sm_lid": 334,
        "port_guid": "0x946dae0300cde72c",
    }
    assert ports[1]["ca"] == "mlx5_1" and ports[1]["ca_type"] == "MT4125"
    assert ports[1]["link_layer"] == "Ethernet" and ports[1]["rate_gbps"] == 100.0


def test_ibstat_space_indented() -> None:
    ports = parse_ibstat(lines("ibstat.h100.all-active.spaces.txt"))
    assert len(ports) == 9
    assert [p["ca"] for p in ports[:3]] == ["mlx5_0", "mlx5_1", "mlx5_4"]
    assert ports[1]["base_lid"] == 534
    assert sum(p["link_layer"] == "InfiniBand" and p["rate_gbps"] == 400.0 for p in ports) == 8
    assert {p["firmware"] for p in ports if p["link_layer"] == "InfiniBand"} == {"28.41.1000"}


def test_ibstat_roce_ports() -> None:
    ports = parse_ibstat(lines("ibstat.h100.roce.txt"))
    assert len(ports) == 12
    assert {p["link_layer"] for p in ports} == {"Ethernet"}
    assert {p["base_lid"] for p in ports} == {0}
    assert sum(p["rate_gbps"] == 400.0 for p in ports) == 8
    assert ports[1]["port_guid"] == "0x0000000000000000"


def test_ibstat_a100_hdr() -> None:
    ports = parse_ibstat(lines("ibstat.a100.all-active.txt"))
    assert len(ports) == 9
    assert {p["state"] for p in ports} == {"ACTIVE"}
    assert sum(p["link_layer"] == "InfiniBand" for p in ports) == 8
    assert {p["rate_gbps"] for p in ports} == {200.0}


def test_ibstat_ibpanic_keeps_the_ports_printed_before() -> None:
    ports = IbPorts().process(lines("ibstat.a100.ibpanic.txt"))
    assert [p["ca"] for p in ports] == [f"mlx5_{i}" for i in range(8)]
    assert ports[0]["base_lid"] == 13247
    assert ports[7]["port_guid"] == "0x00155dfffd3411f2"


def test_ibstatus() -> None:
    ports = parse_ibstatus(lines("ibstatus.a100.txt"))
    assert ports[0]["ca"] == "mlx5_0"
    assert ports[0]["base_lid"] == 0x33BF
    assert ports[0]["state"] == "ACTIVE"
    assert ports[0]["physical_state"] == "LinkUp"
    assert ports[0]["rate_gbps"] == 200.0
    assert ports[0]["link_layer"] == "InfiniBand"


def test_sysfs_listing() -> None:
    ports = parse_ib_sysfs(lines("sys-class-infiniband.h100.txt"))
    assert len(ports) == 9
    assert [p["ca"] for p in ports][-1] == "mlx5_bond_0"
    bond = ports[-1]
    assert bond["ca_type"] == "MT41692"
    assert bond["firmware"] == "32.38.3056"
    assert bond["rate_gbps"] == 200.0
    assert bond["link_layer"] == "Ethernet"
    assert {p["state"] for p in ports} == {"ACTIVE"}
    assert {p["physical_state"] for p in ports} == {"LinkUp"}
    assert sum(p["rate_gbps"] == 400.0 for p in ports) == 8


@pytest.mark.parametrize(
    ("raw", "state"),
    [("Active", "ACTIVE"), ("4: ACTIVE", "ACTIVE"), ("Down", "DOWN"), ("1: DOWN", "DOWN"),
     ("Initializing", "INIT"), ("2: INIT", "INIT"), ("Armed", "ARMED")],
)  # fmt: skip
def test_state_normalisation(raw: str, state: str) -> None:
    assert normalize_state(raw) == state


def test_rate_forms() -> None:
    assert parse_rate("400") == 400.0
    assert parse_rate("400 Gb/sec (4X NDR)") == 400.0
    assert parse_rate("2.5 Gb/sec (1X SDR)") == 2.5
    assert parse_rate("") is None


def test_ibv_devinfo_h100() -> None:
    devices = parse_ibv_devinfo(lines("ibv_devinfo.h100.txt"))
    assert [d["hca_id"] for d in devices] == [
        "mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10", "mlx5_11",
    ]  # fmt: skip
    first = devices[0]
    assert first["transport"] == "InfiniBand"
    assert first["fw_ver"] == "28.41.1000"
    assert first["vendor_id"] == "0x02c9"
    assert first["vendor_part_id"] == 4129
    assert first["board_id"] == "DEL0000000036"
    assert first["phys_port_cnt"] == 1
    assert first["ports"] == [
        {
            "port": 1,
            "state": "PORT_ACTIVE",
            "max_mtu": 4096,
            "active_mtu": 4096,
            "sm_lid": 5790,
            "port_lid": 3697,
            "link_layer": "InfiniBand",
        }
    ]
    assert devices[-1]["ports"][0]["port_lid"] == 3735


def test_ibv_devinfo_no_devices() -> None:
    assert IbvDevices().process(["No IB devices found"]) == []
