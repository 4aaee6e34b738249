"""Facts gathered through pyinfra on ``@fake`` hosts: command wiring and missing tools."""

from __future__ import annotations

from typing import Any

import pytest

from ironserve.facts.ascend import HccnDeviceIps, HccnLinks, NpuHealth, NpuSmiInfo
from ironserve.facts.docker import DockerDaemonJson, DockerRuntimes
from ironserve.facts.host import PciDevices
from ironserve.facts.nvidia import NvidiaDriver, NvidiaGpus, NvidiaXidEvents
from ironserve.facts.rdma import IbPorts, IbvDevices
from tests.facts.conftest import MISSING, lines, run_fact


@pytest.mark.parametrize(
    ("fact", "tool", "default"),
    [
        (NvidiaGpus, "nvidia-smi", []),
        (NvidiaDriver, "nvidia-smi", None),
        (NpuSmiInfo, "npu-smi", None),
        (NpuHealth, "npu-smi", {}),
        (IbPorts, "ibstat", []),
        (IbvDevices, "ibv_devinfo", []),
        (DockerRuntimes, "docker", None),
        (PciDevices, "lspci", []),
    ],
)
def test_missing_tool_gives_default(fact: type, tool: str, default: Any) -> None:
    # The canned response would parse to data: it must not be reached.
    value, commands = run_fact(
        fact, {f"command -v {tool} ": MISSING, tool: lines("nvidia-smi.h100x8.550.txt")}
    )
    assert value == default
    assert commands[0].startswith(f"if command -v {tool} >/dev/null 2>&1; then (")


def test_present_tool_output_is_parsed() -> None:
    value, commands = run_fact(
        NvidiaGpus, {"nvidia-smi": lines("nvidia-smi-query-gpu.h100.590.csv")}
    )
    assert [gpu["name"] for gpu in value] == ["NVIDIA H100 80GB HBM3"]
    assert "--format=csv,nounits" in commands[0]


def test_driver_fact_through_pyinfra() -> None:
    value, _ = run_fact(NvidiaDriver, {"nvidia-smi": lines("nvidia-smi.h100x8.560.txt")})
    assert value["driver_version"] == "560.35.03"
    assert len(value["gpus"]) == 8


def test_npu_count_argument_reaches_the_command() -> None:
    output = ["@@npu 0", *lines("npu-smi-health.txt"), "@@npu 1", *lines("npu-smi-health.txt")]
    value, commands = run_fact(NpuHealth, {"npu-smi info": output}, {"npu_count": 2})
    assert sorted(value) == [0, 1]
    assert "$(seq 0 1)" in commands[0]


def test_hccn_tool_absent_prints_nothing_so_default() -> None:
    value, commands = run_fact(HccnLinks, {})
    assert value == {}
    assert "hccn_tool" in commands[0]
    value, _ = run_fact(HccnDeviceIps, {"-ip -g": ["@@npu 0", *lines("hccn-ip-g.txt")]})
    assert value == {0: {"ipaddr": "10.xx.xx.10", "netmask": "255.255.255.0"}}


def test_daemon_json_absent_is_empty() -> None:
    value, commands = run_fact(DockerDaemonJson, {})
    assert value == {}
    assert commands == ["if [ -f /etc/docker/daemon.json ]; then cat /etc/docker/daemon.json; fi"]


def test_xid_since_argument() -> None:
    value, commands = run_fact(
        NvidiaXidEvents,
        {"journalctl": lines("dmesg-decode-iso-xid13-43.txt")},
        {"since": "2 hours ago"},
    )
    assert [e["xid"] for e in value] == [13] * 6 + [43] * 3  # no cutoff line: nothing dropped
    assert "--since '2 hours ago'" in commands[0]
